import numpy as np
import pandas as pd
import pytest
import torch

from htnet_lib import regions
from htnet_lib._io import HTNetInputError


@pytest.fixture(scope="module")
def official(samples):
    return regions.landmarks(samples, "official", progress=False)


@pytest.fixture(scope="module")
def corrected(samples):
    return regions.landmarks(samples, "corrected", progress=False)


def test_detection_counts(official, corrected):
    # BGR 28x28 input (the authors' code): 172 of 442 faces give no landmarks; padded RGB 224x224: all found
    assert int((~official["detected"]).sum()) == 172
    assert bool(corrected["detected"].all())


def test_official_fallback_crop_is_exact(samples, flow_maps, official):
    """A face MTCNN misses uses the authors' fixed landmarks: clamped, truncated, rows indexed by x."""
    i = int(np.flatnonzero(~official["detected"].to_numpy())[0])
    centres = regions.crop_centres(regions.landmark_array(official.iloc[[i]]), "official")[0]
    assert centres.tolist() == [[9, 11], [21, 10], [15, 17], [10, 21], [20, 21]]
    x = regions.assemble(flow_maps[[i]], centres[None])[0]
    m = flow_maps[i]
    np.testing.assert_array_equal(x[:14, :14], m[2:16, 4:18])  # landmark 0: rows 9±7, cols 11±7
    np.testing.assert_array_equal(x[:14, 14:], m[14:28, 3:17])  # landmark 1: rows 21±7, cols 10±7
    np.testing.assert_array_equal(x[14:, :14], m[3:17, 14:28])  # landmark 3: rows 10±7, cols 21±7
    np.testing.assert_array_equal(x[14:, 14:], m[13:27, 14:28])  # landmark 4: rows 20±7, cols 21±7


def test_corrected_landmarks_are_facial_geometry(corrected):
    pts = regions.landmark_array(corrected)
    assert (pts[:, 0, 0] < pts[:, 1, 0]).all()  # left eye left of right eye (image x)
    assert (pts[:, [0, 1], 1].max(1) < pts[:, [3, 4], 1].min(1)).all()  # eyes above mouth corners
    assert (pts > 0).all() and (pts < 28).all()


def test_corrected_crop_rows_follow_y(flow_maps, corrected):
    centres = regions.crop_centres(regions.landmark_array(corrected), "corrected")
    pts = regions.landmark_array(corrected)
    assert np.abs(centres[..., 0] - np.clip(pts[..., 1], 7, 21)).max() <= 0.5
    x = regions.assemble(flow_maps[:3], centres[:3])
    r, c = centres[1, 4]
    np.testing.assert_array_equal(x[1, 14:, 14:], flow_maps[1, r - 7:r + 7, c - 7:c + 7])


def test_region_inputs_shape_and_variants_differ(samples, flow_maps):
    a = regions.region_inputs(samples, flow_maps, "official", progress=False)
    b = regions.region_inputs(samples, flow_maps, "corrected", progress=False)
    assert a.shape == b.shape == (442, 28, 28, 3) and a.dtype == np.uint8
    assert (a != b).any(axis=(1, 2, 3)).mean() > 0.9


def test_bad_inputs():
    with pytest.raises(HTNetInputError, match="maps"):
        regions.assemble(np.zeros((2, 32, 32, 3), np.uint8), np.full((2, 5, 2), 10))
    with pytest.raises(HTNetInputError, match="regions"):
        regions.crop_centres(np.zeros((1, 5, 2)), "sideways")


def test_cache_grows_and_never_loses_rows(samples, tmp_path, monkeypatch):
    monkeypatch.setenv("HTNET_CACHE_DIR", str(tmp_path))
    detected = []
    real = regions.detect_landmarks
    monkeypatch.setattr(regions, "detect_landmarks", lambda s, *a, **k: detected.append(len(s)) or real(s, *a, **k))
    first = regions.landmarks(samples.iloc[[0, 1, 2]], "official", progress=False)
    both = regions.landmarks(samples.iloc[[1, 2, 3, 4]], "official", progress=False)
    assert detected == [3, 2]  # only the two new faces are detected
    assert list(both["sample"]) == samples["sample"].iloc[[1, 2, 3, 4]].tolist()
    assert both.iloc[0].equals(first.iloc[1])
    assert len(pd.read_csv(regions.cache_path_for("official", samples.attrs["data_dir"]))) == 5


def test_model_inputs_table4_geometry_and_whole_face(samples, flow_maps):
    """Table 4's p-pixel bottom block needs a 4p input: the assembled 28x28 regions are resized (our stated choice);
    `whole` feeds the 28x28 map itself."""
    from htnet_lib import config

    tr = config.TrainConfig()
    x28 = regions.model_inputs(samples, flow_maps, tr, progress=False)
    for p in (5, 10):
        x = regions.model_inputs(samples, flow_maps, tr, 4 * p, progress=False)  # a side, or an InputGeometry
        assert x.shape == (442, 3, 4 * p, 4 * p) and x.dtype == torch.float32
        assert 0 <= x.min() and x.max() <= 255
        # the same picture at another size: each 14x14 region becomes a 2p x 2p region
        back = torch.nn.functional.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False, antialias=True)
        assert (back - x28).abs().mean() < 25
    whole = regions.model_inputs(samples, flow_maps, config.TrainConfig(regions="whole"), progress=False)
    assert torch.equal(whole, torch.from_numpy(flow_maps).permute(0, 3, 1, 2).float())
    scaled = regions.model_inputs(samples, flow_maps, config.TrainConfig(preprocessing="scaled"), progress=False)
    assert scaled.min() == -1 and scaled.max() == 1
    # a network's geometry picks the map channels it reads and the regions settings it takes (models.InputGeometry)
    from htnet_lib.models import InputGeometry

    uv = InputGeometry(28, 2, map_channels=(2, 1), regions=("whole",))
    assert torch.equal(regions.model_inputs(samples, flow_maps, config.TrainConfig(regions="whole"), uv), whole[:, [2, 1]])
    with pytest.raises(HTNetInputError) as e:
        regions.model_inputs(samples, flow_maps, tr, uv, progress=False)
    assert e.value.field == "regions"
