"""Which flow method reproduces the release's maps? Value statistics of 28x28x3 maps, release vs ours (§3.1, §4.2).

The paper's §4.2 names Farneback; the release's maps come from STSTNet's data, computed with TV-L1. The maps are
min-max normalised per channel, so their absolute scale is gone, but the *shape* of each channel's value distribution
is a fingerprint of the method: how much of a map sits at the zero-flow level (TV-L1's L1 data term and total-variation
prior give flat zero regions; Farneback's polynomial fits give a smooth, spread field), how spread it is, and how rough
(pixel to pixel) it is. `map_statistics` measures per channel (strain, v, u: OpenCV order):

- mean, sd, median of the 0..255 values;
- near_zero: the fraction of pixels within 12 grey levels (about 5 % of the range) of the zero-flow level. The level
  is 0 for the strain (its minimum is no strain) and, for u and v, the map's median (most of a face does not move, so
  the median is the zero level; the release does not record the true one);
- roughness: the mean absolute difference between neighbouring pixels;
- a 32-bin histogram, pooled over maps.

`compare_to_release` puts candidates beside the release and scores each with the total-variation distance between its
pooled histogram and the release's (0 identical, 1 disjoint), per channel and on average. `method_comparison` makes
the candidates the way a user would: a synthetic raw database (`synthetic.py`: the release's own apex faces moved by
micro-expression-like fields of 0.5-3 px plus a slight head rotation/scaling, with sensor noise), built by
`build.build_release` with each method.

Result (`method_comparison(n_samples=48, workers=2)` with the four variants below; 224 px faces):

    histogram distance to the release      strain    v      u     mean   roughness (strain, v, u)
    release                                  0       0      0      0     12.0  8.1  8.0
    TV-L1, 28x28 by pixel averaging        0.094   0.068  0.059  0.074    8.7  7.1  6.0
    TV-L1, bilinear                        0.134   0.070  0.064  0.089   15.3  7.3  6.2
    Farneback, bilinear                    0.263   0.054  0.095  0.137   20.1 10.7 11.8
    Farneback, pixel averaging             0.435   0.052  0.075  0.187   19.0 10.0 11.1

TV-L1 is the closer method, and the strain channel decides it: Farneback's strain is noisy everywhere (6 % of its
pixels near zero against the release's 45 % and TV-L1's 54 %) and twice as rough. The flow channels u and v depend
mostly on the motion itself, which synthetic fields only imitate: without the head rotation (head_motion=0) every
synthetic map moves one way, no method matches their histograms (0.19-0.39) and the means are 0.25 (TV-L1) against
0.26-0.32 (Farneback), still with TV-L1's strain at 0.10 against 0.26-0.45. So: TV-L1 reproduces the release's maps,
which agrees with their STSTNet origin; Farneback, which §4.2 names, gives visibly different strain maps.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

import cv2
import numpy as np
import pandas as pd

from ..release import FACE_DIR, FLOW_DIR

CHANNELS = ("strain", "v", "u")  # cv2.imread order of the release's maps
NEAR = 12
BINS = 32


def load_maps(folder: str | os.PathLike) -> np.ndarray:
    """All `* .png` maps of a release-layout folder's flow directory (or of `folder` itself), (N, 28, 28, 3) uint8."""
    folder = Path(folder)
    flow_dir = folder / FLOW_DIR
    if flow_dir.is_dir():
        folder = flow_dir
    files = sorted(folder.glob("*.png"))
    if not files:
        raise FileNotFoundError(f"no .png maps in {folder}")
    return np.stack([cv2.imread(str(f), cv2.IMREAD_COLOR) for f in files])


def _zero_level(maps: np.ndarray, c: int) -> np.ndarray:
    x = maps[..., c].reshape(len(maps), -1).astype(np.float64)
    if CHANNELS[c] == "strain":
        return np.zeros(len(maps))
    return np.median(x, axis=1)


def map_statistics(maps: np.ndarray) -> pd.DataFrame:
    """Per-channel statistics of (N, H, W, 3) maps in OpenCV order: one row per channel (see the module docstring)."""
    maps = np.asarray(maps)
    rows = []
    for c, name in enumerate(CHANNELS):
        x = maps[..., c].astype(np.float64)
        flat = x.reshape(len(x), -1)
        zero = _zero_level(maps, c)
        near = (np.abs(flat - zero[:, None]) <= NEAR).mean()
        rough = 0.5 * (np.abs(np.diff(x, axis=1)).mean() + np.abs(np.diff(x, axis=2)).mean())
        rows.append({"channel": name, "mean": flat.mean(), "sd": flat.std(), "median": float(np.median(flat)),
                     "near_zero": float(near), "roughness": float(rough)})
    return pd.DataFrame(rows).set_index("channel")


def histograms(maps: np.ndarray, bins: int = BINS) -> dict[str, np.ndarray]:
    """Pooled value histogram of each channel, as probabilities over `bins` equal bins of 0..255."""
    out = {}
    for c, name in enumerate(CHANNELS):
        h = np.histogram(np.asarray(maps)[..., c], bins=bins, range=(0, 256))[0].astype(np.float64)
        out[name] = h / h.sum()
    return out


def compare_to_release(release: np.ndarray, candidates: Mapping[str, np.ndarray], bins: int = BINS) -> pd.DataFrame:
    """Statistics of the release and of each candidate, with each candidate's histogram distance to the release.

    Rows: (source, channel); columns: n_maps, mean, sd, median, near_zero, roughness, hist_distance (total-variation
    distance to the release's histogram of that channel; 0 for the release itself).
    """
    ref_h = histograms(release, bins)
    frames = []
    for source, maps in {"release": release, **dict(candidates)}.items():
        st = map_statistics(maps)
        h = histograms(maps, bins)
        st["hist_distance"] = [0.5 * np.abs(h[ch] - ref_h[ch]).sum() for ch in st.index]
        st.insert(0, "n_maps", len(maps))
        st.insert(0, "source", source)
        frames.append(st.reset_index())
    return pd.concat(frames, ignore_index=True).set_index(["source", "channel"])


def closest_method(table: pd.DataFrame) -> pd.Series:
    """Mean histogram distance to the release per candidate source (smaller is closer), sorted."""
    t = table.reset_index()
    t = t[t["source"] != "release"]
    return t.groupby("source")["hist_distance"].mean().sort_values()


DEFAULT_VARIANTS: dict[str, dict] = {"farneback": {"method": "farneback"}, "tvl1": {"method": "tvl1"}}


def method_comparison(data_dir: str | os.PathLike | None = None, n_samples: int = 48,
                      variants: Mapping[str, Mapping] = DEFAULT_VARIANTS, workers: int = 1, seed: int = 0,
                      head_motion: float = 0.004, work_dir: str | os.PathLike | None = None,
                      progress: bool = False) -> pd.DataFrame:
    """Build one synthetic database with each variant and compare its maps with the release's (`compare_to_release`).

    `variants` maps a name to `build_release` keyword arguments, e.g. {"tvl1-linear": {"method": "tvl1",
    "map_interpolation": "linear"}}. The synthetic samples are the release's apex faces at 224 px in 288x256 frames,
    moved by micro-expression-like fields with peak amplitudes drawn from 0.5-3 px plus a small head rotation and
    scaling (up to `head_motion`), with Gaussian noise (sd 1.5 grey levels) on every frame; faces are cropped at their
    known boxes.
    """
    from ..data import resolve_data_dir
    from .adapters import load_database
    from .build import build_release
    from .synthetic import make_raw_database

    release = load_maps(resolve_data_dir(data_dir))
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        tmp = Path(tmp)
        per = max(1, n_samples // 4)
        db = make_raw_database("casme2", tmp / "raw", data_dir, n_subjects=max(1, -(-n_samples // per)),
                               per_subject=per, frame_size=(288, 256), face_px=224, n_frames=5,
                               amplitude=(0.5, 3.0), noise=1.5, head_motion=head_motion, seed=seed)
        table = load_database("casme2", db.root)
        candidates = {}
        for name, kwargs in variants.items():
            out = tmp / f"out_{name}"
            build_release(table, out, workers=workers, face_boxes=db.face_boxes, progress=progress, **dict(kwargs))
            candidates[name] = load_maps(out)
    return compare_to_release(release, candidates)


def standard_fields(size: int) -> dict[str, "object"]:
    """The known fields of the accuracy check, for a face of `size` px (amplitudes scale with it; 112 px reference).

    translation (1.2, -0.7) px; scaling u = 0.03 (x - c), v = -0.02 (y - c), strain sqrt(0.03^2 + 0.02^2) = 0.0361
    everywhere; bumps: the AU4-like "negative" field of `fields.micro_expression_field`, 1.5 px at its peak.
    """
    from . import fields as F

    k = size / 112.0
    return {"translation": F.translation(1.2 * k, -0.7 * k), "scaling": F.scaling(0.03, -0.02, size / 2, size / 2),
            "bumps": F.micro_expression_field("negative", size, 1.5 * k, np.random.default_rng(0))}


def flow_accuracy(data_dir: str | os.PathLike | None = None, methods: Sequence[str] = ("farneback", "tvl1"),
                  size: int = 224, n_faces: int = 12, noise: float = 1.0, seed: int = 0) -> pd.DataFrame:
    """End-point error and strain error of each method on the release's real apex faces moved by known fields.

    Each face (grey, `size` px) is the onset; the apex is the face warped by the field (`fields.warp`); both get
    Gaussian noise of sd `noise` grey levels. Errors are over the interior (a border of size/8 is left out: the warp
    reflects the image there, so no method can know the true motion). Columns: field, method, epe (mean end-point
    error, px), epe_max (worst face), motion (mean true displacement, px), strain_true and strain_est (median over the
    interior), strain_mae (median absolute strain error), seconds (per pair).
    """
    import time

    from ..data import resolve_data_dir
    from . import fields as F
    from . import flow as FL

    files = sorted((resolve_data_dir(data_dir) / FACE_DIR).glob("*.jpg"))
    step = max(1, len(files) // n_faces)
    faces = [cv2.resize(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE), (size, size), interpolation=cv2.INTER_AREA)
             for f in files[::step][:n_faces]]
    rng = np.random.default_rng(seed)
    m = size // 8
    inner = (slice(m, -m), slice(m, -m))
    rows = []
    for name, field in standard_fields(size).items():
        tf = F.true_flow(field, (size, size))
        ts = F.true_strain(field, (size, size))[inner]
        pairs = []
        for g in faces:
            a = np.clip(g + rng.normal(0, noise, g.shape), 0, 255).astype(np.uint8)
            b = np.clip(F.warp(g, field) + rng.normal(0, noise, g.shape), 0, 255).astype(np.uint8)
            pairs.append((a, b))
        for method in methods:
            epe, est, mae, t = [], [], [], 0.0
            for a, b in pairs:
                t0 = time.perf_counter()
                fl = FL.optical_flow(a, b, method)
                t += time.perf_counter() - t0
                epe.append(FL.end_point_error(fl, tf, margin=m))
                st = FL.optical_strain(fl)[inner]
                est.append(float(np.median(st)))
                mae.append(float(np.median(np.abs(st - ts))))
            rows.append({"field": name, "method": method, "epe": float(np.mean(epe)), "epe_max": float(np.max(epe)),
                         "motion": float(np.sqrt((tf[inner] ** 2).sum(-1)).mean()),
                         "strain_true": float(np.median(ts)), "strain_est": float(np.mean(est)),
                         "strain_mae": float(np.mean(mae)), "seconds": t / len(pairs)})
    return pd.DataFrame(rows)


def apex_accuracy(data_dir: str | os.PathLike | None = None, seeds: Sequence[int] = range(12), n_faces: int = 6,
                  size: int = 112, amplitude: float = 2.0, noise: float = 1.0) -> pd.DataFrame:
    """D&C-RoIs apex spotting (§3.1, eq. 1) on sequences with a known apex: one row per sequence.

    The setting of `tests/test_raw_apex.py`: `n_faces` of the release's real apex faces (grey, `size` px), each moved
    by a micro-expression-like field of `amplitude` px peak whose intensity rises as a half cosine from the onset to
    the apex and falls back by the offset; 13-25 frames, the apex in the middle third, Gaussian noise of sd `noise`
    grey levels on every frame; one draw per seed. Columns: seed, face, n_frames, apex, found, error (found - apex),
    reached (the share of the apex's motion intensity at the spotted frame).
    """
    from ..data import resolve_data_dir
    from . import apex as A
    from . import fields as F
    from .synthetic import intensity_profile

    files = sorted((resolve_data_dir(data_dir) / FACE_DIR).glob("*.jpg"))
    faces = [cv2.resize(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE), (size, size), interpolation=cv2.INTER_AREA)
             for f in files[::max(1, len(files) // n_faces)][:n_faces]]
    rows = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        for j, face in enumerate(faces):
            n = int(rng.integers(13, 26))
            k = int(rng.integers(n // 3, 2 * n // 3 + 1))
            field = F.micro_expression_field(("negative", "positive", "surprise")[j % 3], size, amplitude, rng)
            profile = intensity_profile(n, k)
            frames = [np.clip(F.warp(face, F.Scaled(field, float(s))) + rng.normal(0, noise, face.shape), 0, 255)
                      .astype(np.uint8) for s in profile]
            found = A.spot_apex(frames)
            rows.append({"seed": seed, "face": j, "n_frames": n, "apex": k, "found": found, "error": found - k,
                         "reached": float(profile[found])})
    return pd.DataFrame(rows)
