"""Value statistics of the release's maps and of ours (which flow method the release's maps resemble)."""
from __future__ import annotations

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
