"""Run every numbered notebook in order with papermill, for one params level (smoke, quick or paper).

Sources in `notebooks/` stay clean (no outputs); executed copies go to `executed/<level>/` (ignored by git), and the
figures and tables to `figures/`. A failing cell stops the run and is printed with its traceback.

Progress: the kernels run with $HTNET_PROGRESS=log, so long steps (a LOSO run, a sweep) write plain text progress
lines, and papermill streams each kernel's stdout and stderr to this terminal as they come.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

from ._io import PROGRESS_ENV, REPO_ROOT, HTNetInputError

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
PARAMS_ROOT = REPO_ROOT / "params"
LEVELS = ("smoke", "quick", "paper", "honest")  # honest: notebook 07 only (`--only 07`)


def notebooks() -> list[Path]:
    """The numbered notebooks, in order."""
    return sorted(p for p in NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))


def params_dir(level: str) -> Path:
    """`params/<level>`, or any folder path holding the same files."""
    d = PARAMS_ROOT / level if level in LEVELS else Path(level)
    if not d.is_dir():
        raise HTNetInputError(d, None, f"params folder not found (levels: {', '.join(LEVELS)}, or a folder path)")
    return d.resolve()


def reproduce(level: str = "quick", only: list[str] | None = None, out_dir: str | os.PathLike | None = None) -> list[Path]:
    """Execute the notebooks with `params_dir=params/<level>`; returns the executed copies."""
    import papermill as pm

    pdir = params_dir(level)
    out = Path(out_dir) if out_dir else REPO_ROOT / "executed" / pdir.name
    out.mkdir(parents=True, exist_ok=True)
    chosen = [nb for nb in notebooks() if not only or any(nb.name.startswith(o) for o in only)]
    if not chosen:
        raise HTNetInputError(None, "only", f"no notebook matches {only}")
    done = []
    for nb in chosen:
        target = out / nb.name
        t0 = time.perf_counter()
        print(f"[{nb.name}] running with {pdir.relative_to(REPO_ROOT) if pdir.is_relative_to(REPO_ROOT) else pdir}",
              flush=True)
        try:
            with _progress_as_text():
                pm.execute_notebook(str(nb), str(target), parameters={"params_dir": str(pdir)}, cwd=str(REPO_ROOT),
                                    kernel_name="python3", progress_bar=False, stdout_file=sys.stdout,
                                    stderr_file=sys.stderr)
        except pm.PapermillExecutionError as e:
            print(f"\n[{nb.name}] failed in cell {e.exec_count}:\n{e.source}\n\n{e.ename}: {e.evalue}\n"
                  f"(executed copy with the error: {target})", file=sys.stderr)
            raise SystemExit(1) from None
        print(f"[{nb.name}] done in {time.perf_counter() - t0:.0f} s -> {target}", flush=True)
        done.append(target)
    return done


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
