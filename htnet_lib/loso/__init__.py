"""Leave-one-subject-out training and evaluation (§4.2), as a package:

- `folds`: fold plans (held-out, inner-validation and training samples, the fold's seed), batches, fold labels;
- `engines`: one training step, run by the loop and the batched engines over a chunk of folds (`train`, `fit`), and
  the engine choice (`engine: auto`);
- `protocols`: the registry of protocols that choose each fold's held-out predictions (`paper`, `last`,
  `fixed@E`, `inner`, ...);
- `runs`: run folders (train, resume, lock, finalize) and the `Run` object that reads them;
- `executors`: where chunks train (in this process, or on Ray).

The names most callers need are re-exported here.
"""
from .engines import (ENGINES, FoldRecord, Trained, TrainingDiverged, calibrate_engine, choose_engine, fit, resolve_device,
                      train)
from .folds import FoldPlan, epoch_batches, eval_epochs, fold_labels, fold_seed, make_chunks, plan_folds
from .protocols import (PROTOCOLS, Protocol, default_names, epoch_curve, label, parse, pick_epoch, protocol_columns,
                        protocol_predictions, protocol_probabilities, protocol_scores, register, run_names, unregister)
from .runs import (DamagedFoldFile, Interrupted, Run, ensemble_predictions, load_records, run_dir_for, run_loso, run_many, run_seeds,
                   seed_summary)

__all__ = [
    "ENGINES", "FoldRecord", "Trained", "TrainingDiverged", "calibrate_engine", "choose_engine", "fit", "resolve_device",
    "train",
    "FoldPlan", "epoch_batches", "eval_epochs", "fold_labels", "fold_seed", "make_chunks", "plan_folds",
    "PROTOCOLS", "Protocol", "default_names", "epoch_curve", "label", "parse", "pick_epoch", "protocol_columns",
    "protocol_predictions", "protocol_probabilities", "protocol_scores", "register", "run_names", "unregister",
    "DamagedFoldFile", "Interrupted", "Run", "ensemble_predictions", "load_records", "run_dir_for", "run_loso", "run_many", "run_seeds", "seed_summary",
]
