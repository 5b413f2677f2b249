"""Tests for htnet_lib.figures (and the analyses they draw, in regions and model): figures build with titles and labels
and stay out of pyplot; tables hold the right numbers; the model probes show what notebook 02 says they show."""
from __future__ import annotations

import contextlib

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from htnet_lib import data, paper_values, regions, release  # noqa: E402
from htnet_lib.figures import preprocess, walkthrough  # noqa: E402
from htnet_lib.config import AUTHORS_SCRIPT  # noqa: E402
from htnet_lib.models import analyses, costs  # noqa: E402
from htnet_lib.models.htnet import HTNet, HTNetConfig  # noqa: E402

SMALL = HTNetConfig(dim=16, heads=2, block_repeats=(1, 1, 1))
TWO = HTNetConfig(dim=16, heads=2, num_hierarchies=2, block_repeats=(1, 1))


def titles(fig: Figure) -> list[str]:
    return [ax.get_title() for ax in fig.axes]


@pytest.fixture()
def no_pyplot_leak():
    before = set(plt.get_fignums())
    yield
    assert set(plt.get_fignums()) == before, "a figure function left a figure open in pyplot"


def model_and_input(cfg: HTNetConfig, seed: int = 0) -> tuple[HTNet, torch.Tensor]:
    torch.manual_seed(seed)
    return HTNet(cfg).eval(), torch.rand(1, 3, 28, 28) * 255


# ---------------------------------------------------------------------------------------------------------- data


def test_example_indices_cycle_emotions_per_dataset():
    samples = pd.DataFrame({
        "dataset": pd.Categorical(["smic"] * 5 + ["samm"] * 3, categories=release.KEYS),
        "emotion": ["negative", "negative", "positive", "surprise", "positive", "negative", "negative", "surprise"]})
    idx = preprocess.example_indices(samples, per_dataset=3)
    assert idx == [0, 2, 3, 5, 7, 6]  # smic: one of each emotion; casme2 absent; samm: negative, surprise, negative
    assert preprocess.example_indices(samples, per_dataset=10)[:5] == [0, 2, 3, 1, 4]  # never more than a dataset holds


def test_flow_maps_figure(no_pyplot_leak):
    rng = np.random.default_rng(0)
    maps = rng.integers(0, 256, (2, 28, 28, 3), dtype=np.uint8)
    faces = [rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)] * 2
    fig = preprocess.flow_maps_figure(maps, faces, ["a", "b"], title="T")
    assert isinstance(fig, Figure) and fig._suptitle.get_text() == "T"
    assert {"apex face", *preprocess.CHANNELS} <= set(titles(fig))
    assert len([ax for ax in fig.axes if ax.images]) == 8
    with pytest.raises(ValueError, match="expected"):
        preprocess.flow_maps_figure(maps[..., 0])


def test_table1_comparison_matches_and_flags_differences(samples):
    ours = data.class_counts(samples)
    table = preprocess.table1_comparison(ours, paper_values.table1())
    assert list(table.index) == ["SMIC-HS", "CASME II", "SAMM", "Full"]
    assert table[("match", "")].all()
    assert table.loc["Full", ("samples", "ours")] == 442
    wrong = paper_values.table1()
    wrong.loc["SAMM", "positive"] += 1
    flagged = preprocess.table1_comparison(ours, wrong)[("match", "")]
    assert not flagged["SAMM"] and flagged.drop("SAMM").all()


def test_region_differences(samples):
    t = regions.region_differences(samples)
    assert list(t.index) == ["smic", "casme2", "samm", "all"]
    assert t.loc["all", "samples"] == 442
    assert t.loc["all", "official_detected"] == 270 and t.loc["all", "corrected_detected"] == 442
    assert t.loc["all", "crops_differ"] <= 442
    assert 0 < t.loc["all", "mean_shift_px"] <= t.loc["all", "max_shift_px"] <= 14 * np.sqrt(2) + 0.01  # centres lie in [7, 21]


def test_regions_figure(samples, flow_maps, no_pyplot_leak):
    fig = preprocess.regions_figure(samples, flow_maps, 309)
    assert len([ax for ax in fig.axes if ax.images]) == 6
    assert "006_1_2" in fig._suptitle.get_text()
    assert any("official" in t for t in titles(fig)) and any("corrected" in t for t in titles(fig))


# --------------------------------------------------------------------------------------------------------- model


def test_stage_shapes_paper_geometry():
    net, x = model_and_input(SMALL)
    t = walkthrough.stage_shapes(net, x)
    assert t.loc["patch_embedding", "shape"] == (1, 16, 4, 4)
    assert t.loc["hierarchy2", "shape"] == (1, 64, 1, 1)
    assert list(t.loc[["hierarchy0", "hierarchy1", "hierarchy2"], "blocks per side"]) == [4, 2, 1]
    assert list(t.loc[["hierarchy0", "hierarchy1", "hierarchy2"], "tokens per block"]) == [1, 1, 1]
    t2 = walkthrough.stage_shapes(*model_and_input(TWO))
    assert list(t2.loc[["hierarchy0", "hierarchy1"], "tokens per block"]) == [4, 4]


def test_blocks_and_attention_figures(no_pyplot_leak):
    assert "2x2 blocks of 2x2 token(s)" in titles(walkthrough.blocks_figure(TWO))[0]
    assert "4x4 blocks of 1x1 token(s)" in titles(walkthrough.blocks_figure(SMALL))[0]
    net, x = model_and_input(TWO)
    fig = walkthrough.attention_figure(net.attention_maps(x), "hierarchy0.layer0")
    heads = [t for t in titles(fig) if t.startswith("head")]
    assert heads == ["head 0", "head 1"]


def test_region_influence_stays_local_until_aggregation():
    net, x = model_and_input(SMALL)
    inf = analyses.region_influence(net, x, quadrant=0)
    for stage in ("patch_embedding", "hierarchy0"):  # one token per block: nothing moves between tokens
        d = inf[stage]
        assert (d[:2, :2] > 0).all() and np.count_nonzero(d) == 4
    assert np.count_nonzero(inf["aggregation0"]) > 1  # the 3x3 conv and max-pool reach the other regions
    inf2 = analyses.region_influence(*model_and_input(TWO), quadrant=3)
    assert np.count_nonzero(inf2["hierarchy0"][:2, :]) == 0 and np.count_nonzero(inf2["hierarchy0"][:, :2]) == 0


def test_influence_figure(no_pyplot_leak):
    fig = walkthrough.influence_figure(analyses.region_influence(*model_and_input(SMALL)))
    assert titles(fig)[0].startswith("input")


def test_pos_embed_effect_last_level_is_inert_and_model_restored():
    net, x = model_and_input(SMALL)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    t = analyses.pos_embed_effect(net, x)
    col = [c for c in t.columns if c.startswith("max |logit change|")][0]
    assert t.loc["hierarchy2", col] < 1e-4
    assert t.loc["hierarchy1", col] > 1e-3
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_stage_costs_paper_config(no_pyplot_leak):
    c = costs.stage_costs(AUTHORS_SCRIPT)
    assert c.loc["total", "params"] == 139_582_982
    assert c.drop(index="total")["params"].sum() == 139_582_982
    assert c.loc["hierarchy2", "params_share"] > 0.9
    assert c.loc["total", "params_MB_fp32"] == pytest.approx(139_582_982 * 4 / 2 ** 20)
    assert costs.stage_costs(HTNetConfig()).loc["total", "params"] == 114_429_446  # the paper's (2, 2, 8)
    assert c.loc["total", "MFLOPs_train"] > 2 * c.loc["total", "MFLOPs_forward"]
    assert costs.stage_costs(HTNetConfig(block_repeats=(2, 2, 2))).loc["total", "params"] == 38_968_838
    fig = walkthrough.costs_figure({"paper": c, "small": costs.stage_costs(SMALL)})
    assert [ax.get_ylabel() for ax in fig.axes][:1] == ["share of the model's total"]


def test_table3_on_a_synthetic_casme3_release(synthetic_db, tmp_path):
    """Table 3 end to end without the licensed database: a small synthetic CAS(ME)^3 in its own layout is built into a
    release folder, trained by LOSO and set beside the paper's five rows (notebook 03's `casme3_dir` path)."""
    from htnet_lib import config, loso
    from htnet_lib.figures import results
    from htnet_lib.raw import build, load_database

    db = synthetic_db("casme3")
    build.build_release(load_database("casme3", db.root), tmp_path / "casme3", face_boxes=db.face_boxes,
                        flow_size=64, progress=False)
    p = config.params_from_dict({"dim": 8, "heads": 2, "block_repeats": [1, 1, 1], "epochs": 2, "progress": False,
                                 "data_dir": str(tmp_path / "casme3"), "runs_dir": str(tmp_path / "runs"),
                                 "engine": "loop"})
    run = loso.run_loso(p, name="casme3")
    assert set(run.metrics()["scope"]) == {"CAS(ME)^3"}  # its own scope; no composite "Full"
    t3 = results.table3([run], n_boot=50)
    assert t3["source"].tolist()[:5] == [f"paper: {m}" for m in ("AlexNet", "STSTNet", "RCN", "FeatRef", "HTNet")]
    ours = t3[t3["protocol"] != ""]
    assert set(ours["protocol"]) == {"paper", "last"} and ours["UF1"].between(0, 1).all()
    assert (ours["diff_UF1"] == ours["UF1"] - 0.5767).all()  # against the paper's HTNet on CAS(ME)^3


def test_forest_figure_colours_rows_by_their_interval(no_pyplot_leak, tmp_path):
    """A better, a worse and a within-noise candidate: each row gets its own colour and the figure renders (caps once
    refused a list of colours)."""
    from htnet_lib.figures import honest, save_figure

    t = pd.DataFrame({"candidate": ["a", "b", "c"], "protocol": ["last"] * 3, "dUF1": [0.05, -0.04, 0.01],
                      "dUF1_lo": [0.01, -0.08, -0.02], "dUF1_hi": [0.09, -0.01, 0.04],
                      "exceeds_noise": [True, True, False]})
    fig = honest.forest_figure(t, "t")
    points = fig.axes[0].collections[-1].get_facecolors()
    assert [matplotlib.colors.to_hex(c) for c in points] == [matplotlib.colors.to_hex(c)
                                                            for c in ("tab:green", "tab:red", "grey")]
    assert save_figure(fig, "forest", out_dir=tmp_path)[0].stat().st_size > 0


def test_the_summary_shows_every_protocol_of_a_levels_table2():
    """Notebook 06 reads the protocols from each level's Table 2 (a registered protocol a run scored included): each
    gets its rows and its own mark in the figure."""
    from htnet_lib.figures import summary

    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "figures"
    shown = summary.table2_protocols(root / "quick")
    assert shown[:2] == ("paper", "last") and len(shown) > 2
    every = summary.collect_levels(root, ["quick"])
    assert set(every["protocol"]) == set(shown)
    fig = summary.scatter_levels(every)
    legend = [t.get_text() for t in fig.axes[-1].get_legend().get_texts()]
    from htnet_lib.loso import label
    assert all(label(p) in " ".join(legend) for p in shown[2:])


def test_heatmaps_drawn_alone_give_the_same_figure_and_every_panel_back(no_pyplot_leak):
    """`drawn_alone` (Fig. 7's and the attention figure's panels) hides the other panels only while seaborn fills one:
    the rendered figure equals the one drawn without it, pixel for pixel, and a panel hidden before stays hidden."""
    import seaborn as sns

    from htnet_lib.figures import drawn_alone

    data = np.arange(9).reshape(3, 3) / 8

    def render(alone: bool) -> np.ndarray:
        fig, axes = plt.subplots(2, 2, figsize=(5, 5))
        axes[1, 1].set_visible(False)
        for ax in axes.flat[:3]:
            with drawn_alone(ax) if alone else contextlib.nullcontext():
                sns.heatmap(data, annot=True, fmt=".2f", cbar=False, ax=ax, vmin=0, vmax=1)
        assert [a.get_visible() for a in axes.flat] == [True, True, True, False]
        fig.canvas.draw()
        pixels = np.asarray(fig.canvas.buffer_rgba()).copy()
        plt.close(fig)
        return pixels

    assert np.array_equal(render(True), render(False))
