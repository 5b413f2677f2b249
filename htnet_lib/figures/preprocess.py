"""Figures and tables of notebook 01 (preprocess; §3.1, §4.1, Table 1): flow maps and faces, Table 1 beside the
paper, the four facial regions of one face under both region variants."""
from __future__ import annotations

from typing import Sequence

import cv2
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .. import regions
from ..data import read_image
from . import finish

# channel order of the release's maps as cv2.imread returns them (see htnet_lib.data)
CHANNELS = ("strain", "v (vertical flow)", "u (horizontal flow)")
REGION_NAMES = ("left eye", "right eye", "left mouth corner", "right mouth corner")  # quadrants TL, TR, BL, BR
REGION_LANDMARKS = (0, 1, 3, 4)  # the landmark that places each quadrant's crop (regions.REGION_LANDMARKS, flat)
LANDMARK_COLOURS = ("tab:red", "tab:blue", "tab:green", "tab:purple", "gold")


def example_indices(samples: pd.DataFrame, per_dataset: int = 2) -> list[int]:
    """Row positions of `per_dataset` samples of each dataset (paper order), cycling through the emotions."""
    out: list[int] = []
    pos = pd.Series(np.arange(len(samples)), index=samples.index)
    for ds in samples["dataset"].cat.categories if hasattr(samples["dataset"], "cat") else samples["dataset"].unique():
        sub = samples[samples["dataset"] == ds]
        groups = [list(pos[g.index]) for _, g in sub.groupby("emotion", sort=True)]
        picked: list[int] = []
        k = 0
        while len(picked) < min(per_dataset, len(sub)):
            g = groups[k % len(groups)]
            j = k // len(groups)
            if j < len(g):
                picked.append(int(g[j]))
            k += 1
        out.extend(picked)
    return out


def _channel_norm(ch: np.ndarray, c: int) -> tuple[str, TwoSlopeNorm | None]:
    """Colour map and normalisation for channel `c`: strain from 0, flows diverging around the map's median.

    The maps are min-max normalised per channel, so zero flow is not 127; most of a face does not move, so the median
    is the zero-flow level (as `htnet_lib.raw.stats` assumes).
    """
    if c == 0:
        return "magma", None
    centre = float(np.clip(np.median(ch), 1, 254))
    return "RdBu_r", TwoSlopeNorm(vcenter=centre, vmin=0, vmax=255)


def _image_axis(ax, title: str | None = None, xlabel: str = "", ylabel: str = "") -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)


def flow_maps_figure(maps: np.ndarray, faces: Sequence[np.ndarray] | None = None,
                     labels: Sequence[str] | None = None, title: str = "Flow maps (§3.1)") -> Figure:
    """One row per map: the apex face (if given, RGB), then the strain, v and u channels of the 28x28 map.

    `maps` is (N, 28, 28, 3) uint8 in OpenCV order (strain, v, u), as `data.load_flow_maps` returns them.
    Flow channels are drawn red for one direction and blue for the other, white at the map's median (zero flow).
    """
    maps = np.asarray(maps)
    if maps.ndim != 4 or maps.shape[-1] != 3:
        raise ValueError(f"expected (N, H, W, 3) maps, got {maps.shape}")
    n = len(maps)
    cols = 3 + (faces is not None)
    fig, axes = plt.subplots(n, cols, figsize=(2.1 * cols, 2.2 * n + 0.6), squeeze=False, constrained_layout=True)
    for i in range(n):
        label = labels[i] if labels is not None else f"sample {i}"
        j = 0
        if faces is not None:
            axes[i, 0].imshow(faces[i])
            _image_axis(axes[i, 0], "apex face" if i == 0 else None, ylabel=label)
            j = 1
        for c in range(3):
            ax = axes[i, j + c]
            cmap, norm = _channel_norm(maps[i, ..., c], c)
            im = ax.imshow(maps[i, ..., c], cmap=cmap, norm=norm, vmin=None if norm else 0, vmax=None if norm else 255)
            _image_axis(ax, CHANNELS[c] if i == 0 else None, ylabel=label if (j == 0 and c == 0) else "")
            if i == n - 1:
                fig.colorbar(im, ax=ax, orientation="horizontal", fraction=0.06, pad=0.04, label="map value (0-255)")
    fig.suptitle(title)
    return finish(fig)


def table1_comparison(ours: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """`data.class_counts` beside `paper_values.table1()`: columns (quantity, 'ours' | 'paper'), plus `match`.

    Our 'all' row is the paper's 'Full', our 'total' column its 'samples'.
    """
    o = ours.rename(index={"all": "Full"}, columns={"total": "samples"})
    o = o[list(paper.columns)].reindex(paper.index)
    table = pd.concat({"ours": o, "paper": paper}, axis=1).swaplevel(axis=1)
    table = table[[(c, s) for c in paper.columns for s in ("ours", "paper")]]
    table[("match", "")] = (o.to_numpy() == paper.to_numpy()).all(axis=1)
    table.index.name = "dataset"
    return table


def _boxes(ax, centres_rc: np.ndarray, scale: float, labels: bool = True, lw: float = 1.5) -> None:
    """Draw the four 14x14 crops (centres as (row, col) on the 28x28 map) scaled by `scale`, coloured by landmark."""
    for q, k in enumerate(REGION_LANDMARKS):
        r, c = centres_rc[k]
        x0, y0 = (c - regions.HALF) * scale - 0.5, (r - regions.HALF) * scale - 0.5
        side = 2 * regions.HALF * scale
        ax.add_patch(Rectangle((x0, y0), side, side, fill=False, ec=LANDMARK_COLOURS[k], lw=lw))
        if labels:
            ax.text(x0 + 0.5 * scale, y0 + 1.5 * scale, REGION_NAMES[q], color=LANDMARK_COLOURS[k], fontsize=7,
                    va="top", bbox=dict(fc="white", alpha=0.6, lw=0, pad=0.5))


def _points(ax, pts_xy: np.ndarray, scale: float) -> None:
    for k, (x, y) in enumerate(pts_xy):
        ax.plot(x * scale - 0.5 * (scale > 1), y * scale - 0.5 * (scale > 1), "o", ms=5, mec="white", mew=0.8,
                color=LANDMARK_COLOURS[k], label=regions.LANDMARK_NAMES[k].replace("_", " "))


def _quadrants(ax) -> None:
    ax.axhline(13.5, color="white", lw=1)
    ax.axvline(13.5, color="white", lw=1)
    for q, (r, c) in enumerate(((0, 0), (0, 14), (14, 0), (14, 14))):
        ax.text(c + 0.5, r + 1.2, f"{REGION_NAMES[q]} crop", color="white", fontsize=7, va="top")


def regions_figure(samples: pd.DataFrame, maps: np.ndarray, index: int) -> Figure:
    """The four facial regions of one sample under both variants (§3.1, §4.2): one row per variant.

    Columns: the face the detector was given, with the five landmarks and the four crops; the strain channel of the
    28x28 flow map with the same; the assembled 28x28 input (strain channel). `official` shows the 28x28 face exactly
    as the authors' code passes it to MTCNN: OpenCV's BGR array read as RGB (hence the blue skin). Crops are drawn
    where they are taken: `official` indexes rows with x, so its boxes sit at the landmarks mirrored across the
    diagonal. `maps` holds all samples' maps (rows of `samples`); `index` is a row position.
    """
    fmap = maps[index:index + 1]
    row = samples.iloc[index]
    bgr = read_image(row["face_path"], "face_path", flags=cv2.IMREAD_COLOR)
    fig, axes = plt.subplots(2, 3, figsize=(10.5, 7.4), constrained_layout=True)
    for r, variant in enumerate(regions.VARIANTS):
        # all samples, not `one`: `regions.landmarks` rewrites its cache with the rows it is given when it detects
        lm = regions.landmarks(samples, variant, progress=False).iloc[[index]]
        pts = regions.landmark_array(lm)[0]
        centres = regions.crop_centres(pts[None], variant)[0]
        detected = bool(lm["detected"].iloc[0])
        found = "face found" if detected else "no face found: the authors' fixed fallback landmarks"
        if variant == "official":
            small = cv2.resize(bgr, (regions.MAP_SIZE, regions.MAP_SIZE), interpolation=cv2.INTER_AREA)
            axes[r, 0].imshow(small)  # BGR shown as RGB: what MTCNN receives
            scale = 1.0
            face_title = f"official: 28x28 BGR face given to MTCNN\n({found})"
        else:
            axes[r, 0].imshow(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            scale = bgr.shape[0] / regions.MAP_SIZE
            face_title = f"corrected: 224x224 RGB face, padded 25%\n({found})"
        _points(axes[r, 0], pts, scale)
        _boxes(axes[r, 0], centres, scale, labels=False)
        _image_axis(axes[r, 0], face_title, xlabel="x", ylabel=f"{variant} regions")
        if r == 0:
            axes[r, 0].legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=3, fontsize=7, frameon=False)

        strain = fmap[0, ..., 0]
        axes[r, 1].imshow(strain, cmap="magma", vmin=0, vmax=255)
        _points(axes[r, 1], pts, 1.0)
        _boxes(axes[r, 1], centres, 1.0)
        _image_axis(axes[r, 1], "flow map (strain): landmarks (dots)\nand the 14x14 crops taken (boxes)",
                    xlabel="x = column")

        inp = regions.assemble(fmap, centres[None])[0, ..., 0]
        axes[r, 2].imshow(inp, cmap="magma", vmin=0, vmax=255)
        _quadrants(axes[r, 2])
        _image_axis(axes[r, 2], "28x28 model input (strain channel):\nthe four crops, eyes over mouth corners")
    fig.suptitle(f"{row['dataset']} {row['subject']}/{row['sample']} ({row['emotion']}): the four facial regions")
    return finish(fig)
