"""Figures and tables of notebook 02 (model walkthrough; §3.2-3.3): shapes per level, blocks per hierarchy,
attention weights, where a change in one facial region reaches, parameters and FLOPs per level."""
from __future__ import annotations

from typing import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..config import ModelConfig
from . import drawn_alone, finish


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
            h = model.stages[int(name[len("hierarchy"):])].hierarchy
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
    return finish(fig)


def attention_figure(maps: Mapping[str, torch.Tensor], key: str, sample: int = 0, block: int = 0) -> Figure:
    """Attention weights of layer `key` (from `model.attention_maps`) in one block, one heatmap per head:
    rows = query token, columns = key token (row-major positions in the block); each row sums to 1."""
    a = maps[key][sample, block].detach().cpu().numpy()  # (heads, N, N)
    heads, n, _ = a.shape
    fig, axes = plt.subplots(1, heads, figsize=(2.3 * heads + 0.8, 2.6), constrained_layout=True, squeeze=False)
    for h in range(heads):
        with drawn_alone(axes[0, h]):
            sns.heatmap(a[h], ax=axes[0, h], vmin=0, vmax=1, cmap="viridis", annot=n <= 4, fmt=".2f", square=True,
                        cbar=h == heads - 1, cbar_kws={"label": "attention weight"}, annot_kws={"fontsize": 7})
        axes[0, h].set_title(f"head {h}", fontsize=9)
        axes[0, h].set_xlabel("key token")
        axes[0, h].set_ylabel("query token" if h == 0 else "")
    fig.suptitle(f"{key}, block {block}: {n} token(s) per block")
    return finish(fig)


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
    return finish(fig)


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
    return finish(fig)
