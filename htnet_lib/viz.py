"""Figures and small display tables for the notebooks (01 preprocess, 02 model walkthrough).

Every figure function returns a `matplotlib.figure.Figure` with titles and axis labels and draws nothing else (no
`plt.show()`, no files): a notebook cell that ends with the call displays it, and a caller can `fig.savefig(...)`.
Table functions return plain DataFrames. Nothing here changes data or models.

Data (§3.1, §4.1, Table 1):

- `example_indices(samples, per_dataset)`: a few samples per dataset, one emotion after another;
- `flow_maps_figure(maps, faces, labels)`: apex faces and the three channels of 28x28 flow maps;
- `table1_comparison(ours, paper)`: `data.class_counts` beside `paper_values.table1()`, cell by cell;
- `region_differences(samples)`: how far the `official` and `corrected` crops lie apart, per dataset;
- `regions_figure(samples, maps, index)`: landmarks, where the four 14x14 crops are taken, and the 28x28 input, for
  both region variants.

Model (§3.2-3.3):

- `stage_shapes(model, x)`: tensor shape, blocks and tokens per block after every stage;
- `blocks_figure(cfg)`: the token grid of each hierarchy with its blocks outlined;
- `attention_figure(maps, key)`: the attention weights of one layer, per head, as heatmaps;
- `region_influence(model, x)` and `influence_figure(...)`: which positions of each stage change when one facial
  region of the input changes (where mixing between regions happens);
- `pos_embed_effect(model, x)`: what each hierarchy's positional embedding can change;
- `stage_costs(cfg)` and `costs_figure(...)`: parameters and FLOPs per stage.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Mapping, Sequence

import cv2
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from . import regions
from .config import ModelConfig

# channel order of the release's maps as cv2.imread returns them (see htnet_lib.data)
CHANNELS = ("strain", "v (vertical flow)", "u (horizontal flow)")
REGION_NAMES = ("left eye", "right eye", "left mouth corner", "right mouth corner")  # quadrants TL, TR, BL, BR
REGION_LANDMARKS = (0, 1, 3, 4)  # the landmark that places each quadrant's crop (regions.REGION_LANDMARKS, flat)
VARIANT_COLOURS = {"official": "tab:orange", "corrected": "tab:cyan"}
LANDMARK_COLOURS = ("tab:red", "tab:blue", "tab:green", "tab:purple", "gold")


# --------------------------------------------------------------------------------------------------------- data

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


def _finish(fig: Figure) -> Figure:
    """Detach `fig` from pyplot so a notebook shows it once (as the cell's value), not twice (value + inline flush),
    and figures do not pile up in pyplot's registry."""
    plt.close(fig)
    return fig


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
    return _finish(fig)


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


def region_differences(samples: pd.DataFrame, progress: bool = False) -> pd.DataFrame:
    """Per dataset: samples, faces detected by each variant, samples whose four crops differ between the variants,
    and the mean and largest distance (px on the 28x28 map) between the two variants' crop centres.

    Landmarks come from `regions.landmarks` (cached). Identical centres give identical inputs, so `crops_differ`
    counts the samples whose model input changes with the variant.
    """
    ds = samples["dataset"].astype(str).to_numpy()
    lm = {v: regions.landmarks(samples, v, progress=progress) for v in regions.VARIANTS}
    centres = {v: regions.crop_centres(regions.landmark_array(lm[v]), v)[:, list(REGION_LANDMARKS)] for v in lm}
    dist = np.sqrt(((centres["official"] - centres["corrected"]) ** 2).sum(-1))  # (N, 4)
    frame = pd.DataFrame({"dataset": ds, "official_detected": lm["official"]["detected"].to_numpy(bool),
                          "corrected_detected": lm["corrected"]["detected"].to_numpy(bool),
                          "crops_differ": (dist > 0).any(axis=1), "mean_shift_px": dist.mean(axis=1),
                          "max_shift_px": dist.max(axis=1)})
    order = [d for d in pd.unique(ds)]
    if hasattr(samples["dataset"], "cat"):
        order = [d for d in samples["dataset"].cat.categories if d in set(ds)]
    rows = {}
    for name, g in [(d, frame[frame["dataset"] == d]) for d in order] + [("all", frame)]:
        rows[name] = {"samples": len(g), "official_detected": int(g["official_detected"].sum()),
                      "corrected_detected": int(g["corrected_detected"].sum()),
                      "crops_differ": int(g["crops_differ"].sum()),
                      "mean_shift_px": round(float(g["mean_shift_px"].mean()), 2),
                      "max_shift_px": round(float(g["max_shift_px"].max()), 2)}
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "dataset"
    return out


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
    bgr = cv2.imread(row["face_path"], cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(row["face_path"])
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
    return _finish(fig)


# -------------------------------------------------------------------------------------------------------- model

def stage_shapes(model: torch.nn.Module, x: torch.Tensor) -> pd.DataFrame:
    """After each stage of `model.forward_levels(x)`: shape (B, C, H, W), tokens, blocks per side and tokens per block
    of the hierarchy that works on that grid (attention only mixes tokens inside one block)."""
    levels = model.forward_levels(x)
    cfg = model.cfg
    rows = []
    for name, t in levels.items():
        row = {"stage": name, "shape": tuple(t.shape)}
        if t.dim() == 4:
            row["tokens"] = t.shape[2] * t.shape[3]
        if name.startswith("hierarchy"):
            h = model.hierarchies[int(name[len("hierarchy"):])]
            row["blocks per side"] = h.blocks_per_side
            row["tokens per block"] = h.block_edge ** 2
            row["width (dim)"] = t.shape[1]
            row["heads"] = h.layers[0].attn.heads
        rows.append(row)
    df = pd.DataFrame(rows).set_index("stage")
    for col in ("tokens", "blocks per side", "tokens per block", "width (dim)", "heads"):
        if col in df:
            df[col] = df[col].astype("Int64")
    df.attrs["config"] = cfg
    return df


def blocks_figure(cfg: ModelConfig) -> Figure:
    """The token grid each hierarchy works on (finest first), with its blocks outlined; the four facial regions
    (2x2 patches each with 7x7 patches on 28x28) are shaded on the first grid."""
    nh = cfg.num_hierarchies
    fig, axes = plt.subplots(1, nh, figsize=(3.2 * nh, 3.4), constrained_layout=True, squeeze=False)
    region_colours = ("#fde0dd", "#deebf7", "#e5f5e0", "#fff7bc")
    for i in range(nh):
        ax = axes[0, i]
        side = cfg.grid // 2 ** i
        bps = 2 ** (nh - 1 - i)
        edge = cfg.block_edge
        half = cfg.grid // 2
        for r in range(side):
            for c in range(side):
                colour = "#f0f0f0"
                if i == 0:
                    colour = region_colours[(r >= half) * 2 + (c >= half)]
                ax.add_patch(Rectangle((c, r), 1, 1, fc=colour, ec="grey", lw=0.6))
        for b in range(bps + 1):
            ax.plot([0, side], [b * edge, b * edge], color="black", lw=2.5)
            ax.plot([b * edge, b * edge], [0, side], color="black", lw=2.5)
        ax.set_xlim(-0.05, side + 0.05)
        ax.set_ylim(side + 0.05, -0.05)
        ax.set_aspect("equal")
        ax.set_xticks(np.arange(side) + 0.5, [str(k) for k in range(side)])
        ax.set_yticks(np.arange(side) + 0.5, [str(k) for k in range(side)])
        ax.set_xlabel("token column")
        ax.set_ylabel("token row")
        ax.set_title(f"hierarchy{i}: {side}x{side} tokens\n{bps}x{bps} blocks of {edge}x{edge} token(s)", fontsize=9)
    fig.suptitle(f"Blocks per hierarchy (thick lines): image {cfg.image_size}, patch {cfg.patch_size}, {nh} hierarchies\n"
                 f"attention mixes tokens inside a block only; shading marks the four facial regions", fontsize=10)
    return _finish(fig)


def attention_figure(maps: Mapping[str, torch.Tensor], key: str, sample: int = 0, block: int = 0) -> Figure:
    """Attention weights of layer `key` (from `model.attention_maps`) in one block, one heatmap per head:
    rows = query token, columns = key token (row-major positions in the block); each row sums to 1."""
    a = maps[key][sample, block].detach().cpu().numpy()  # (heads, N, N)
    heads, n, _ = a.shape
    fig, axes = plt.subplots(1, heads, figsize=(2.3 * heads + 0.8, 2.6), constrained_layout=True, squeeze=False)
    for h in range(heads):
        sns.heatmap(a[h], ax=axes[0, h], vmin=0, vmax=1, cmap="viridis", annot=n <= 4, fmt=".2f", square=True,
                    cbar=h == heads - 1, cbar_kws={"label": "attention weight"}, annot_kws={"fontsize": 7})
        axes[0, h].set_title(f"head {h}", fontsize=9)
        axes[0, h].set_xlabel("key token")
        axes[0, h].set_ylabel("query token" if h == 0 else "")
    fig.suptitle(f"{key}, block {block}: {n} token(s) per block")
    return _finish(fig)


def region_influence(model: torch.nn.Module, x: torch.Tensor, quadrant: int = 0, seed: int = 0
                     ) -> "OrderedDict[str, np.ndarray]":
    """Change every pixel of one 14x14 facial region (quadrant 0 TL, 1 TR, 2 BL, 3 BR) of input `x` (1, C, 28, 28)
    to random values and return, per stage of `model.forward_levels`, the size of the change at each position
    (L2 norm over channels, divided by the largest): which positions the region reaches after each stage.

    Hierarchies without any block of several tokens cannot carry the change to another position; block
    aggregation's 3x3 convolution and max-pool can.
    """
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"expected one sample (1, C, H, W), got {tuple(x.shape)}")
    h = x.shape[-1] // 2
    r0, c0 = (quadrant // 2) * h, (quadrant % 2) * h
    g = torch.Generator().manual_seed(seed)
    x2 = x.clone()
    lo, hi = float(x.min()), float(x.max())
    x2[..., r0:r0 + h, c0:c0 + h] = lo + (hi - lo) * torch.rand(x2[..., r0:r0 + h, c0:c0 + h].shape, generator=g)
    a, b = model.forward_levels(x), model.forward_levels(x2)
    out: OrderedDict[str, np.ndarray] = OrderedDict()
    out["input"] = (x2 - x).norm(dim=1)[0].numpy()
    for k in a:
        if k == "head":
            continue
        d = (b[k] - a[k]).norm(dim=1)[0].numpy()
        out[k] = d / d.max() if d.max() > 0 else d
    out["input"] = out["input"] / max(float(out["input"].max()), 1e-12)
    return out


def influence_figure(influence: Mapping[str, np.ndarray], title: str = "") -> Figure:
    """Heatmaps of `region_influence`: one panel per stage, 0 = unchanged, 1 = the largest change at that stage."""
    keys = list(influence)
    fig, axes = plt.subplots(1, len(keys), figsize=(1.9 * len(keys) + 0.6, 2.9), constrained_layout=True,
                             squeeze=False)
    for j, k in enumerate(keys):
        d = influence[k]
        ax = axes[0, j]
        im = ax.imshow(d, cmap="Reds", vmin=0, vmax=1)
        ax.set_xticks(range(d.shape[1]) if d.shape[1] <= 8 else [])
        ax.set_yticks(range(d.shape[0]) if d.shape[0] <= 8 else [])
        ax.set_title(f"{k}\n{d.shape[0]}x{d.shape[1]}", fontsize=8)
        ax.set_xlabel("column", fontsize=7)
        if j == 0:
            ax.set_ylabel("row", fontsize=7)
        if d.shape[0] <= 8:
            for (r, c), v in np.ndenumerate(d):
                ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=6, color="black" if v < 0.6 else "white")
    fig.colorbar(im, ax=axes[0, -1], fraction=0.08, label="relative change")
    fig.suptitle(title or "Where a change in one facial region reaches, stage by stage", fontsize=10)
    return _finish(fig)


def pos_embed_effect(model: torch.nn.Module, x: torch.Tensor, shift: float = 5.0) -> pd.DataFrame:
    """Add `shift` to one hierarchy's positional embedding at a time and report the largest change of the logits.

    The embedding is one scalar per position in a block, the same for every channel, and every transformer layer
    starts with a LayerNorm over channels, which removes exactly such a shift; only block aggregation's convolution
    sees it. So the last hierarchy's embedding (no aggregation after it; the head starts with a LayerNorm too) cannot
    change the output. The model is restored afterwards.
    """
    rows = []
    with torch.no_grad():
        base = model(x)
        for i, h in enumerate(model.hierarchies):
            saved = h.pos_embed.detach().clone()  # restore bit for bit (x + s - s need not equal x)
            h.pos_embed.add_(shift)
            try:
                changed = model(x)
            finally:
                h.pos_embed.copy_(saved)
            rows.append({"hierarchy": f"hierarchy{i}", "pos_embed shape": tuple(h.pos_embed.shape),
                         "pos_embed values": [round(float(v), 4) for v in h.pos_embed],
                         f"max |logit change| for +{shift:g}": float((changed - base).abs().max())})
    return pd.DataFrame(rows).set_index("hierarchy")


def stage_costs(cfg: ModelConfig) -> pd.DataFrame:
    """Per stage (patch embedding, hierarchies, aggregations, head) and in total: parameters, their float32 size in
    MB (2**20 bytes), forward MFLOPs per sample and forward+backward MFLOPs per sample (`model.flops_by_level`;
    a multiply-add counts 2), and each stage's share of the parameters.

    Built on the meta device: instant, no memory, even for the paper's 139.6M-parameter configuration.
    """
    from .model import HTNet, count_parameters, flops_by_level, stage_names

    with torch.device("meta"):
        m = HTNet(cfg)
    params: dict[str, int] = {"patch_embedding": count_parameters(m.patch_embedding)}
    for i, h in enumerate(m.hierarchies):
        params[f"hierarchy{i}"] = count_parameters(h)
        if i < len(m.aggregations):
            params[f"aggregation{i}"] = count_parameters(m.aggregations[i])
    params["head"] = count_parameters(m.norm) + count_parameters(m.head)
    fwd, train = flops_by_level(cfg, train=False), flops_by_level(cfg, train=True)
    names = stage_names(cfg)
    df = pd.DataFrame({"params": [params[s] for s in names],
                       "params_MB_fp32": [params[s] * 4 / 2 ** 20 for s in names],
                       "MFLOPs_forward": [fwd[s] / 1e6 for s in names],
                       "MFLOPs_train": [train[s] / 1e6 for s in names]}, index=pd.Index(names, name="stage"))
    df.loc["total"] = df.sum()
    if int(df.loc["total", "params"]) != count_parameters(m):
        raise AssertionError("per-stage parameters do not add up to the model's")  # guards the stage split
    df["params"] = df["params"].astype(np.int64)
    df["params_share"] = df["params"] / df.loc["total", "params"]
    return df


def costs_figure(costs: Mapping[str, pd.DataFrame]) -> Figure:
    """Share of parameters and of forward FLOPs per stage, one bar colour per configuration (`stage_costs` frames)."""
    rows = []
    for name, df in costs.items():
        d = df.drop(index="total")
        for stage, r in d.iterrows():
            rows.append({"config": name, "stage": stage, "quantity": "parameters",
                         "share": r["params"] / d["params"].sum()})
            rows.append({"config": name, "stage": stage, "quantity": "forward FLOPs",
                         "share": r["MFLOPs_forward"] / d["MFLOPs_forward"].sum()})
    long = pd.DataFrame(rows)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), constrained_layout=True, sharey=True)
    for ax, q in zip(axes, ("parameters", "forward FLOPs")):
        sns.barplot(data=long[long["quantity"] == q], x="stage", y="share", hue="config", ax=ax)
        ax.set_title(f"share of {q} per stage")
        ax.set_xlabel("stage (processing order)")
        ax.set_ylabel("share of the model's total")
        ax.tick_params(axis="x", rotation=35, labelsize=8)
        ax.set_ylim(0, 1)
    fig.suptitle("Where HTNet's parameters and FLOPs sit")
    return _finish(fig)
