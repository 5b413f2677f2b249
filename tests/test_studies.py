"""Studies (htnet_lib.studies): one loader for sweep, audit and bench files; sweeps over any key; the protocol audit."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from htnet_lib import loso, published
from htnet_lib.__main__ import main
from htnet_lib._io import HTNetInputError
from htnet_lib.config import HTNetConfig
from htnet_lib.figures import audit as audit_figures
from htnet_lib.studies import audit, bench, load_study, sweeps


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.fixture()
def base(tmp_path):
    return write(tmp_path, "loso.yaml", f"dim: 8\nheads: 2\nblock_repeats: [1, 1, 1]\nepochs: 2\nfolds: [s01, '006']\n"
                                        f"runs_dir: {tmp_path / 'runs'}\nprogress: false\nengine: loop\n")


def test_block_geometry_follows_the_authors_layout():
    assert sweeps.block_geometry(HTNetConfig()) == {"block_px": "7/14/28", "tokens_per_block": 1}
    assert sweeps.block_geometry(HTNetConfig(patch_size=5, image_size=20)) == {"block_px": "5/10/20", "tokens_per_block": 1}
    assert sweeps.block_geometry(HTNetConfig(num_hierarchies=2, block_repeats=(2, 10))) == {"block_px": "14/28",
                                                                                           "tokens_per_block": 4}


def test_study_file_errors_name_file_and_point(tmp_path, base):
    f = write(tmp_path, "ablations.yaml", "base: loso.yaml\nsweeps:\n  dim:\n    - {dim: 16}\n    - {dims: 32}\n")
    with pytest.raises(HTNetInputError) as e:
        load_study(f)
    assert e.value.field == "sweeps.dim[1].dims" and str(f) in str(e.value)
    f.write_text("base: loso.yaml\nsweeps:\n  depth: {points: [{block_repeats: [1, 1]}]}\n")
    with pytest.raises(HTNetInputError, match="3 positive entries") as e:
        load_study(f)
    assert e.value.field == "sweeps.depth[0].block_repeats"
    f.write_text("base: loso.yaml\noverrides: {lr: .nan}\n")
    with pytest.raises(HTNetInputError, match="finite") as e:
        load_study(f)
    assert "overrides" in str(e.value) and e.value.field == "lr"
    f.write_text("base: loso.yaml\nseeds: [0, x]\n")
    with pytest.raises(HTNetInputError) as e:
        load_study(f)
    assert e.value.field == "seeds"
    f.write_text("base: loso.yaml\nguess_epochs: 3\n")  # an audit key in a plain study file
    with pytest.raises(HTNetInputError, match="unknown key"):
        load_study(f)


def test_any_key_is_a_sweep_and_its_table_shows_the_values(tmp_path, base, samples, capsys):
    """No whitelist: a sweep over lr (or epochs) is one entry, and its rows carry the lr values."""
    f = write(tmp_path, "lr.yaml", "base: loso.yaml\nseeds: [0, 1]\nsweeps:\n  learning rate:\n"
                                   "    - {lr: 1.0e-4}\n    - {lr: 3.0e-4, label: fast}\n"
                                   "  block_size:\n    paper: table4\n    points:\n      - {label: 7x7}\n"
                                   "      - {label: 5x5, patch_size: 5, image_size: 20}\n")
    study = load_study(f)
    assert study.sweeps["learning rate"].varied == ["lr"] and study.sweeps["block_size"].paper == "table4"
    assert [p.label for p in study.sweeps["learning rate"].points] == ["lr=0.0001", "fast"]
    # `sweep --status` before anything trains: every run of both seeds has both folds (2 epochs each) left
    left = sweeps.remaining(study)
    assert not (tmp_path / "runs").exists()  # the status writes nothing
    assert len(left) == 8 and set(left["seed"]) == {0, 1}
    assert (left["folds"] == 2).all() and (left["folds_left"] == 2).all() and (left["fold_epochs_left"] == 4).all()
    assert left["hours_left"].isna().all()  # no pace recorded yet
    # a piece of the study (`sweep --seeds 1`) trains seed 1's runs only; the status then shows seed 0's left
    piece = sweeps.run_sweep(study, progress=False, seeds=[1])
    left = sweeps.remaining(study).set_index("seed")
    assert (left.loc[1, "folds_left"] == 0).all() and (left.loc[0, "folds_left"] == 2).all()
    # seed 0's hours at the pace seed 1's run of the same point recorded: the median over its chunks (one fold each
    # on the loop engine) of seconds per fold-epoch
    fast = left[left["label"] == "fast"]
    chunks = json.loads((tmp_path / "runs" / fast.loc[1, "run"] / "run.json").read_text())["chunks"]
    pace = float(np.median([c["seconds"] / (len(c["folds"]) * 2) for c in chunks]))
    assert len(chunks) == 2 and pace > 0 and fast.loc[1, "hours_left"] == 0
    assert fast.loc[0, "hours_left"] == pytest.approx(4 * pace / 3600, rel=1e-12)
    r = sweeps.run_sweep(study, progress=False)
    assert sweeps.remaining(study)["fold_epochs_left"].sum() == 0
    assert main(["sweep", "--study", str(f), "--status", "--seeds", "0"]) == 0
    n_runs = left.loc[0, "run"].nunique()
    assert f"0 fold-epochs left in 0 of {n_runs} runs" in capsys.readouterr().out
    t = r.table
    lr_rows = t[t["sweep"] == "learning rate"]
    assert set(lr_rows["lr"]) == {1e-4, 3e-4} and set(lr_rows["seed"]) == {0, 1}
    assert len(r.runs[("learning rate", "fast")]) == 2
    five = t[(t["sweep"] == "block_size") & (t["label"] == "5x5")]
    assert set(five["block_px"]) == {"5/10/20"} and set(five["image_size"]) == {20}
    assert not t["run"].str.contains("/").any()  # run ids, never paths
    # the 7x7 point is the base: the same runs as the base trained alone (one run per seed, shared)
    base_runs = loso.run_many(study.seeded(study.base), progress=False)
    assert r.runs[("block_size", "7x7")] == base_runs
    # the piece held seed 1's runs only, the very runs of the whole study
    assert set(piece.table["seed"]) == {1} and piece.runs[("learning rate", "fast")] == r.runs[("learning rate", "fast")][1:]
    for call in (sweeps.run_sweep, sweeps.remaining):
        with pytest.raises(HTNetInputError, match=r"lr\.yaml.*field 'seeds'.*\[7\] are not among the study's \[0, 1\]"):
            call(study, seeds=[7])


def test_a_sweep_may_mix_networks_and_a_key_one_lacks_is_empty(tmp_path, base, samples):
    """notebook 09's baselines: STSTNet beside OFF-ApexNet in one sweep, each setting keys the other network has not;
    each row shows its own network's values and leaves the other's keys empty."""
    f = write(tmp_path, "mixed.yaml", "base: loso.yaml\nseeds: [0]\nsweeps:\n  baselines:\n"
                                      "    - {label: STSTNet, arch: ststnet, batch_norm: true, regions: whole}\n"
                                      "    - {label: OFF-ApexNet, arch: offapexnet, channels: 2, fc_width: 64, regions: whole}\n")
    t = sweeps.run_sweep(load_study(f), progress=False).table.drop_duplicates("label").set_index("label")
    assert t.loc["STSTNet", "batch_norm"] == True and pd.isna(t.loc["STSTNet", "fc_width"])  # noqa: E712 (a cell, not a flag)
    assert t.loc["OFF-ApexNet", "fc_width"] == 64 and pd.isna(t.loc["OFF-ApexNet", "batch_norm"])
    assert list(t.loc[["STSTNet", "OFF-ApexNet"], "arch"]) == ["ststnet", "offapexnet"]


def test_random_guesses_under_paper_selection(samples):
    """The paper's pick on uninformative guesses: chance at a fixed epoch, far above chance when chosen per subject."""
    scores, curve = audit.random_guess_oracle(samples, epochs=200, repeats=2, seed=3, curve_at=(1, 10, 200))
    s = audit.summarize(scores).set_index(["protocol", "scope"])
    assert 0.25 < s.loc[("last", "Full"), "UF1_mean"] < 0.42
    assert s.loc[("paper", "Full"), "UF1_mean"] > 0.7
    c = curve[(curve["scope"] == "Full") & (curve["protocol"] == "paper")].groupby("epoch")["UF1"].mean()
    assert c.loc[1] < c.loc[10] < c.loc[200]  # more epochs to choose from, higher score
    # guesses follow the other subjects' priors: about 57% negative overall
    rec = audit.guess_records(samples, epochs=50, seed=0)
    allp = np.concatenate([r.test_pred.ravel() for r in rec.values()])
    assert abs((allp == 0).mean() - 250 / 442) < 0.02


def test_audit_table_and_description(samples):
    scores, _ = audit.random_guess_oracle(samples, epochs=20, repeats=2, curve_at=(20,))
    t = audit_figures.audit_table(scores, real=[])
    assert set(t["predictions"]) == {"random guesses (class priors)"}
    text = audit.describe(t, "Full")
    assert text.startswith("Full: random guesses") and "+0." in text


def test_audit_file(tmp_path, base):
    bad = write(tmp_path, "audit.yaml", "base: loso.yaml\nguess_epochs: 0\n")
    with pytest.raises(HTNetInputError) as e:
        audit.load_audit(bad)
    assert e.value.field == "guess_epochs" and str(bad) in str(e.value)
    bad.write_text("base: loso.yaml\nrepeats: 3\n")
    with pytest.raises(HTNetInputError, match="repeats"):
        audit.load_audit(bad)
    bad.write_text("base: loso.yaml\nseeds: [1, 2]\nguess_epochs: 10\nlabel_shuffle_seeds: [1]\n")
    study = audit.load_audit(bad)
    assert study.seeds == (1, 2) and study.base.model.dim == 8 and study.options.guess_epochs == 10
    real, shuffled = audit.run_audit_training(study, progress=False)
    assert [r.seed for r in real] == [1, 2] and len(shuffled) == 1 and shuffled[0].params.train.label_shuffle


def test_a_point_may_start_from_another_params_file(tmp_path, base):
    (tmp_path / "recipe.yaml").write_text(base.read_text() + "regions: whole\nmirror: true\n")
    f = write(tmp_path, "s.yaml", "base: loso.yaml\nsweeps:\n  c:\n    - {label: baseline}\n"
                                  "    - {label: recipe, from: recipe.yaml, epochs: 3}\n")
    study = load_study(f)
    recipe = study.sweeps["c"].points[1]
    assert dict(recipe.changes) == {"regions": "whole", "mirror": True, "epochs": 3}
    assert recipe.params.train.regions == "whole" and recipe.params.train.epochs == 3
    f.write_text("base: loso.yaml\nsweeps:\n  c:\n    - {label: r, from: nowhere.yaml}\n")
    with pytest.raises(HTNetInputError, match="not found") as e:
        load_study(f)
    assert e.value.field == "sweeps.c[0].from"


def test_bench_report_prints_each_ray_placement_against_in_process():
    from htnet_lib.studies.bench import format_report

    eng = {"samples_per_s": 10_000.0, "samples_per_s_all": [10_000], "full_loso_s": 80.0, "flop_per_s": 50e9,
           "fold_epochs_per_s": 23.0}
    r = {"hardware": "CPU, 2 thread(s)", "threads": 2, "gemm_flop_per_s": 200e9, "gemm_flop_per_s_1_thread": 100e9,
         "ray_workers": 2, "configs": {"quick": {"flops_per_sample": 5e6, "folds": 68, "epochs": 30,
                                                 "engines": {"loop": {**eng, "samples_per_s": 8_000.0},
                                                             "batched@16": eng}}},
         "ray": {"best_in_process": "batched@16", "loso": {"in-process": 60.0, "ray": 80.0, "ray-loop": 120.0}}}
    text = format_report(r)
    assert "50.0 GFLOP/s = 25.0% of GEMM" in text and "best (batched@16) / loop: 1.25x" in text
    assert "Ray (2 one-thread workers, batched@16) 80 s: Ray / in-process speed 0.75x" in text
    assert "Ray (2 one-thread workers, loop) 120 s: Ray / in-process speed 0.50x" in text


def test_saved_bench_has_its_tables_and_provenance(tmp_path):
    """`bench --out` writes the figures as JSON and the tables docs/speed.md shows: each engine's rate, its share of
    the GEMM rate and its ratio to the loop, and where the fastest engine's time goes (and the fastest batched
    engine's, where the loop was faster)."""
    from htnet_lib.studies.bench import save

    eng = {"samples_per_s": 400.0, "samples_per_s_all": [400], "full_loso_s": 80.0, "flop_per_s": 50e9,
           "fold_epochs_per_s": 0.92}
    r = {"hardware": "CPU, 2 thread(s)", "threads": 2, "gemm_flop_per_s": 200e9, "gemm_flop_per_s_1_thread": 100e9,
         "configs": {"STSTNet": {"flops_per_sample": 1.56e6, "folds": 68, "epochs": 800,
                                 "engines": {"loop": {**eng, "samples_per_s": 160.0}, "batched@4": eng},
                                 "profile": {"engine": "batched@4", "ops": [["aten::bmm", 0.25]]}},
                     "OFF-ApexNet": {"flops_per_sample": 6.4e6, "folds": 68, "epochs": 3000,
                                     "engines": {"loop": eng, "batched@4": {**eng, "samples_per_s": 200.0}},
                                     "profile": {"engine": "loop", "ops": [["aten::mm", 0.15]]},
                                     "profile_batched": {"engine": "batched@4", "ops": [
                                         ["aten::copy_", 0.3, "[4, 1024, 784], [4, 1024, 784]", 0.2]],
                                         "gemm_share": 0.25, "gemm_flop_per_s": 21.84e9, "small_call_share": 0.031}}}}
    r["configs"]["STSTNet"]["engines"]["batched@4+compile"] = {
        **eng, "samples_per_s": 500.0, "full_loso_s": 64.0, "compile_cold_s": 95.2, "compile_warm_s": 20.4}
    save(r, tmp_path / "bench.json", "params/quick/bench.yaml")
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved["provenance"]["study"] == "quick/bench.yaml" and saved["configs"] == r["configs"]
    table = (tmp_path / "bench.md").read_text()
    assert "| STSTNet | batched@4 | 0.92 | 400 | 50.0 | 25.0% | 2.50x |" in table
    assert "| STSTNet | batched@4 | `aten::bmm` 25% |  |  |" in table and str(tmp_path) not in table
    assert ("| OFF-ApexNet | loop | `aten::mm` 15% |  |  |\n"
            "| OFF-ApexNet | batched@4 | `aten::copy_` 30% (20% on [4, 1024, 784], [4, 1024, 784]) | 25% at 21.8 GFLOP/s | "
            "3% |") in table
    assert "| STSTNet | batched@4+compile | 95 | 20 | 16 |" in table  # 80 s uncompiled - 64 s compiled


def test_bench_stops_growing_the_chunk_once_it_is_slower(samples, monkeypatch):
    """Chunks are timed smallest first, and none after one slower than the chunk before it; the compiled engine
    takes the fastest chunk. Timings stand in for the engines here (seconds per fold-epoch by chunk size)."""
    seconds = {1: 0.1, 2: 0.05, 4: 0.08, 8: 0.01}  # 8 would be fastest but comes after a slower 4
    timed = []

    def fake(engine, X, y, plans, params, **options):
        timed.append((engine, len(plans), bool(options)))
        return seconds[len(plans)] * (0.5 if options else 1.0)

    monkeypatch.setattr(bench.engines, "seconds_per_fold_epoch", fake)
    monkeypatch.setattr(bench, "compile_overhead", lambda params, chunk, cache: float(chunk))
    study = load_study(Path(__file__).resolve().parent.parent / "params" / "smoke" / "bench.yaml", bench.BenchOptions)
    opts = study.options.model_copy(update={"chunks": (8, 2, 4), "loop_folds": 1, "compile": True, "profile_ops": 0})
    r = bench.engine_timings(study.base, opts, samples)
    assert timed == [("loop", 1, False), ("batched", 2, False), ("batched", 4, False), ("batched", 2, True)]
    assert list(r["engines"]) == ["loop", "batched@2", "batched@4", "batched@2+compile"]
    assert r["engines"]["batched@2+compile"]["compile_cold_s"] == 2.0 == r["engines"]["batched@2+compile"]["compile_warm_s"]
    assert r["engines"]["batched@2"]["fold_epochs_per_s"] == pytest.approx(20.0)


@pytest.mark.skipif(__import__("os").environ.get("HTNET_COMPILE_TEST") != "1",
                    reason="compiles twice in fresh processes: set HTNET_COMPILE_TEST=1 (`make bench` runs it)")
def test_compile_overhead_fills_then_reads_the_cache_it_is_given(tmp_path):
    """A fresh process compiles the batched engine (the smoke model, 2 folds, 2 epochs) into the inductor cache folder
    it is handed, and a second one runs with that folder: both report positive seconds outside the timed epochs."""
    study = load_study(Path(__file__).resolve().parent.parent / "params" / "smoke" / "bench.yaml", bench.BenchOptions)
    probe = bench.engines.probe_params(study.base, 2)
    cold = bench.compile_overhead(probe, 2, tmp_path)
    assert cold > 0 and any(p.is_file() for p in tmp_path.rglob("*"))
    assert bench.compile_overhead(probe, 2, tmp_path) > 0


def test_every_study_file_of_every_level_loads():
    """Every study file under params/ (a YAML with a `base`) validates with its type's options, and a point that names
    a published number names a known one: a bad key in a long study fails here, not hours into a run."""
    root = Path(__file__).resolve().parent.parent / "params"
    options = {"audit.yaml": audit.AuditOptions, "bench.yaml": bench.BenchOptions}
    seen = []
    for path in sorted(root.glob("*/*.yaml")):
        if "base" not in (yaml.safe_load(path.read_text()) or {}):
            continue
        study = load_study(path, options.get(path.name))
        assert study.all_params(), path
        for p in (p for s in study.sweeps.values() for p in s.points if p.reproduces):
            assert published.by_key(p.reproduces).network.lower().replace("-", "") in p.params.model.arch, path
        seen.append(f"{path.parent.name}/{path.name}")
    assert {"honest/baselines.yaml", "honest/offapexnet.yaml", "quick/fresh.yaml", "paper/bench.yaml"} <= set(seen)


def test_bench_times_every_engine_and_profiles_the_batched_one_where_the_loop_wins(samples):
    """On real data (the smoke bench's STSTNet, 2 epochs, 2 folds): every engine gets a positive rate whose FLOP/s is
    samples/s times the network's counted FLOPs; the fastest uncompiled engine is profiled, and where that is the
    loop the batched engine is profiled too (where its time goes when it loses), each profile's shares in (0, 1]."""
    study = load_study(Path(__file__).resolve().parent.parent / "params" / "smoke" / "bench.yaml", bench.BenchOptions)
    point = next(p for p in study.sweeps["configs"].points if p.label == "STSTNet")
    opts = study.options.model_copy(update={"chunks": (2,), "profile_ops": 3})
    r = bench.engine_timings(point.params, opts, samples)
    assert set(r["engines"]) == {"loop", "batched@2"} and r["flops_per_sample"] == 1562400
    for e in r["engines"].values():
        assert e["samples_per_s"] > 0 and e["flop_per_s"] == pytest.approx(e["samples_per_s"] * 1562400)
    best = max(r["engines"], key=lambda k: r["engines"][k]["samples_per_s"])
    assert r["profile"]["engine"] == best
    assert ("profile_batched" in r) == (best == "loop")
    for key in ("profile", "profile_batched"):
        if key in r:
            ops = r[key]["ops"]
            assert len(ops) == 3 and all(0 < on <= share <= 1 for _, share, _, on in ops)
            assert all(shapes.startswith("[") for _, _, shapes, _ in ops)
            assert 0 < r[key]["gemm_share"] < 1 and r[key]["gemm_flop_per_s"] > 0 and 0 <= r[key]["small_call_share"] < 1
    assert r.get("profile_batched", {"engine": "batched@2"})["engine"] == "batched@2"
