"""Benchmark (not a test): the authors'-style loop against the batched engine on this machine and config.

Prints samples/s, seconds per full LOSO (extrapolated from timed epochs to all folds and `epochs`), their ratio,
FLOPs per training sample and the FLOP/s reached. Timings exclude the first (warm-up) epoch.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .. import data as data_mod
from .. import regions
from ..config import Params
from ..loso import engines, plan_folds
from ..model import flops_per_sample


def benchmark(params: Params, epochs: int = 3, folds: int = 0, loop_folds: int = 4) -> dict[str, Any]:
    """Time both engines for `epochs` epochs: the loop on `loop_folds` folds one after another, the batched engine at
    each candidate chunk size up to `folds` (0: the largest chunk a run could use); extrapolate to the full LOSO."""
    device = engines.resolve_device(params.run.device)
    if params.run.threads:
        torch.set_num_threads(params.run.threads)
    samples = data_mod.load_samples(params.run.data_dir or None)
    all_plans = plan_folds(samples, params.train)
    probe = engines.probe_params(params, epochs)
    X = regions.model_inputs(samples, data_mod.load_flow_maps(samples), params.train, params.model.image_size,
                             progress=False).to(device)
    y = torch.tensor(samples["label"].to_numpy(), device=device)
    same = engines.same_batch_count(all_plans, probe)
    chunk = params.run.fold_chunk or engines.auto_chunk(params.model, params.train.batch_size, device, len(all_plans))
    timing = {"loop": engines.seconds_per_fold_epoch("loop", X, y, same[:loop_folds], probe)}
    for c in engines.chunk_candidates(min(folds or chunk, len(same))):
        timing[f"batched@{c}"] = engines.seconds_per_fold_epoch("batched", X, y, same[:c], probe)
    n_train = float(np.mean([len(p.train_idx) for p in all_plans]))
    n_folds, n_epochs = len(all_plans), params.train.epochs
    flops = flops_per_sample(params.model, train=True)
    out = {
        "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else
                                 f" ({torch.get_num_threads()} threads)"),
        "config": f"dim {params.model.dim}, heads {params.model.heads}, block_repeats {params.model.block_repeats}, "
                  f"batch {params.train.batch_size}, {n_epochs} epochs, {n_folds} folds",
        "flops_per_training_sample": flops,
    }
    out["engines"] = {name: {"samples_per_s": n_train / s, "full_loso_s": s * n_folds * n_epochs,
                             "flop_per_s": n_train / s * flops} for name, s in timing.items()}
    best = min((k for k in timing if k != "loop"), key=timing.get)
    out["best_batched"] = best
    out["speedup_batched_over_loop"] = timing["loop"] / timing[best]
    return out


def format_report(r: dict[str, Any]) -> str:
    lines = [f"device: {r['device']}", f"config: {r['config']}",
             f"FLOPs per training sample (forward + backward): {r['flops_per_training_sample'] / 1e6:.2f} MFLOP"]
    for name, e in r["engines"].items():
        label = "loop (authors' style)" if name == "loop" else f"batched, {name.split('@')[1]} folds at once"
        lines.append(f"{label:28s}: {e['samples_per_s']:9.0f} samples/s   full LOSO {e['full_loso_s']:9.0f} s"
                     f"   {e['flop_per_s'] / 1e9:8.1f} GFLOP/s")
    lines.append(f"best batched ({r['best_batched']}) / loop speed: {r['speedup_batched_over_loop']:.2f}x")
    return "\n".join(lines)
