"""`reproduce`'s provenance record, and what the committed figures/ may hold (no machine paths, every file traced)."""
from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from htnet_lib import reproduce
from htnet_lib._io import HTNetInputError

REPO_ROOT = Path(__file__).resolve().parent.parent  # this checkout
FIGURES_DIR = REPO_ROOT / "figures"


def test_record_lists_only_what_the_notebook_wrote_with_hashes_and_relative_names(tmp_path, monkeypatch):
    out = tmp_path / "figures" / "quick"
    out.mkdir(parents=True)
    old = out / "table1_counts.csv"
    old.write_text("written by an earlier notebook\n")
    os.utime(old, (1_000_000, 1_000_000))
    new = out / "table2.csv"
    new.write_bytes(b"source,UF1\nours,0.5\n")
    pdir = tmp_path / "params" / "quick"
    pdir.mkdir(parents=True)
    (pdir / "loso.yaml").write_text("model:\n  dim: 16\n")
    monkeypatch.setenv("HTNET_SET", json.dumps({"device": "cpu"}))

    path = reproduce.record_provenance(out / reproduce.PROVENANCE, "03_loso_train.ipynb", pdir, started=2_000_000,
                                       seconds=12.34, peak_mib=512.4)
    entry = reproduce.read_provenance(path)["03_loso_train.ipynb"]
    assert entry[reproduce.PEAK_MEMORY] == 512
    assert entry["outputs"] == {"table2.csv": hashlib.sha256(b"source,UF1\nours,0.5\n").hexdigest()}
    assert entry["params"] == {"folder": "quick", "set": {"device": "cpu"},
                               "sha256": {"loso.yaml": hashlib.sha256(b"model:\n  dim: 16\n").hexdigest()[:16]}}
    assert entry["seconds"] == 12.3
    assert str(tmp_path) not in path.read_text()

    new.write_text("rewritten\n")  # a second notebook keeps the first one's entry, less the file it now wrote
    (out / "fig5_dim.csv").write_text("dim,UF1\n16,0.5\n")
    reproduce.record_provenance(path, "04_ablations.ipynb", pdir, started=2_000_000, seconds=1.0)
    rec = reproduce.read_provenance(path)
    assert set(rec) == {"03_loso_train.ipynb", "04_ablations.ipynb"}
    assert rec["04_ablations.ipynb"][reproduce.PEAK_MEMORY] is None  # not measured
    assert rec["03_loso_train.ipynb"]["outputs"] == {} and rec["03_loso_train.ipynb"]["seconds"] == 12.3
    assert rec["04_ablations.ipynb"]["outputs"] == {"fig5_dim.csv": hashlib.sha256(b"dim,UF1\n16,0.5\n").hexdigest(),
                                                   "table2.csv": hashlib.sha256(b"rewritten\n").hexdigest()}


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="no /proc here (not Linux)")
def test_peak_memory_is_a_child_processes_high_water_mark_even_after_it_freed_the_memory():
    """A child python allocates and touches 200 MiB (numpy), frees it and waits; `PeakMemory`, started only then (the
    child's resident memory is back down), reaches 200 MiB from its background polls of the child's VmHWM, and keeps
    it after the child exited; the child's interpreter and numpy add tens of MiB, not a hundred more."""
    size = 200
    code = (f"import sys, numpy as np; a = np.ones({size} * 2**20 // 8); assert a.sum() == a.size; del a; "
            "print('freed', flush=True); sys.stdin.read()")
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "freed\n"
        with reproduce.PeakMemory(interval=0.05) as peak:
            deadline = time.monotonic() + 60  # a bound for a failing poller, not a timing check
            while (peak.mib or 0) < size and time.monotonic() < deadline:
                time.sleep(0.05)
            child.stdin.close()
            assert child.wait(60) == 0
    finally:
        child.kill()
    assert size <= peak.mib < size + 100


def test_peak_memory_is_none_without_proc(tmp_path):
    with reproduce.PeakMemory(proc=tmp_path) as peak:
        pass
    assert peak.mib is None


@pytest.mark.parametrize("text", ["{not json", '{"03_loso_train.ipynb": {"seconds": 1}}'])
def test_damaged_record_is_named_before_any_notebook_runs(tmp_path, text):
    bad = tmp_path / reproduce.PROVENANCE
    bad.write_text(text)
    with pytest.raises(HTNetInputError, match="provenance.json.*not a provenance record"):
        reproduce.read_provenance(bad)


def _committed_outputs() -> list:
    listed = subprocess.run(["git", "ls-files", "figures", "runs"], cwd=REPO_ROOT, capture_output=True,
                            text=True).stdout
    if not listed.strip():
        pytest.skip("figures/ is not tracked by git here (not a git checkout)")
    return [REPO_ROOT / p for p in listed.split()]


def test_committed_outputs_hold_no_machine_paths_or_name():
    """Committed outputs say nothing about the machine but its hardware."""
    absolute = re.compile(r"(?<![\w.])(/(home|root|work|tmp|Users|mnt|opt|var|private)/|[A-Za-z]:\\\\)")
    host = socket.gethostname()
    for p in _committed_outputs():
        if p.suffix in {".csv", ".md", ".json"}:
            text = p.read_text()
            assert not absolute.search(text), f"{p.relative_to(REPO_ROOT)}: an absolute path"
            assert len(host) < 4 or host not in text, f"{p.relative_to(REPO_ROOT)}: this machine's name"


@pytest.mark.parametrize("level", ["quick", "cpu", "honest"])
def test_committed_figures_are_the_ones_their_record_names(level):
    """Every committed file of figures/<level> is listed by the notebook that last wrote it, with the same sha256:
    the tables were made by `reproduce`, and not edited afterwards."""
    from htnet_lib.figures.summary import RECORDS

    files = [p for p in _committed_outputs() if p.parent == FIGURES_DIR / level and p.name != reproduce.PROVENANCE
             and p.stem not in RECORDS]
    assert files, f"figures/{level} holds no committed file"
    rec = reproduce.read_provenance(FIGURES_DIR / level / reproduce.PROVENANCE)
    assert rec, f"figures/{level}/provenance.json is missing: run `python -m htnet_lib reproduce --params {level}`"
    for p in files:
        writers = sorted((e["finished"], nb) for nb, e in rec.items() if p.name in e["outputs"])
        assert writers, f"figures/{level}/{p.name}: no notebook in provenance.json wrote it"
        last = rec[writers[-1][1]]
        assert last["outputs"][p.name] == hashlib.sha256(p.read_bytes()).hexdigest(), \
            f"figures/{level}/{p.name} differs from what {writers[-1][1]} wrote"
        assert last["git revision"] != "unknown" and len(last["data fingerprint"]) == 16


def test_git_revision_is_dirty_for_code_changes_but_not_for_regenerated_figures(tmp_path):
    from htnet_lib._io import git_revision

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "table2.md").write_text("old\n")
    (tmp_path / "model.py").write_text("dim = 16\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "start")
    rev = git_revision(tmp_path)
    assert re.fullmatch(r"[0-9a-f]{40}", rev)
    (tmp_path / "figures" / "table2.md").write_text("regenerated\n")
    assert git_revision(tmp_path) == rev
    (tmp_path / "model.py").write_text("dim = 32\n")
    assert git_revision(tmp_path) == rev + "+dirty"


def test_every_committed_figure_file_is_in_the_map_with_the_notebook_that_wrote_it():
    """The one map from figure to notebook (`figures.summary.FILES`, which the docs pages list with the command that
    reruns it) claims every committed file, and names the notebook that the provenance record says wrote it."""
    from htnet_lib.figures.summary import FILES, RECORDS, owner

    for p in _committed_outputs():
        if p.name == reproduce.PROVENANCE or p.stem in RECORDS or p.parent.parent != FIGURES_DIR:
            continue
        name = owner(p.name)
        assert name, f"figures/{p.parent.name}/{p.name} is in no entry of figures.summary.FILES"
        rec = reproduce.read_provenance(p.parent / reproduce.PROVENANCE)
        wrote = {nb[:2] for nb, e in rec.items() if p.name in e["outputs"]}
        assert wrote == {FILES[name][0]}, (f"figures/{p.parent.name}/{p.name}: FILES says notebook {FILES[name][0]}, "
                                           f"provenance.json says {wrote}")


def test_progress_in_a_papermill_kernel_is_plain_text_lines(monkeypatch, capsys):
    """Under `reproduce` ($HTNET_PROGRESS=log) progress reaches the terminal as text lines on
    stderr, which papermill streams while a cell runs, instead of a notebook widget."""
    from htnet_lib._io import PROGRESS_ENV, progress

    monkeypatch.setenv(PROGRESS_ENV, "log")
    for _ in progress(range(3), desc="LOSO", mininterval=0):
        pass
    last = capsys.readouterr().err.rstrip("\n").split("\r")[-1]
    assert last.startswith("LOSO: 100%|") and "3/3" in last
    assert len(last) == 100 and set(last.split("|")[1]) == {"#"}  # a fixed-width ASCII line for a log (not 10 columns)
