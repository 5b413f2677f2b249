"""Leave-one-subject-out training (§4.2): the paper's protocol and honest ones, from one training.

One training records every fold's predictions on its held-out subject (and, when asked, on inner validation
subjects) at every evaluated epoch. The protocols are then choices over those records:

- `paper`: what the authors' code does. For each held-out subject, keep the predictions of the epoch with the best
  accuracy on that same subject (ties go to the later epoch: their test is `<=`). It chooses with test labels.
- `fixed@E`: the predictions after E epochs (E fixed in advance). Nothing about the held-out subject is used.
- `inner`: the epoch with the best accuracy on `inner_val_subjects` training subjects held out of that fold's training
  (chosen at random per fold), ties to the later epoch. Nothing about the held-out subject is used; the fold trains
  on fewer subjects.

Two engines train the folds: `loop` (one fold after another, as the authors do) and `batched` (a chunk of folds as
one computation: `torch.func.stack_module_state` + `torch.vmap(functional_call)`; each fold sees only its own
training samples, and because Adam is elementwise the stacked optimiser equals one Adam per fold). Both give the same
numbers up to float rounding; `engine: auto` times a few epochs of the loop and of the batched engine at a few chunk
sizes on the device, and keeps the fastest.

A run lives in its own folder (`runs/<name>-<params hash>-<data hash>`): `run.json` (params, seed, git revision, data
fingerprint, engine, device), one `folds/<subject>.npz` per finished fold, and, once all folds are done,
`predictions.csv`, `metrics.csv`, `curve.csv`. Every file is written atomically; a rerun of the same params skips
finished folds, so a killed run loses at most the chunk of folds in progress.
"""
from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state
from tqdm.auto import tqdm

from . import data as data_mod
from . import metrics, regions, release
from ._io import REPO_ROOT, HTNetInputError, atomic_path, atomic_write_json, cache_dir, git_revision
from .config import ModelConfig, Params, TrainConfig
from .model import HTNet

PROTOCOL_NOTE = ("paper: epoch picked per subject by that subject's test accuracy (uses test labels); "
                 "fixed@E: predictions after E epochs; inner: epoch picked on held-out training subjects")


# ---------------------------------------------------------------- inputs and folds

def prepare_inputs(samples: pd.DataFrame, maps: np.ndarray, train: TrainConfig, device: str | None = None,
                   progress: bool = True) -> torch.Tensor:
    """Model inputs (N, 3, 28, 28) float32: the four facial regions (§3.1) of each flow map.

    `official` preprocessing keeps what the authors feed their model: OpenCV channel order (strain, v, u) and raw
    0..255 values. `scaled` maps values to [-1, 1] with a fixed affine map (no statistics, so nothing can leak).
    """
    x = regions.region_inputs(samples, maps, train.regions, device=None, progress=progress)
    t = torch.from_numpy(x).permute(0, 3, 1, 2).float().contiguous()
    if train.preprocessing == "scaled":
        t = t / 127.5 - 1.0
    return t.to(device) if device else t


def fold_seed(seed: int, subject: str) -> int:
    """A per-fold seed: a fold's initial weights and batches depend on (seed, subject) only, not on chunking."""
    return int(hashlib.sha256(f"{seed}:{subject}".encode()).hexdigest()[:8], 16)


@dataclass(frozen=True)
class FoldPlan:
    """One LOSO fold: the held-out subject, the samples each role uses, and the fold's seed."""

    subject: str
    dataset: str
    train_idx: np.ndarray
    inner_idx: np.ndarray  # inner validation (honest `inner` protocol); empty when off
    test_idx: np.ndarray
    seed: int


def plan_folds(samples: pd.DataFrame, train: TrainConfig) -> list[FoldPlan]:
    """LOSO folds for `train.folds` (all subjects when empty), with `inner_val_subjects` carved out of training."""
    subjects = samples["subject"].to_numpy()
    plans = []
    for f in data_mod.loso_folds(samples, train.folds):
        s = fold_seed(train.seed, f.subject)
        train_idx, inner_idx = f.train_idx, np.array([], dtype=np.int64)
        if train.inner_val_subjects:
            others = list(dict.fromkeys(subjects[f.train_idx]))
            if train.inner_val_subjects >= len(others):
                raise HTNetInputError(None, "inner_val_subjects",
                                      f"{train.inner_val_subjects} leaves no training subject ({len(others)} available)")
            rng = np.random.default_rng(s)
            inner = set(rng.choice(others, size=train.inner_val_subjects, replace=False).tolist())
            is_inner = np.isin(subjects[f.train_idx], list(inner))
            train_idx, inner_idx = f.train_idx[~is_inner], f.train_idx[is_inner]
        plans.append(FoldPlan(f.subject, f.dataset, train_idx, inner_idx, f.test_idx, s))
    if not plans:
        raise HTNetInputError(None, "folds", "no fold to train")
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
    """Epochs after which held-out predictions are recorded (every `eval_every`, the fixed ones, and the last)."""
    return sorted({e for e in range(train.eval_every, train.epochs + 1, train.eval_every)}
                  | set(train.fixed_epochs) | {train.epochs})


def init_model(cfg: ModelConfig, seed: int) -> HTNet:
    """A fold's model, initialised from its own seed (PyTorch default init, as the authors')."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return HTNet(cfg)


# ---------------------------------------------------------------- engines

@dataclass
class FoldRecord:
    """What one fold's training leaves: predictions at every evaluated epoch, and the training loss."""

    subject: str
    epochs: np.ndarray  # (E,)
    test_pred: np.ndarray  # (E, n_test) int8
    inner_pred: np.ndarray  # (E, n_inner) int8
    train_loss: np.ndarray  # (epochs,) mean loss per epoch


def _autocast(device: torch.device, amp: bool):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda")


def train_loop(X: torch.Tensor, y: torch.Tensor, plans: Sequence[FoldPlan], params: Params,
               on_epoch: Callable[[int], None] | None = None) -> list[FoldRecord]:
    """The authors'-style engine: one fold after another, the held-out subject scored after each evaluated epoch."""
    tr, device = params.train, X.device
    evals = set(eval_epochs(tr))
    records = []
    for plan in plans:
        model = init_model(params.model, plan.seed).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=tr.lr)
        y_fold = fold_labels(plan, y, tr)
        test_p, inner_p, losses = [], [], []
        score_idx = torch.as_tensor(np.concatenate([plan.test_idx, plan.inner_idx]), device=device)
        for epoch in range(1, tr.epochs + 1):
            model.train()
            total = 0.0
            for b in epoch_batches(plan, epoch, tr):
                bi = torch.as_tensor(b, device=device)
                opt.zero_grad(set_to_none=True)
                with _autocast(device, params.run.amp):
                    loss = F.cross_entropy(model(X[bi]).float(), y_fold[bi])
                loss.backward()
                opt.step()
                total += loss.item() * len(b)
            losses.append(total / len(plan.train_idx))
            if epoch in evals:
                model.eval()
                with torch.no_grad(), _autocast(device, params.run.amp):
                    pred = model(X[score_idx]).argmax(-1).cpu().numpy().astype(np.int8)
                test_p.append(pred[:len(plan.test_idx)])
                inner_p.append(pred[len(plan.test_idx):])
            if on_epoch:
                on_epoch(1)
        records.append(FoldRecord(plan.subject, np.array(sorted(evals)), np.stack(test_p), np.stack(inner_p),
                                  np.array(losses)))
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
                  on_epoch: Callable[[int], None] | None = None) -> list[FoldRecord]:
    """All folds of `plans` trained as one computation (vmap over stacked weights).

    Each step takes batch k of every fold, padded to a common length with a mask, so a fold's loss is the mean over
    its own samples only; the summed loss gives each fold exactly its own gradient. Folds must have the same number
    of batches per epoch (`run_loso` chunks them so).
    """
    tr, device = params.train, X.device
    n_batches = {len(epoch_batches(p, 1, tr)) for p in plans}
    if len(n_batches) != 1:
        raise ValueError(f"folds in one batched chunk need equal batches per epoch, got {sorted(n_batches)}")
    evals = set(eval_epochs(tr))
    models = [init_model(params.model, p.seed).to(device) for p in plans]
    stacked, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    del models

    def one(p, b, x):
        return functional_call(base, (p, b), (x,))

    forward = torch.vmap(one, in_dims=(0, 0, 0), randomness="different")
    opt = torch.optim.Adam(list(stacked.values()), lr=tr.lr)
    Y = torch.stack([fold_labels(p, y, tr) for p in plans])  # (F, N): each fold's training labels
    score_idx, _ = _stack([np.concatenate([p.test_idx, p.inner_idx]) for p in plans], device)
    n_f = len(plans)
    test_p, losses = [], []
    for epoch in range(1, tr.epochs + 1):
        base.train()
        batches = [epoch_batches(p, epoch, tr) for p in plans]
        total = torch.zeros(n_f, device=device)
        for k in range(len(batches[0])):
            bi, bm = _stack([b[k] for b in batches], device)
            opt.zero_grad(set_to_none=True)
            with _autocast(device, params.run.amp):
                logits = forward(stacked, buffers, X[bi]).float()  # (F, B, classes)
            ce = F.cross_entropy(logits.flatten(0, 1), Y.gather(1, bi).flatten(), reduction="none").view(bi.shape)
            per_fold = (ce * bm).sum(1) / bm.sum(1)
            per_fold.sum().backward()
            opt.step()
            total += per_fold.detach() * bm.sum(1)
        losses.append((total / torch.tensor([len(p.train_idx) for p in plans], device=device)).cpu().numpy())
        if epoch in evals:
            base.eval()
            with torch.no_grad(), _autocast(device, params.run.amp):
                pred = forward(stacked, buffers, X[score_idx]).argmax(-1).cpu().numpy().astype(np.int8)
            test_p.append(pred)
        if on_epoch:
            on_epoch(n_f)
    preds = np.stack(test_p)  # (E, F, L)
    loss_arr = np.stack(losses)  # (epochs, F)
    records = []
    for i, p in enumerate(plans):
        nt, ni = len(p.test_idx), len(p.inner_idx)
        records.append(FoldRecord(p.subject, np.array(sorted(evals)), preds[:, i, :nt], preds[:, i, nt:nt + ni],
                                  loss_arr[:, i]))
    return records


ENGINES = {"loop": train_loop, "batched": train_batched}


# ---------------------------------------------------------------- engine choice and chunking

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
        n_params = sum(p.numel() for p in HTNet(cfg).parameters())
    tokens = cfg.grid ** 2
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


def seconds_per_fold_epoch(engine: str, X: torch.Tensor, y: torch.Tensor, plans: Sequence[FoldPlan],
                           params: Params) -> float:
    """Train `plans` with `engine` for `params.train.epochs` (at least 2) epochs and time every fold's epochs after
    its first (which pays for initialisation and warm-up)."""
    stamps: list[float] = []

    def tick(_n: int) -> None:
        _sync(X.device)
        stamps.append(time.perf_counter())

    ENGINES[engine](X, y, plans, params, on_epoch=tick)
    e = params.train.epochs
    per_fold = np.array(stamps).reshape(-1, e)  # loop: a row per fold; batched: one row for the chunk
    return float((per_fold[:, -1] - per_fold[:, 0]).sum() / (len(plans) * (e - 1)))


def chunk_candidates(max_chunk: int) -> list[int]:
    """Chunk sizes worth timing: small chunks keep a CPU's caches warm, large ones fill a GPU."""
    return sorted({c for c in (4, 16) if c < max_chunk} | {max_chunk})


def calibrate_engine(X: torch.Tensor, y: torch.Tensor, plans: Sequence[FoldPlan], params: Params,
                     max_chunk: int, epochs: int = 3) -> dict[str, float]:
    """Seconds per fold-epoch of the loop and of the batched engine at a few chunk sizes, on this device and config.

    Keys: 'loop' and 'batched@<chunk>'. Cached per device, threads, config and chunk limit: once per machine.
    """
    key = hashlib.sha256(json.dumps([str(X.device), torch.get_num_threads(), repr(params.model), params.train.batch_size,
                                     max_chunk, params.run.amp, torch.__version__]).encode()).hexdigest()[:16]
    path = cache_dir() / f"engine-{key}.json"
    if path.is_file():
        return json.loads(path.read_text())
    probe = params.replace(epochs=epochs, eval_every=1, fixed_epochs=[], progress=False)
    n_b = len(epoch_batches(plans[0], 1, probe.train))
    same = [p for p in plans if len(epoch_batches(p, 1, probe.train)) == n_b]
    out = {"loop": seconds_per_fold_epoch("loop", X, y, same[:2], probe)}
    for c in chunk_candidates(min(max_chunk, len(same))):
        out[f"batched@{c}"] = seconds_per_fold_epoch("batched", X, y, same[:c], probe)
    atomic_write_json(path, out)
    return out


def choose_engine(timing: dict[str, float]) -> tuple[str, int]:
    """(engine, chunk) of the fastest entry of a `calibrate_engine` result."""
    best = min(timing, key=timing.get)
    return ("loop", 1) if best == "loop" else ("batched", int(best.split("@")[1]))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_chunks(plans: Sequence[FoldPlan], train: TrainConfig, chunk: int) -> list[list[FoldPlan]]:
    """Group folds with equal batches per epoch, then cut each group into chunks of at most `chunk` folds."""
    groups: dict[int, list[FoldPlan]] = {}
    for p in plans:
        groups.setdefault(len(epoch_batches(p, 1, train)), []).append(p)
    out = []
    for g in groups.values():
        out += [g[i:i + chunk] for i in range(0, len(g), chunk)]
    return out


# ---------------------------------------------------------------- runs

def run_dir_for(params: Params, data_fp: str, name: str = "loso") -> Path:
    root = Path(params.run.runs_dir)
    if not root.is_absolute():
        root = REPO_ROOT / root
    return root / f"{name}-{params.fingerprint()}-{data_fp[:8]}"


def save_record(run_dir: Path, rec: FoldRecord, plan: FoldPlan, engine: str, seconds: float) -> None:
    path = run_dir / "folds" / f"{rec.subject}.npz"
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, epochs=rec.epochs, test_pred=rec.test_pred, inner_pred=rec.inner_pred,
                     train_loss=rec.train_loss, test_idx=plan.test_idx, inner_idx=plan.inner_idx,
                     engine=np.array(engine), seconds=np.array(seconds))


def load_records(run_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    """Finished folds of a run, by subject."""
    out = {}
    for f in sorted((Path(run_dir) / "folds").glob("*.npz")):
        with np.load(f, allow_pickle=False) as z:
            out[f.stem] = {k: z[k] for k in z.files}
    return out


def run_loso(params: Params, name: str = "loso", samples: pd.DataFrame | None = None,
             X: torch.Tensor | None = None, progress: bool | None = None) -> Path:
    """Train (or resume) one LOSO run and write its results folder; returns the folder.

    Finished folds are never recomputed; `predictions.csv`, `metrics.csv` and `curve.csv` are (re)written at the end.
    """
    progress = params.run.progress if progress is None else progress
    if params.run.threads:
        torch.set_num_threads(params.run.threads)
    samples = data_mod.load_samples(params.run.data_dir or None) if samples is None else samples
    if params.train.datasets:
        unknown = set(params.train.datasets) - set(release.KEYS)
        if unknown:
            raise HTNetInputError(None, "datasets", f"unknown dataset(s) {sorted(unknown)}")
        keep = samples["dataset"].astype(str).isin(params.train.datasets).to_numpy()
        samples = samples[keep].reset_index(drop=True)
        X = None if X is None else X[torch.from_numpy(keep.copy())]  # X is given for the unfiltered samples
    plans = plan_folds(samples, params.train)  # validates folds before any training
    data_fp = data_mod.fingerprint(samples.attrs.get("data_dir"))
    run_dir = run_dir_for(params, data_fp, name)
    device = resolve_device(params.run.device)
    meta_path = run_dir / "run.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {
        "params": params.to_flat(), "params_fingerprint": params.fingerprint(), "data_fingerprint": data_fp,
        "git_revision": git_revision(), "torch": torch.__version__, "device": str(device),
        "started": _dt.datetime.now().isoformat(timespec="seconds"), "protocols": PROTOCOL_NOTE, "chunks": []}
    atomic_write_json(meta_path, meta)

    done = set(load_records(run_dir))
    todo = [p for p in plans if p.subject not in done]
    if todo:
        if X is None:
            X = prepare_inputs(samples, data_mod.load_flow_maps(samples), params.train, progress=progress)
        X = X.to(device)
        y = torch.tensor(samples["label"].to_numpy(), device=device)
        chunk = params.run.fold_chunk or auto_chunk(params.model, params.train.batch_size, device, len(todo))
        engine = params.run.engine
        if engine == "auto":
            timing = calibrate_engine(X, y, todo, params, chunk)
            engine, chunk = choose_engine(timing)
            meta["engine_timing_s_per_fold_epoch"] = timing
        if engine == "loop":
            chunk = 1
        bar = tqdm(total=len(todo) * params.train.epochs, unit="fold-epoch", desc=f"LOSO {engine}",
                   disable=not progress)
        for group in make_chunks(todo, params.train, chunk):
            t0 = time.perf_counter()
            records = ENGINES[engine](X, y, group, params, on_epoch=bar.update)
            secs = time.perf_counter() - t0
            for rec, plan in zip(records, group):
                save_record(run_dir, rec, plan, engine, secs / len(group))
            meta["chunks"].append({"engine": engine, "folds": [p.subject for p in group], "seconds": round(secs, 3)})
            atomic_write_json(meta_path, meta)
            if progress:
                bar.set_postfix(_running_scores(run_dir, samples))
        bar.close()
    finalize(run_dir, samples, params)
    meta["finished"] = _dt.datetime.now().isoformat(timespec="seconds")
    atomic_write_json(meta_path, meta)
    return run_dir


def _running_scores(run_dir: Path, samples: pd.DataFrame) -> dict[str, str]:
    preds = protocol_predictions(load_records(run_dir), samples)
    s_paper = metrics.uf1_uar(preds["label"], preds["paper"])
    s_last = metrics.uf1_uar(preds["label"], preds["last"])
    return {"paper UF1/UAR": f"{s_paper[0]:.3f}/{s_paper[1]:.3f}", "last-epoch": f"{s_last[0]:.3f}/{s_last[1]:.3f}"}


# ---------------------------------------------------------------- protocols

def pick_epoch(correct: np.ndarray) -> int:
    """Index of the best row of per-epoch accuracies, ties to the later epoch (the authors' `<=`)."""
    acc = np.asarray(correct, dtype=float)
    return int(len(acc) - 1 - np.argmax(acc[::-1]))


def protocol_predictions(records: dict[str, dict[str, np.ndarray]], samples: pd.DataFrame,
                         fixed_epochs: Iterable[int] = (), max_epoch: int | None = None) -> pd.DataFrame:
    """One row per held-out sample with the prediction of each protocol and the epoch each chose.

    Columns: dataset, subject, sample, label, paper, paper_epoch, last, last_epoch, fixed@E..., and inner /
    inner_epoch when the run has inner validation subjects. `max_epoch` truncates the records (for curves).
    """
    labels = samples["label"].to_numpy()
    rows = []
    for subject, r in records.items():
        ep = r["epochs"]
        keep = ep <= max_epoch if max_epoch else np.ones(len(ep), bool)
        if not keep.any():
            continue
        ep, tp, ip = ep[keep], r["test_pred"][keep], r["inner_pred"][keep]
        t_idx, i_idx = r["test_idx"], r["inner_idx"]
        acc = (tp == labels[t_idx][None, :]).mean(1)
        paper = pick_epoch(acc)
        base = {"paper": tp[paper], "last": tp[-1]}
        chosen = {"paper_epoch": ep[paper], "last_epoch": ep[-1]}
        for e in fixed_epochs:
            if e in ep:
                base[f"fixed@{e}"] = tp[list(ep).index(e)]
        if len(i_idx):
            inner = pick_epoch((ip == labels[i_idx][None, :]).mean(1))
            base["inner"], chosen["inner_epoch"] = tp[inner], ep[inner]
        for j, idx in enumerate(t_idx):
            row = {"row": int(idx), **{k: int(v[j]) for k, v in base.items()}, **{k: int(v) for k, v in chosen.items()}}
            rows.append(row)
    out = pd.DataFrame(rows).set_index("row").sort_index()
    info = samples[["dataset", "subject", "sample", "label"]].iloc[out.index]
    return pd.concat([info.reset_index(drop=True), out.reset_index(drop=True)], axis=1)


def protocol_columns(preds: pd.DataFrame) -> list[str]:
    return [c for c in preds.columns if c in ("paper", "last", "inner") or c.startswith("fixed@")]


def protocol_scores(preds: pd.DataFrame) -> pd.DataFrame:
    """UF1/UAR per protocol and scope: columns protocol, scope, UF1, UAR, n."""
    frames = []
    for col in protocol_columns(preds):
        s = metrics.scores(preds, pred_col=col).reset_index(names="scope")
        frames.append(s.assign(protocol=col))
    return pd.concat(frames)[["protocol", "scope", "UF1", "UAR", "n"]].reset_index(drop=True)


def epoch_curve(records: dict[str, dict[str, np.ndarray]], samples: pd.DataFrame,
                at: Sequence[int] | None = None) -> pd.DataFrame:
    """For each evaluated epoch E (or those in `at`): UF1/UAR of the paper's pick among epochs 1..E and of the
    predictions at E. The gap between the two is what choosing with test labels adds."""
    epochs = next(iter(records.values()))["epochs"]
    if at is not None:
        epochs = [e for e in epochs if e in set(at)]
    rows = []
    for e in epochs:
        preds = protocol_predictions(records, samples, max_epoch=int(e))
        for proto, col in (("paper (oracle)", "paper"), ("fixed epoch", "last")):
            s = metrics.scores(preds, pred_col=col)
            for scope, r in s.iterrows():
                rows.append({"epoch": int(e), "protocol": proto, "scope": scope, "UF1": r["UF1"], "UAR": r["UAR"]})
    return pd.DataFrame(rows)


def finalize(run_dir: Path, samples: pd.DataFrame, params: Params) -> None:
    """Write predictions.csv, metrics.csv and curve.csv once every fold is done."""
    records = load_records(run_dir)
    wanted = {p.subject for p in plan_folds(samples, params.train)}
    if wanted - set(records):
        return
    records = {k: records[k] for k in records if k in wanted}
    preds = protocol_predictions(records, samples, params.train.fixed_epochs)
    with atomic_path(run_dir / "predictions.csv") as tmp:
        preds.to_csv(tmp, index=False)
    with atomic_path(run_dir / "metrics.csv") as tmp:
        protocol_scores(preds).to_csv(tmp, index=False)
    with atomic_path(run_dir / "curve.csv") as tmp:
        epoch_curve(records, samples).to_csv(tmp, index=False)


def read_metrics(run_dir: str | os.PathLike) -> pd.DataFrame:
    """A finished run's metrics table (protocol, scope, UF1, UAR, n)."""
    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        raise HTNetInputError(path, None, "run not finished (no metrics.csv); rerun the same params to resume")
    return pd.read_csv(path)


def run_seeds(params: Params, name: str = "loso", **kwargs) -> list[Path]:
    """One run per seed in `run.seeds` (or the train seed alone); each its own folder."""
    seeds = params.run.seeds or (params.train.seed,)
    return [run_loso(params.replace(seed=s), name=name, **kwargs) for s in seeds]


def seed_summary(run_dirs: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """Mean and sd over seeds of UF1/UAR per protocol and scope."""
    return metrics.mean_sd(pd.concat([read_metrics(d) for d in run_dirs]), count="seeds")

