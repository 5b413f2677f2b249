"""The cpu level: ablation points trained like Table 2's model, its reference shared with Table 2, the
noise floor, and whether the paper's ordering holds."""
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from htnet_lib import metrics, reproduce
from htnet_lib.config import load_params
from htnet_lib.figures import ablations, results as results_figures
from htnet_lib.studies import load_study, sweeps

PARAMS = Path(__file__).resolve().parent.parent / "params"


@pytest.mark.parametrize("level", ["cpu", "smoke"])
def test_every_paper_sweep_shares_its_reference_with_table2(level):
    """Tables 4-5 and Figs. 5-6 meet Table 2 at one point: the same params, hence the same run folder."""
    table2 = load_params(PARAMS / level / "loso.yaml")
    study = load_study(PARAMS / level / "ablations.yaml")
    assert study.base.fingerprint() == table2.fingerprint()
    assert list(study.seeds) == list(table2.run.seeds)
    for name in ("block_size", "depth", "dim", "heads"):
        ref = ablations.reference_label(sweeps.SweepResults(study, {}, pd.DataFrame()), name)
        point = next(p for p in study.sweeps[name].points if p.label == ref)
        assert point.params.fingerprint() == table2.fingerprint(), (level, name)
    assert "Table 2's run itself" in ablations.reference_note(study, table2)


def test_cpu_level_is_the_quick_table2_and_trains_every_point_like_it():
    quick, cpu = load_params(PARAMS / "quick" / "loso.yaml"), load_params(PARAMS / "cpu" / "loso.yaml")
    # Table 2's runs are shared by both levels: the same params, the cpu level over more seeds
    assert {**cpu.to_flat(), "seeds": None} == {**quick.to_flat(), "seeds": None}
    assert set(quick.run.seeds) < set(cpu.run.seeds)
    study = load_study(PARAMS / "cpu" / "ablations.yaml")
    for sweep in study.sweeps.values():
        for p in sweep.points:
            t = p.params.train
            assert (t.epochs, t.lr, t.folds, t.batch_size) == (30, 2e-4, (), 256), (sweep.name, p.label)
    # the quick level's short ablations are labelled a demonstration
    qs = load_study(PARAMS / "quick" / "ablations.yaml")
    assert ablations.reference_note(qs, quick).startswith("A fast demonstration")
    assert reproduce.LEVEL_NOTEBOOKS["cpu"] == ("03", "04", "06") and "cpu" in reproduce.LEVELS


def test_smoke_reference_cell_equals_table2_under_both_protocols(tmp_path, samples):
    """Trained: the reference row of every paper sweep is Table 2's row, number for number, under both protocols."""
    study = load_study(PARAMS / "smoke" / "ablations.yaml")
    base = study.base.replace(runs_dir=str(tmp_path / "runs"), progress=False)
    here = {"runs_dir": str(tmp_path / "runs"), "progress": False}
    study = replace(study, base=base, sweeps={
        k: replace(s, points=tuple(replace(p, params=p.params.replace(**here)) for p in s.points))
        for k, s in study.sweeps.items() if k in ("depth", "heads")})
    res = sweeps.run_sweep(study, progress=False)
    from htnet_lib import loso
    table2_runs = loso.run_many(study.seeded(base), progress=False)
    t2 = results_figures.ours(table2_runs, protocols=["paper", "last"], n_boot=200)
    for name in ("depth", "heads"):
        ref = ablations.reference_label(res, name)
        assert res.runs[(name, ref)] == table2_runs  # the same run folders
        s = ablations.sweep_summary(res, name, n_boot=200)
        for proto in ("paper", "last"):
            ours = s[(s["label"] == ref) & (s["protocol"] == proto)].set_index("scope")[["UF1", "UAR", "UF1_lo"]]
            theirs = t2[t2["protocol"] == proto].set_index("scope")[["UF1", "UAR", "UF1_lo"]]
            pd.testing.assert_frame_equal(ours.sort_index(), theirs.sort_index(), check_names=False)
    floor = ablations.noise_floor(res, n_boot=100)
    assert set(floor["protocol"]) == {"paper", "last"} and (floor["floor_1_seeds"] >= floor["floor_5_seeds"]).all()


def _preds(subject_rows):
    """A predictions table: (subject, dataset, label, pred) rows."""
    return pd.DataFrame(subject_rows, columns=["subject", "dataset", "label", "pred"])


def test_null_differences_by_hand():
    """One subject: every bootstrap draw is that subject, so the null difference is the seeds' UF1 difference."""
    a = _preds([("s01", "smic", 0, 0), ("s01", "smic", 1, 1), ("s01", "smic", 2, 2)])  # UF1 1
    b = _preds([("s01", "smic", 0, 0), ("s01", "smic", 1, 1), ("s01", "smic", 2, 0)])  # F1s 2/3, 1, 0: UF1 5/9
    nd = metrics.null_differences([a, b], n_boot=50)
    full = nd.loc["Full"]
    assert full["pairs"] == 1 and full["UF1_null_sd"] == pytest.approx(4 / 9)
    assert full["UF1_seed_sd"] == pytest.approx(np.std([1, 5 / 9], ddof=1))
    assert full["UAR_null_sd"] == pytest.approx(1 / 3)  # recalls 1, 1, 0 against 1, 1, 1
    same = metrics.null_differences([a, a, a], n_boot=50).loc["Full"]
    assert same["pairs"] == 3 and same["UF1_null_sd"] == 0 and same["UF1_seed_sd"] == 0
    with pytest.raises(ValueError):
        metrics.null_differences([a])


def test_detectable_difference_by_hand():
    # (z_0.975 + z_0.8) = 1.959964 + 0.841621 = 2.801585
    assert metrics.detectable_difference(0.01) == pytest.approx(0.02801585, abs=1e-7)
    assert metrics.detectable_difference(0.02, seeds=4) == pytest.approx(0.02801585, abs=1e-7)
    assert metrics.detectable_difference(0.01, power=0.5) == pytest.approx(0.01959964, abs=1e-7)


def test_paper_differences_against_a_floor():
    """Tables 4-5's Full UF1 cells minus 7x7 / (2, 2, 8), against a floor of 0.02: hand-checked from the paper."""
    floor = pd.DataFrame([{"protocol": "paper", "scope": s, "metric": m, "floor_1_seeds": 0.02, "floor_3_seeds": 0.012,
                           "floor_5_seeds": 0.009, "seeds_measured": 3, "power": 0.8, "alpha": 0.05}
                          for s in ("Full", "SMIC-HS", "CASME II", "SAMM") for m in ("UF1", "UAR")])
    d = ablations.paper_differences(floor)
    full = d[(d["scope"] == "Full") & (d["metric"] == "UF1")].set_index("setting")
    assert full.loc["5x5", "paper_diff"] == pytest.approx(0.837 - 0.8603)
    assert full.loc["(2, 2, 2)", "paper_diff"] == pytest.approx(0.8105 - 0.8603)
    assert sorted(full.index[full["exceeds_floor"]]) == ["(2, 2, 2)", "(2, 2, 4)", "(2, 2, 6)", "5x5", "6x6"]
    words = ablations.claims_words(d, floor)
    assert "2 of 5 differences from 7x7" in words and "3 of 5 differences from (2, 2, 8)" in words


def _summary(labels, values, d, sig, paper=None):
    rows = []
    for lab, v, dd, s, p in zip(labels, values, d, sig, paper or [np.nan] * len(labels)):
        for proto in ("paper", "last"):
            rows.append({"label": lab, "heads": int(lab), "protocol": proto, "scope": "Full", "UF1": v,
                         "dUF1": dd, "exceeds_noise": s, "reference": "3", "paper_UF1": p})
    return pd.DataFrame(rows)


def test_ordering_verdicts():
    holds = _summary(["1", "3", "6"], [0.70, 0.76, 0.71], [-0.06, np.nan, -0.05], [True, False, True])
    assert ablations.ordering_words(holds, "fig6").endswith("The paper's ordering holds.")
    contra = _summary(["1", "3", "6"], [0.80, 0.76, 0.71], [0.04, np.nan, -0.05], [True, False, True])
    w = ablations.ordering_words(contra, "fig6", protocol="last")
    assert "is contradicted" in w and "'1' +0.040" in w and "last epoch" in w.lower()
    unclear = _summary(["1", "3", "6"], [0.75, 0.76, 0.77], [-0.01, np.nan, 0.01], [False, False, False])
    assert "neither confirmed nor contradicted" in ablations.ordering_words(unclear, "fig6")
    dims = _summary(["1", "3", "6"], [0.75, 0.76, 0.77], [-0.01, np.nan, 0.01], [False, False, False]) \
        .rename(columns={"heads": "dim"})
    assert "not a point of this level's grid" in ablations.ordering_words(dims, "fig5")


def test_sweep_command_trains_a_study_file(tmp_path, data_dir, monkeypatch, capsys):
    """`python -m htnet_lib sweep --study FILE`: every point, every seed, a Full summary; bad files exit 2 (that
    case through the same `main` in this process)."""
    import subprocess
    import sys

    from htnet_lib.__main__ import main

    (tmp_path / "loso.yaml").write_text(f"dim: 8\nheads: 2\nblock_repeats: [1, 1, 1]\nepochs: 2\nfolds: [s01, '006']\n"
                                        f"runs_dir: {tmp_path / 'runs'}\nprogress: false\nengine: loop\n")
    (tmp_path / "s.yaml").write_text("base: loso.yaml\nseeds: [0, 1]\nsweeps:\n  lr:\n    - {lr: 1.0e-4}\n"
                                     "    - {lr: 3.0e-4, label: fast}\n")
    env = {**__import__("os").environ, "HTNET_DATA_DIR": str(data_dir)}
    # the command-line process runs while the cases below run in this process (its start-up is most of its time)
    proc = subprocess.Popen([sys.executable, "-m", "htnet_lib", "sweep", "--study", str(tmp_path / "s.yaml")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    (tmp_path / "bad.yaml").write_text("base: loso.yaml\nsweeps:\n  lr:\n    - {lrr: 1.0e-4}\n")
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "--study", str(tmp_path / "bad.yaml")]) == 2
    err = capsys.readouterr().err
    assert "lrr" in err and "bad.yaml" in err
    # --set: run settings only (here where the runs go; executor=ray, workers=2 the same way), in this process
    from htnet_lib.config import SESSION_ENV

    monkeypatch.setenv(SESSION_ENV, '{"progress": false}')
    assert main(["sweep", "--study", "s.yaml", "--seeds", "1", "--set", f"runs_dir={tmp_path / 'elsewhere'}"]) == 0
    assert len([p for p in (tmp_path / "elsewhere").iterdir() if p.is_dir()]) == 2  # seed 1's two points
    assert main(["sweep", "--study", "s.yaml", "--set", "lr=0.1"]) == 2
    err = capsys.readouterr().err
    assert "lr" in err and "run settings only" in err
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert "fast" in out and "lr=0.0001" in out and "Full UF1 / UAR" in out
    assert len([p for p in (tmp_path / "runs").iterdir() if p.is_dir()]) == 4
