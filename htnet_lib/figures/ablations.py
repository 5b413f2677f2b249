"""Tables and figures of notebook 04 (ablations; §4.4): Tables 4-5, Figs. 5-6, from `studies.sweeps` results."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from .. import metrics
from ..loso import label as protocol_label
from . import finish

SCOPES = list(metrics.SCOPES)


def sweep_table(results: pd.DataFrame, sweep: str, protocol: str = "paper") -> pd.DataFrame:
    """One row per sweep point: its label, geometry, parameters, training seconds and UF1/UAR per scope."""
    sub = results[(results["sweep"] == sweep) & (results["protocol"] == protocol)]
    wide = sub.pivot_table(index="label", columns="scope", values=["UF1", "UAR"], sort=False)
    wide.columns = [f"{scope} {m}" for m, scope in wide.columns]
    wide = wide[[f"{s} {m}" for s in SCOPES for m in ("UF1", "UAR") if f"{s} {m}" in wide.columns]]
    info = sub.drop_duplicates("label").set_index("label")[
        ["dim", "heads", "block_repeats", "block_px", "tokens_per_block", "params", "train_s"]]
    return info.join(wide).reset_index().assign(protocol=protocol)


def sweep_figure(results: pd.DataFrame, sweep: str, x: str, title: str, paper: pd.DataFrame | None = None,
                 metric: str = "UF1") -> plt.Figure:
    """UF1 (or UAR) per scope against a swept value, for the paper protocol and the last epoch; paper points marked."""
    sub = results[(results["sweep"] == sweep) & results["protocol"].isin(["paper", "last"])].copy()
    sub["protocol"] = sub["protocol"].map(lambda p: f"ours, {protocol_label(p)}")
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for ax, (proto, g) in zip(axes, sub.groupby("protocol", sort=False)):
        sns.pointplot(data=g, x=x, y=metric, hue="scope", hue_order=SCOPES, ax=ax, dodge=0.2)
        ax.set_title(proto, fontsize=9)
        ax.set_ylim(0, 1)
        ax.set_ylabel(metric)
        ax.set_xlabel(x)
    if paper is not None and len(paper):
        axes[0].scatter(paper[x].astype(str), paper[metric], marker="x", color="black", label="paper", zorder=5)
    fig.suptitle(title)
    fig.tight_layout()
    return finish(fig)
