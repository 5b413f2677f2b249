"""Notebook 06: every table and figure of the paper beside ours, on one page, from the files notebooks 01-05 wrote
into `figures/<level>/` (nothing is trained here).

`collect` puts every cell the paper prints (Tables 1-5) or states (Figs. 5-7) next to our value for the same
configuration at this level: our mean over seeds with its 95% interval over subjects, the difference, and whether
the paper's value lies inside our interval.
"""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .. import paper_values
from ..loso import label as protocol_label
from . import finish

# The one map from figure to notebook to command: file name (or the prefix of `<name>_...` files) -> (notebook, what
# it holds). The notebooks write them; `python -m htnet_lib reproduce --params LEVEL --only NN` reruns notebook NN
# (`command`). docs/ pages and the README list it from here (`htnet_lib.docs`).
FILES = {
    "table1_counts": ("01", "Table 1: subjects and samples per class, ours beside the paper"),
    "table2": ("03", "Table 2, long: ours per protocol (mean, sd, 95% interval), the authors' predictions, the paper"),
    "table2_wide": ("03", "Table 2 as the paper prints it: one row per source, a column per dataset and metric"),
    "table2_uf1": ("03", "Table 2 as bars, with the paper's 12 earlier methods"),
    "fig7_per_class": ("03", "Fig. 7: per-class accuracy, ours beside the paper's stated values"),
    "fig7_confusion": ("03", "Fig. 7: confusion matrices, ours and the authors'"),
    "curve_oracle_vs_fixed": ("03", "the paper protocol's pick against the last epoch, over the epochs trained"),
    "table3": ("03", "Table 3: CAS(ME)^3, the paper's rows (and ours with a CAS(ME)^3 release)"),
    "table4_block_size": ("04", "Table 4: block size, per point and scope, beside the paper, paired differences"),
    "table5_depth": ("04", "Table 5: depth, with parameters and training time beside the paper's"),
    "fig5_dim": ("04", "Fig. 5: hidden dimension"),
    "fig6_heads": ("04", "Fig. 6: heads"),
    "extra_tokens_per_block": ("04", "not the paper's: fewer hierarchies, more tokens per block"),
    "audit": ("05", "the protocol audit: the paper's pick on random guesses and shuffled labels, beside real runs"),
    "audit_curve": ("05", "the audit over the epochs trained"),
    "noise_floor": ("04", "the noise floor: the smallest paired difference the design detects with 1, 3 and 5 seeds"),
    "paper_differences": ("04", "the paper's own ablation differences (Tables 4-5) against the single-seed floor"),
    "summary": ("06", "this summary: every paper cell beside ours"),
    "summary_levels": ("06", "every paper cell beside ours at each level, both protocols"),
    "honest_candidates": ("07", "the honest candidates: five seeds, paired differences from the honest baseline"),
    "honest_ensembles": ("07", "each candidate's seeds averaged into one model"),
    "honest_inputs": ("07", "the input ablation: official regions, corrected regions, the whole map"),
    "standing_selection": ("08", "the candidates on the selection seeds, and the one the fixed rule chose"),
    "standing_fresh": ("08", "the chosen candidate on seeds that chose nothing, beside the honest baseline"),
    "standing_unseen": ("09", "the headline: the chosen candidate on seeds no study looked at, under both protocols"),
    "standing_reproduced": ("09", "published baselines trained here at their authors' settings, beside their numbers"),
    "standing_versus_baselines": ("09", "the headline (unseen seeds) paired with the baselines trained here"),
    "standing_published": ("09", "the headline (unseen seeds) beside the published honest numbers"),
    "standing_protocols": ("09", "the headline and the baselines trained here under both protocols"),
}


# Records in figures/<level>/ that a command writes rather than a notebook, each with its own provenance inside.
RECORDS = {"bench": "make bench", "make_run": "tools/time-make-run.sh"}


def owner(file_name: str) -> str | None:
    """The FILES entry a file in figures/<level>/ belongs to: its stem, or the longest entry it starts with
    (`table4_block_size_table.csv` -> `table4_block_size`); None when no entry claims it."""
    stem = Path(file_name).stem
    keys = [k for k in FILES if stem == k or stem.startswith(k + "_")]
    return max(keys, key=len) if keys else None


def command(name: str, level: str) -> str:
    """The command that rewrites FILES entry `name` at `level`."""
    return f"python -m htnet_lib reproduce --params {level} --only {FILES[name][0]}"


def index(out_dir: str | os.PathLike) -> pd.DataFrame:
    """The files of a level's folder: name, kinds present (csv, md, png), the notebook that writes it, what it holds."""
    out = Path(out_dir)
    rows = []
    for name, (nb, what) in FILES.items():
        kinds = [k for k in ("csv", "md", "png") if (out / f"{name}.{k}").is_file()]
        if kinds:
            rows.append({"file": name, "kinds": ", ".join(kinds), "notebook": nb, "what": what})
    return pd.DataFrame(rows)


def _read(out: Path, name: str) -> pd.DataFrame | None:
    path = out / f"{name}.csv"
    return pd.read_csv(path) if path.is_file() else None


def collect(out_dir: str | os.PathLike, protocol: str = "paper") -> pd.DataFrame:
    """Every paper cell beside ours. Columns: item, setting, scope, metric, paper, ours, ours_lo, ours_hi, diff,
    paper_in_ci, source. `protocol` chooses ours (the paper protocol by default, like for like)."""
    out = Path(out_dir)
    rows: list[dict] = []
    t1 = _read(out, "table1_counts")
    if t1 is not None:
        paper = paper_values.table1()
        t1 = t1.rename(columns={"dataset": "scope"}).set_index("scope").rename(index={"all": "Full"})
        for scope in paper.index:
            for col in paper.columns:
                ours = t1.loc[scope, "total" if col == "samples" else col] if scope in t1.index else np.nan
                rows.append({"item": "Table 1", "setting": col, "scope": scope, "metric": "count",
                             "paper": paper.loc[scope, col], "ours": ours, "source": paper_values.SOURCES["TABLE1"]})
    t2 = _read(out, "table2")
    if t2 is not None:
        for r in t2[t2["protocol"] == protocol].itertuples():
            for m in ("UF1", "UAR"):
                rows.append({"item": "Table 2", "setting": "HTNet", "scope": r.scope, "metric": m,
                             "paper": getattr(r, f"paper_{m}"), "ours": getattr(r, m), "ours_lo": getattr(r, f"{m}_lo"),
                             "ours_hi": getattr(r, f"{m}_hi"), "source": r.paper_source})
    for name, item in (("table4_block_size", "Table 4"), ("table5_depth", "Table 5"), ("fig5_dim", "Fig. 5"),
                       ("fig6_heads", "Fig. 6")):
        s = _read(out, name)
        if s is None or "paper_UF1" not in s:
            continue
        s = s[(s["protocol"] == protocol) & s["paper_UF1"].notna()]
        for r in s.itertuples():
            for m in ("UF1", "UAR"):
                if pd.notna(getattr(r, f"paper_{m}")):
                    rows.append({"item": item, "setting": r.label, "scope": r.scope, "metric": m,
                                 "paper": getattr(r, f"paper_{m}"), "ours": getattr(r, m),
                                 "ours_lo": getattr(r, f"{m}_lo"), "ours_hi": getattr(r, f"{m}_hi"),
                                 "source": paper_values.SOURCES[item.upper().replace(" ", "").replace(".", "")]})
    pc = _read(out, "fig7_per_class")
    if pc is not None:
        for r in pc[pc["paper"].notna()].itertuples():
            rows.append({"item": "Fig. 7", "setting": f"{r.emotion} ({r.paper_relation} stated)", "scope": r.scope,
                         "metric": "accuracy", "paper": r.paper, "ours": r.ours, "source": paper_values.SOURCES["FIG7"]})
    df = pd.DataFrame(rows).reindex(columns=["item", "setting", "scope", "metric", "paper", "ours", "ours_lo",
                                             "ours_hi", "diff", "paper_in_ci", "source"])
    df["diff"] = df["ours"] - df["paper"]
    inside = (df["ours_lo"] <= df["paper"]) & (df["paper"] <= df["ours_hi"])
    df["paper_in_ci"] = np.where(df["ours_lo"].notna(), inside, None)
    return df


def overview(collected: pd.DataFrame) -> pd.DataFrame:
    """Per item: cells compared, mean difference (ours - paper) and how many of the paper's values lie inside our
    interval."""
    scored = collected[collected["metric"] != "count"]
    g = scored.groupby("item", sort=False)
    return pd.DataFrame({"cells": g.size(), "mean diff (ours - paper)": g["diff"].mean().round(4),
                         "paper inside our 95% interval": g["paper_in_ci"].apply(
                             lambda s: f"{int((s == True).sum())} of {int(s.notna().sum())}" if s.notna().any()  # noqa: E712
                             else "no interval")})


def scatter(collected: pd.DataFrame) -> plt.Figure:
    """Every scored cell: the paper's value (x) against ours (y, with our 95% interval), one colour per item."""
    d = collected[collected["metric"] != "count"]
    fig, ax = plt.subplots(figsize=(5.6, 5.2))
    for item, g in d.groupby("item", sort=False):
        err = np.vstack([g["ours"] - g["ours_lo"], g["ours_hi"] - g["ours"]])
        ax.errorbar(g["paper"], g["ours"], yerr=np.nan_to_num(err), fmt="o", ms=4, capsize=2, alpha=0.8, label=item)
    ax.plot([0, 1], [0, 1], color="black", linewidth=1, linestyle="--", label="ours = paper")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("the paper's value")
    ax.set_ylabel("ours (mean over seeds, 95% interval over subjects)")
    ax.set_title("Every cell of the paper beside ours", fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return finish(fig)


# ------------------------------------------------------------------------------------- every level on one page
LEVEL_ORDER = ("smoke", "quick", "cpu", "paper")  # small to large; only the ones with a folder are shown
PROTOCOL_MARKS = {"paper": ("paper protocol (epoch picked on test labels)", "full", "o"),
                  "last": ("last epoch (honest: no test label read)", "none", "o")}
OTHER_MARKERS = ("s", "^", "D", "v", "P")  # any other protocol a level's Table 2 holds: hollow, one shape each


def protocol_mark(proto: str, others: list[str]) -> tuple[str, str, str]:
    """(legend text, face, marker) of a protocol in the summary's figure; `others`: the protocols without a fixed
    mark, in order (each gets its own shape)."""
    if proto in PROTOCOL_MARKS:
        return PROTOCOL_MARKS[proto]
    return protocol_label(proto), "none", OTHER_MARKERS[others.index(proto) % len(OTHER_MARKERS)]


def table2_protocols(out_dir: str | os.PathLike) -> tuple[str, ...]:
    """The protocols a level's Table 2 holds (its runs' default ones and any their params name), in its order."""
    t2 = _read(Path(out_dir), "table2")
    names = [] if t2 is None else t2["protocol"].dropna().astype(str)
    return tuple(dict.fromkeys(n for n in names if n))


def levels_present(figures_root: str | os.PathLike, include: str | None = None) -> list[str]:
    """The levels whose folder under `figures_root` holds a Table 2 (`include` always, when it has one)."""
    root = Path(figures_root)
    return [lv for lv in LEVEL_ORDER if (root / lv / "table2.csv").is_file() and (lv != "smoke" or lv == include)]


def collect_levels(figures_root: str | os.PathLike, levels: list[str],
                   protocols: tuple[str, ...] | None = None) -> pd.DataFrame:
    """`collect` for every level and protocol (default: each protocol of the level's Table 2): the same columns plus
    `level` and `protocol` (Table 1's counts, which no protocol changes, once per level)."""
    frames = []
    for lv in levels:
        shown = protocols or table2_protocols(Path(figures_root) / lv)
        for proto in shown:
            c = collect(Path(figures_root) / lv, protocol=proto)
            if proto != shown[0]:
                c = c[c["metric"] != "count"]
            frames.append(c.assign(level=lv, protocol=proto))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def scatter_levels(collected: pd.DataFrame) -> plt.Figure:
    """The paper's value (x) against ours (y, 95% interval over subjects), one panel per level; filled markers for the
    paper protocol, hollow ones for the last epoch (honest) and other shapes for any other protocol, one colour per
    item."""
    d = collected[collected["metric"] != "count"]
    protos = list(dict.fromkeys(d["protocol"]))
    others = [p for p in protos if p not in PROTOCOL_MARKS]
    levels = list(dict.fromkeys(d["level"]))
    fig, axes = plt.subplots(1, max(1, len(levels)), figsize=(4.6 * max(1, len(levels)), 4.8), squeeze=False,
                             sharey=True)
    colours = {item: f"C{i}" for i, item in enumerate(dict.fromkeys(d["item"]))}
    for ax, lv in zip(axes[0], levels):
        for (item, proto), g in d[d["level"] == lv].groupby(["item", "protocol"], sort=False):
            err = np.vstack([g["ours"] - g["ours_lo"], g["ours_hi"] - g["ours"]])
            what, face, marker = protocol_mark(proto, others)
            ax.errorbar(g["paper"], g["ours"], yerr=np.nan_to_num(err), fmt=marker, ms=4, capsize=2, alpha=0.8,
                        color=colours[item], mfc=colours[item] if face == "full" else "none", elinewidth=0.6)
        ax.plot([0, 1], [0, 1], color="black", linewidth=1, linestyle="--")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("the paper's value")
        ax.set_title(f"level: {lv}", fontsize=10)
    axes[0, 0].set_ylabel("ours (mean over seeds, 95% interval over subjects)")
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], marker="o", ls="", color=c, label=item) for item, c in colours.items()]
    handles += [Line2D([], [], marker=marker, ls="", color="grey", mfc="grey" if face == "full" else "none",
                       label=what) for what, face, marker in (protocol_mark(p, others) for p in protos)]
    axes[0, -1].legend(handles=handles, fontsize=7, loc="upper left")
    fig.suptitle("Every cell of the paper beside ours, per level (dashed: ours = paper)", fontsize=10)
    fig.tight_layout()
    return finish(fig)
