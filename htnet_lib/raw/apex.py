"""Apex spotting for sequences without an apex index (SMIC-HS): D&C-RoIs (§3.1, eq. 1; Liong et al. 2015, 2018).

HTNet takes the apex frame of SMIC-HS, which the database does not annotate, from the divide-and-conquer search over
regions of interest (D&C-RoIs) of Liong et al.:

1. three regions of interest on the face crop, where micro-expressions move the face most: the left eye and brow, the
   right eye and brow, and the mouth (`DEFAULT_ROIS`, as fractions of the crop; or boxes from landmarks);
2. per frame and region, a histogram of uniform local binary patterns (LBP, 8 neighbours at radius 1: 59 bins;
   scikit-image's `local_binary_pattern(..., method="nri_uniform")`, whose diagonal neighbours are interpolated on
   the circle of radius 1 rather than taken from the corner pixels);
3. eq. 1, the feature difference of frame i from the onset frame: the sum over regions of one minus the correlation
   coefficient of the two histograms, d_i = sum_r (1 - corr(h_onset,r, h_i,r)): 0 for a frame identical to the onset,
   larger the more the texture of the regions has changed;
4. divide and conquer: split the frame interval into two halves, keep the half whose feature differences sum higher,
   and repeat; once the interval is `min_interval` frames or fewer, its frame with the largest d_i is the apex.

A sequence in which no frame differs from the onset (every d_i <= `NO_MOTION`: a frozen or duplicated clip) has no
apex to find: `spot_apex_detail` then returns the middle frame and says the result is not reliable, and the builder
flags the sample (`build.APEX_NO_MOTION`).

Assumptions, stated because the HTNet paper gives eq. 1 without these details: the correlation is Pearson's over the
histogram bins (Liong et al. 2015); histograms are of uniform LBP codes, normalised; the final short interval is
resolved by its maximum rather than split to one frame (splitting 3 frames into 1 + 2 compares unequal sums); frames
are lightly blurred (Gaussian, sigma 1 px) before LBP, because on flat skin sensor noise alone flips LBP's neighbour
comparisons (on the 72 noisy synthetic sequences of `stats.apex_accuracy` the mean error is 2.44 frames unblurred,
1.47 with the blur).

Accuracy (`stats.apex_accuracy()`: real faces moved by 2 px micro-expression fields, 13-25 frames, noise sd 1): mean
|error| 1.47 frames, median 1, worst 7, 88 % of the apex's motion reached on average. The square-neighbour LBP this
module used before scikit-image's gave 1.25, median 1, worst 5, 89 %: the two agree on 61 % of the sequences, and the
interpolated diagonals cost about a fifth of a frame on average (per-seed means 0.5-2.8 against 0.3-2.3).

What D&C can and cannot do: it follows the mass of d, not its peak, so on a lopsided temporal profile (fast rise, slow
decay) it can stop several frames from the true apex even with noise-free d (up to 7 frames on triangular profiles of
12-30 frames); on a symmetric profile it is within a frame or two.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

# (x0, y0, x1, y1) as fractions of the face crop: left eye+brow, right eye+brow, mouth (image left/right)
DEFAULT_ROIS: tuple[tuple[float, float, float, float], ...] = (
    (0.10, 0.12, 0.48, 0.48),
    (0.52, 0.12, 0.90, 0.48),
    (0.22, 0.60, 0.78, 0.92),
)

N_BINS = 59  # nri_uniform with 8 neighbours: 58 uniform patterns, each at its own rotation, + 1 for all the others


def lbp_codes(gray: np.ndarray) -> np.ndarray:
    """Uniform LBP labels (0..58) of the interior pixels of a grey image, shape (H-2, W-2).

    scikit-image's `nri_uniform` method, 8 neighbours at radius 1 on a circle, so the diagonal neighbours are
    bilinear interpolations (at (+-0.707, +-0.707)), not the corner pixels. Label 0 is "every neighbour darker",
    57 "none darker" (a flat patch), 58 a non-uniform pattern. The one-pixel frame is dropped: scikit-image reads
    outside the image as 0 there.
    """
    from skimage.feature import local_binary_pattern  # here: it pulls SciPy (~0.2 s), needed for SMIC only

    return local_binary_pattern(gray, P=8, R=1, method="nri_uniform").astype(np.int64)[1:-1, 1:-1]


def roi_boxes(shape: Sequence[int], rois: Sequence[Sequence[float]] = DEFAULT_ROIS) -> list[tuple[int, int, int, int]]:
    """Region boxes in pixels; `rois` entries <= 1 are read as fractions of the image, larger ones as pixels."""
    h, w = shape[:2]
    boxes = []
    for x0, y0, x1, y1 in rois:
        if max(x0, y0, x1, y1) <= 1.0:
            x0, x1, y0, y1 = x0 * w, x1 * w, y0 * h, y1 * h
        boxes.append((int(round(x0)), int(round(y0)), int(round(x1)), int(round(y1))))
    return boxes


def roi_histograms(gray: np.ndarray, rois: Sequence[Sequence[float]] = DEFAULT_ROIS, blocks: int = 1) -> np.ndarray:
    """Uniform-LBP histograms of each region, shape (n_rois, blocks*blocks*59).

    With `blocks` > 1 each region is cut into a blocks x blocks grid and the block histograms are concatenated, so the
    feature also sees where in the region the texture changed.
    """
    codes = lbp_codes(gray)
    hists = []
    for x0, y0, x1, y1 in roi_boxes(gray.shape, rois):
        # codes are indexed from pixel (1, 1): shift the box by one and clip to the code image
        patch = codes[max(y0 - 1, 0):max(y1 - 1, 1), max(x0 - 1, 0):max(x1 - 1, 1)]
        ys = np.linspace(0, patch.shape[0], blocks + 1).astype(int)
        xs = np.linspace(0, patch.shape[1], blocks + 1).astype(int)
        parts = []
        for i in range(blocks):
            for j in range(blocks):
                cell = patch[ys[i]:ys[i + 1], xs[j]:xs[j + 1]]
                hist = np.bincount(cell.ravel(), minlength=N_BINS).astype(np.float64)
                parts.append(hist / max(hist.sum(), 1.0))
        hists.append(np.concatenate(parts))
    return np.stack(hists)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else 1.0


def feature_differences(frames: Sequence[np.ndarray], rois: Sequence[Sequence[float]] = DEFAULT_ROIS,
                        blocks: int = 1) -> np.ndarray:
    """Eq. 1: d_i = sum over regions of (1 - corr(LBP histogram of the onset frame, that of frame i)); d_0 = 0.

    `frames` are grey face crops, the first one the onset frame.
    """
    ref = roi_histograms(frames[0], rois, blocks)
    d = np.zeros(len(frames))
    for i, f in enumerate(frames):
        if i == 0:
            continue
        h = roi_histograms(f, rois, blocks)
        d[i] = sum(1.0 - _corr(ref[r], h[r]) for r in range(len(ref)))
    return d


def divide_and_conquer(d: Sequence[float], min_interval: int = 3) -> int:
    """The D&C search: halve the interval, keep the half with the larger sum of d, until <= min_interval frames remain;
    then the largest d in it. Returns an index into `d`."""
    d = np.asarray(d, dtype=np.float64)
    if len(d) == 0:
        raise ValueError("no frames")
    lo, hi = 0, len(d)  # half-open
    while hi - lo > max(min_interval, 1):
        mid = (lo + hi) // 2
        if d[lo:mid].sum() >= d[mid:hi].sum():
            hi = mid
        else:
            lo = mid
    return lo + int(np.argmax(d[lo:hi]))


# Largest feature difference (eq. 1, summed over the regions) still read as "nothing moved". Measured on a release
# face at 112 px: one pixel brightened by 40 grey levels gives d = 3e-5, five pixels 2.6e-4, re-encoding the frame as
# JPEG (quality 95) 2.8e-3, sensor noise of sd 1 about 1e-2, a 2 px micro-expression 0.009-0.016 (with that noise).
NO_MOTION = 1e-4


@dataclass(frozen=True)
class ApexSpot:
    """The result of D&C-RoIs on one sequence: the apex `index` (into the frames, onset = 0), whether it is
    `reliable`, and the feature differences d (eq. 1; d[0] = 0, the onset's own)."""

    index: int
    reliable: bool
    differences: np.ndarray

    @property
    def max_difference(self) -> float:
        return float(self.differences.max())


def spot_apex_detail(frames: Sequence[np.ndarray], rois: Sequence[Sequence[float]] = DEFAULT_ROIS,
                     min_interval: int = 3, smooth_sigma: float = 1.0, blocks: int = 1,
                     no_motion: float = NO_MOTION) -> ApexSpot:
    """D&C-RoIs (§3.1, eq. 1) with its evidence: see `ApexSpot`.

    When every frame's feature difference is <= `no_motion` the regions look the same in all frames (a frozen or
    duplicated clip): there is no apex to find, D&C would only return the first frame after the onset (every left
    half ties at 0), so the middle frame is returned instead, flagged `reliable=False`. The converse does not hold:
    sensor noise alone gives d of the size a subtle micro-expression gives (`NO_MOTION`), so a noisy static clip
    passes as reliable; the flag says "no motion found", not "motion found".
    """
    import cv2

    grey = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) if f.ndim == 3 else f for f in frames]
    if len(grey) < 2:
        raise ValueError("apex spotting needs at least two frames (onset and one more)")
    if smooth_sigma > 0:
        # LBP compares each pixel with its neighbours: on flat skin, sensor noise alone flips those comparisons
        grey = [cv2.GaussianBlur(g, (0, 0), smooth_sigma) for g in grey]
    d = feature_differences(grey, rois, blocks)
    if d.max() <= no_motion:
        return ApexSpot(max(1, (len(d) - 1) // 2), False, d)
    return ApexSpot(divide_and_conquer(d[1:], min_interval) + 1, True, d)  # the onset frame itself is never the apex


def spot_apex(frames: Sequence[np.ndarray], rois: Sequence[Sequence[float]] = DEFAULT_ROIS,
              min_interval: int = 3, smooth_sigma: float = 1.0, blocks: int = 1) -> int:
    """D&C-RoIs (§3.1, eq. 1): the index, within `frames` (onset first), of the apex frame.

    `frames` are face crops (grey or BGR) of one sequence from onset to offset, all the same size. Where no motion is
    found the middle frame comes back; `spot_apex_detail` says so.
    """
    return spot_apex_detail(frames, rois, min_interval, smooth_sigma, blocks).index
