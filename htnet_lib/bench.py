"""Benchmark (not a test): the authors'-style loop against the batched engine on this machine and config.

Prints samples/s, seconds per full LOSO (extrapolated from timed epochs to all folds and `epochs`), their ratio,
FLOPs per training sample and the FLOP/s reached. Timings exclude the first (warm-up) epoch.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from . import data as data_mod
from . import loso
from .config import Params
from .model import flops_per_sample


def _timed(fn, X, y, plans, params) -> float:
    """Seconds per fold-epoch, from epoch 2 on."""
    stamps: list[float] = []

    def tick(_n: int) -> None:
        loso._sync(X.device)
        stamps.append(time.perf_counter())

    fn(X, y, plans, params, on_epoch=tick)
    per_epoch_calls = len(stamps) // params.train.epochs  # loop: one call per fold-epoch; batched: one per epoch
    span = stamps[-1] - stamps[per_epoch_calls - 1]
    return span / (len(plans) * (params.train.epochs - 1))


def benchmark(params: Params, epochs: int = 3, folds: int = 0, loop_folds: int = 2) -> dict[str, Any]:
    """Time both engines for `epochs` epochs: the batched one on `folds` folds at once (0: the chunk a run would use),
    the loop on `loop_folds` folds one after another; extrapolate both to the full LOSO."""
    device = loso.resolve_device(params.run.device)
    if params.run.threads:
        torch.set_num_threads(params.run.threads)
    samples = data_mod.load_samples(params.run.data_dir or None)
    all_plans = loso.plan_folds(samples, params.train)
    probe = params.replace(epochs=max(2, epochs), eval_every=1, fixed_epochs=[], progress=False)
    X = loso.prepare_inputs(samples, data_mod.load_flow_maps(samples), params.train, progress=False).to(device)
    y = torch.tensor(samples["label"].to_numpy(), device=device)
    n_b = len(loso.epoch_batches(all_plans[0], 1, probe.train))
    same = [p for p in all_plans if len(loso.epoch_batches(p, 1, probe.train)) == n_b]
    chunk = params.run.fold_chunk or loso.auto_chunk(params.model, params.train.batch_size, device, len(all_plans))
    batched_plans = same[:folds or chunk]
    loop_s = _timed(loso.train_loop, X, y, same[:loop_folds], probe)
    batched_s = _timed(loso.train_batched, X, y, batched_plans, probe)
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
    for name, s in (("loop", loop_s), ("batched", batched_s)):
        sps = n_train / s
        out[f"{name}_samples_per_s"] = sps
        out[f"{name}_full_loso_s"] = s * n_folds * n_epochs
        out[f"{name}_flop_per_s"] = sps * flops
    out["batched_folds_timed"] = len(batched_plans)
    out["speedup_batched_over_loop"] = loop_s / batched_s
    return out


def format_report(r: dict[str, Any]) -> str:
    lines = [f"device: {r['device']}", f"config: {r['config']}",
             f"FLOPs per training sample (forward + backward): {r['flops_per_training_sample'] / 1e6:.2f} MFLOP"]
    for name in ("loop", "batched"):
        lines.append(f"{name:8s}: {r[f'{name}_samples_per_s']:9.0f} samples/s   full LOSO {r[f'{name}_full_loso_s']:9.0f} s"
                     f"   {r[f'{name}_flop_per_s'] / 1e9:8.1f} GFLOP/s")
    lines.append(f"batched / loop speed: {r['speedup_batched_over_loop']:.2f}x "
                 f"(batched timed on {r['batched_folds_timed']} folds at once)")
    return "\n".join(lines)
