"""README.md and docs/*.md are rendered from docs/templates/ and the files under figures/ (`htnet_lib.docs`): the
committed pages equal a fresh rendering, a changed figure file changes them, and a reference to a missing cell is one
error naming the file and the field."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from htnet_lib import docs, published
from htnet_lib.figures import standing
from htnet_lib._io import HTNetInputError

REPO_ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 150


@pytest.fixture
def copy(tmp_path) -> Path:
    """What rendering reads, copied: templates, figures, params, tests/test_faults.py."""
    for d in ("docs/templates", "figures", "params"):
        shutil.copytree(REPO_ROOT / d, tmp_path / d)
    (tmp_path / "tests").mkdir()
    shutil.copy(REPO_ROOT / "tests" / "test_faults.py", tmp_path / "tests")
    return tmp_path


def test_committed_pages_equal_their_rendering_from_the_committed_figures():
    differ = docs.stale(REPO_ROOT)
    assert not differ, f"run `python -m htnet_lib docs`: {[str(p.relative_to(REPO_ROOT)) for p in differ]} differ"


def test_the_readme_is_a_front_page():
    text = (REPO_ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= README_MAX_LINES
    for needed in ("make run", "make test", "make fetch", "HTNET_DATA_DIR", "figures/quick/table2_uf1.png"):
        assert needed in text
    for link in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (REPO_ROOT / link).is_file(), f"README links to {link}, which does not exist"


def test_a_changed_figure_number_changes_the_pages(copy):
    path = copy / "figures" / "honest" / "standing_unseen.csv"  # the headline
    df = pd.read_csv(path)
    df.loc[df["protocol"] == "last", "UF1"] = 0.4321
    df.to_csv(path, index=False)
    pages = docs.render(copy)
    assert "0.432 ± " in pages[copy / "README.md"]
    assert "0.432" in pages[copy / "docs" / "honest.md"]
    committed = (REPO_ROOT / "README.md").read_text()
    assert pages[copy / "README.md"] != committed


def test_a_missing_row_or_column_names_the_file_and_the_field(copy):
    path = copy / "figures" / "quick" / "table2.csv"
    df = pd.read_csv(path)
    df[df["protocol"] != "last"].to_csv(path, index=False)
    with pytest.raises(HTNetInputError, match=r"table2\.csv.*field 'protocol, scope'.*0 rows"):
        docs.render(copy)
    df.drop(columns=["protocol"]).to_csv(path, index=False)
    with pytest.raises(HTNetInputError, match=r"table2\.csv.*field 'protocol': no such column"):
        docs.render(copy)
    path.unlink()
    with pytest.raises(HTNetInputError, match=r"table2\.csv.*not found"):
        docs.render(copy)


def test_the_fault_page_lists_every_fault_test_with_its_docstring(copy):
    tests = docs.tests_of(REPO_ROOT / "tests" / "test_faults.py")
    page = docs.render(copy)[copy / "docs" / "tests.md"]
    assert tests and all(t["what"] in page and t["doc"] in page for t in tests)
    with open(copy / "tests" / "test_faults.py", "a") as f:
        f.write('\n\ndef test_a_new_fault_case():\n    """A new case, picked up when the pages are rendered again."""\n')
    page = docs.render(copy)[copy / "docs" / "tests.md"]
    assert "**a new fault case**: A new case, picked up when the pages are rendered again." in page


def test_the_speed_page_reads_the_bench_output_when_there_is_one(copy):
    for p in (copy / "figures").glob(f"*/{docs.BENCH_GLOB}"):
        p.unlink()
    assert "No bench output is committed yet" in docs.render(copy)[copy / "docs" / "speed.md"]
    pd.DataFrame({"engine": ["loop", "batched"], "samples_per_s": [8646.0, 13953.0]}).to_csv(
        copy / "figures" / "quick" / "bench.csv", index=False)
    page = docs.render(copy)[copy / "docs" / "speed.md"]
    assert "figures/quick/bench.csv" in page and "13953" in page


def test_every_figure_file_of_a_level_is_listed_with_its_command():
    files = docs.Figures(REPO_ROOT).files("honest")
    listed = {f for row in files for f in row["files"]}
    on_disk = {p.name for p in (REPO_ROOT / "figures" / "honest").glob("*") if p.name != "provenance.json"}
    assert listed == on_disk
    assert {r["name"]: r["command"] for r in files}["standing_fresh"] == \
        "python -m htnet_lib reproduce --params honest --only 08"


def test_docs_check_on_the_command_line(copy, tmp_path, monkeypatch, capsys):
    from htnet_lib.__main__ import main

    env = {"HTNET_ROOT": str(copy), "PATH": "/usr/bin:/bin"}
    (copy / "notebooks").mkdir()
    monkeypatch.setenv("HTNET_ROOT", str(copy))
    assert main(["docs"]) == 0  # writes the pages (in process)
    done = subprocess.run([sys.executable, "-m", "htnet_lib", "docs", "--check"], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True)  # one real command-line process
    assert done.returncode == 0, done.stderr
    (copy / "docs" / "results.md").write_text("edited by hand\n")  # a stale page: the check's exit status, in process
    capsys.readouterr()
    assert main(["docs", "--check"]) == 2 and "results.md" in capsys.readouterr().err


def test_the_readme_shows_the_headline_under_both_protocols_from_its_own_table_until_the_baselines_join(copy):
    """Without notebook 09's `standing_protocols`, the README's side-by-side table takes the headline's two rows from
    `standing_unseen` (the same runs under the paper's pick and at the last epoch)."""
    (copy / "figures" / "honest" / "standing_protocols.csv").unlink(missing_ok=True)
    unseen = pd.read_csv(copy / "figures" / "honest" / "standing_unseen.csv").set_index("protocol")
    unseen.loc["paper", "UF1"] = 0.8771
    unseen.reset_index().to_csv(copy / "figures" / "honest" / "standing_unseen.csv", index=False)
    readme = docs.render(copy)[copy / "README.md"]
    line = next(t for t in readme.splitlines() if t.startswith("| honest study: ") and "(chosen)" in t)
    assert f"| {int(unseen.loc['last', 'seeds'])} | 0.877 ± " in line
    assert f"| {unseen.loc['last', 'UF1']:.3f} ± " in line


def test_the_readme_shows_the_headline_and_each_baseline_under_both_protocols_once_notebook_09_wrote_them(copy):
    """Notebook 09's `standing_protocols` (the headline's and each baseline's runs under the paper's pick and at the
    last epoch) reaches the README's side-by-side table when it exists, one line per network; its `standing_reproduced`
    and `standing_versus_baselines` put every baseline in the results table and the paired line, and its three
    baseline tables replace docs/honest.md's sentences saying they are not made yet."""
    head = pd.read_csv(copy / "figures" / "honest" / "standing_unseen.csv")
    head = head[head["protocol"] == "last"].assign(candidate=lambda t: t["candidate"] + " (chosen)")
    chosen = head["candidate"].iloc[0]
    base = head.assign(candidate="STSTNet (authors' PyTorch settings)", UF1=0.7012)
    both = pd.concat([head.assign(protocol="paper", UF1=0.8123), head, base.assign(protocol="paper", UF1=0.7456), base],
                     ignore_index=True)
    both.drop(columns=["dUF1", "dUF1_lo", "dUF1_hi", "p_UF1", "exceeds_noise"]).to_csv(
        copy / "figures" / "honest" / "standing_protocols.csv", index=False)
    labels = ["STSTNet (authors' PyTorch settings)", "OFF-ApexNet (MEB's network and settings)"]
    ours = pd.DataFrame({"candidate": labels, "protocol": ["last"] * 2, "UF1": [0.7012, 0.6543], "UF1_sd": [0.009, 0.01],
                         "UF1_lo": [0.642, 0.6], "UF1_hi": [0.753, 0.7], "UAR": [0.687, 0.64], "UAR_lo": [0.63, 0.59],
                         "UAR_hi": [0.74, 0.69], "seeds": [5, 5]})
    reproduced = standing.against_published(ours, dict(zip(labels, (published.by_key("ststnet-port"),
                                                                     published.by_key("offapexnet-meb")))))
    standing.reproduced_formatted(reproduced).to_csv(copy / "figures" / "honest" / "standing_reproduced.csv",
                                                     index=False)
    names = {chosen: "HTNet", **{label: f"{label}, trained here" for label in labels}}
    standing.formatted(standing.standing_table([head, reproduced], names, chosen)).to_csv(
        copy / "figures" / "honest" / "standing_published.csv", index=False)
    pd.DataFrame({"against": ["STSTNet (authors' PyTorch settings)"] * 2 + ["OFF-ApexNet (MEB's network and settings)"] * 2,
                  "scope": ["Full", "SMIC"] * 2, "dUF1": [0.0311, 0.1, 0.0812, 0.1], "dUF1_lo": [-0.004, 0, 0.041, 0],
                  "dUF1_hi": [0.066, 0.2, 0.121, 0.2], "exceeds_noise": [False, False, True, False]}).to_csv(
        copy / "figures" / "honest" / "standing_versus_baselines.csv", index=False)
    pages = docs.render(copy)
    readme, page = pages[copy / "README.md"], pages[copy / "docs" / "honest.md"]
    line = next(t for t in readme.splitlines() if t.startswith(f"| honest study: {chosen}"))
    assert "| 0.812 ± " in line and f"| {head['UF1'].iloc[0]:.3f} ± " in line
    line = next(t for t in readme.splitlines() if t.startswith("| STSTNet (authors' PyTorch settings), trained here | ")
                and "| 0.746 ± " in t)
    assert "| 0.701 ± " in line and not any(t.startswith("| honest study: STSTNet") for t in readme.splitlines())
    assert "| OFF-ApexNet (MEB's network and settings), trained here | 5 | 0.6543 ± 0.010 [0.600, 0.700] |" in readme
    assert ("STSTNet (authors' PyTorch settings) +0.031 [-0.004, +0.066] (within the noise); "
            "OFF-ApexNet (MEB's network and settings) +0.081 [+0.041, +0.121] (beyond the noise).") in readme
    assert "| OFF-ApexNet (MEB's network and settings) | 5 | 0.6543 ± 0.010 [0.600, 0.700] |" in page
    assert "| OFF-ApexNet (MEB's network and settings), trained here | here, 5 seeds | release | 0.6543" in page
    assert "is not among these baselines yet" not in page and "are not made at the honest level yet" not in page


def test_rendering_outside_a_project_names_the_missing_templates(tmp_path):
    with pytest.raises(HTNetInputError, match=r"docs/templates: no page templates here"):
        docs.render(tmp_path)


def test_the_notebooks_page_shows_each_notebooks_time_and_kernel_peak_against_binders_memory(copy):
    """docs/notebooks.md reads each notebook's seconds and kernel peak memory from figures/smoke and figures/quick
    provenance.json, says where the peak stands against a Binder session's memory, and renders a record without the
    peak (an older run) or without the notebook as such."""
    from htnet_lib.reproduce import PEAK_MEMORY, PROVENANCE

    path = copy / "figures" / "smoke" / PROVENANCE
    rec = json.loads(path.read_text()) if path.is_file() else {}
    base = {"seconds": 75.0, "outputs": {}, "hardware": "test CPU", "finished": "2026-01-01T00:00:00Z"}
    rec["01_preprocess.ipynb"] = dict(base, **{PEAK_MEMORY: 1500})
    rec["02_model_walkthrough.ipynb"] = dict(base, **{PEAK_MEMORY: 2500})
    rec["03_loso_train.ipynb"] = dict(base, **{PEAK_MEMORY: 700})
    rec["04_ablations.ipynb"] = base  # recorded before peaks were
    rec.pop("05_protocol_audit.ipynb", None)
    path.write_text(json.dumps(rec))
    quick = json.loads((copy / "figures" / "quick" / PROVENANCE).read_text())
    quick.pop("05_protocol_audit.ipynb")
    (copy / "figures" / "quick" / PROVENANCE).write_text(json.dumps(quick))
    page = docs.render(copy)[copy / "docs" / "notebooks.md"]
    table = page[page.index("### Time and memory"):page.index("### Params levels")]
    line = {ln.split("|")[1].strip(" `"): ln for ln in table.splitlines() if ln.startswith("| `0")}
    assert "| 1 min 15 s | 1500 MiB | within the 2 GB limit |" in line["01_preprocess"]
    assert "| 2500 MiB | over the 2 GB limit |" in line["02_model_walkthrough"]
    assert "| 700 MiB | within the guaranteed 1 GB |" in line["03_loso_train"]
    assert "| 1 min 15 s | not recorded |" in line["04_ablations"]
    assert "05_protocol_audit" not in line
    (copy / "figures" / "quick" / PROVENANCE).unlink()
    page = docs.render(copy)[copy / "docs" / "notebooks.md"]
    assert "| `01_preprocess` | 1 min 15 s | 1500 MiB | within the 2 GB limit | not run | | |" in page


def test_a_make_run_timing_keeps_the_earlier_ones_with_their_table2(copy):
    """tools/time-make-run.sh's record (`reproduce.make_run_record`): the parts' seconds, the GEMM rates in GFLOP/s,
    our Table 2 Full UF1 per protocol from the run's table2.csv; the previous record (an older one without Table 2
    too) follows under "earlier" with the previous folder's Table 2, and whether the two table2.csv are equal. The
    README and docs/results.md render every timing; a table2.csv without a needed column is one error naming it."""
    from htnet_lib._io import hardware
    from htnet_lib.reproduce import make_run_record

    def table2(path, paper, last):
        pd.DataFrame({"source": ["ours, paper protocol", "ours, last epoch", "ours, last epoch", "authors"],
                      "protocol": ["paper", "last", "last", "paper"], "scope": ["Full", "Full", "SAMM", "Full"],
                      "UF1": [paper, last, 0.5, 0.83], "UF1_sd": [0.02, 0.01, 0.03, 0.0]}).to_csv(path, index=False)

    old, new = copy / "previous", copy / "new"
    old.mkdir(), new.mkdir()
    (old / docs.MAKE_RUN).write_text(json.dumps({"hardware": "old CPU, 2 thread(s)", "setup seconds": 100,
                                                 "run seconds": 1280, "total seconds": 1380,
                                                 "git revision": "4742f8a0"}))
    table2(old / "table2.csv", 0.7615, 0.6321)
    table2(new / "table2.csv", 0.7620, 0.6417)
    record = make_run_record("quick", new, old, "9852260f", 140, 2532, [51.04e9, 64.0e9])
    assert record["total seconds"] == 2672 and record["gemm GFLOP/s"] == [51.0, 64.0]
    assert record["command"] == "tools/time-make-run.sh quick"
    assert record["hardware"] == hardware() and record["table2 as the previous run"] is False
    assert record["table2 Full UF1"] == {"paper": {"UF1": 0.762, "UF1_sd": 0.02},
                                         "last": {"UF1": 0.6417, "UF1_sd": 0.01}}
    (earlier,) = record["earlier"]
    assert earlier["git revision"] == "4742f8a0"
    assert earlier["table2 Full UF1"]["last"] == {"UF1": 0.6321, "UF1_sd": 0.01}
    (old / docs.MAKE_RUN).write_text(json.dumps(record))  # the script's swap: the new folder becomes the previous one
    shutil.copy(new / "table2.csv", old / "table2.csv")
    table2(new / "table2.csv", 0.7620, 0.6417)
    again = make_run_record("quick", new, old, "9852260f", 140, 2500, [60e9, 60e9])
    assert again["table2 as the previous run"] is True and [e["git revision"] for e in again["earlier"]] == [
        "9852260f", "4742f8a0"]
    (copy / "figures" / "quick" / docs.MAKE_RUN).write_text(json.dumps(again))
    pages = docs.render(copy)
    flat = " ".join(pages[copy / "README.md"].split())
    assert ("earlier timings ([docs/results.md](docs/results.md#make-run-as-a-whole)): 44 min 32 s at 9852260 ("
            in flat)
    assert "fp32 GEMM 60.0 and 60.0 GFLOP/s before and after); earlier" in flat
    assert "23 min 0 s at 4742f8a (old CPU" in flat
    results = pages[copy / "docs" / "results.md"]
    assert ("| 4742f8a | old CPU, 2 thread(s) | not recorded | 1 min 40 s | 21 min 20 s | 23 min 0 s | 0.7615 ± 0.020 "
            "| 0.6321 ± 0.010 |") in results
    assert (f"| 9852260 | {hardware()} | 51.0, 64.0 | 2 min 20 s | 42 min 12 s | 44 min 32 s | 0.7620 ± 0.020 |"
            in results)
    assert "table2.csv equals the previous one's byte for byte, on the same hardware" in " ".join(results.split())
    pd.read_csv(new / "table2.csv").drop(columns="UF1_sd").to_csv(new / "table2.csv", index=False)
    with pytest.raises(HTNetInputError, match="UF1_sd"):
        make_run_record("quick", new, old, "9852260f", 140, 2500, [60e9, 60e9])


def test_the_readme_reads_the_bench_and_the_whole_make_run_time_when_saved(copy):
    """The README's speed table comes from figures/quick/bench.json: per network the loop's rate, the fastest engine,
    its ratio to the loop and its share of the GEMM rate, and the profiled operations (the batched engine's too where
    the loop was faster); the time of `make run` as a
    whole from figures/quick/make_run.json. Without them the README says how to make them."""
    for p in (copy / "figures" / "quick").glob("bench*"):
        p.unlink()
    (copy / "figures" / "quick" / docs.MAKE_RUN).unlink(missing_ok=True)
    page = docs.render(copy)[copy / "README.md"]
    assert "No bench is saved yet" in page and "From a fresh clone" not in page
    engine = {"fold_epochs_per_s": 5.0, "samples_per_s": 2000.0, "flop_per_s": 20e9, "full_loso_s": 80.0}
    bench = {"hardware": "test CPU, 2 thread(s)", "gemm_flop_per_s": 200e9, "provenance": {"git revision": "abcdef123"},
             "configs": {"net A": {"engines": {"loop": engine, "batched@4": dict(engine, fold_epochs_per_s=15.0,
                                                                                  samples_per_s=6000.0, flop_per_s=60e9),
                                               "batched@4+compile": dict(engine, fold_epochs_per_s=20.0,
                                                                         samples_per_s=8000.0, flop_per_s=80e9,
                                                                         full_loso_s=50.0, compile_cold_s=101.4,
                                                                         compile_warm_s=19.6)},
                                   "profile": {"engine": "batched@4", "ops": [["aten::bmm", 0.4], ["aten::mul", 0.25]],
                                               "gemm_share": 0.4, "gemm_flop_per_s": 50e9, "small_call_share": 0.02}},
                         "net B": {"engines": {"loop": engine}},
                         "net C": {"engines": {"loop": engine, "batched@16": dict(engine, samples_per_s=500.0),
                                               "batched@16+compile": dict(engine, samples_per_s=600.0, full_loso_s=50.0,
                                                                          compile_cold_s=40.0, compile_warm_s=9.0)},
                                   "profile": {"engine": "loop", "ops": [["aten::mm", 0.5]]},
                                   "profile_batched": {"engine": "batched@16", "ops": [["aten::copy_", 0.3]]}}}}
    (copy / "figures" / "quick" / "bench.json").write_text(json.dumps(bench))
    (copy / "figures" / "quick" / docs.MAKE_RUN).write_text(json.dumps(
        {"hardware": "test CPU, 2 thread(s)", "setup seconds": 120, "run seconds": 1200, "total seconds": 1320,
         "git revision": "0123456789abcdef"}))
    page = docs.render(copy)[copy / "README.md"]
    assert ("| net A | 5.0 | batched@4+compile | 20.0 | 4.00x | 40% | 40% at 50.0 GFLOP/s | 2% | batched@4: "
            "`aten::bmm` 40%, `aten::mul` 25% |") in page
    assert "| net B | 5.0 | loop | 5.0 | 1.00x | 10% |  |  |  |" in page
    assert "| net C | 5.0 | loop | 5.0 | 1.00x | 10% |  |  | loop: `aten::mm` 50%; batched@16: `aten::copy_` 30% |" in page
    flat = " ".join(page.split())  # the compile sentence of the network whose fastest engine compiles, only
    assert ("net A, compiled (batched@4+compile): compiling took 101 s in a fresh process with an empty inductor cache "
            "and 20 s in the next one, which found the first one's cache on disk, less than the 30 s") in flat
    assert flat.count("compiling took") == 1 and "| calls under 20 µs |" in page
    assert "`make run` took\n22 min 0 s (set-up 2 min 0 s, notebooks 20 min 0 s;" in page
    assert "`tools/time-make-run.sh` at revision 0123456, test CPU, 2 thread(s))" in page
