"""Tables and figures of notebook 03 (LOSO training; §4.2-4.3, §5): Table 2 and Table 3 beside the paper, Fig. 7's
per-class accuracies and confusion matrices, which epoch the paper protocol keeps, and its pick against a fixed
epoch over the length of training.

Every "ours" number is a mean over the runs' seeds with its sd and a 95% bootstrap interval over subjects
(`metrics.bootstrap`); the paper's value for the same configuration (`paper_values.reported_for`) stands beside it,
with the difference and whether the paper's value lies inside our interval.
"""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .. import metrics, paper_values, release
from ..config import ModelConfig
from ..models.registry import network_name
from ..loso import Run, label as protocol_label, protocol_scores
from . import drawn_alone, finish

PAPER = "paper (reported)"
AUTHORS = "authors' stored predictions"


def source_name(protocol: str) -> str:
    """How our runs under a protocol are named in tables: 'ours, <protocol label>'."""
    return f"ours, {protocol_label(protocol)}"


def protocols_of(runs: Sequence[Run]) -> list[str]:
    """The protocols the runs scored (their params' `protocols:` included)."""
    return list(runs[0].meta["protocols"])


def predictions(run: Run, protocols: Sequence[str] = ()) -> pd.DataFrame:
    """A run's predictions table with a column for each of `protocols`: those it scored when it finished, and any
    other registered protocol computed from its fold records."""
    preds = run.predictions()
    missing = [p for p in protocols if p not in preds.columns]
    if missing:
        extra = run.protocol_predictions(missing)
        for p in missing:
            preds[p], preds[f"{p}_epoch"] = extra[p].to_numpy(), extra[f"{p}_epoch"].to_numpy()
        preds.attrs["protocols"] = list(dict.fromkeys([*(preds.attrs.get("protocols") or []), *missing]))
    return preds


def ours(runs: Sequence[Run], protocols: Sequence[str] | None = None, n_boot: int = 1000) -> pd.DataFrame:
    """Our runs (one per seed) per protocol and scope: UF1/UAR mean over seeds, sd, and the 95% subject-bootstrap
    interval of the mean. `protocols`: any registered ones (default: those the runs scored). Columns: protocol,
    scope, UF1, UF1_sd, UF1_lo, UF1_hi, UAR, UAR_sd, UAR_lo, UAR_hi, seeds."""
    protocols = list(protocols or protocols_of(runs))
    preds = [predictions(r, protocols) for r in runs]
    per_seed = pd.concat([protocol_scores(_only(p, protocols)) for p in preds])
    sd = per_seed.groupby(["protocol", "scope"])[["UF1", "UAR"]].std(ddof=1)
    rows = []
    for p in protocols:
        b = metrics.bootstrap(preds, pred_col=p, n_boot=n_boot)
        for scope, r in b.iterrows():
            rows.append({"protocol": p, "scope": scope, "UF1": r["UF1"], "UF1_sd": sd.loc[(p, scope), "UF1"],
                         "UF1_lo": r["UF1_lo"], "UF1_hi": r["UF1_hi"], "UAR": r["UAR"],
                         "UAR_sd": sd.loc[(p, scope), "UAR"], "UAR_lo": r["UAR_lo"], "UAR_hi": r["UAR_hi"],
                         "seeds": len(runs)})
    return pd.DataFrame(rows)


def _only(preds: pd.DataFrame, protocols: Sequence[str]) -> pd.DataFrame:
    out = preds.copy()
    out.attrs["protocols"] = list(protocols)
    return out


def table2(runs: Sequence[Run], authors: pd.DataFrame | None = None, n_boot: int = 1000,
           protocols: Sequence[str] | None = None) -> pd.DataFrame:
    """Table 2 (§4.3), long: ours per protocol (mean over seeds, sd, interval; `protocols`: any registered ones,
    default those the runs scored), the paper's reported value for the runs' configuration beside each with the
    difference, and the authors' stored predictions. Scopes are those of the data: Full and each dataset present
    (a dataset outside the composite has its own rows).

    Columns: source, protocol, scope, UF1, UF1_sd, UF1_lo, UF1_hi, UAR (same), seeds, paper_UF1, paper_UAR,
    diff_UF1, diff_UAR (ours - paper), paper_in_ci (the paper's UF1 inside our UF1 interval), paper_source.
    """
    reported, where = paper_values.reported_for(runs[0].params.model) if runs else (paper_values.htnet_table2(),
                                                                                   "Table 2, §4.3")
    frames = []
    if runs:
        o = ours(runs, protocols, n_boot=n_boot)
        o.insert(0, "source", o["protocol"].map(source_name))
        frames.append(o)
    if authors is not None:
        a = metrics.bootstrap(authors, n_boot=n_boot).reset_index(names="scope")
        frames.append(a.assign(source=AUTHORS, protocol="", seeds=np.nan))
    shown = release.scopes_of(pd.concat(frames)) if frames else release.scopes()
    p = reported.reset_index(names="scope").assign(source=PAPER, protocol="")
    frames.append(p[p["scope"].isin(shown)])
    out = pd.concat(frames, ignore_index=True)
    out["paper_UF1"] = out["scope"].map(reported["UF1"])
    out["paper_UAR"] = out["scope"].map(reported["UAR"])
    out["diff_UF1"] = out["UF1"] - out["paper_UF1"]
    out["diff_UAR"] = out["UAR"] - out["paper_UAR"]
    inside = (out["UF1_lo"] <= out["paper_UF1"]) & (out["paper_UF1"] <= out["UF1_hi"])
    out["paper_in_ci"] = np.where(out["source"] == PAPER, None, inside)
    out.loc[out["source"] == PAPER, ["diff_UF1", "diff_UAR"]] = np.nan
    out["paper_source"] = where
    cols = ["source", "protocol", "scope", "UF1", "UF1_sd", "UF1_lo", "UF1_hi", "UAR", "UAR_sd", "UAR_lo", "UAR_hi",
            "seeds", "paper_UF1", "paper_UAR", "diff_UF1", "diff_UAR", "paper_in_ci", "paper_source"]
    return out.reindex(columns=cols)


def wide(long: pd.DataFrame, values: Sequence[str] = ("UF1", "UAR"), digits: int = 4) -> pd.DataFrame:
    """A long table as the paper prints it: one row per source, one column per (scope, metric); ours as
    'mean ± sd [lo, hi]', single values (the paper's, the authors') as they are."""
    def cell(r, m):
        v = r[m]
        if pd.isna(v):
            return ""
        text = f"{v:.{digits}f}"
        if "seeds" in r and r["seeds"] == r["seeds"] and r["seeds"] > 1 and not pd.isna(r.get(f"{m}_sd")):
            text += f" ± {r[f'{m}_sd']:.{digits - 1}f}"
        if not pd.isna(r.get(f"{m}_lo", np.nan)):
            text += f" [{r[f'{m}_lo']:.{digits - 1}f}, {r[f'{m}_hi']:.{digits - 1}f}]"
        return text

    rows = {}
    for _, r in long.iterrows():
        row = rows.setdefault(r["source"], {"source": r["source"]})
        for m in values:
            row[f"{r['scope']} {m}"] = cell(r, m)
    cols = ["source"] + [f"{s} {m}" for s in release.scopes_of(long) for m in values]
    return pd.DataFrame(list(rows.values())).reindex(columns=[c for c in cols if c == "source" or
                                                              c in {k for v in rows.values() for k in v}])


def table2_figure(t2: pd.DataFrame, metric: str = "UF1") -> plt.Figure:
    """Table 2 as bars: ours per protocol (mean over seeds, 95% subject-bootstrap interval), the authors' stored
    predictions, the paper's HTNet (black line) and the paper's 12 earlier methods (grey dots; handcrafted as x)."""
    scopes = release.scopes_of(t2)
    fig, ax = plt.subplots(figsize=(11 * max(1, len(scopes) / 4), 4.6))
    bars = t2[t2["source"] != PAPER].reset_index(drop=True)
    sources = list(dict.fromkeys(bars["source"]))
    width = 0.8 / max(1, len(sources))
    for j, src in enumerate(sources):
        sub = bars[bars["source"] == src].set_index("scope").reindex(scopes)
        x = np.arange(len(scopes)) - 0.4 + width * (j + 0.5)
        err = np.vstack([sub[metric] - sub[f"{metric}_lo"], sub[f"{metric}_hi"] - sub[metric]])
        ax.bar(x, sub[metric], width, label=src, yerr=np.nan_to_num(err), capsize=2)
    earlier = paper_values.table2()
    earlier = earlier[~earlier["ours"]]
    for i, scope in enumerate(scopes):
        e = earlier[earlier["dataset"] == scope]
        for fam, marker in (("handcrafted", "x"), ("deep", "o")):
            v = e[e["family"] == fam][metric]
            ax.scatter(np.full(len(v), i + 0.45), v, marker=marker, s=14, color="grey", zorder=4,
                       label=f"paper: earlier {fam} methods" if i == 0 else None)
    paper = t2[t2["source"] == PAPER].set_index("scope")
    for i, scope in enumerate(scopes):
        if scope in paper.index:
            ax.hlines(paper.loc[scope, metric], i - 0.42, i + 0.42, colors="black", linewidth=2.5,
                      label=f"paper: HTNet ({t2['paper_source'].iloc[0]})" if i == 0 else None)
    ax.set_xticks(range(len(scopes)), scopes)
    ax.set_ylim(0, 1)
    ax.set_xlabel("dataset")
    ax.set_ylabel(metric)
    seeds = bars["seeds"].max()
    ax.set_title(f"Table 2: {metric} under leave-one-subject-out (ours: mean of {seeds:.0f} seed(s), 95% interval "
                 f"over subjects)", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=3)
    fig.tight_layout()
    return finish(fig)


# ---------------------------------------------------------------- Fig. 7

def per_class(runs: Sequence[Run], protocol: str, authors: pd.DataFrame | None = None) -> pd.DataFrame:
    """Fig. 7's numbers: per scope and class, the accuracy (recall) of ours (mean over seeds and sd), the authors'
    stored predictions, and the paper's stated value with the difference. Columns: scope, emotion, ours, ours_sd,
    authors, paper, paper_relation, diff."""
    rows = []
    preds = [predictions(r, [protocol]) for r in runs]
    for scope in release.scopes_of(preds[0]):
        recalls = []
        for p in preds:
            sub = metrics.scope_rows(p, scope)
            c = metrics.confusion(sub["label"], sub[protocol])
            recalls.append(np.diag(c) / np.maximum(c.sum(1), 1))
        rec = np.array(recalls)
        auth = None
        if authors is not None:
            sub = metrics.scope_rows(authors, scope)
            c = metrics.confusion(sub["label"], sub["pred"])
            auth = np.diag(c) / np.maximum(c.sum(1), 1)
        for k, emotion in enumerate(release.CLASSES):
            rows.append({"scope": scope, "emotion": emotion, "ours": rec[:, k].mean(),
                         "ours_sd": rec[:, k].std(ddof=1) if len(rec) > 1 else np.nan,
                         "authors": auth[k] if auth is not None else np.nan})
    out = pd.DataFrame(rows)
    paper = paper_values.fig7().set_index(["dataset", "emotion"])
    key = list(zip(out["scope"], out["emotion"]))
    out["paper"] = [paper["accuracy"].get(k, np.nan) for k in key]
    out["paper_relation"] = [paper["relation"].get(k, "") for k in key]
    out["diff"] = out["ours"] - out["paper"]
    return out


def confusion_figure(panels: dict[str, list[pd.DataFrame]], pred_cols: dict[str, str] | None = None) -> plt.Figure:
    """Fig. 7: confusion matrices per scope (counts summed over a source's seeds; colour = share of the true class),
    one row of panels per source (e.g. ours under two protocols, the authors')."""
    labels = list(release.CLASSES)
    scopes = release.scopes_of(next(iter(panels.values()))[0])
    fig, axes = plt.subplots(len(panels), len(scopes), figsize=(3.2 * len(scopes), 3.0 * len(panels)), squeeze=False)
    for r, (name, tables) in enumerate(panels.items()):
        col = (pred_cols or {}).get(name, "pred")
        for c, scope in enumerate(scopes):
            cm = sum(metrics.confusion(metrics.scope_rows(t, scope)["label"], metrics.scope_rows(t, scope)[col])
                     for t in tables)
            norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
            with drawn_alone(axes[r, c]):
                sns.heatmap(norm, annot=cm, fmt="d", cmap="Blues", vmin=0, vmax=1, cbar=False, ax=axes[r, c],
                            xticklabels=labels, yticklabels=labels)
            seeds = f" ({len(tables)} seeds summed)" if len(tables) > 1 else ""
            axes[r, c].set_title(f"{name}{seeds}\n{scope}", fontsize=9)
            axes[r, c].set_xlabel("predicted")
            axes[r, c].set_ylabel("true")
    fig.suptitle("Fig. 7: confusion matrices (counts; colour = share of the true class)")
    fig.tight_layout()
    return finish(fig)


def per_class_figure(pc: pd.DataFrame) -> plt.Figure:
    """Per-class accuracy per scope: ours (mean over seeds, sd as error bar), the authors' stored predictions, and the
    accuracies the paper states (§5: Full 0.94 / 0.81 / 0.80; SMIC-HS positive 0.76, surprise 0.72) as black marks."""
    scopes = release.scopes_of(pc)
    fig, axes = plt.subplots(1, len(scopes), figsize=(3.4 * len(scopes), 3.4), sharey=True, squeeze=False)
    axes = axes[0]
    for ax, scope in zip(axes, scopes):
        d = pc[pc["scope"] == scope].reset_index(drop=True)
        x = np.arange(len(d))
        ax.bar(x - 0.18, d["ours"], 0.36, yerr=np.nan_to_num(d["ours_sd"]), capsize=2, label="ours")
        ax.bar(x + 0.18, d["authors"], 0.36, label="authors' stored predictions", color="tab:orange")
        has = d["paper"].notna()
        ax.scatter(x[has], d.loc[has, "paper"], marker="_", s=400, color="black", zorder=5, label="paper (§5)")
        ax.set_xticks(x, d["emotion"])
        ax.set_title(scope)
        ax.set_ylim(0, 1)
        ax.set_ylabel("accuracy (recall) of the class")
    axes[-1].legend(fontsize=7, loc="lower right")
    fig.suptitle("Fig. 7's per-class accuracies: ours beside the values the paper states")
    fig.tight_layout()
    return finish(fig)


# ---------------------------------------------------------------- Table 3

def table3(runs: Sequence[Run] = (), n_boot: int = 1000) -> pd.DataFrame:
    """Table 3 (CAS(ME)^3 part A, §4.3): the paper's five rows, and ours (per protocol, mean over seeds with
    interval) when runs on a CAS(ME)^3 release are given. Columns: source, protocol, UF1, UF1_lo, UF1_hi, UAR,
    UAR_lo, UAR_hi, seeds, diff_UF1, diff_UAR (ours - the paper's HTNet)."""
    paper = paper_values.table3()
    rows = [{"source": f"paper: {r.method}", "protocol": "", "UF1": r.UF1, "UAR": r.UAR} for r in paper.itertuples()]
    out = pd.DataFrame(rows)
    if runs:
        o = ours(runs, n_boot=n_boot)
        o = o[o["scope"] == release.name_of("casme3")]
        o = o.assign(source=o["protocol"].map(source_name))
        out = pd.concat([out, o.drop(columns="scope")], ignore_index=True)
        htnet = paper[paper["ours"]].iloc[0]
        out["diff_UF1"] = np.where(out["protocol"] != "", out["UF1"] - htnet["UF1"], np.nan)
        out["diff_UAR"] = np.where(out["protocol"] != "", out["UAR"] - htnet["UAR"], np.nan)
    return out


# ---------------------------------------------------------------- the paper protocol's epoch pick

def curves(runs: Sequence[Run]) -> pd.DataFrame:
    """The runs' `curve.csv` stacked, with a `seed` column."""
    return pd.concat([r.curve().assign(seed=r.seed) for r in runs], ignore_index=True)


def curve_figure(run_curves: pd.DataFrame, guess_curve: pd.DataFrame | None = None, metric: str = "UF1",
                 model: ModelConfig | None = None) -> plt.Figure:
    """Per scope: each protocol of the runs' curves over E (mean and sd band over seeds): the paper protocol's pick
    among epochs 1..E against the prediction at E, and any other protocol the runs score; random guesses under the
    paper's pick for reference and the paper's reported value as a line."""
    scopes = release.scopes_of(run_curves)
    fig, axes = plt.subplots(1, len(scopes), figsize=(4.2 * len(scopes), 3.6), sharey=True, squeeze=False)
    axes = axes[0]
    reported = paper_values.reported_for(model)[0] if model is not None else paper_values.htnet_table2()
    name = network_name(model) if model is not None else "ours"
    data = run_curves.assign(source=f"{name}: " + run_curves["protocol"].map(protocol_label))
    if guess_curve is not None:
        g = guess_curve[guess_curve["protocol"] == "paper"]
        data = pd.concat([data, g.assign(source="random guesses: " + protocol_label("paper"))], ignore_index=True)
    for ax, scope in zip(axes, scopes):
        sub = data[data["scope"] == scope]
        sns.lineplot(data=sub, x="epoch", y=metric, hue="source", errorbar="sd", ax=ax, legend=ax is axes[-1])
        if scope in reported.index:
            ax.axhline(reported.loc[scope, metric], color="black", linestyle="--", linewidth=1, label=PAPER)
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
    picks = preds.drop_duplicates("subject")[["subject", "dataset", "paper_epoch", "last_epoch"]].copy()
    picks["dataset"] = picks["dataset"].astype(str).map(release.name_of)
    fig, ax = plt.subplots(figsize=(8, 3.2))
    sns.stripplot(data=picks, x="paper_epoch", y="dataset", hue="dataset", ax=ax, jitter=0.25, legend=False)
    ax.set_xlim(0, picks["last_epoch"].max() + 1)
    ax.set_xlabel("epoch whose predictions were kept (best test accuracy of that subject, ties to the later)")
    ax.set_ylabel("held-out subject's dataset")
    ax.set_title("Paper protocol: the epoch picked per subject")
    fig.tight_layout()
    return finish(fig)


def settings_table(params) -> pd.DataFrame:
    """The run's settings beside the paper's stated ones and the authors' script's (`paper_values.settings`)."""
    flat = params.to_flat()
    s = paper_values.settings()
    ours_ = []
    for name in s["setting"]:
        if name == "block_px":  # HTNet's bottom block; other networks have none
            ours_.append(getattr(params.model, "block_px", ("",))[0])
        else:
            v = flat.get(name, "")
            ours_.append(tuple(v) if isinstance(v, list) else v)
    s.insert(1, "ours", ours_)
    return s


def describe_table2(t2: pd.DataFrame, scope: str = "Full") -> list[str]:
    """Table 2 in words, for one scope: each of our protocols against the paper's value, and whether the paper's
    value lies inside our interval."""
    out = []
    for r in t2[(t2["scope"] == scope) & (t2["protocol"] != "")].itertuples():
        inside = "inside" if r.paper_in_ci else "outside"
        seeds = f"mean of {r.seeds:.0f} seeds" if r.seeds > 1 else "one seed"
        out.append(f"{r.source}: {scope} UF1 {r.UF1:.4f} ({seeds}, 95% interval over subjects {r.UF1_lo:.3f} to "
                   f"{r.UF1_hi:.3f}); the paper reports {r.paper_UF1:.4f} ({r.paper_source}), {r.diff_UF1:+.4f} from "
                   f"ours, {inside} our interval.")
    return out
