"""The paper's tables and figures, ours beside the paper's (§4-5): Table 2, Tables 4-5, Figs. 5-7, the protocol audit.

Each `*_table` returns a tidy DataFrame; each `*_figure` a matplotlib Figure with a title, axis labels and the
paper's value marked where the paper gives one (`paper_values`). `save_table` / `save_figure` write them into
`figures/` (CSV + markdown, PNG + the plotted data as CSV), atomically.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from . import loso, metrics, paper_values
from ._io import REPO_ROOT, atomic_path

FIGURES_DIR = REPO_ROOT / "figures"
SCOPES = list(metrics.SCOPES)
PROTOCOL_NAMES = {"paper": "ours, paper protocol (epoch picked on test labels)",
                  "last": "ours, last epoch (honest)", "inner": "ours, epoch picked on inner subjects (honest)"}


def _protocol_name(p: str) -> str:
    if p.startswith("fixed@"):
        return f"ours, epoch {p.split('@')[1]} (honest)"
    return PROTOCOL_NAMES.get(p, p)


# ---------------------------------------------------------------- saving

def save_table(df: pd.DataFrame, name: str, out_dir: str | os.PathLike = FIGURES_DIR) -> list[Path]:
    """`name`.csv and `name`.md in `out_dir`."""
    out = Path(out_dir)
    paths = [out / f"{name}.csv", out / f"{name}.md"]
    with atomic_path(paths[0]) as tmp:
        df.to_csv(tmp, index=False)
    with atomic_path(paths[1]) as tmp:
        tmp.write_text(df.to_markdown(index=False, floatfmt=".4f") + "\n")
    return paths


def save_figure(fig: plt.Figure, name: str, data: pd.DataFrame | None = None,
                out_dir: str | os.PathLike = FIGURES_DIR) -> list[Path]:
    """`name`.png (and `name`.csv with the plotted numbers) in `out_dir`."""
    out = Path(out_dir)
    paths = [out / f"{name}.png"]
    with atomic_path(paths[0]) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    if data is not None:
        paths += save_table(data, name, out)[:1]
    return paths


# ---------------------------------------------------------------- Table 2

def table2(run_dirs: Sequence[str | os.PathLike], authors: pd.DataFrame | None = None) -> pd.DataFrame:
    """Table 2 (§4.2): UF1/UAR per scope for the paper's reported HTNet row, the authors' stored predictions and our
    runs under each protocol (mean and sd over the runs' seeds). Columns: source, scope, UF1, UAR, UF1_sd, UAR_sd, runs.
    """
    rows = []
    reported = paper_values.htnet_table2()
    for scope in SCOPES:
        if scope in reported.index:
            rows.append({"source": "paper (reported)", "scope": scope, "UF1": reported.loc[scope, "UF1"],
                         "UAR": reported.loc[scope, "UAR"], "runs": 0})
    if authors is not None:
        for scope, r in metrics.scores(authors).iterrows():
            rows.append({"source": "authors' stored predictions", "scope": scope, "UF1": r["UF1"], "UAR": r["UAR"],
                         "runs": 0})
    if run_dirs:
        summary = loso.seed_summary(run_dirs)
        for _, r in summary.iterrows():
            rows.append({"source": _protocol_name(r["protocol"]), "scope": r["scope"], "UF1": r["UF1_mean"],
                         "UAR": r["UAR_mean"], "UF1_sd": r["UF1_sd"], "UAR_sd": r["UAR_sd"], "runs": int(r["seeds"])})
    out = pd.DataFrame(rows)
    for c in ("UF1_sd", "UAR_sd"):
        if c not in out:
            out[c] = np.nan
    return out[["source", "scope", "UF1", "UAR", "UF1_sd", "UAR_sd", "runs"]]


def table2_figure(t2: pd.DataFrame, metric: str = "UF1") -> plt.Figure:
    """Grouped bars of Table 2, the paper's reported value drawn as a black tick per scope."""
    fig, ax = plt.subplots(figsize=(10, 4.2))
    ours = t2[t2["source"] != "paper (reported)"]
    sns.barplot(data=ours, x="scope", y=metric, hue="source", order=SCOPES, ax=ax)
    paper = t2[t2["source"] == "paper (reported)"].set_index("scope")
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
    return fig


# ---------------------------------------------------------------- Fig. 7

def confusion_figure(panels: dict[str, pd.DataFrame], pred_cols: dict[str, str] | None = None) -> plt.Figure:
    """Fig. 7: row-normalised confusion matrices per scope, one row of panels per source (e.g. ours, the authors')."""
    labels = ["negative", "positive", "surprise"]
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
    return fig


# ---------------------------------------------------------------- oracle vs honest over epochs

def curves(run_dirs: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """The runs' `curve.csv` stacked, with a `seed` column."""
    frames = []
    for d in run_dirs:
        c = pd.read_csv(Path(d) / "curve.csv")
        seed = json.loads((Path(d) / "run.json").read_text())["params"]["seed"]
        frames.append(c.assign(seed=seed))
    return pd.concat(frames, ignore_index=True)


def curve_figure(run_curves: pd.DataFrame, guess_curve: pd.DataFrame | None = None, metric: str = "UF1") -> plt.Figure:
    """Per scope: the paper protocol's pick among epochs 1..E against the prediction at E, over E (mean and band over
    seeds), with random guesses under the same pick for reference and the paper's reported value as a line."""
    fig, axes = plt.subplots(1, len(SCOPES), figsize=(4.2 * len(SCOPES), 3.6), sharey=True)
    reported = paper_values.htnet_table2()
    data = run_curves.assign(source="HTNet: " + run_curves["protocol"])
    if guess_curve is not None:
        g = guess_curve[guess_curve["protocol"] == "paper (oracle)"]
        data = pd.concat([data, g.assign(source="random guesses: paper (oracle)")], ignore_index=True)
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
    return fig


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
    return fig


# ---------------------------------------------------------------- ablations

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
    sub["protocol"] = sub["protocol"].map(_protocol_name)
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
    return fig


# ---------------------------------------------------------------- protocol audit

def audit_table(guess_scores: pd.DataFrame, real: Sequence[str | os.PathLike], shuffled: Sequence[str | os.PathLike] = ()) -> pd.DataFrame:
    """What the paper's selection gives on no information (random guesses, a model trained on shuffled labels) beside
    real runs, each under the paper protocol and at a fixed epoch; mean and sd over repeats/seeds."""
    frames = [metrics.mean_sd(guess_scores).assign(predictions="random guesses (class priors)")]
    for name, dirs in (("HTNet, real labels", real), ("HTNet, shuffled labels", shuffled)):
        if dirs:
            s = loso.seed_summary(dirs).rename(columns={"seeds": "n"})
            s = s[s["protocol"].isin(["paper", "last"])]
            s["protocol"] = s["protocol"].map({"paper": "paper (oracle)", "last": "fixed epoch"})
            frames.append(s.assign(predictions=name))
    out = pd.concat(frames, ignore_index=True)
    return out[["predictions", "protocol", "scope", "UF1_mean", "UF1_sd", "UAR_mean", "UAR_sd", "n"]]


def audit_figure(audit: pd.DataFrame, metric: str = "UF1") -> plt.Figure:
    """Bars: paper protocol vs fixed epoch for each kind of predictions, per scope; the paper's reported value marked."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
    reported = paper_values.htnet_table2()
    for ax, proto in zip(axes, ["paper (oracle)", "fixed epoch"]):
        sub = audit[audit["protocol"] == proto]
        sns.barplot(data=sub, x="scope", y=f"{metric}_mean", hue="predictions", order=SCOPES, ax=ax)
        for i, scope in enumerate(SCOPES):
            if scope in reported.index:
                ax.hlines(reported.loc[scope, metric], i - 0.42, i + 0.42, colors="black", linewidth=2.5,
                          label="paper (reported)" if i == 0 else None)
        ax.set_title(f"{proto}" + (": each subject's best epoch by its test labels" if proto.startswith("paper") else
                                   ": no test labels used"), fontsize=9)
        ax.set_ylabel(metric)
        ax.set_xlabel("dataset")
        ax.set_ylim(0, 1)
        ax.get_legend().remove()
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=4, bbox_to_anchor=(0.5, -0.06))
    fig.suptitle(f"Protocol audit ({metric}): the paper's epoch selection applied to uninformative predictions")
    fig.tight_layout()
    return fig
