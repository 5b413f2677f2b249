"""Tables and figures of notebook 03 (LOSO training; §4.2-4.3, §5): Table 2 beside the paper, Fig. 7's confusion
matrices, which epoch the paper protocol keeps, and its pick against a fixed epoch over the length of training."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .. import metrics, paper_values, release
from ..loso import Run, label as protocol_label, seed_summary
from . import finish

SCOPES = list(metrics.SCOPES)
PAPER = "paper (reported)"
AUTHORS = "authors' stored predictions"


def source_name(protocol: str) -> str:
    """How our runs under a protocol are named in tables: 'ours, <protocol label>'."""
    return f"ours, {protocol_label(protocol)}"


def table2(runs: Sequence[Run], authors: pd.DataFrame | None = None) -> pd.DataFrame:
    """Table 2 (§4.3), long: UF1/UAR per scope for the paper's reported HTNet row, the authors' stored predictions and
    our runs under each protocol (mean and sd over the runs' seeds).
    Columns: source, protocol, scope, UF1, UAR, UF1_sd, UAR_sd, runs."""
    rows = []
    reported = paper_values.htnet_table2()
    for scope in SCOPES:
        if scope in reported.index:
            rows.append({"source": PAPER, "protocol": "", "scope": scope, "UF1": reported.loc[scope, "UF1"],
                         "UAR": reported.loc[scope, "UAR"], "runs": 0})
    if authors is not None:
        for scope, r in metrics.scores(authors).iterrows():
            rows.append({"source": AUTHORS, "protocol": "", "scope": scope, "UF1": r["UF1"], "UAR": r["UAR"], "runs": 0})
    if runs:
        for r in seed_summary(runs).itertuples():
            rows.append({"source": source_name(r.protocol), "protocol": r.protocol, "scope": r.scope,
                         "UF1": r.UF1_mean, "UAR": r.UAR_mean, "UF1_sd": r.UF1_sd, "UAR_sd": r.UAR_sd, "runs": r.seeds})
    out = pd.DataFrame(rows)
    for c in ("UF1_sd", "UAR_sd"):
        if c not in out:
            out[c] = np.nan
    return out[["source", "protocol", "scope", "UF1", "UAR", "UF1_sd", "UAR_sd", "runs"]]


def wide(long: pd.DataFrame, values: Sequence[str] = ("UF1", "UAR")) -> pd.DataFrame:
    """A long source x scope table as the paper prints it: one row per source, one column per (scope, metric)."""
    t = long.pivot_table(index="source", columns="scope", values=list(values), sort=False)
    t = t.swaplevel(axis=1)
    order = [s for s in SCOPES if s in t.columns.get_level_values(0)]
    t = t[[(s, m) for s in order for m in values if (s, m) in t.columns]]
    t.columns = [f"{s} {m}" for s, m in t.columns]
    return t.reindex(list(dict.fromkeys(long["source"]))).reset_index()


def table2_figure(t2: pd.DataFrame, metric: str = "UF1") -> plt.Figure:
    """Grouped bars of Table 2, the paper's reported value drawn as a black tick per scope."""
    fig, ax = plt.subplots(figsize=(10, 4.2))
    ours = t2[t2["source"] != PAPER]
    sns.barplot(data=ours, x="scope", y=metric, hue="source", order=SCOPES, ax=ax)
    paper = t2[t2["source"] == PAPER].set_index("scope")
    for i, scope in enumerate(SCOPES):
        if scope in paper.index:
            ax.hlines(paper.loc[scope, metric], i - 0.42, i + 0.42, colors="black", linewidth=2.5,
                      label="paper (reported)" if i == 0 else None)
    ax.set_ylim(0, 1)
    ax.set_xlabel("dataset")
    ax.set_ylabel(metric)
    ax.set_title(f"Table 2: {metric} under leave-one-subject-out (black: the paper's reported HTNet)")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2)
    fig.tight_layout()
    return finish(fig)


def confusion_figure(panels: dict[str, pd.DataFrame], pred_cols: dict[str, str] | None = None) -> plt.Figure:
    """Fig. 7: row-normalised confusion matrices per scope, one row of panels per source (e.g. ours, the authors')."""
    labels = list(release.CLASSES)
    fig, axes = plt.subplots(len(panels), len(SCOPES), figsize=(3.2 * len(SCOPES), 3.0 * len(panels)), squeeze=False)
    for r, (name, preds) in enumerate(panels.items()):
        col = (pred_cols or {}).get(name, "pred")
        for c, scope in enumerate(SCOPES):
            sub = metrics.scope_rows(preds, scope)
            cm = metrics.confusion(sub["label"], sub[col])
            norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
            sns.heatmap(norm, annot=cm, fmt="d", cmap="Blues", vmin=0, vmax=1, cbar=False, ax=axes[r, c],
                        xticklabels=labels, yticklabels=labels)
            axes[r, c].set_title(f"{name}\n{scope}", fontsize=9)
            axes[r, c].set_xlabel("predicted")
            axes[r, c].set_ylabel("true")
    fig.suptitle("Fig. 7: confusion matrices (counts; colour = share of the true class)")
    fig.tight_layout()
    return finish(fig)


def curves(runs: Sequence[Run]) -> pd.DataFrame:
    """The runs' `curve.csv` stacked, with a `seed` column."""
    return pd.concat([r.curve().assign(seed=r.seed) for r in runs], ignore_index=True)


def curve_figure(run_curves: pd.DataFrame, guess_curve: pd.DataFrame | None = None, metric: str = "UF1") -> plt.Figure:
    """Per scope: the paper protocol's pick among epochs 1..E against the prediction at E, over E (mean and band over
    seeds), with random guesses under the same pick for reference and the paper's reported value as a line."""
    fig, axes = plt.subplots(1, len(SCOPES), figsize=(4.2 * len(SCOPES), 3.6), sharey=True)
    reported = paper_values.htnet_table2()
    data = run_curves.assign(source="HTNet: " + run_curves["protocol"].map(protocol_label))
    if guess_curve is not None:
        g = guess_curve[guess_curve["protocol"] == "paper"]
        data = pd.concat([data, g.assign(source="random guesses: " + protocol_label("paper"))], ignore_index=True)
    for ax, scope in zip(axes, SCOPES):
        sub = data[data["scope"] == scope]
        sns.lineplot(data=sub, x="epoch", y=metric, hue="source", errorbar="sd", ax=ax, legend=ax is axes[-1])
        if scope in reported.index:
            ax.axhline(reported.loc[scope, metric], color="black", linestyle="--", linewidth=1,
                       label="paper (reported)")
        ax.set_xscale("log")
        ax.set_title(scope)
        ax.set_xlabel("epochs trained (E)")
        ax.set_ylabel(metric)
        ax.set_ylim(0, 1)
    axes[-1].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{metric}: best epoch picked per subject on its test labels vs. the prediction after E epochs")
    fig.tight_layout()
    return finish(fig)


def epoch_pick_figure(preds: pd.DataFrame) -> plt.Figure:
    """Which epoch the paper protocol kept for each held-out subject (one point per subject)."""
    picks = preds.drop_duplicates("subject")[["subject", "dataset", "paper_epoch", "last_epoch"]]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    sns.stripplot(data=picks, x="paper_epoch", y="dataset", hue="dataset", ax=ax, jitter=0.25, legend=False)
    ax.set_xlim(0, picks["last_epoch"].max() + 1)
    ax.set_xlabel("epoch whose predictions were kept (best test accuracy of that subject, ties to the later)")
    ax.set_ylabel("held-out subject's dataset")
    ax.set_title("Paper protocol: the epoch picked per subject")
    fig.tight_layout()
    return finish(fig)
