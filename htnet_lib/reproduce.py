"""Run every numbered notebook in order with papermill, for one params level (smoke, quick or paper).

Sources in `notebooks/` stay clean (no outputs); executed copies go to `executed/<level>/` (ignored by git), and the
figures and tables to `figures/`. A failing cell stops the run and is printed with its traceback. Both folders are
checked writable before any notebook runs; a notebook executes into a temporary file renamed onto its executed copy
only when every cell ran, so a failure replaces no good copy (the failed one is kept as `<name>.failed.ipynb`).

Provenance: after each notebook, `figures/<level>/provenance.json` records what made the files it wrote there: git
revision, data fingerprint, the params files' hashes and any `--set`, library versions, hardware, seconds, and the
sha256 of every output, so a committed table can be traced to the code and data behind it. It also records the
kernel's peak resident memory in MiB (`PeakMemory`): a background thread reads, every half second, the `VmHWM` line
(the kernel's own high-water mark of resident memory, which never decreases) of /proc/<pid>/status for every process
started under this one (the kernel, and any worker it starts: psutil lists them), and keeps the largest. Being a
high-water mark, a poll misses nothing that happened before it; only growth in the last half second before the kernel
exits could be missed, and papermill shuts the kernel down after its last cell returns. Where /proc is absent (not Linux) the value is None.

Paths: `notebooks/`, `params/<level>`, `executed/` and `figures/` are those of the project folder (`_io.project_root`:
the checkout the working directory is in, or $HTNET_ROOT), and the kernels run there; never the package's location.

Progress: the kernels run with $HTNET_PROGRESS=log, so long steps (a LOSO run, a sweep) write plain text progress
lines, and papermill streams each kernel's stdout and stderr to this terminal as they come.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from ._io import (PROGRESS_ENV, HTNetInputError, atomic_path, atomic_write_json, check_writable, figures_dir,
                  git_revision, hardware, project_root, sha256_file)

LEVELS = ("smoke", "quick", "cpu", "paper", "honest")
# The notebooks a level runs when `--only` is not given (default: all). cpu: Table 2 and the ablations trained like it,
# then the summary; honest: the honest study.
LEVEL_NOTEBOOKS = {"cpu": ("03", "04", "06"), "honest": ("07", "08", "09")}
PROVENANCE = "provenance.json"  # figures/<level>/provenance.json
PEAK_MEMORY = "peak memory MiB"  # the key of a notebook's entry in provenance.json (`PeakMemory`)


def notebook_dir() -> Path:
    """notebooks/ of the project folder (`_io.project_root`: the checkout the working directory is in, or
    $HTNET_ROOT)."""
    return project_root() / "notebooks"


def params_root() -> Path:
    """params/ of the project folder: one folder per level."""
    return project_root() / "params"


def notebooks() -> list[Path]:
    """The numbered notebooks, in order."""
    return sorted(p for p in notebook_dir().glob("[0-9][0-9]_*.ipynb"))


def params_dir(level: str) -> Path:
    """`params/<level>`, or any folder path holding the same files."""
    d = params_root() / level if level in LEVELS else Path(level)
    if not d.is_dir():
        raise HTNetInputError(d, None, f"params folder not found (levels: {', '.join(LEVELS)}, or a folder path)")
    return d.resolve()


def reproduce(level: str = "quick", only: list[str] | None = None, out_dir: str | os.PathLike | None = None) -> list[Path]:
    """Execute the notebooks with `params_dir=params/<level>`; returns the executed copies."""
    import papermill as pm

    pdir = params_dir(level)
    root = project_root()
    out = Path(out_dir) if out_dir else root / "executed" / pdir.name
    only = only or list(LEVEL_NOTEBOOKS.get(pdir.name, ()))
    chosen = [nb for nb in notebooks() if not only or any(nb.name.startswith(o) for o in only)]
    if not chosen:
        raise HTNetInputError(None, "only", f"no notebook matches {only}")
    # where the outputs go is checked before any notebook runs, not after the first one's work
    check_writable(out, "--out", folder=True)
    check_writable(figures_dir() / pdir.name, "figures", folder=True)
    out.mkdir(parents=True, exist_ok=True)
    record = figures_dir() / pdir.name / PROVENANCE
    read_provenance(record)  # a damaged record stops the run before any notebook, not after the first
    done = []
    for nb in chosen:
        target = out / nb.name
        t0, started = time.perf_counter(), time.time()
        print(f"[{nb.name}] running with {pdir.relative_to(root) if pdir.is_relative_to(root) else pdir}",
              flush=True)
        try:
            # executed into a temporary file, renamed onto the last good copy only when every cell ran
            with _progress_as_text(), PeakMemory() as peak, atomic_path(target, suffix=".ipynb") as tmp:
                try:
                    pm.execute_notebook(str(nb), str(tmp), parameters={"params_dir": str(pdir)}, cwd=str(root),
                                        kernel_name="python3", progress_bar=False, stdout_file=sys.stdout,
                                        stderr_file=sys.stderr, config=_kernel_config())
                except pm.PapermillExecutionError:
                    os.replace(tmp, failed_copy(target))
                    raise
        except pm.PapermillExecutionError as e:
            print(f"\n[{nb.name}] failed in cell {e.exec_count}:\n{e.source}\n\n{e.ename}: {e.evalue}\n"
                  f"(executed copy with the error: {failed_copy(target)}; {target} is unchanged)", file=sys.stderr)
            raise SystemExit(1) from None
        except OSError as e:  # the outputs' folder changed under the run
            raise HTNetInputError(e.filename or out, None, f"cannot write ({e.strerror or e})") from None
        seconds = time.perf_counter() - t0
        record_provenance(record, nb.name, pdir, started, seconds, peak_mib=peak.mib)
        memory = f", kernel peak {peak.mib:.0f} MiB" if peak.mib is not None else ""
        print(f"[{nb.name}] done in {seconds:.0f} s{memory} -> {target}", flush=True)
        done.append(target)
    return done


def failed_copy(target: Path) -> Path:
    """Where a notebook that failed is kept executed, beside its last good copy (`target`), which it never replaces."""
    return target.with_name(target.stem + ".failed.ipynb")


def read_provenance(path: str | os.PathLike) -> dict[str, Any]:
    """A level's provenance record, by notebook ({} when there is none yet)."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        rec = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise HTNetInputError(path, None, f"not a provenance record ({e}); delete it to start a new one") from None
    if not isinstance(rec, dict) or not all(isinstance(v, dict) and isinstance(v.get("outputs"), dict)
                                            for v in rec.values()):
        raise HTNetInputError(path, "outputs", "not a provenance record (each notebook needs an 'outputs' mapping); "
                                               "delete it to start a new one")
    return rec


def record_provenance(path: str | os.PathLike, notebook: str, pdir: Path, started: float, seconds: float,
                      peak_mib: float | None = None) -> Path:
    """Add `notebook`'s entry to the record at `path`: the files in that folder written since `started` (epoch
    seconds) with their sha256, and what made them, with the kernel's peak resident memory (`peak_mib`, None when
    not measured). A file belongs to the notebook that wrote it last: other entries stop listing it (a table moved from
    one notebook to another is not claimed by both). Paths are relative: nothing about the machine but its hardware."""
    import numpy
    import torch

    from . import data
    from .config import SESSION_ENV

    path = Path(path)
    rec = read_provenance(path)
    outputs = {p.name: sha256_file(p) for p in sorted(path.parent.glob("*"))
               if p.is_file() and p.name != PROVENANCE and p.stat().st_mtime >= started}
    try:
        fingerprint = data.fingerprint()
    except HTNetInputError:
        fingerprint = "unknown (no release found)"
    for other, entry in rec.items():
        if other != notebook:
            entry["outputs"] = {name: digest for name, digest in entry["outputs"].items() if name not in outputs}
    rec[notebook] = {
        "finished": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "seconds": round(seconds, 1),
        PEAK_MEMORY: None if peak_mib is None else round(peak_mib),
        "git revision": git_revision(),
        "data fingerprint": fingerprint,
        "params": {"folder": pdir.name, "set": json.loads(os.environ.get(SESSION_ENV) or "{}"),
                   "sha256": {p.name: sha256_file(p)[:16] for p in sorted(pdir.glob("*.yaml"))}},
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__},
        "hardware": hardware(),
        "outputs": outputs,
    }
    return atomic_write_json(path, rec)


class PeakMemory:
    """The largest peak resident memory (MiB) among the processes started under this one while the block runs (the
    module docstring says how): `with PeakMemory() as peak: ...`, then `peak.mib` (None where /proc is absent)."""

    def __init__(self, interval: float = 0.5, proc: str | os.PathLike = "/proc"):
        self.interval, self.proc = interval, Path(proc)
        self.mib: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-memory", daemon=True)

    def __enter__(self) -> PeakMemory:
        if (self.proc / str(os.getpid()) / "status").is_file():
            self.mib = 0.0
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join()
            self.poll()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def poll(self) -> None:
        """Read the high-water mark of every process now under this one, and keep the largest."""
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process().children(recursive=True):
                with contextlib.suppress(OSError):  # a process that ended meanwhile
                    for line in (self.proc / str(child.pid) / "status").read_text().splitlines():
                        if line.startswith("VmHWM:"):  # "VmHWM:   123456 kB"; psutil does not report it
                            self.mib = max(self.mib or 0.0, int(line.split()[1]) / 1024)


def _kernel_config():
    """Kernels encrypt their transport (CurveZMQ keys from jupyter_client's manager, `transport_encryption`) where
    pyzmq can: without it ipykernel warns on every notebook that code and outputs cross TCP in plain text."""
    import zmq
    from traitlets.config import Config

    config = Config()
    if zmq.has("curve"):
        config.KernelManager.transport_encryption = "auto"  # when the kernelspec declares curve (ipykernel's does)
    return config


@contextlib.contextmanager
def _progress_as_text():
    """Kernels started inside inherit $HTNET_PROGRESS=log (text progress lines instead of notebook widgets)."""
    before = os.environ.get(PROGRESS_ENV)
    os.environ[PROGRESS_ENV] = "log"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(PROGRESS_ENV, None)
        else:
            os.environ[PROGRESS_ENV] = before


MAKE_RUN_TABLE = "table2.csv"  # the run's own numbers a timing record keeps (notebook 03's Table 2, Full, ours)


def make_run_record(level: str, level_dir: str | os.PathLike, previous_dir: str | os.PathLike | None, revision: str,
                    setup_s: float, run_s: float, gemm_flop_per_s: list[float]) -> dict[str, Any]:
    """One timed `make run` from a fresh clone (tools/time-make-run.sh), for `figures/<level>/make_run.json`.

    The parts' wall seconds, the revision, the hardware (with the instruction set torch's CPU kernels use) and the
    fp32 GEMM rate measured before and after the notebooks (a shared machine's speed changes), and Table 2's Full UF1
    per protocol from the figures the run wrote in `level_dir`. The records `previous_dir/make_run.json` held follow
    under "earlier", newest first; where the previous run's Table 2 was not recorded it is read from the previous
    folder's table2.csv, which that run wrote. ``table2 as the previous run`` says whether the two table2.csv files
    are byte for byte equal: runs repeat bit for bit on one machine, not across CPUs whose float rounding differs."""
    new, old = Path(level_dir), Path(previous_dir) if previous_dir else None
    record: dict[str, Any] = {
        "command": f"tools/time-make-run.sh {level}", "git revision": revision, "hardware": hardware(),
        "gemm GFLOP/s": [round(g / 1e9, 1) for g in gemm_flop_per_s],
        "setup seconds": setup_s, "run seconds": run_s, "total seconds": setup_s + run_s,
        "table2 Full UF1": table2_full_uf1(new / MAKE_RUN_TABLE)}
    earlier: list[dict[str, Any]] = []
    if old is not None and (old / "make_run.json").is_file():
        last = json.loads((old / "make_run.json").read_text())
        earlier = [{k: v for k, v in last.items() if k != "earlier"}, *last.get("earlier", [])]
        if "table2 Full UF1" not in earlier[0] and (old / MAKE_RUN_TABLE).is_file():
            earlier[0]["table2 Full UF1"] = table2_full_uf1(old / MAKE_RUN_TABLE)
    if old is not None and (old / MAKE_RUN_TABLE).is_file():
        same = (old / MAKE_RUN_TABLE).read_bytes() == (new / MAKE_RUN_TABLE).read_bytes()
        record["table2 as the previous run"] = same
    return record | {"earlier": earlier}


def table2_full_uf1(path: str | os.PathLike) -> dict[str, dict[str, float]]:
    """Our Full-composite UF1 per protocol in a table2.csv (notebook 03): {protocol: {"UF1": mean, "UF1_sd": sd}}."""
    import pandas as pd

    table = pd.read_csv(path)
    need = {"source", "protocol", "scope", "UF1", "UF1_sd"}
    if need - set(table.columns):
        raise HTNetInputError(path, sorted(need - set(table.columns))[0], "no such column")
    ours = table[(table["scope"] == "Full") & table["source"].str.startswith("ours")]
    return {str(r.protocol): {"UF1": float(r.UF1), "UF1_sd": float(r.UF1_sd)} for r in ours.itertuples()}
