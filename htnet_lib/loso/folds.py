"""Leave-one-subject-out folds (§4.2): plans, batches, the labels a fold trains on, the epochs it is scored at.

Every fold's randomness (initial weights, shuffled batches, inner validation subjects, dropout) derives from
`fold_seed(seed, subject)`, so a fold trains the same whether it runs alone, in a chunk of folds, in another process
or on another machine's worker.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from .._io import HTNetInputError
from ..config import TrainConfig


def fold_seed(seed: int, subject: str) -> int:
    """A per-fold seed: a fold's initial weights and batches depend on (seed, subject) only, not on chunking."""
    return int(hashlib.sha256(f"{seed}:{subject}".encode()).hexdigest()[:8], 16)


@dataclass(frozen=True)
class FoldPlan:
    """One LOSO fold: the held-out subject, the samples each role uses, and the fold's seed."""

    subject: str
    dataset: str
    train_idx: np.ndarray
    inner_idx: np.ndarray  # inner validation subjects (honest protocols); empty when off
    test_idx: np.ndarray
    seed: int

    @classmethod
    def every_sample(cls, n: int, seed: int) -> "FoldPlan":
        """Training on all `n` samples with none held out (a final model, `engines.fit`), under the name 'all': its
        seed is `fold_seed(seed, 'all')`, what the shipped weights were trained with."""
        none = np.zeros(0, np.int64)
        return cls("all", "", np.arange(n), none, none, fold_seed(seed, "all"))


def subjects_in_order(samples: pd.DataFrame) -> list[str]:
    """Subjects in order of first appearance in the samples table (the folds' order)."""
    return list(dict.fromkeys(samples["subject"]))


def plan_folds(samples: pd.DataFrame, train: TrainConfig) -> list[FoldPlan]:
    """One fold per subject (`train.folds` only, when given; an unknown subject raises), each with
    `inner_val_subjects` subjects drawn from its training subjects as inner validation."""
    subjects = samples["subject"].to_numpy()
    order = subjects_in_order(samples)
    if train.folds:
        unknown = [s for s in train.folds if s not in set(order)]
        if unknown:
            raise HTNetInputError(None, "folds", f"no samples for subject(s) {unknown}; subjects are e.g. {order[:5]}")
        order = [s for s in order if s in set(train.folds)]
    if not order:
        raise HTNetInputError(None, "folds", "no fold to train")
    datasets = samples["dataset"].astype(str).to_numpy()
    plans = []
    for s in order:
        seed = fold_seed(train.seed, s)
        test = np.flatnonzero(subjects == s)
        train_idx, inner_idx = np.flatnonzero(subjects != s), np.array([], dtype=np.int64)
        if train.inner_val_subjects:
            others = list(dict.fromkeys(subjects[train_idx]))
            if train.inner_val_subjects >= len(others):
                raise HTNetInputError(None, "inner_val_subjects",
                                      f"{train.inner_val_subjects} leaves no training subject ({len(others)} available)")
            rng = np.random.default_rng(seed)
            inner = rng.choice(others, size=train.inner_val_subjects, replace=False).tolist()
            is_inner = np.isin(subjects[train_idx], inner)
            train_idx, inner_idx = train_idx[~is_inner], train_idx[is_inner]
        plans.append(FoldPlan(s, str(datasets[test[0]]), train_idx, inner_idx, test, seed))
    return plans


def epoch_batches(plan: FoldPlan, epoch: int, train: TrainConfig) -> list[np.ndarray]:
    """Index batches of one fold's epoch: in order (the authors' DataLoader) or shuffled from (fold seed, epoch)."""
    idx = plan.train_idx
    if train.shuffle:
        idx = np.random.default_rng([plan.seed, epoch]).permutation(idx)
    return [idx[i:i + train.batch_size] for i in range(0, len(idx), train.batch_size)]


def fold_labels(plan: FoldPlan, y: torch.Tensor, train: TrainConfig) -> torch.Tensor:
    """The labels a fold trains on: the true ones, or (`label_shuffle`, an audit) its training labels permuted.

    The permutation stays within the fold's training samples, so class priors are kept and no label information
    remains; held-out predictions are still scored against the true labels.
    """
    if not train.label_shuffle:
        return y
    perm = np.random.default_rng([plan.seed, 7]).permutation(plan.train_idx)
    out = y.clone()
    out[torch.as_tensor(plan.train_idx, device=y.device)] = y[torch.as_tensor(perm, device=y.device)]
    return out


def eval_epochs(train: TrainConfig) -> list[int]:
    """Epochs after which held-out outputs are recorded (every `eval_every`, the fixed ones, and the last)."""
    return sorted({e for e in range(train.eval_every, train.epochs + 1, train.eval_every)}
                  | set(train.fixed_epochs) | {train.epochs})


def run_flops(params, plans: Sequence[FoldPlan]) -> float:
    """FLOPs of training `plans` (`config.Params`): forward + backward on every fold's training samples at every epoch,
    and a forward pass on the held-out and inner samples at every evaluated epoch (`models.flops_per_sample`)."""
    from ..models import flops_per_sample

    n_train = sum(len(q.train_idx) for q in plans)
    n_score = sum(len(q.test_idx) + len(q.inner_idx) for q in plans)
    return (n_train * params.train.epochs * flops_per_sample(params.model, True)
            + n_score * len(eval_epochs(params.train)) * flops_per_sample(params.model, False))


def make_chunks(plans: Sequence[FoldPlan], train: TrainConfig, chunk: int) -> list[list[FoldPlan]]:
    """Group folds with equal batches per epoch (a batched chunk steps them together), then cut each group into
    chunks of at most `chunk` folds."""
    groups: dict[int, list[FoldPlan]] = {}
    for p in plans:
        groups.setdefault(len(epoch_batches(p, 1, train)), []).append(p)
    return [g[i:i + chunk] for g in groups.values() for i in range(0, len(g), chunk)]
