"""D&C-RoIs apex spotting (§3.1, eq. 1) on sequences with a known apex.

Sequences: six of the release's real faces (112 px), moved by micro-expression-like fields of 2 px peak whose
intensity rises from the onset to the apex as a half cosine and falls back by the offset (as SMIC clips, cut from
onset to offset, do); 13-25 frames, the apex in the middle third; sensor noise of sd 1 grey level on every frame.

Measured over 72 such sequences (12 seeds x 6 faces, `stats.apex_accuracy()`), with scikit-image's LBP: mean
|error| 1.47 frames (guessing the middle frame: 1.82), median 1, worst 7; the spotted frame carries on average 88 % of
the apex's motion, and 85 % of sequences at least 80 %. (With the former square-neighbour LBP: 1.25, median 1, worst
5, 89 %, 83 %.) D&C follows the mass of the feature differences, so an occasional sequence lands 5-7 frames off. The
test (one fixed draw of 6 sequences, seed 7) asserts median |error| <= 2 frames and an average of >= 70 % of the
apex's motion reached: that draw is the worst of the 12 on motion reached (median 1, 74 %).
"""
from __future__ import annotations

import numpy as np
import pytest

from htnet_lib.raw import apex as A
from htnet_lib.raw import fields as F
from htnet_lib.raw.synthetic import intensity_profile


# scikit-image's nri_uniform labels, by hand: the 8 neighbours are read counter-clockwise from the right one
# (0 right, 1 up-right, 2 up, 3 up-left, 4 left, 5 down-left, 6 down, 7 down-right); a bit is 1 when the neighbour
# is >= the centre. A uniform pattern, a run of n ones (0 < n < 8) starting at neighbour s, has the label
# 1 + 8 (n - 1) + (8 - s) mod 8; no ones is 0, eight ones 57, anything else 58. Diagonal neighbours are bilinear on
# the unit circle: at (0.707, 0.707) the corner pixel weighs 0.5, the two edge pixels 0.207 each, the centre 0.086.

def _lbp_centre(pixels) -> int:
    return int(A.lbp_codes(np.array(pixels, np.uint8))[0, 0])


def test_lbp_hand_computed_labels():
    assert A.N_BINS == 59
    assert np.all(A.lbp_codes(np.full((6, 5), 7, np.uint8)) == 57)  # flat: every neighbour equal, eight ones
    assert A.lbp_codes(np.full((6, 5), 7, np.uint8)).shape == (4, 3)  # the interior
    bright = np.zeros((5, 5), np.uint8)
    bright[2, 2] = 50  # a bright centre: no neighbour reaches it (0); around it every pixel sees it, or an equal 0
    assert A.lbp_codes(bright).tolist() == [[57, 57, 57], [57, 0, 57], [57, 57, 57]]
    assert _lbp_centre([[200] * 3, [200, 100, 200], [200] * 3]) == 57  # a dark centre: eight ones
    assert _lbp_centre([[0, 0, 0], [0, 100, 200], [0, 0, 0]]) == 1  # only the right neighbour: n 1, s 0
    assert _lbp_centre([[0, 200, 0], [0, 100, 0], [0, 0, 0]]) == 7  # only the upper one: n 1, s 2 -> 1 + 6


def test_lbp_step_edge():
    """A vertical step 0 | 255. On the bright side of the edge, the left (4) neighbour is 0 and the up-left (3) and
    down-left (5) ones interpolate to 0.293 * 255 = 75 < 255: ones at 6, 7, 0, 1, 2, so n 5, s 6, label
    1 + 32 + 2 = 35. On the dark side and one column further into the bright side every neighbour is >= the centre."""
    step = np.zeros((5, 6), np.uint8)
    step[:, 3:] = 255
    assert A.lbp_codes(step).tolist() == [[57, 57, 35, 57]] * 3


def test_lbp_diagonal_neighbour_is_interpolated():
    """Centre 100, up-right corner 110, the rest 0: the square neighbourhood would set the up-right bit
    (110 >= 100), but on the circle that neighbour is 0.5 * 110 + 0.086 * 100 = 63.6 < 100, so no bit is set: 0."""
    assert _lbp_centre([[0, 0, 110], [0, 100, 0], [0, 0, 0]]) == 0


def test_feature_difference_is_zero_for_the_onset_and_grows_with_change(real_faces):
    face = real_faces[0]
    moved = [F.warp(face, F.Scaled(F.micro_expression_field("surprise", 112, 4.0), s)) for s in (0.0, 0.5, 1.0)]
    d = A.feature_differences([face] + moved)
    assert d[0] == 0.0 and d[1] == pytest.approx(0.0, abs=1e-9)
    assert d[2] < d[3]


def test_divide_and_conquer_on_a_profile():
    d = intensity_profile(21, 12)
    assert A.divide_and_conquer(d) == 12
    assert A.divide_and_conquer([0.0, 5.0]) == 1
    with pytest.raises(ValueError):
        A.divide_and_conquer([])


def test_spot_apex_finds_the_known_apex(real_faces):
    rng = np.random.default_rng(7)
    errors, reached = [], []
    for j, face in enumerate(real_faces):
        n = int(rng.integers(13, 26))
        k = int(rng.integers(n // 3, 2 * n // 3 + 1))
        field = F.micro_expression_field(("negative", "positive", "surprise")[j % 3], 112, 2.0, rng)
        profile = intensity_profile(n, k)
        frames = [np.clip(F.warp(face, F.Scaled(field, float(s))) + rng.normal(0, 1.0, face.shape), 0, 255)
                  .astype(np.uint8) for s in profile]
        found = A.spot_apex(frames)
        errors.append(found - k)
        reached.append(profile[found])
    assert np.mean(reached) >= 0.7, f"errors {errors}, intensity reached {np.round(reached, 2)}"
    assert np.median(np.abs(errors)) <= 2, f"errors {errors}"


def test_spot_apex_needs_two_frames():
    with pytest.raises(ValueError, match="two frames"):
        A.spot_apex([np.zeros((20, 20), np.uint8)])


def test_roi_boxes_fractions_and_pixels():
    assert A.roi_boxes((100, 200), [(0.1, 0.2, 0.5, 0.6)]) == [(20, 20, 100, 60)]
    assert A.roi_boxes((100, 200), [(10, 20, 50, 60)]) == [(10, 20, 50, 60)]


def test_no_motion_is_flagged_and_the_middle_frame_returned(real_faces):
    """All frames equal: every d is 0, D&C has nothing to follow (it would return frame 1); the middle frame comes
    back, flagged. A sequence that moves (4 px brows raised) is not flagged."""
    still = A.spot_apex_detail([real_faces[0]] * 9)
    assert (still.reliable, still.index, still.max_difference) == (False, 4, 0.0)
    assert A.spot_apex([real_faces[0]] * 9) == 4
    assert A.spot_apex_detail([real_faces[0]] * 2).index == 1  # never the onset itself
    field = F.micro_expression_field("surprise", 112, 4.0)
    moving = A.spot_apex_detail([F.warp(real_faces[0], F.Scaled(field, s)) for s in intensity_profile(9, 5)])
    assert moving.reliable and moving.max_difference > 100 * A.NO_MOTION
