"""Small shared helpers: one error type that names the file and the field, atomic writes, provenance, and where a
project's files are (`project_root`).

Paths. Run folders, figures, the release's default place, and `reproduce`'s params levels and notebooks resolve from
the working directory (or $HTNET_ROOT, or the params), never from the package's location, so an installed copy works
anywhere: `project_root` is $HTNET_ROOT, else the nearest folder at or above the working directory that holds
`params/` and `notebooks/` (a checkout, entered anywhere: nbval's kernels run in notebooks/), else the working
directory. Only `git_revision` looks at the package's own folder: it records which code ran.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

ROOT_ENV = "HTNET_ROOT"  # the project folder, when the working directory is not inside it
_SOURCE = Path(__file__).resolve().parent.parent  # where this code is (a checkout, or site-packages): git_revision only


def project_root() -> Path:
    """The project folder relative paths resolve against (module docstring): $HTNET_ROOT, else the nearest folder at
    or above the working directory holding `params/` and `notebooks/`, else the working directory."""
    env = os.environ.get(ROOT_ENV)
    if env:
        return Path(env).expanduser().resolve()
    cwd = Path.cwd().resolve()
    for d in (cwd, *cwd.parents):
        if (d / "params").is_dir() and (d / "notebooks").is_dir():
            return d
    return cwd


def in_project(path: str | os.PathLike) -> Path:
    """`path` as given when absolute, else under `project_root`."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else project_root() / p


def figures_dir() -> Path:
    """figures/ of the project: figures/<level> is what the notebooks write (quick and honest are committed)."""
    return project_root() / "figures"


class HTNetInputError(ValueError):
    """Bad input. The message always names the file (or params source) and the field at fault."""

    def __init__(self, source: str | os.PathLike | None, field: str | None, problem: str):
        self.source = str(source) if source is not None else None
        self.field = field
        self.problem = problem
        where = []
        if self.source:  # a command-line option ("--set") or a placeholder ("<dict>") is not a file
            where.append(self.source if self.source.startswith(("--", "<")) else f"file {self.source}")
        if field:
            where.append(f"field '{field}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {problem}" if prefix else problem)


def check_writable(path: str | os.PathLike, field: str | None = None, folder: bool = False) -> Path:
    """Check before the work that an output can be written: `path` (a file, or with `folder` a folder) is not the
    other kind, and a file can be created where it goes (the nearest existing folder, probed with a temporary file:
    permissions, read-only file systems and root all answer as they will for the write). Raises `HTNetInputError`
    naming the path and `field`; creates nothing."""
    path = Path(path)
    if path.exists() and path.is_dir() != folder:
        raise HTNetInputError(path, field, "is a folder: give a file name" if not folder else "is a file, not a folder")
    start = path if folder else path.parent
    existing = next(d for d in (start, *start.parents) if d.exists())
    if not existing.is_dir():
        raise HTNetInputError(path, field, f"cannot be written: {existing} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-check.", suffix=".tmp", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise HTNetInputError(path, field, f"cannot be written ({e.strerror or e} in {existing}); give a place this "
                                           f"process can write") from None
    return path


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside `path` (ending in `suffix`); rename it onto `path` only if the block succeeds.

    Readers never see a half-written file and a killed process leaves the old file intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield tmp_path
        # mkstemp makes 0600, and some writers (safetensors) create their file anew so: the mode open() would give
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def sha256_file(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes (release checksums, provenance records)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def git_revision(root: Path = _SOURCE) -> str:
    """The git commit of the code that runs (the package's own checkout), with '+dirty' when tracked files have
    changes; 'unknown' outside git (an installed copy).

    Changes under figures/ do not count: they are outputs, and `reproduce` rewrites them while it runs."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)figures"],
                               cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run a block on `n` torch CPU threads, then restore the caller's setting (0 or None: the caller's, unchanged).

    MTCNN's many small convolutions gain nothing from several threads on a small CPU and lose much when the cores are
    busy (seen here on 2 loaded cores: 0.11 s per 28x28 face on 2 threads, 0.004 s on 1), so detection runs on one.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n or before)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def cache_dir() -> Path:
    """Where derived, recomputable files go (landmark caches): $HTNET_CACHE_DIR or ~/.cache/htnet_lib."""
    d = Path(os.environ.get("HTNET_CACHE_DIR") or Path.home() / ".cache" / "htnet_lib")
    d.mkdir(parents=True, exist_ok=True)
    return d


PROGRESS_ENV = "HTNET_PROGRESS"  # "log": plain text progress lines (what `reproduce` sets for its notebooks' kernels)


def progress(iterable=None, **kwargs):
    """A tqdm progress bar: a notebook widget or a terminal bar as tqdm.auto picks, or, with $HTNET_PROGRESS=log,
    plain text lines on stderr at most every 20 s, which papermill's log shows while a notebook cell runs."""
    if os.environ.get(PROGRESS_ENV) == "log":
        import sys

        from tqdm import tqdm as text_tqdm

        kwargs.setdefault("mininterval", 20.0)
        kwargs.setdefault("ascii", True)
        return text_tqdm(iterable, file=sys.stderr, dynamic_ncols=False, ncols=100, **kwargs)
    from tqdm.auto import tqdm

    return tqdm(iterable, **kwargs)


def hardware(device: str = "cpu") -> str:
    """What ran the work, for tables of training time: the GPU's name, or the CPU model, torch's thread count and the
    instruction set torch's CPU kernels dispatch to (``torch.backends.cpu.get_cpu_capability``: AVX2, AVX512, ...).
    The instruction set is named because it decides the float rounding: one model name covers CPUs with and without
    AVX-512, which train the same runs to different bytes. Nothing else about the machine."""
    import torch

    if str(device).startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    model = "CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {torch.get_num_threads()} thread(s), {torch.backends.cpu.get_cpu_capability()}"
