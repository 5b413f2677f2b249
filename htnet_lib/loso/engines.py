"""Engines that train a chunk of LOSO folds (§4.2), and how a run picks one.

Both engines run one training step, `_train`: per epoch and batch, augment, forward under autocast, each fold's mean
loss, backward, one Adam step; then the weights' running average (`swa_start`) and, after each evaluated epoch, the
logits of the samples each fold scores. What differs is only how a chunk's models are held (`Folds`):

- `loop` (`OneModel`): one fold after another, a plain module, as the authors train; dropout masks come from the
  fold's own seed;
- `batched` (`StackedModels`): a chunk of folds as one computation (`torch.func.stack_module_state` +
  `torch.vmap(functional_call)`), batches padded to a common length with a mask. Each fold sees only its own training
  samples, and because Adam is elementwise the stacked optimiser equals one Adam per fold; a test checks that a fold
  trained alone and inside a chunk gives the same predictions.

Both record, for every fold, the logits on its held-out subject (and on its inner validation subjects) after every
evaluated epoch, and its mean training loss per epoch (`FoldRecord`). `train` returns them (`Trained`) and, when
asked, the trained models; `fit` trains one model on every sample (no held-out subject). `engine: auto` times both on
this device and config (`calibrate_engine`, cached per machine) and keeps the faster.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
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
from ..models import build, build_on_meta, geometry
from . import augment, foldwise
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


@dataclass
class Trained:
    """What `train` returns: one record per fold, in the plans' order, and (when asked) each fold's trained model,
    with the averaged weights when `swa_start` is set, in eval mode."""

    records: list[FoldRecord]
    models: list[nn.Module] | None = None


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


# ---------------------------------------------------------------- how a chunk's models are held

class Folds:
    """The models of a chunk of F folds, as the training step sees them: `weights` (what Adam steps and the
    running average follows), `forward` of inputs (F, B, ...) to logits (F, B, classes), train/eval mode, the random
    stream the chunk trains in, and the trained models.

    Both hold the network with its dropout and BatchNorm made fold-wise (`foldwise`): in training, `forward` takes
    the (F, B) mask of real samples and the real count per fold, draws each fold's dropout masks from the fold's own
    generator, and BatchNorm's statistics skip the padding."""

    weights: dict[str, torch.Tensor]
    streams: foldwise.DropoutStreams

    def forward(self, x: torch.Tensor, weights: dict[str, torch.Tensor] | None = None,
                mask: torch.Tensor | None = None, counts: Sequence[int] | None = None) -> torch.Tensor:
        raise NotImplementedError

    def dropout_masks(self, x: torch.Tensor, counts: Sequence[int] | None) -> list[torch.Tensor]:
        return self.streams.draw(counts or [x.shape[1]] * x.shape[0], x.shape[1]) if self.training else []

    def train(self, mode: bool) -> None:
        self.training = mode
        self.net.train(mode)

    def rng(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def models(self, averaged: dict[str, torch.Tensor] | None) -> list[nn.Module]:
        """Each fold's trained network, built afresh (plain dropout and BatchNorm modules) with its state."""
        state = {**self.weights, **self.buffers}
        first = next(iter(state.values()))
        out = []
        for i in range(self.count):
            m = init_model(self.cfg, 0).to(first.device)  # then overwritten
            one = {k: (v[i] if self.stacked else v).detach().clone() for k, v in {**state, **(averaged or {})}.items()}
            m.load_state_dict(one)
            out.append(m.eval())
        return out

    def _setup(self, models: list[nn.Module], plans: Sequence[FoldPlan], params: Params, device: torch.device):
        # the models are fresh and held by nothing else: changed in place, not copied
        self.cfg, self.count, self.training = params.model, len(plans), True
        self.net = foldwise.foldwise(models[0], in_place=True)
        sites = foldwise.dropout_sites(self.net, geometry(params.model).shape)
        self.streams = foldwise.DropoutStreams(sites, [p.seed for p in plans], device)


class OneModel(Folds):
    """One fold's model as a plain module (the loop engine): any network; other random draws than dropout's come from
    the fold's seed too (`_fold_rng`)."""

    stacked = False

    def __init__(self, plan: FoldPlan, params: Params, device: torch.device):
        self.plan, self.device = plan, device
        self._setup([init_model(params.model, plan.seed).to(device)], [plan], params, device)
        self.weights = dict(self.net.named_parameters())
        self.buffers = dict(self.net.named_buffers())

    def forward(self, x, weights=None, mask=None, counts=None):
        with foldwise.step(None, self.dropout_masks(x, counts)):
            out = self.net(x[0]) if weights is None else functional_call(self.net, weights, (x[0],))
        return out[None]

    def dropout_masks(self, x, counts):
        return [m[0] for m in super().dropout_masks(x, counts)]

    def rng(self):
        return _fold_rng(self.plan, self.device)


class StackedModels(Folds):
    """A chunk's models as stacked weights under `torch.vmap(functional_call)` (the batched engine). Dropout masks
    and BatchNorm statistics are each fold's own (`foldwise`); any other random draw is refused (vmap's
    randomness='error'), as are folds with different numbers of batches."""

    stacked = True

    def __init__(self, plans: Sequence[FoldPlan], params: Params, device: torch.device, compile: bool = False):
        tr = params.train
        n_batches = {len(epoch_batches(p, 1, tr)) for p in plans}
        if len(n_batches) != 1:
            raise ValueError(f"folds in one batched chunk need equal batches per epoch, got {sorted(n_batches)}")
        models = [init_model(params.model, p.seed).to(device) for p in plans]
        self._setup(models, plans, params, device)
        # stacking copies the weights: the models (the first is `self.net`) then only lend their structure
        self.weights, self.buffers = stack_module_state([foldwise.foldwise(m, in_place=True) for m in models])
        self.base = foldwise.foldwise(self.net, unfold_convs=True, in_place=True).to("meta")
        self.net = self.base

        def one(p, b, x, m, masks):
            with foldwise.step(m, masks):
                return functional_call(self.base, (p, b), (x,))

        self._forward = torch.vmap(one, in_dims=(0, 0, 0, 0, 0), randomness="error")
        if compile:
            self._forward = torch.compile(self._forward)

    def forward(self, x, weights=None, mask=None, counts=None):
        if mask is None or not self.training:
            mask = torch.ones(x.shape[:2], device=x.device)
        return self._forward(self.weights if weights is None else weights, self.buffers, x, mask,
                             self.dropout_masks(x, counts))


# ---------------------------------------------------------------- the training step

def _stack(arrays: Sequence[np.ndarray], device) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad per-fold index arrays into (F, L) indices and a (F, L) validity mask."""
    length = max(1, max(len(a) for a in arrays))
    idx = np.zeros((len(arrays), length), dtype=np.int64)
    mask = np.zeros((len(arrays), length), dtype=np.float32)
    for i, a in enumerate(arrays):
        idx[i, :len(a)] = a
        mask[i, :len(a)] = 1.0
    return torch.as_tensor(idx, device=device), torch.as_tensor(mask, device=device)


def fold_losses(logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor | None, train
                ) -> torch.Tensor:
    """Each fold's mean loss (F,) of logits (F, B, classes) against labels (F, B) over its real samples (mask 1): the
    authors' cross-entropy, or the honest recipe's weighted or smoothed one (`augment.fold_loss`). Summed over folds,
    it gives every fold exactly its own gradient."""
    if augment.simple_ce(train):
        ce = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(y.shape)
        return (ce * mask).sum(1) / mask.sum(1)
    return augment.fold_loss(logits, y, mask, weights, train.label_smoothing)


def _train(folds: Folds, X: torch.Tensor, y: torch.Tensor, plans: Sequence[FoldPlan], params: Params,
           on_epoch: Callable[[int], None] | None, keep_models: bool) -> Trained:
    """The training step both engines share (module docstring): `plans` trained together as `folds` holds them."""
    tr, device, amp = params.train, X.device, params.run.amp
    evals = eval_epochs(tr)
    opt = torch.optim.Adam(list(folds.weights.values()), lr=tr.lr, weight_decay=tr.weight_decay,
                           fused=tr.fused_adam or None)
    Y = torch.stack([fold_labels(p, y, tr) for p in plans])  # (F, N): each fold's training labels
    weights = _weights(Y, plans, tr, params.model.num_classes)
    swa = Averager(folds.weights) if tr.swa_start else None
    seeds = [p.seed for p in plans]
    scored = [np.concatenate([p.test_idx, p.inner_idx]) for p in plans]
    score_idx, _ = _stack(scored, device)
    n_train = torch.tensor([len(p.train_idx) for p in plans], device=device, dtype=torch.float32)
    horizontal = augment.horizontal_channel(geometry(params.model).map_channels, tr)
    outputs, losses = [], []
    with folds.rng():
        for epoch in range(1, tr.epochs + 1):
            folds.train(True)
            batches = [epoch_batches(p, epoch, tr) for p in plans]
            total = torch.zeros(len(plans), device=device)
            for k in range(len(batches[0])):
                bi, bm = _stack([b[k] for b in batches], device)
                xb = augment.augment(X[bi], seeds, [len(b[k]) for b in batches], epoch, k, tr, horizontal)
                opt.zero_grad(set_to_none=True)
                with autocast(device, amp):
                    logits = folds.forward(xb, mask=bm, counts=[len(b[k]) for b in batches]).float()  # (F, B, classes)
                per_fold = fold_losses(logits, Y.gather(1, bi), bm, weights, tr)
                # backward(), not autograd.grad: it hands each gradient its weight's memory layout, which
                # torch's fused CPU Adam assumes without checking (2.14 reads a transposed gradient as
                # contiguous; pytorch/pytorch#106951 for the same mismatch on CUDA)
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
            if epoch in evals and any(len(s) for s in scored):
                folds.train(False)
                now = swa.averaged if swa is not None and epoch >= tr.swa_start else None
                with torch.no_grad(), autocast(device, amp):
                    outputs.append(folds.forward(X[score_idx], now).float().cpu().numpy())
            if on_epoch:
                on_epoch(len(plans))
    out = np.stack(outputs) if outputs else np.zeros((0, len(plans), 0, params.model.num_classes), np.float32)
    loss_arr = np.stack(losses)  # (epochs, F)
    records = []
    for i, p in enumerate(plans):
        nt, ni = len(p.test_idx), len(p.inner_idx)
        records.append(FoldRecord(p.subject, np.array(evals if outputs else []), p.test_idx, p.inner_idx,
                                  out[:, i, :nt], out[:, i, nt:nt + ni], loss_arr[:, i]))
    models = folds.models(swa.averaged if swa is not None else None) if keep_models else None
    return Trained(records, models)


def train(X: torch.Tensor, y: torch.Tensor, plans: Sequence[FoldPlan], params: Params, engine: str = "loop",
          on_epoch: Callable[[int], None] | None = None, keep_models: bool = False, compile: bool = False) -> Trained:
    """Train `plans` with `engine` ('loop': one after another; 'batched': all as one computation) and return their
    records and, with `keep_models`, their trained models.

    `compile` (batched only): the vmapped forward through `torch.compile` (inductor; on a CPU it needs a C++
    compiler). Only the benchmark uses it: on 2 CPU cores it trains faster once compiled, but compiling (one to two
    minutes on a cold cache, still more than the saving with the on-disk cache an earlier process left, and again for
    each new shape) costs more than the quick LOSO gains (`make bench` prints both).
    """
    if engine == "batched":
        return _train(StackedModels(plans, params, X.device, compile), X, y, plans, params, on_epoch, keep_models)
    if engine != "loop":
        raise HTNetInputError(None, "engine", f"unknown engine {engine!r} (loop, batched)")
    done = [_train(OneModel(p, params, X.device), X, y, [p], params, on_epoch, keep_models) for p in plans]
    return Trained([t.records[0] for t in done], [t.models[0] for t in done] if keep_models else None)


def train_loop(X: torch.Tensor, y: torch.Tensor, plans: Sequence[FoldPlan], params: Params,
               on_epoch: Callable[[int], None] | None = None) -> list[FoldRecord]:
    """One fold after another, the held-out subject scored after each evaluated epoch (`train`, engine 'loop')."""
    return train(X, y, plans, params, "loop", on_epoch).records


def train_batched(X: torch.Tensor, y: torch.Tensor, plans: Sequence[FoldPlan], params: Params,
                  on_epoch: Callable[[int], None] | None = None, compile: bool = False) -> list[FoldRecord]:
    """All folds of `plans` trained as one computation (vmap over stacked weights; `train`, engine 'batched').

    Each step takes batch k of every fold, padded to a common length with a mask, so a fold's loss is the mean over
    its own samples only; the summed loss gives each fold exactly its own gradient. Folds must have the same number
    of batches per epoch (`folds.make_chunks` groups them so).
    """
    return train(X, y, plans, params, "batched", on_epoch, compile=compile).records


ENGINES: dict[str, Callable[..., list[FoldRecord]]] = {"loop": train_loop, "batched": train_batched}


def fit(X: torch.Tensor, y: torch.Tensor, params: Params, seed: int | None = None) -> nn.Module:
    """One model trained on every sample of `X` (no held-out subject, nothing scored: `epochs` fixed in advance) with
    the loop engine's step: the same batches, augmentation, loss and weight averaging as a LOSO fold. Its seed is
    `fold_seed(seed, 'all')` (what the shipped weights were trained with); returned in eval mode."""
    plan = FoldPlan.every_sample(len(X), params.train.seed if seed is None else seed)
    return train(X, y, [plan], params, "loop", keep_models=True).models[0]


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


def batchable(cfg: ModelConfig) -> bool:
    """Whether the batched engine can train this network exactly: every random module is `nn.Dropout` (drawn per fold
    by `foldwise`); BatchNorm is fine (masked statistics)."""
    try:
        foldwise.foldwise(build_on_meta(cfg))
    except HTNetInputError:
        return False
    return True


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
    """A rough upper bound on one fold's training memory: weights, gradients, Adam's two moments, activations (the
    network's own estimate, `ModelConfig.activation_bytes`, else twice every module's outputs in float32)."""
    net = build_on_meta(cfg)
    n_params = sum(p.numel() for p in net.parameters())
    act = cfg.activation_bytes(batch_size)
    if act is None:
        act = 2 * 4 * batch_size * _output_elements(net, geometry(cfg).shape)
    return 16 * n_params + act


def _output_elements(net: nn.Module, shape: tuple[int, ...]) -> int:
    """Elements of every leaf module's output for one sample (a forward on the meta device)."""
    count = [0]

    def hook(_m, _i, out):
        if isinstance(out, torch.Tensor):
            count[0] += out.numel()

    handles = [m.register_forward_hook(hook) for m in net.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            net(torch.zeros(1, *shape, device="meta"))
    finally:
        for h in handles:
            h.remove()
    return count[0]


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
