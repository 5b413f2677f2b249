"""LOSO runs (§4.2): a run is a folder, trained once, resumed after an interruption, read through one `Run` object.

`runs/<name>-<params hash>-<data hash>/` holds

- `run.json`: the params, seed, git revision, data fingerprint, the numerics it trained with (engine, device, amp,
  torch version) and one entry per trained chunk of folds;
- `folds/<subject>.npz`: one file per finished fold (held-out logits at every evaluated epoch, training loss);
- once every fold is done: `predictions.csv` (one row per held-out sample, a column per protocol), `metrics.csv`
  (UF1/UAR per protocol and scope) and `curve.csv` (every protocol as if training had stopped at each epoch: the
  paper's pick against the last epoch, over epochs).

Guarantees:

- **validate first**: params, folds, the release's completeness and every input image are checked before the folder
  exists, so a run that fails on bad input leaves nothing behind;
- **atomic**: every file is written to a temporary name and renamed; a killed run loses at most the chunk in progress;
- **one writer**: a second process on the same run folder stops at once with a message (a `filelock` lock in
  `<folder>.lock`, removed again when released: an empty lock file is left by no run);
- **read-only folders**: a runs folder this process cannot write (mkdir, lock or file refused) is one error naming
  it; a finished run is read without a lock or a write, so finished runs can be read from a read-only folder;
- **no silent mix**: `device`, `amp` and the engine change float rounding, so a run records the ones it used and
  refuses to resume with others (`auto` settings adopt the recorded ones);
- **damaged files**: a fold file that cannot be read, or that does not match the run's folds, is retrained, never
  trusted; a damaged run.json is an error naming it that writes nothing, and once deleted, as the error advises, it
  is rebuilt from the params (the folder's name is their hash) and the fold files (engine and seconds per fold),
  whether the run had finished or not;
- **non-finite loss**: a fold whose training loss becomes NaN or infinite stops the run with an error naming the fold
  and the epoch, and that chunk writes nothing;
- **interrupts**: Ctrl-C (and SIGTERM, on the command line) stops with `Interrupted`, whose message names the run
  folder and the folds done; the lock and temporary files go with it. A lock or temporary file that a killed process
  (SIGKILL) left is cleared by the next run of that folder;
- **cost first**: training over `ANNOUNCE_FLOPS` first prints what it trains and its FLOPs (`announce`).

Several runs (seeds, sweep points) are trained together by `run_many`: every chunk of every run is one task for the
executor (`loso.executors`), under one progress bar.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import sys
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from filelock import FileLock, Timeout

from .. import data as data_mod
from .. import metrics, regions, release
from .._io import (HTNetInputError, atomic_path, atomic_write_json, git_revision, hardware, in_project,
                   progress as progress_bar, torch_threads)
from ..config import Params, params_from_dict
from ..models import geometry
from . import protocols
from .engines import FoldRecord, auto_chunk, calibrate_engine, choose_engine, resolve_device
from .folds import FoldPlan, make_chunks, plan_folds, run_flops

RUN_FILE = "run.json"


class DamagedFoldFile(UserWarning):
    """A fold file could not be read or does not belong to the run: it is retrained."""


# ---------------------------------------------------------------- reading a run

class Run:
    """A run folder: its params and provenance (`meta`), fold records, predictions, metrics and curve."""

    def __init__(self, path: str | os.PathLike):
        self.dir = Path(path)

    def __repr__(self) -> str:
        return f"Run({self.id!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Run) and self.dir.resolve() == other.dir.resolve()

    def __hash__(self) -> int:
        return hash(self.dir.resolve())

    @property
    def id(self) -> str:
        """The folder's name: what tables and figures cite (never an absolute path)."""
        return self.dir.name

    @property
    def meta(self) -> dict[str, Any]:
        return read_meta(self.dir / RUN_FILE)

    @property
    def params(self) -> Params:
        return params_from_dict(self.meta["params"], source=str(self.dir / RUN_FILE))

    @property
    def seed(self) -> int:
        return int(self.meta["params"]["seed"])

    @property
    def finished(self) -> bool:
        return (self.dir / "metrics.csv").is_file()

    @property
    def train_seconds(self) -> float:
        """Seconds spent training, summed over the run's chunks."""
        return float(sum(c["seconds"] for c in self.meta.get("chunks", [])))

    @property
    def seconds_per_fold_epoch(self) -> float:
        """Training seconds per fold and epoch (to scale a run's time to other fold or epoch counts)."""
        folds = sum(len(c["folds"]) for c in self.meta.get("chunks", []))
        return self.train_seconds / max(1, folds * self.params.train.epochs)

    @property
    def hardware(self) -> str:
        """What trained the run (`_io.hardware`): a GPU's name, or the CPU model and thread count."""
        return self.meta.get("numerics", {}).get("hardware", "unknown")

    def records(self, plans: Sequence[FoldPlan] | None = None) -> dict[str, FoldRecord]:
        return load_records(self.dir, plans)

    def _table(self, name: str, **kwargs) -> pd.DataFrame:
        path = self.dir / name
        if not path.is_file():
            raise HTNetInputError(path, None, "run not finished; rerun the same params to resume it")
        return pd.read_csv(path, **kwargs)

    def predictions(self) -> pd.DataFrame:
        """One row per held-out sample: dataset, subject, sample, label, and per protocol its prediction and epoch."""
        preds = self._table("predictions.csv", dtype={"subject": str, "sample": str})
        preds.attrs["protocols"] = [c for c in self.meta.get("protocols", []) if c in preds.columns] or None
        return preds

    def metrics(self) -> pd.DataFrame:
        """UF1/UAR per protocol and scope: protocol, scope, UF1, UAR, n."""
        return self._table("metrics.csv")

    def samples(self) -> pd.DataFrame:
        """The samples table the run trained on (its release, restricted as its params say)."""
        p = self.params
        return _select(data_mod.load_samples(p.run.data_dir or None), p)

    def protocol_predictions(self, names: Sequence[str], samples: pd.DataFrame | None = None) -> pd.DataFrame:
        """Predictions of any registered protocols, computed from the fold records (for protocols the run did not
        score when it finished, e.g. `mean@5` or `inner-es@10`)."""
        samples = self.samples() if samples is None else samples
        return protocols.protocol_predictions(self.records(), samples, names)

    def curve(self) -> pd.DataFrame:
        return self._table("curve.csv")


def read_meta(path: Path) -> dict[str, Any]:
    """A run.json; a damaged one is an error naming it (its fold files stay usable)."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        folds = (path.parent / "folds").is_dir()
        raise HTNetInputError(path, None, "no run here (run.json missing)" + (
            "; rerun the run's params to rebuild it from them and the fold files" if folds else "")) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise HTNetInputError(path, None, f"damaged run metadata ({e}); delete this file and rerun the same params to "
                                          f"rebuild it from them (the fold files are kept and checked)") from None


def save_record(run_dir: Path, rec: FoldRecord, engine: str, seconds: float) -> None:
    path = run_dir / "folds" / f"{rec.subject}.npz"
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, epochs=rec.epochs, test_idx=rec.test_idx, inner_idx=rec.inner_idx,
                     test_logits=rec.test_logits.astype(np.float32), inner_logits=rec.inner_logits.astype(np.float32),
                     train_loss=rec.train_loss, engine=np.array(engine), seconds=np.array(seconds))


def _read_record(path: Path) -> FoldRecord:
    with np.load(path, allow_pickle=False) as z:
        rec = FoldRecord(path.stem, z["epochs"], z["test_idx"], z["inner_idx"], z["test_logits"], z["inner_logits"],
                         z["train_loss"])
    e, nt, ni = len(rec.epochs), len(rec.test_idx), len(rec.inner_idx)
    if rec.test_logits.shape[:2] != (e, nt) or rec.inner_logits.shape[:2] != (e, ni):
        raise ValueError(f"logits {rec.test_logits.shape}/{rec.inner_logits.shape} do not match {e} epochs, "
                         f"{nt} held-out and {ni} inner samples")
    return rec


def load_records(run_dir: str | os.PathLike, plans: Sequence[FoldPlan] | None = None) -> dict[str, FoldRecord]:
    """Finished folds of a run, by subject. A file that cannot be read, or (given the run's `plans`) holds other
    samples than its fold's, is removed with a `DamagedFoldFile` warning naming it, so that the fold is retrained."""
    by_subject = {p.subject: p for p in plans} if plans is not None else None
    out = {}
    for f in sorted((Path(run_dir) / "folds").glob("*.npz")):
        try:
            rec = _read_record(f)
            plan = by_subject.get(f.stem) if by_subject is not None else None
            if by_subject is not None and plan is None:
                continue  # a fold this run does not ask for (e.g. a larger run's folder): kept, not used
            if plan is not None and not (np.array_equal(rec.test_idx, plan.test_idx)
                                         and np.array_equal(rec.inner_idx, plan.inner_idx)):
                raise ValueError("its samples differ from the fold's (the release or the params changed)")
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as e:
            warnings.warn(f"{f}: damaged or stale fold file ({e}); it will be retrained", DamagedFoldFile,
                          stacklevel=2)
            f.unlink(missing_ok=True)
            continue
        out[f.stem] = rec
    return out


# ---------------------------------------------------------------- training runs

def run_dir_for(params: Params, data_fp: str, name: str = "loso") -> Path:
    """`<runs_dir>/<name>-<params hash>-<data hash>`; a relative runs_dir is in the project folder (`_io.in_project`:
    the checkout the working directory is in, or the working directory), never beside the package. `name` is one path
    component (no separator, not `..`), so a run folder is always inside runs_dir."""
    if not name or name in (".", "..") or any(sep and sep in name for sep in ("/", os.sep, os.altsep)):
        raise HTNetInputError("--name", None, f"{name!r} is not a run name: a name is one folder name (letters, "
                                              f"digits, - or _), the run folder goes inside runs_dir")
    return in_project(params.run.runs_dir) / f"{name}-{params.fingerprint()}-{data_fp[:8]}"


@dataclass
class Job:
    """One run being trained: its params, samples, folds, folder and the numerics it uses."""

    params: Params
    samples: pd.DataFrame
    plans: list[FoldPlan]
    run: Run
    data_fp: str
    meta: dict[str, Any] | None  # None until the folder is created
    todo: list[FoldPlan] = field(default_factory=list)
    device: torch.device | None = None
    engine: str = ""
    chunk: int = 1

    @property
    def input_key(self) -> tuple:
        tr = self.params.train
        return (tr.regions, tr.preprocessing, geometry(self.params.model), tuple(self.samples.index), str(self.device))


def _select(samples: pd.DataFrame, params: Params) -> pd.DataFrame:
    """The samples a run trains on: the release's, restricted to `datasets` when given."""
    if not params.train.datasets:
        return samples
    unknown = sorted(set(params.train.datasets) - set(release.KEYS))
    if unknown:
        raise HTNetInputError(None, "datasets", f"unknown dataset(s) {unknown} (known: {', '.join(release.KEYS)})")
    keep = samples["dataset"].astype(str).isin(params.train.datasets).to_numpy()
    out = samples[keep]
    out.attrs = dict(samples.attrs)
    return out


def _numerics(params: Params, recorded: dict[str, Any] | None) -> tuple[torch.device, str]:
    """(device, engine setting) to use: the params', or the recorded ones where the params say `auto`. Refuses a
    resume whose explicit settings differ from those the run was trained with."""
    run = params.run
    if recorded is None:
        return resolve_device(run.device), run.engine
    device = resolve_device(recorded["device"] if run.device == "auto" else run.device)
    engine = recorded["engine"] if run.engine == "auto" else run.engine
    for key, now, before in (("device", str(device), recorded["device"]), ("engine", engine, recorded["engine"]),
                             ("amp", run.amp, recorded["amp"])):
        if now != before:
            raise HTNetInputError(None, key, f"this run was trained with {key} {before!r}, not {now!r} (they change "
                                             f"float rounding and so predictions): rerun with {key}: {before}, or use "
                                             f"another runs_dir")
    return device, engine


def prepare(params: Params, name: str = "loso", samples: pd.DataFrame | None = None) -> Job:
    """Everything a run needs before it may write: samples, completeness, folds, its folder, existing folds, numerics.
    Nothing is written here."""
    protocols.run_names(params)  # every protocol the params name is registered (raises naming `protocols`)
    all_samples = data_mod.load_samples(params.run.data_dir or None) if samples is None else samples
    if not params.run.allow_incomplete:
        data_mod.check_complete(all_samples)
    chosen = _select(all_samples, params)
    plans = plan_folds(chosen, params.train)
    data_fp = data_mod.fingerprint(chosen.attrs.get("data_dir"))
    run = Run(run_dir_for(params, data_fp, name))
    meta = read_meta(run.dir / RUN_FILE) if (run.dir / RUN_FILE).exists() else None
    done = load_records(run.dir, plans) if run.dir.is_dir() else {}
    todo = [p for p in plans if p.subject not in done]
    if meta is None and done:  # run.json deleted (as a damaged one's error advises): rebuilt, written with the run
        meta = _rebuilt_meta(params, data_fp, run.dir, sorted(done))
    recorded = meta.get("numerics") if meta else None
    if recorded and not todo:  # a finished run is read whatever the settings now: nothing trains
        return Job(params, chosen, plans, run, data_fp, meta, [], torch.device(recorded["device"]), recorded["engine"])
    try:
        device, engine = _numerics(params, recorded)
    except HTNetInputError as e:
        raise HTNetInputError(run.dir / RUN_FILE, e.field, e.problem) from None
    return Job(params, chosen, plans, run, data_fp, meta, todo, device, engine)


def _choose_engine(job: Job, X: torch.Tensor, y: torch.Tensor) -> None:
    params = job.params
    chunk = params.run.fold_chunk or auto_chunk(params.model, params.train.batch_size, job.device, len(job.todo))
    if job.engine == "auto":
        timing = calibrate_engine(X, y, job.todo, params, chunk)
        job.engine, chunk = choose_engine(timing)
    job.chunk = 1 if job.engine == "loop" else chunk


def _new_meta(job: Job) -> dict[str, Any]:
    p = job.params
    return {"params": p.to_flat(), "params_fingerprint": p.fingerprint(), "data_fingerprint": job.data_fp,
            "git_revision": git_revision(), "started": _dt.datetime.now().isoformat(timespec="seconds"),
            "numerics": {"engine": job.engine, "device": str(job.device), "amp": p.run.amp, "torch": torch.__version__,
                         "threads": torch.get_num_threads(), "hardware": hardware(str(job.device))},
            "protocols": protocols.run_names(p), "chunks": []}


def _rebuilt_meta(params: Params, data_fp: str, run_dir: Path, subjects: Sequence[str]) -> dict[str, Any]:
    """run.json for a folder whose run.json was deleted: the params (they name the folder, so they are the run's),
    and per fold file its engine and seconds. What no fold file records (device, amp, torch, threads, hardware) is
    the params' or 'unknown', and `rebuilt` says so; a resume is then checked against the fold files' engine."""
    chunks, engines = [], set()
    for subject in subjects:
        with np.load(run_dir / "folds" / f"{subject}.npz", allow_pickle=False) as z:
            engine = str(z["engine"]) if "engine" in z.files else "unknown"
            seconds = float(z["seconds"]) if "seconds" in z.files else 0.0
        engines.add(engine)
        chunks.append({"engine": engine, "folds": [subject], "seconds": round(seconds, 3)})
    engine = engines.pop() if len(engines) == 1 and "unknown" not in engines else params.run.engine
    now = _dt.datetime.now().isoformat(timespec="seconds")
    return {"params": params.to_flat(), "params_fingerprint": params.fingerprint(), "data_fingerprint": data_fp,
            "git_revision": git_revision(), "started": "unknown",
            "rebuilt": f"{now}: run.json was missing; params from the run's params, engine and seconds from its "
                       f"{len(subjects)} fold file(s), the rest unknown",
            "numerics": {"engine": engine, "device": str(resolve_device(params.run.device)), "amp": params.run.amp,
                         "torch": "unknown", "threads": None, "hardware": "unknown"},
            "protocols": protocols.run_names(params), "chunks": chunks}


def _save_chunk(job: Job, records: list[FoldRecord], seconds: float, worker: str = "") -> None:
    """Write a trained chunk's fold files, creating the run folder and its run.json with the first one."""
    if job.meta is None:
        job.meta = _new_meta(job)
    for rec in records:
        save_record(job.run.dir, rec, job.engine, seconds / len(records))
    entry = {"engine": job.engine, "folds": [r.subject for r in records], "seconds": round(seconds, 3)}
    if worker:
        entry["worker"] = worker
    job.meta["chunks"].append(entry)
    atomic_write_json(job.run.dir / RUN_FILE, job.meta)


FINAL_FILES = ("predictions.csv", "metrics.csv", "curve.csv")
ANNOUNCE_FLOPS = 1e14  # training over this (about half an hour on a small CPU) says what it trains before it starts
ANNOUNCE_RATE = 20e12  # FLOP/s: the lower sustained rate `python -m htnet_lib estimate` assumes (a GPU)


def announce(jobs: Sequence[Job]) -> str | None:
    """What `jobs` will train and its cost in FLOPs (`folds.run_flops`, as `estimate` counts them), when over
    `ANNOUNCE_FLOPS`: a setting that costs hours is seen before the hours are spent, not after."""
    flops = sum(run_flops(j.params, j.todo) for j in jobs)
    if flops <= ANNOUNCE_FLOPS:
        return None
    fold_epochs = sum(len(j.todo) * j.params.train.epochs for j in jobs)
    archs = sorted({j.params.model.arch for j in jobs})
    return (f"training {len(jobs)} run(s) of {'/'.join(archs)}: {sum(len(j.todo) for j in jobs)} fold(s), "
            f"{fold_epochs:,} fold-epochs, about {flops / 1e15:.3g} PFLOP ({flops / ANNOUNCE_RATE / 3600:.2g} h at "
            f"{ANNOUNCE_RATE / 1e12:.0f} TFLOP/s sustained, as `estimate` assumes for a GPU; a CPU takes far longer). "
            f"Ctrl-C stops it; the same command resumes.")


def _complete(job: Job) -> bool:
    """Whether the run is finished and written as this code would write it: nothing to train, its run.json says
    finished (written after the CSVs) with every protocol its params ask for, and the CSVs are there. Such a run is only
    read (its recorded protocols need not be registered in this process)."""
    return (not job.todo and job.meta is not None and bool(job.meta.get("finished"))
            and set(protocols.default_names(job.params.train)) | set(job.params.run.protocols)
            <= set(job.meta.get("protocols", []))
            and all((job.run.dir / f).is_file() for f in FINAL_FILES))


def finalize(job: Job) -> None:
    """Write predictions.csv, metrics.csv and curve.csv once every fold of the run is done (and its run.json last,
    saying finished). A run already complete (`_complete`) is not rewritten."""
    if _complete(job):
        return
    records = load_records(job.run.dir, job.plans)
    if {p.subject for p in job.plans} - set(records):
        return
    if job.meta is None:  # before any CSV: a run that cannot say what it is writes nothing
        job.meta = read_meta(job.run.dir / RUN_FILE)
    records = {p.subject: records[p.subject] for p in job.plans}
    names = _protocols(job)
    preds = protocols.protocol_predictions(records, job.samples, names)
    with atomic_path(job.run.dir / "predictions.csv") as tmp:
        preds.to_csv(tmp, index=False)
    with atomic_path(job.run.dir / "metrics.csv") as tmp:
        protocols.protocol_scores(preds).to_csv(tmp, index=False)
    with atomic_path(job.run.dir / "curve.csv") as tmp:
        protocols.epoch_curve(records, job.samples, names=names).to_csv(tmp, index=False)
    job.meta["protocols"] = names
    job.meta["finished"] = _dt.datetime.now().isoformat(timespec="seconds")
    atomic_write_json(job.run.dir / RUN_FILE, job.meta)


def _protocols(job: Job) -> list[str]:
    """The protocols a run scores: the default ones, those its folder recorded, those its params name."""
    return protocols.run_names(job.params, (job.meta or {}).get("protocols", []), where=job.run.dir)


def _cannot_write(folder: Path, e: OSError) -> HTNetInputError:
    """A runs folder this process cannot write (mkdir, lock or file refused) as one error naming the folder."""
    what = f"{e.strerror or e}" + (f": {e.filename}" if e.filename else "")
    return HTNetInputError(folder, "runs_dir", f"cannot write here ({what}); give runs_dir a folder this process can "
                                               f"write")


class Interrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C (or SIGTERM, which the command line turns into it); the message says where it
    stopped. Finished folds are kept and the lock and temporary files are gone: the same call resumes."""


def _stopped(jobs: Sequence[Job]) -> Interrupted:
    where = "; ".join(f"{j.run.dir} ({len(list((j.run.dir / 'folds').glob('*.npz')))} of {len(j.plans)} folds "
                      f"done)" for j in jobs)
    return Interrupted(f"stopped in {where}: finished folds are kept, the same command resumes")


def _clear_leftovers(job: Job) -> None:
    """Remove the temporary files (`atomic_path`'s `.<name>.<random>.tmp`) a killed writer of this run left. Called
    with the run's lock held: no live process is writing them."""
    for tmp in [*job.run.dir.glob(".*.tmp"), *(job.run.dir / "folds").glob(".*.tmp")]:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _locked(jobs: Sequence[Job], leftovers: Sequence[Job] = ()):
    """Hold every job's run-folder lock. The lock file sits beside the folder, so the folder is not created before it
    has content, and is removed on release, while still held: filelock takes a lock only on a file still linked at
    its path, so a process that opened the removed file cannot hold it too, and no run leaves an empty lock file.

    A lock is an flock, which the system drops when its process dies (SIGKILL included): a lock file found but not
    held was left by a dead process, and taking it clears it, with the temporary files that process left. Finished
    runs (`leftovers`) are only read, so their leftovers are cleared where this process can, and kept otherwise."""
    with contextlib.ExitStack() as stack:
        for job in leftovers:
            lock_path = Path(str(job.run.dir) + ".lock")
            try:
                with FileLock(str(lock_path)).acquire(timeout=0):
                    _clear_leftovers(job)
                    lock_path.unlink(missing_ok=True)
            except (Timeout, OSError):  # held by a live process, or a read-only folder: left as it is
                pass
        for job in jobs:
            lock_path = Path(str(job.run.dir) + ".lock")
            try:
                job.run.dir.parent.mkdir(parents=True, exist_ok=True)
                for attempt in range(2):
                    try:
                        stack.enter_context(FileLock(str(lock_path)).acquire(timeout=0))
                        break
                    except Timeout:
                        # the holder removed its lock file as it let go: take the new one once
                        if attempt or lock_path.exists():
                            raise HTNetInputError(job.run.dir, None, "another process is training this run (its lock "
                                                                     f"{lock_path} is held); wait for it, or use "
                                                                     f"another runs_dir") from None
            except (PermissionError, NotADirectoryError, FileExistsError) as e:
                raise _cannot_write(job.run.dir.parent, e) from None
            stack.callback(lock_path.unlink, missing_ok=True)  # runs before this lock's release (last in, first out)
            _clear_leftovers(job)
        yield


def run_many(params_list: Sequence[Params], name: str = "loso", samples: pd.DataFrame | None = None,
             progress: bool | None = None, executor: Any = None, X: torch.Tensor | None = None) -> list[Run]:
    """Train (or resume, or find finished) several runs; every chunk of folds of every run is one executor task.

    `samples` defaults to the release named by the first params' data_dir; `X` (inputs for those samples, as
    `regions.model_inputs` makes them) may be given to skip preparing them. Returns one `Run` per params, in order.
    """
    if not params_list:
        return []
    with torch_threads(params_list[0].run.threads):  # the caller's count comes back after
        return _run_many(params_list, name, samples, progress, executor, X)


def _run_many(params_list: Sequence[Params], name: str, samples: pd.DataFrame | None, progress: bool | None,
              executor: Any, X: torch.Tensor | None) -> list[Run]:
    from .executors import resolve_executor

    progress = params_list[0].run.progress if progress is None else progress
    base_samples = samples
    loaded: dict[str, pd.DataFrame] = {}
    jobs: list[Job] = []
    by_dir: dict[Path, Job] = {}
    for p in params_list:
        s = base_samples
        if s is None:
            s = loaded.setdefault(p.run.data_dir, data_mod.load_samples(p.run.data_dir or None)) \
                if p.run.data_dir not in loaded else loaded[p.run.data_dir]
        job = prepare(p, name, s)
        jobs.append(by_dir.setdefault(job.run.dir, job))  # equal params: one run
    unique = list(by_dir.values())
    todo = [j for j in unique if j.todo]
    note = announce(todo)
    if note:
        print(note, file=sys.stderr, flush=True)
    writing = [j for j in unique if not _complete(j)]  # a complete run is read: no lock, no write
    tasks = []
    if todo:
        inputs: dict[tuple, torch.Tensor] = {}
        for job in todo:  # reads and checks every image before anything is written
            key = job.input_key
            if key not in inputs:
                if X is not None and job.samples is base_samples and len(X) == len(job.samples):
                    inputs[key] = X.to(job.device)
                else:
                    maps = data_mod.load_flow_maps(job.samples)
                    inputs[key] = regions.model_inputs(job.samples, maps, job.params.train, geometry(job.params.model),
                                                       progress=progress).to(job.device)
            y = torch.tensor(job.samples["label"].to_numpy(), device=job.device)
            _choose_engine(job, inputs[key], y)
            for chunk in make_chunks(job.todo, job.params.train, job.chunk):
                tasks.append((job, inputs[key], y, chunk))
    stale = [j for j in unique if _complete(j) and Path(str(j.run.dir) + ".lock").exists()]
    with _locked(writing, stale):
        try:
            if tasks:
                total = sum(len(c) * j.params.train.epochs for j, _, _, c in tasks)
                engines = sorted({j.engine for j in todo})
                desc = f"LOSO {'/'.join(engines)}" + (f", {len(todo)} runs" if len(todo) > 1 else "")
                with progress_bar(total=total, unit="fold-epoch", desc=desc, disable=not progress) as bar:
                    def done(task, records, seconds, worker=""):
                        job = task[0]
                        _save_chunk(job, records, seconds, worker)
                        if progress and len(unique) == 1:
                            bar.set_postfix(_running_scores(job))

                    resolve_executor(params_list[0].run, executor).run(tasks, done, bar.update)
            for job in writing:
                finalize(job)
        except KeyboardInterrupt:
            raise _stopped(writing) from None
        except PermissionError as e:  # a run folder (or its folds/) this process may not write
            refused = Path(e.filename) if e.filename else None
            folder = next((j.run.dir for j in writing if refused and refused.is_relative_to(j.run.dir)),
                          writing[0].run.dir.parent)
            raise _cannot_write(folder, e) from None
    return [Run(j.run.dir) for j in jobs]


def run_loso(params: Params, name: str = "loso", samples: pd.DataFrame | None = None, X: torch.Tensor | None = None,
             progress: bool | None = None, executor: Any = None) -> Run:
    """Train (or resume, or find finished) one LOSO run and return it (see the module docstring)."""
    return run_many([params], name, samples, progress, executor, X)[0]


def run_seeds(params: Params, name: str = "loso", **kwargs) -> list[Run]:
    """One run per seed in `run.seeds` (or the train seed alone), trained together."""
    seeds = params.run.seeds or (params.train.seed,)
    return run_many([params.replace(seed=s) for s in seeds], name, **kwargs)


def _running_scores(job: Job) -> dict[str, str]:
    records = load_records(job.run.dir, job.plans)
    preds = protocols.protocol_predictions(records, job.samples, ["paper", "last"])
    s_paper = metrics.uf1_uar(preds["label"], preds["paper"])
    s_last = metrics.uf1_uar(preds["label"], preds["last"])
    return {"paper UF1/UAR": f"{s_paper[0]:.3f}/{s_paper[1]:.3f}", "last-epoch": f"{s_last[0]:.3f}/{s_last[1]:.3f}"}


def ensemble_predictions(runs: Sequence[Run], protocol: str = "last", samples: pd.DataFrame | None = None
                         ) -> pd.DataFrame:
    """One model from several runs (seeds): each held-out sample's class probabilities under `protocol`, averaged over
    the runs; columns dataset, subject, sample, label, and the prediction under the column `protocol`."""
    samples = runs[0].samples() if samples is None else samples
    tables = [protocols.protocol_probabilities(r.records(), samples, protocol) for r in runs]
    cols = [c for c in tables[0].columns if c.startswith("p") and c[1:].isdigit()]
    mean = sum(t[cols].to_numpy() for t in tables) / len(tables)
    out = tables[0][["dataset", "subject", "sample", "label"]].copy()
    out[protocol] = mean.argmax(1)
    out.attrs["protocols"] = [protocol]
    return out


def seed_summary(runs: Iterable[Run]) -> pd.DataFrame:
    """Mean and sd over seeds of UF1/UAR per protocol and scope."""
    return metrics.mean_sd(pd.concat([r.metrics() for r in runs]), count="seeds")
