"""Engines that train a chunk of LOSO folds (§4.2), and how a run picks one.

- `loop`: one fold after another, as the authors do.
- `batched`: a chunk of folds as one computation (`torch.func.stack_module_state` + `torch.vmap(functional_call)`).
  Each fold sees only its own training samples, and because Adam is elementwise the stacked optimiser equals one
  Adam per fold; a test checks that a fold trained alone and inside a chunk gives the same predictions.

Both record, for every fold, the logits on its held-out subject (and on its inner validation subjects) after every
evaluated epoch, and its mean training loss per epoch (`FoldRecord`). `engine: auto` times both on this device and
config (`calibrate_engine`, cached per machine) and keeps the faster.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state
from torch.optim import swa_utils

from .._io import HTNetInputError, atomic_write_json, cache_dir
from ..config import ModelConfig, Params
from ..model import build
from . import augment
from .folds import FoldPlan, epoch_batches, eval_epochs, fold_labels


class TrainingDiverged(HTNetInputError):
    """A fold's training loss became NaN or infinite: the run stops, naming the fold and the epoch."""

    def __init__(self, subject: str, epoch: int, value: float, lr: float):
        super().__init__(None, "lr", f"training loss became {value} in fold {subject!r} at epoch {epoch} (lr {lr}); "
                                     f"nothing of this chunk was written. Lower the learning rate.")


@dataclass
class FoldRecord:
    """What one fold's training leaves: held-out logits at every evaluated epoch, and the training loss."""

    subject: str
    epochs: np.ndarray  # (E,)
    test_idx: np.ndarray  # rows of the samples table held out
    inner_idx: np.ndarray  # rows of the inner validation subjects (empty when off)
    test_logits: np.ndarray  # (E, n_test, classes) float32
    inner_logits: np.ndarray  # (E, n_inner, classes) float32
    train_loss: np.ndarray  # (epochs,) mean loss per epoch

    @property
    def test_pred(self) -> np.ndarray:
        return self.test_logits.argmax(-1).astype(np.int8)

    @property
    def inner_pred(self) -> np.ndarray:
        return self.inner_logits.argmax(-1).astype(np.int8)


def init_model(cfg: ModelConfig, seed: int) -> nn.Module:
    """A fold's model, initialised from its own seed (PyTorch default init, as the authors')."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build(cfg)


def autocast(device: torch.device, amp: bool):
    """bf16 autocast when `amp` (CUDA, or the CPU to check a GPU run's numerics before it happens)."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp)


def _fold_rng(plan: FoldPlan, device: torch.device):
    """The fold's own random stream for dropout, so a fold repeats whatever ran before it."""
    stack = contextlib.ExitStack()
    stack.enter_context(torch.random.fork_rng(devices=[device] if device.type == "cuda" else []))
    torch.manual_seed(plan.seed + 1)
    return stack


def train_loop(X: torch.Tensor, y: torch.Tensor, plans: Sequence[FoldPlan], params: Params,
               on_epoch: Callable[[int], None] | None = None, keep_model: dict | None = None) -> list[FoldRecord]:
    """One fold after another, the held-out subject scored after each evaluated epoch. With `keep_model` (a dict), the
    last fold's trained model is left there under 'model' (with the averaged weights when `swa_start` is set)."""
    tr, device = params.train, X.device
    evals = eval_epochs(tr)
    records = []
    for plan in plans:
        model = init_model(params.model, plan.seed).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=tr.lr)
        y_fold = fold_labels(plan, y, tr)
        weights = _weights(y_fold, [plan], tr, params.model.num_classes)
        swa = Averager(dict(model.named_parameters())) if tr.swa_start else None
        outputs, losses = [], []
        score_idx = torch.as_tensor(np.concatenate([plan.test_idx, plan.inner_idx]), device=device)
        with _fold_rng(plan, device):
            for epoch in range(1, tr.epochs + 1):
                model.train()
                total = 0.0
                for k, b in enumerate(epoch_batches(plan, epoch, tr)):
                    bi = torch.as_tensor(b, device=device)
                    xb = augment.augment(X[bi][None], [plan.seed], [len(b)], epoch, k, tr)[0]
                    opt.zero_grad(set_to_none=True)
                    with autocast(device, params.run.amp):
                        logits = model(xb).float()
                    if augment.simple_ce(tr):
                        loss = F.cross_entropy(logits, y_fold[bi])
                    else:
                        loss = augment.fold_loss(logits[None], y_fold[bi][None], torch.ones(1, len(b), device=device),
                                                 weights, tr.label_smoothing)[0]
                    loss.backward()
                    opt.step()
                    value = loss.item()
                    if not math.isfinite(value):
                        raise TrainingDiverged(plan.subject, epoch, value, tr.lr)
                    total += value * len(b)
                losses.append(total / len(plan.train_idx))
                if swa is not None and epoch >= tr.swa_start:
                    swa.update()
                if epoch in evals:
                    model.eval()
                    with torch.no_grad(), autocast(device, params.run.amp):
                        scored = model(X[score_idx]) if swa is None or epoch < tr.swa_start else \
                            functional_call(model, swa.averaged, (X[score_idx],))
                        outputs.append(scored.float().cpu().numpy())
                if on_epoch:
                    on_epoch(1)
        out = np.stack(outputs)
        n = len(plan.test_idx)
        records.append(FoldRecord(plan.subject, np.array(evals), plan.test_idx, plan.inner_idx, out[:, :n], out[:, n:],
                                  np.array(losses)))
        if keep_model is not None:
            if swa is not None and swa.averaged is not None:
                model.load_state_dict({**model.state_dict(), **swa.averaged})
            keep_model["model"] = model
    return records


def _stack(arrays: Sequence[np.ndarray], device) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad per-fold index arrays into (F, L) indices and a (F, L) validity mask."""
    length = max(1, max(len(a) for a in arrays))
    idx = np.zeros((len(arrays), length), dtype=np.int64)
    mask = np.zeros((len(arrays), length), dtype=np.float32)
    for i, a in enumerate(arrays):
        idx[i, :len(a)] = a
        mask[i, :len(a)] = 1.0
    return torch.as_tensor(idx, device=device), torch.as_tensor(mask, device=device)


def train_batched(X: torch.Tensor, y: torch.Tensor, plans: Sequence[FoldPlan], params: Params,
                  on_epoch: Callable[[int], None] | None = None, compile: bool = False) -> list[FoldRecord]:
    """All folds of `plans` trained as one computation (vmap over stacked weights).

    Each step takes batch k of every fold, padded to a common length with a mask, so a fold's loss is the mean over
    its own samples only; the summed loss gives each fold exactly its own gradient. Folds must have the same number
    of batches per epoch (`folds.make_chunks` groups them so).

    `compile`: the vmapped forward through `torch.compile` (inductor; on a CPU it needs a C++ compiler). Only the
    benchmark uses it: on 2 CPU cores it trains faster once compiled, but compiling (one to two minutes on a cold
    cache, and again for each new shape) costs more than the quick LOSO gains (`make bench` prints both).
    """
    tr, device = params.train, X.device
    if params.model.dropout > 0:
        raise HTNetInputError(None, "engine", "the batched engine cannot draw each fold's dropout masks from the "
                                              "fold's own seed; use engine: loop (engine: auto does) with dropout > 0")
    n_batches = {len(epoch_batches(p, 1, tr)) for p in plans}
    if len(n_batches) != 1:
        raise ValueError(f"folds in one batched chunk need equal batches per epoch, got {sorted(n_batches)}")
    evals = eval_epochs(tr)
    models = [init_model(params.model, p.seed).to(device) for p in plans]
    if has_batch_norm(models[0]) and len({len(p.train_idx) for p in plans}) > 1:
        raise HTNetInputError(None, "engine", "the batched engine pads the shorter folds' batches, and padded samples "
                                              "would enter BatchNorm's batch statistics; use engine: loop (engine: "
                                              "auto does) for a network with BatchNorm")
    stacked, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    del models

    def one(p, b, x):
        return functional_call(base, (p, b), (x,))

    forward = torch.vmap(one, in_dims=(0, 0, 0), randomness="error")
    if compile:
        forward = torch.compile(forward)
    opt = torch.optim.Adam(list(stacked.values()), lr=tr.lr)
    Y = torch.stack([fold_labels(p, y, tr) for p in plans])  # (F, N): each fold's training labels
    weights = _weights(Y, plans, tr, params.model.num_classes)
    swa = Averager(stacked) if tr.swa_start else None
    seeds = [p.seed for p in plans]
    score_idx, _ = _stack([np.concatenate([p.test_idx, p.inner_idx]) for p in plans], device)
    n_train = torch.tensor([len(p.train_idx) for p in plans], device=device, dtype=torch.float32)
    outputs, losses = [], []
    for epoch in range(1, tr.epochs + 1):
        base.train()
        batches = [epoch_batches(p, epoch, tr) for p in plans]
        total = torch.zeros(len(plans), device=device)
        for k in range(len(batches[0])):
            bi, bm = _stack([b[k] for b in batches], device)
            xb = augment.augment(X[bi], seeds, [len(b[k]) for b in batches], epoch, k, tr)
            opt.zero_grad(set_to_none=True)
            with autocast(device, params.run.amp):
                logits = forward(stacked, buffers, xb).float()  # (F, B, classes)
            if augment.simple_ce(tr):
                ce = F.cross_entropy(logits.flatten(0, 1), Y.gather(1, bi).flatten(), reduction="none").view(bi.shape)
                per_fold = (ce * bm).sum(1) / bm.sum(1)
            else:
                per_fold = augment.fold_loss(logits, Y.gather(1, bi), bm, weights, tr.label_smoothing)
            per_fold.sum().backward()
            opt.step()
            total += per_fold.detach() * bm.sum(1)
        mean_loss = (total / n_train).cpu().numpy()
        if not np.isfinite(mean_loss).all():
            i = int(np.flatnonzero(~np.isfinite(mean_loss))[0])
            raise TrainingDiverged(plans[i].subject, epoch, float(mean_loss[i]), tr.lr)
        losses.append(mean_loss)
        if swa is not None and epoch >= tr.swa_start:
            swa.update()
        if epoch in evals:
            base.eval()
            weights_now = swa.averaged if swa is not None and epoch >= tr.swa_start else stacked
            with torch.no_grad(), autocast(device, params.run.amp):
                outputs.append(forward(weights_now, buffers, X[score_idx]).float().cpu().numpy())
        if on_epoch:
            on_epoch(len(plans))
    out = np.stack(outputs)  # (E, F, L, classes)
    loss_arr = np.stack(losses)  # (epochs, F)
    records = []
    for i, p in enumerate(plans):
        nt, ni = len(p.test_idx), len(p.inner_idx)
        records.append(FoldRecord(p.subject, np.array(evals), p.test_idx, p.inner_idx, out[:, i, :nt],
                                  out[:, i, nt:nt + ni], loss_arr[:, i]))
    return records


ENGINES: dict[str, Callable[..., list[FoldRecord]]] = {"loop": train_loop, "batched": train_batched}


class Averager:
    """A running average of weights from `swa_start` on (stochastic weight averaging, `torch.optim.swa_utils`): its
    `averaged` copy follows `params` (a name -> tensor mapping, one model's or a chunk's stacked weights)."""

    def __init__(self, params: dict[str, torch.Tensor]):
        self.params = params
        self.averaged: dict[str, torch.Tensor] | None = None
        self.count = 0
        self._update = swa_utils.get_swa_multi_avg_fn()

    def update(self) -> None:
        if self.averaged is None:
            self.averaged = {k: v.detach().clone() for k, v in self.params.items()}
        else:
            self._update(list(self.averaged.values()), [v.detach() for v in self.params.values()], self.count)
        self.count += 1


def _weights(Y: torch.Tensor, plans: Sequence[FoldPlan], train, num_classes: int) -> torch.Tensor | None:
    """Per-fold class weights (F, C) of each fold's training labels, for `loss: balanced`; None otherwise."""
    if train.loss != "balanced":
        return None
    Y = Y if Y.dim() == 2 else Y[None].expand(len(plans), -1)
    return torch.stack([augment.class_weights(Y[i, torch.as_tensor(p.train_idx, device=Y.device)], num_classes)
                        for i, p in enumerate(plans)])


def has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def batchable(cfg: ModelConfig) -> bool:
    """Whether the batched engine can train this network exactly: no dropout, no BatchNorm."""
    with torch.device("meta"):
        return cfg.dropout == 0 and not has_batch_norm(build(cfg))


# ---------------------------------------------------------------- device, memory, engine choice

def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as e:
        raise HTNetInputError(None, "device", str(e)) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise HTNetInputError(None, "device", "CUDA requested but not available")
    return dev


def bytes_per_fold(cfg: ModelConfig, batch_size: int) -> int:
    """A rough upper bound on one fold's training memory: weights, gradients, Adam's two moments, activations."""
    with torch.device("meta"):
        n_params = sum(p.numel() for p in build(cfg).parameters())
    tokens = (cfg.image_size // cfg.patch_size) ** 2
    act = batch_size * tokens * cfg.dim * (cfg.mlp_mult + 6) * sum(cfg.block_repeats) * 4
    return 16 * n_params + act


def auto_chunk(cfg: ModelConfig, batch_size: int, device: torch.device, n_folds: int) -> int:
    """Folds per batched chunk: as many as fit in 60% of free device memory (all of them when they fit)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
    else:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError):
            free = 8 << 30
    return max(1, min(n_folds, int(0.6 * free // bytes_per_fold(cfg, batch_size))))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_fold_epoch(engine: str, X: torch.Tensor, y: torch.Tensor, plans: Sequence[FoldPlan],
                           params: Params, **engine_options) -> float:
    """Train `plans` with `engine` for `params.train.epochs` (at least 2) epochs and time every fold's epochs after
    its first (which pays for initialisation, warm-up and any compilation)."""
    stamps: list[float] = []

    def tick(_n: int) -> None:
        _sync(X.device)
        stamps.append(time.perf_counter())

    ENGINES[engine](X, y, plans, params, on_epoch=tick, **engine_options)
    e = params.train.epochs
    per_fold = np.array(stamps).reshape(-1, e)  # loop: a row per fold; batched: one row for the chunk
    return float((per_fold[:, -1] - per_fold[:, 0]).sum() / (len(plans) * (e - 1)))


def chunk_candidates(max_chunk: int) -> list[int]:
    """Chunk sizes worth timing: small chunks keep a CPU's caches warm, large ones fill a GPU."""
    return sorted({c for c in (4, 16) if c < max_chunk} | {max_chunk})


def probe_params(params: Params, epochs: int) -> Params:
    """`params` cut to a few epochs (at least 2), still scored after every epoch as a run is, for timing."""
    return params.replace(epochs=max(2, epochs), eval_every=1, fixed_epochs=[], progress=False)


def same_batch_count(plans: Sequence[FoldPlan], params: Params) -> list[FoldPlan]:
    """The plans with as many batches per epoch as the first one (what one batched chunk can hold)."""
    n_b = len(epoch_batches(plans[0], 1, params.train))
    return [p for p in plans if len(epoch_batches(p, 1, params.train)) == n_b]


def calibrate_engine(X: torch.Tensor, y: torch.Tensor, plans: Sequence[FoldPlan], params: Params,
                     max_chunk: int, epochs: int = 3) -> dict[str, float]:
    """Seconds per fold-epoch of the loop and of the batched engine at a few chunk sizes, on this device and config.

    Keys: 'loop' and 'batched@<chunk>'. Cached per device, threads, config and chunk limit: once per machine.
    """
    key = hashlib.sha256(json.dumps([str(X.device), torch.get_num_threads(), repr(params.model), params.train.batch_size,
                                     max_chunk, params.run.amp, torch.__version__]).encode()).hexdigest()[:16]
    path = cache_dir() / f"engine-{key}.json"
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            pass  # a damaged cache entry is measured again
    probe = probe_params(params, epochs)
    same = same_batch_count(plans, probe)
    out = {"loop": seconds_per_fold_epoch("loop", X, y, same[:2], probe)}
    if batchable(params.model):
        for c in chunk_candidates(min(max_chunk, len(same))):
            out[f"batched@{c}"] = seconds_per_fold_epoch("batched", X, y, same[:c], probe)
    atomic_write_json(path, out)
    return out


def choose_engine(timing: dict[str, float]) -> tuple[str, int]:
    """(engine, chunk) of the fastest entry of a `calibrate_engine` result."""
    best = min(timing, key=timing.get)
    return ("loop", 1) if best == "loop" else ("batched", int(best.split("@")[1]))
