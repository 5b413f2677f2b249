"""Value statistics of the release's maps and of ours (which flow method the release's maps resemble)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from htnet_lib.raw import stats


@pytest.fixture(scope="module")
def release_maps(release_dir):
    return stats.load_maps(release_dir)


def test_release_statistics_are_pinned(release_maps):
    """The numbers the method comparison is made against (442 maps, OpenCV channel order strain, v, u)."""
    assert release_maps.shape == (442, 28, 28, 3)
    st = stats.map_statistics(release_maps)
    assert list(st.index) == ["strain", "v", "u"]
    assert st.loc["strain", "mean"] == pytest.approx(25.45, abs=0.01)
    assert st.loc["v", "mean"] == pytest.approx(135.45, abs=0.01)
    assert st.loc["u", "mean"] == pytest.approx(125.97, abs=0.01)
    # strain is sparse: about half of it within 12 grey levels of no strain
    assert 0.40 < st.loc["strain", "near_zero"] < 0.50
    assert st.loc["strain", "roughness"] == pytest.approx(12.0, abs=0.05)


def test_comparison_of_the_release_with_itself(release_maps):
    table = stats.compare_to_release(release_maps, {"copy": release_maps, "flat": np.zeros_like(release_maps)})
    assert np.allclose(table.loc["copy", "hist_distance"], 0.0)
    assert np.all(table.loc["flat", "hist_distance"] > 0.5)
    assert list(stats.closest_method(table).index) == ["copy", "flat"]


def test_method_comparison_runs_the_pipeline(release_dir):
    table = stats.method_comparison(release_dir, n_samples=4, variants={"farneback": {"method": "farneback"}})
    assert set(table.index.get_level_values("source")) == {"release", "farneback"}
    assert (table.loc["farneback", "n_maps"] == 4).all()
    assert table["hist_distance"].between(0, 1).all()


def test_flow_accuracy_table(release_dir):
    t = stats.flow_accuracy(release_dir, methods=("farneback",), size=64, n_faces=2)
    assert list(t["field"]) == ["translation", "scaling", "bumps"]
    assert (t["epe"] < t["motion"]).all()
    assert t.loc[t["field"] == "scaling", "strain_true"].iloc[0] == pytest.approx(np.hypot(0.03, 0.02), rel=1e-6)


def test_release_border_statistics_are_pinned(release_maps):
    """30 of the release's 442 maps have their strain maximum on the outer ring (row/column 0 or 27), fewer than the
    ring's share of pixels (108 / 784); the ring's strain is 0.74 of the inside's."""
    b = stats.border_statistics(release_maps)
    assert (b["n_maps"], b["strain_max_on_ring"]) == (442, 30)
    assert b["share_ring_pixels"] == pytest.approx(108 / 784)
    assert b["ring_to_interior"] == pytest.approx(0.743, abs=0.001)


def test_border_statistics_on_hand_made_maps():
    maps = np.zeros((4, 28, 28, 3), np.uint8)
    maps[0, 0, 5, 0] = maps[1, 27, 27, 0] = maps[2, 1, 1, 0] = maps[3, 14, 14, 0] = 255
    maps[2, 0, 0, 0] = 254  # on the ring, but not the maximum
    b = stats.border_statistics(maps)
    assert (b["strain_max_on_ring"], b["share_max_on_ring"]) == (2, 0.5)
    assert stats.ring_mask(28).sum() == 108 and stats.ring_mask(28, 2).sum() == 784 - 24 * 24


def test_built_tvl1_maps_are_not_dominated_by_the_border(synthetic_db, tmp_path):
    """TV-L1's false flow on the crop's edge put the strain maximum on the outer ring of every map built from the
    synthetic CASME II look-alike (6 of 6); with the default flow border cut, none is there (release: 30 of 442)."""
    from htnet_lib.raw.adapters import load_database
    from htnet_lib.raw.build import build_release

    db = synthetic_db("casme2")
    table = load_database("casme2", db.root)
    kw = dict(method="tvl1", flow_size=64, face_boxes=db.face_boxes, progress=False)
    build_release(table, tmp_path / "uncut", flow_border=0, **kw)
    build_release(table, tmp_path / "cut", **kw)
    table = stats.border_table({"uncut": stats.load_maps(tmp_path / "uncut"), "cut": stats.load_maps(tmp_path / "cut")})
    assert table.loc["uncut", "strain_max_on_ring"] == 6 and table.loc["uncut", "ring_to_interior"] > 1.5
    assert table.loc["cut", "strain_max_on_ring"] == 0 and table.loc["cut", "ring_to_interior"] < 1.0
    report = json.loads((tmp_path / "cut" / "build_report.json").read_text())
    assert report["datasets"]["casme2"]["settings"]["flow_border"] == 8
