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

Result (`method_comparison(n_samples=48, workers=2)` with the four variants below; 224 px faces; maps made with the
default flow border cut of 8 px, and in brackets without it, `flow_border=0`, as they were before the cut existed):

    histogram distance to the release   strain         v              u              mean           strain roughness
    release                             0              0              0              0              12.0
    TV-L1, 28x28 by pixel averaging     0.334 (0.094)  0.067 (0.068)  0.064 (0.059)  0.155 (0.074)  16.6 (8.7)
    TV-L1, bilinear                     0.243 (0.134)  0.069 (0.070)  0.061 (0.064)  0.124 (0.089)  19.3 (15.3)
    Farneback, bilinear                 0.305 (0.263)  0.058 (0.054)  0.107 (0.095)  0.157 (0.137)  21.9 (20.1)
    Farneback, pixel averaging          0.497 (0.435)  0.058 (0.052)  0.094 (0.075)  0.216 (0.187)  21.3 (19.0)

TV-L1 is the closer method on average either way (0.124-0.155 against 0.157-0.216), but the border cut changed the
strain channel's story. Without it, TV-L1's false strain on the crop's edge (see `flow`) set each map's maximum and
pressed the rest of the channel towards 0: 54 % of its pixels near zero, like the release's 45 %; a match made by the
artifact, since the release's maxima lie on the ring in only 30 of 442 maps. With the cut, the strain of the smooth
synthetic fields spreads over the range (13 % near zero, mean 55 against the release's 25): the release's strain is
sparser than synthetic motion makes it, which no flow setting here reproduces, and bilinear sampling becomes the
closer variant on the histograms (0.124 against 0.155) while pixel averaging stays closer on roughness. Farneback's
strain remains the roughest (21-22) and least sparse (5-16 % near zero). The flow channels u and v depend mostly on
the motion itself, which synthetic fields only imitate: without the head rotation (head_motion=0) every synthetic map
moves one way and no method matches their histograms (0.19-0.39, measured without the border cut). So TV-L1 is the
closer method, which agrees with the release's STSTNet origin, but on synthetic data the margin is modest.

The border (`border_statistics`, `border_table`, `border_comparison`): the share of maps whose strain maximum lies on
the outer ring (row or column 0 or 27), against the ring's 108 of 784 pixels, and the ring's mean strain over the
inside's. `border_comparison(n_samples=48, workers=2, variants=...)`:

    source                      strain maximum on the ring    ring / inside strain
    release                     30 / 442 (0.068)              0.74
    TV-L1, no border cut        44 / 48 (0.917)               1.56
    TV-L1, border 4 px           4 / 48 (0.083)               0.69
    TV-L1, border 8 px (default) 1 / 48 (0.021)               0.61
    TV-L1, border 12 px          0 / 48                       0.58
    Farneback, no border cut    25 / 48 (0.521)               1.31
    Farneback, border 8 px       4 / 48 (0.083)               0.84
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

import cv2
import numpy as np
import pandas as pd

from ..data import read_image
from ..release import FACE_DIR, FLOW_DIR, MAP_SIZE

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
    return np.stack([read_image(f, "flow_path", flags=cv2.IMREAD_COLOR) for f in files])


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


def synthetic_builds(data_dir: str | os.PathLike | None = None, n_samples: int = 48,
                     variants: Mapping[str, Mapping] = DEFAULT_VARIANTS, workers: int = 1, seed: int = 0,
                     head_motion: float = 0.004, work_dir: str | os.PathLike | None = None,
                     progress: bool = False) -> dict[str, np.ndarray]:
    """Build one synthetic database with each variant; the maps of each, (N, 28, 28, 3), by variant name.

    `variants` maps a name to `build_release` keyword arguments, e.g. {"tvl1-linear": {"method": "tvl1",
    "map_interpolation": "linear"}}. The synthetic samples are the release's apex faces at 224 px in 288x256 frames,
    moved by micro-expression-like fields with peak amplitudes drawn from 0.5-3 px plus a small head rotation and
    scaling (up to `head_motion`), with Gaussian noise (sd 1.5 grey levels) on every frame; faces are cropped at their
    known boxes.
    """
    from .adapters import load_database
    from .build import build_release
    from .synthetic import make_raw_database

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
    return candidates


def method_comparison(data_dir: str | os.PathLike | None = None, n_samples: int = 48,
                      variants: Mapping[str, Mapping] = DEFAULT_VARIANTS, **kwargs) -> pd.DataFrame:
    """Build one synthetic database with each variant (`synthetic_builds`, which takes the other keyword arguments)
    and compare its maps with the release's (`compare_to_release`)."""
    from ..data import resolve_data_dir

    release = load_maps(resolve_data_dir(data_dir))
    return compare_to_release(release, synthetic_builds(data_dir, n_samples, variants, **kwargs))


def ring_mask(size: int = MAP_SIZE, width: int = 1) -> np.ndarray:
    """True on the outer `width` rows and columns of a size x size map (width 1: row/column 0 or size - 1)."""
    inner = np.zeros((size, size), bool)
    inner[width:size - width, width:size - width] = True
    return ~inner


def border_statistics(maps: np.ndarray, width: int = 1) -> dict[str, float]:
    """How much a folder's maps are dominated by their border: the symptom of false flow on the frame's edge.

    On (N, H, W, 3) maps in OpenCV order: `strain_max_on_ring`, the maps whose strain maximum (the first in raster
    order) lies on the outer ring of `width` pixels, and `share_max_on_ring` (a maximum placed at random would land
    there with probability `share_ring_pixels`, 108 / 784 = 0.138 on 28x28); `ring_to_interior`, the mean strain on
    the ring over the mean strain inside it. (Only the strain: u and v legitimately peak at the ring under a head
    rotation or scaling, which grows with the distance from the centre.)
    """
    maps = np.asarray(maps)
    n, h, w = maps.shape[:3]
    ring = ring_mask(h, width).ravel()
    strain = maps[..., 0].reshape(n, h * w).astype(np.float64)
    on_ring = ring[strain.argmax(1)]
    return {"n_maps": n, "strain_max_on_ring": int(on_ring.sum()), "share_max_on_ring": float(on_ring.mean()),
            "share_ring_pixels": float(ring.mean()),
            "ring_to_interior": float(strain[:, ring].mean() / strain[:, ~ring].mean())}


def border_table(sources: Mapping[str, np.ndarray], width: int = 1) -> pd.DataFrame:
    """`border_statistics` of each source (the release, our builds...), one row each."""
    return pd.DataFrame({name: border_statistics(m, width) for name, m in sources.items()}).T.rename_axis("source")


BORDER_VARIANTS: dict[str, dict] = {"tvl1, no border cut": {"method": "tvl1", "flow_border": 0},
                                    "tvl1": {"method": "tvl1"}}


def border_comparison(data_dir: str | os.PathLike | None = None, n_samples: int = 48,
                      variants: Mapping[str, Mapping] = BORDER_VARIANTS, **kwargs) -> pd.DataFrame:
    """`border_table` of the release beside synthetic builds (`synthetic_builds`, which takes the other keyword
    arguments): by default TV-L1 without and with the flow border cut (`flow.DEFAULT_FLOW_BORDER`)."""
    from ..data import resolve_data_dir

    release = load_maps(resolve_data_dir(data_dir))
    return border_table({"release": release, **synthetic_builds(data_dir, n_samples, variants, **kwargs)})


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
    faces = [cv2.resize(read_image(f, "face_path", flags=cv2.IMREAD_GRAYSCALE), (size, size), interpolation=cv2.INTER_AREA)
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


def release_faces(data_dir=None, n: int = 6, size: int = 112) -> list[np.ndarray]:
    """`n` of the release's real apex faces, grey, `size` px, spread over the three databases by file-name order."""
    from ..data import resolve_data_dir

    files = sorted((resolve_data_dir(data_dir) / FACE_DIR).glob("*.jpg"))
    return [cv2.resize(read_image(f, "face_path", flags=cv2.IMREAD_GRAYSCALE), (size, size), interpolation=cv2.INTER_AREA)
            for f in files[::max(1, len(files) // n)][:n]]


def apex_accuracy(data_dir: str | os.PathLike | None = None, seeds: Sequence[int] = range(12), n_faces: int = 6,
                  size: int = 112, amplitude: float = 2.0, noise: float = 1.0) -> pd.DataFrame:
    """D&C-RoIs apex spotting (§3.1, eq. 1) on sequences with a known apex: one row per sequence.

    The setting of `tests/test_raw_apex.py`: `n_faces` of the release's real apex faces (grey, `size` px), each moved
    by a micro-expression-like field of `amplitude` px peak whose intensity rises as a half cosine from the onset to
    the apex and falls back by the offset; 13-25 frames, the apex in the middle third, Gaussian noise of sd `noise`
    grey levels on every frame; one draw per seed. Columns: seed, face, n_frames, apex, found, error (found - apex),
    reached (the share of the apex's motion intensity at the spotted frame), reliable (motion was found).
    """
    from . import apex as A
    from . import fields as F
    from .synthetic import intensity_profile

    faces = release_faces(data_dir, n_faces, size)
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
            spot = A.spot_apex_detail(frames)
            rows.append({"seed": seed, "face": j, "n_frames": n, "apex": k, "found": spot.index,
                         "error": spot.index - k, "reached": float(profile[spot.index]), "reliable": spot.reliable})
    return pd.DataFrame(rows)
