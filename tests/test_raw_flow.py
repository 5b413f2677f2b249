"""Optical flow and strain (§3.1, §4.2, eq. 3) checked on the release's real faces moved by known smooth fields.

Setting of every accuracy test: six real apex faces at 112 px (grey), the apex frame made by warping the face with a
known field (`fields.warp`, exact up to interpolation), Gaussian noise of sd 1 grey level on both frames, errors over
the interior (14 px border left out: there the warp reflects the image and the true motion is unknowable).

Measured on this setting (20 faces, `stats.flow_accuracy(size=112)`), mean end-point error in px:

    field        motion   Farneback   TV-L1
    translation  1.39 px    0.081      0.019
    scaling      0.81 px    0.118      0.039
    bumps        0.24 px    0.108      0.067

The bounds below are about twice the worst face seen there, so they hold with margin on any machine, yet a sign
error, swapped u/v or a missing warp gives an error the size of the motion itself (>= 1.39 px for the translation),
far above them.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from htnet_lib._io import HTNetInputError
from htnet_lib.raw import fields as F
from htnet_lib.raw import flow as FL

SIZE = 112
M = SIZE // 8
INNER = (slice(M, -M), slice(M, -M))

FIELDS = {
    "translation": F.translation(1.2, -0.7),
    "scaling": F.scaling(0.03, -0.02, SIZE / 2, SIZE / 2),
    "bumps": F.micro_expression_field("negative", SIZE, 1.5, np.random.default_rng(0)),
}
EPE_BOUND = {  # px; measured mean (worst face) in the module docstring
    ("translation", "farneback"): 0.20, ("translation", "tvl1"): 0.06,
    ("scaling", "farneback"): 0.28, ("scaling", "tvl1"): 0.10,
    ("bumps", "farneback"): 0.26, ("bumps", "tvl1"): 0.16,
}


def _pair(face: np.ndarray, field, rng) -> tuple[np.ndarray, np.ndarray]:
    a = np.clip(face + rng.normal(0, 1.0, face.shape), 0, 255).astype(np.uint8)
    b = np.clip(F.warp(face, field) + rng.normal(0, 1.0, face.shape), 0, 255).astype(np.uint8)
    return a, b


@pytest.fixture(scope="module")
def flows(real_faces):
    """Flow of every (field, method) on every face, computed once."""
    rng = np.random.default_rng(1)
    out = {}
    for name, field in FIELDS.items():
        pairs = [_pair(f, field, rng) for f in real_faces]
        for method in FL.METHODS:
            out[name, method] = [FL.optical_flow(a, b, method) for a, b in pairs]
    return out


@pytest.mark.parametrize("name,method", sorted(EPE_BOUND))
def test_end_point_error_within_bound(flows, name, method):
    truth = F.true_flow(FIELDS[name], (SIZE, SIZE))
    epe = [FL.end_point_error(f, truth, margin=M) for f in flows[name, method]]
    motion = np.sqrt((truth[INNER] ** 2).sum(-1)).mean()
    assert max(epe) < EPE_BOUND[name, method], f"{method} on {name}: EPE per face {np.round(epe, 3)}"
    assert max(epe) < 0.35 * motion or name == "bumps"  # the flow is the motion, not noise around zero


@pytest.mark.parametrize("method", FL.METHODS)
def test_flow_direction_convention(flows, method):
    """u is to the right, v downwards, on the onset grid: a (1.2, -0.7) translation reads as (+1.2, -0.7)."""
    mean = np.mean([f[INNER].reshape(-1, 2).mean(0) for f in flows["translation", method]], axis=0)
    assert mean == pytest.approx([1.2, -0.7], abs=0.1)


@pytest.mark.parametrize("method,rel", [("farneback", 0.15), ("tvl1", 0.08)])
def test_strain_of_uniform_scaling_matches_analytic(flows, method, rel):
    """u = a x, v = b y has strain sqrt(a^2 + b^2) = 0.0361 everywhere (eq. 3); measured: Farneback +5 %, TV-L1 -2 %."""
    truth = np.hypot(0.03, 0.02)
    est = np.mean([np.median(FL.optical_strain(f)[INNER]) for f in flows["scaling", method]])
    assert est == pytest.approx(truth, rel=rel)


@pytest.mark.parametrize("method", FL.METHODS)
def test_strain_tells_rigid_motion_from_deformation(flows, method):
    """A translation has no strain: its estimate (noise only; measured 0.005-0.010) stays well under the scaling's."""
    rigid = np.mean([np.median(FL.optical_strain(f)[INNER]) for f in flows["translation", method]])
    assert rigid < 0.4 * np.hypot(0.03, 0.02)


def test_tvl1_strain_follows_local_motion(flows):
    """On the local AU4-like field the strain's median absolute error is under half its peak (measured 0.005)."""
    truth = F.true_strain(FIELDS["bumps"], (SIZE, SIZE))[INNER]
    err = np.mean([np.median(np.abs(FL.optical_strain(f)[INNER] - truth)) for f in flows["bumps", "tvl1"]])
    assert err < 0.5 * truth.max()


def test_optical_strain_is_eq3_on_exact_fields():
    """The implementation of eq. 3, fed the exact flow: exact for a linear field, close for a smooth one."""
    s = F.scaling(0.03, -0.02, 40, 40)
    assert np.allclose(FL.optical_strain(F.true_flow(s, (80, 80))), np.hypot(0.03, 0.02), atol=1e-6)
    shear = F.Affine(a12=0.04, a21=0.02)  # u_y = 0.04, v_x = 0.02: strain = sqrt(0.5 * 0.06^2)
    assert np.allclose(FL.optical_strain(F.true_flow(shear, (50, 50))), np.sqrt(0.5) * 0.06, atol=1e-6)
    b = F.micro_expression_field("positive", 96, 2.0, np.random.default_rng(0))
    fd = FL.optical_strain(F.true_flow(b, (96, 96)))
    assert np.abs(fd - F.true_strain(b, (96, 96)))[2:-2, 2:-2].max() < 2e-3


def test_warp_moves_points_by_the_field(real_faces):
    """The rendered apex satisfies apex(x + f(x)) = onset(x) (the fixed-point inversion is right)."""
    face = real_faces[0].astype(np.float32)
    field = FIELDS["scaling"]
    apex = F.warp(face, field)
    x, y = F.grid(face.shape)
    u, v = field.displacement(x, y)
    back = cv2.remap(apex, (x + u).astype(np.float32), (y + v).astype(np.float32), cv2.INTER_CUBIC)
    assert np.abs(back - face)[INNER].mean() < 1.0  # grey levels; interpolating twice costs a little


def test_map_layout_matches_release_convention():
    """The written map reads back (strain, v, u) with cv2.imread; every channel spans exactly 0..255."""
    field = F.micro_expression_field("negative", 112, 2.0, np.random.default_rng(0))
    flow = F.true_flow(field, (112, 112))
    fmap = FL.flow_map(flow)
    back = cv2.imdecode(np.frombuffer(FL.encode_png(fmap), np.uint8), cv2.IMREAD_COLOR)
    assert back.shape == (28, 28, 3) and back.dtype == np.uint8
    assert np.array_equal(back, fmap)
    for c in range(3):
        assert back[..., c].min() == 0 and back[..., c].max() == 255
    small = cv2.resize(flow, (28, 28), interpolation=cv2.INTER_AREA)
    assert np.corrcoef(back[..., 2].ravel(), small[..., 0].ravel())[0, 1] > 0.99  # channel 2 = u
    assert np.corrcoef(back[..., 1].ravel(), small[..., 1].ravel())[0, 1] > 0.99  # channel 1 = v


def test_map_channels_have_the_release_mirror_symmetry():
    """Brows drawn together (AU4) mirror onto themselves: the u channel is anti-symmetric, v symmetric, as the
    release's channels 2 and 1 are (htnet_lib.data.flow_channel_symmetry: -0.25 and +0.67 there)."""
    field = F.micro_expression_field("negative", 112, 2.0, np.random.default_rng(0))
    field = F.Bumps(field.bumps)  # without the random head drift, the field is exactly mirror-symmetric
    fmap = FL.flow_map(F.true_flow(field, (112, 112))).astype(float)

    def mirror_corr(ch):
        ch = ch - np.median(ch)
        return np.corrcoef(ch.ravel(), ch[:, ::-1].ravel())[0, 1]

    assert mirror_corr(fmap[..., 2]) < -0.5
    assert mirror_corr(fmap[..., 1]) > 0.5


def test_flat_channel_normalises_to_zero():
    flow = np.zeros((20, 20, 2), np.float32)
    assert FL.flow_map(flow).max() == 0


def test_unknown_method_is_named():
    with pytest.raises(ValueError, match="sobel"):
        FL.optical_flow(np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8), "sobel")


@pytest.mark.parametrize("method", FL.METHODS)
def test_float_images_in_0_1_give_the_uint8_flow(real_faces, method):
    """A float image in 0..1 is the uint8 image / 255: same flow, same map (it used to be cut to 0/1 grey levels)."""
    rng = np.random.default_rng(2)
    a, b = _pair(real_faces[1][:56, :56], F.translation(1.0, 0.5), rng)
    want = FL.optical_flow(a, b, method)
    assert np.abs(want).mean() > 0.3  # a real flow to compare, not two zero fields
    for dtype in (np.float64, np.float32):
        got = FL.optical_flow((a / 255.0).astype(dtype), (b / 255.0).astype(dtype), method)
        assert np.array_equal(got, want)
    fa, fb = (cv2.cvtColor(x, cv2.COLOR_GRAY2BGR) / 255.0 for x in (a, b))  # colour too
    assert np.array_equal(FL.face_pair_to_map(fa, fb, method, flow_size=56), FL.face_pair_to_map(a, b, method,
                                                                                                  flow_size=56))


@pytest.mark.parametrize("bad,problem", [(np.full((16, 16), 128.0), r"float image with values in \[128, 128\]"),
                                         (np.full((16, 16), np.nan), "float image with values that are not finite"),
                                         (np.full((16, 16), 128, np.int16), "image of dtype int16")])
def test_other_images_are_refused_naming_the_argument(bad, problem):
    ok = np.zeros((16, 16), np.uint8)
    with pytest.raises(HTNetInputError, match=rf"field 'apex': {problem}"):
        FL.optical_flow(ok, bad, "farneback")
    with pytest.raises(HTNetInputError, match=rf"field 'onset_face': {problem}"):
        FL.face_pair_to_map(bad, ok, "tvl1", flow_size=16)


def test_flow_border_is_cut_after_the_strain():
    """Garbage on the outer 3 px of a flow field leaves no trace in the map once 8 px are cut: the strain is
    computed on the whole field (central differences at the cut read pixels 7 and 9, clean), then both are cut."""
    clean = F.true_flow(F.micro_expression_field("positive", 64, 2.0, np.random.default_rng(0)), (64, 64))
    dirty = clean.copy()
    ring = np.ones((64, 64), bool)
    ring[3:-3, 3:-3] = False
    dirty[ring] = np.random.default_rng(1).normal(0, 5, (ring.sum(), 2))
    assert not np.array_equal(FL.flow_map(dirty), FL.flow_map(clean))
    assert np.array_equal(FL.flow_map(dirty, border=8), FL.flow_map(clean, border=8))
    # the cut map is the middle 48 px of the field, resized: the uncut map of the cropped field
    assert np.array_equal(FL.flow_map(clean, border=8),
                          FL.flow_map(clean[8:-8, 8:-8], FL.optical_strain(clean)[8:-8, 8:-8]))


def test_flow_border_settings_are_checked():
    face = np.zeros((32, 32), np.uint8)
    with pytest.raises(HTNetInputError, match="field 'border'"):
        FL.face_pair_to_map(face, face, "farneback", flow_size=32, border=-1)
    with pytest.raises(HTNetInputError, match="field 'border'"):
        FL.flow_map(np.zeros((16, 16, 2), np.float32), border=8)
    from htnet_lib.raw.build import BuildSettings
    with pytest.raises(HTNetInputError, match="field 'flow_border'"):
        BuildSettings(flow_size=64, flow_border=32)
