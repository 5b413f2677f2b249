"""Tables and figures of notebook 04 (ablations; §4.4): Tables 4-5 and Figs. 5-6 beside the paper, from
`studies.sweeps` results.

A sweep that reproduces one of the paper's tables or figures says so in its study file (`paper: table4`); its points
are then matched to the paper's cells by the swept key (`PAPER_SWEEPS`). Every point is the mean over the study's
seeds with its sd and 95% subject-bootstrap interval, and is compared with the sweep's reference point (the study's
base, the paper's initial setting) by a paired bootstrap over subjects on the same seeds: `exceeds_noise` says
whether the difference's interval excludes zero.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .. import metrics, paper_values, release
from ..loso import label as protocol_label
from ..models import geometry
from ..studies.sweeps import SweepResults
from . import finish


@dataclass(frozen=True)
class PaperSweep:
    """How a sweep meets one of the paper's tables or figures: the params key whose value names the paper's row,
    the paper's rows (index: that key's value; columns 'UF1 <scope>', 'UAR <scope>', optional 'train_time_s'), what
    the text says when no values are printed, and the axis label."""

    key: str
    rows: Callable[[], pd.DataFrame]
    source: str
    x_label: str
    note: str = ""


def _wide(df: pd.DataFrame, key: str) -> pd.DataFrame:
    w = df.pivot_table(index=key, columns="dataset", values=["UF1", "UAR"], sort=False)
    w.columns = [f"{m} {s}" for m, s in w.columns]
    return w


def _table4() -> pd.DataFrame:
    return _wide(paper_values.table4().rename(columns={"block_px": "patch_size"}), "patch_size")


def _table5() -> pd.DataFrame:
    t = paper_values.table5()
    t["block_repeats"] = t["block_repeats"].map(lambda r: "(" + ", ".join(map(str, r)) + ")")
    return _wide(t, "block_repeats").join(t.drop_duplicates("block_repeats").set_index("block_repeats")["train_time_s"])


def _stated(frame: Callable[[], pd.DataFrame], key: str) -> Callable[[], pd.DataFrame]:
    def rows() -> pd.DataFrame:
        f = frame()
        f = f[f["dataset"].notna()]
        return _wide(f, key) if len(f) else pd.DataFrame(index=pd.Index([], name=key))
    return rows


PAPER_SWEEPS: dict[str, PaperSweep] = {
    "table4": PaperSweep("patch_size", _table4, paper_values.SOURCES["TABLE4"], "bottom-level block (px); input 4x"),
    "table5": PaperSweep("block_repeats", _table5, paper_values.SOURCES["TABLE5"], "transformer layers per level"),
    "fig5": PaperSweep("dim", _stated(paper_values.fig5, "dim"), paper_values.SOURCES["FIG5"], "hidden dimension",
                       paper_values.FIG5["annotation"]),
    "fig6": PaperSweep("heads", _stated(paper_values.fig6, "heads"), paper_values.SOURCES["FIG6"], "heads",
                       paper_values.FIG6["annotation"]),
}


def reference_label(results: SweepResults, sweep: str) -> str:
    """The sweep's point whose params equal the study's base (the initial setting), else its first point."""
    pts = results.study.sweeps[sweep].points
    base = results.study.base.fingerprint()
    return next((p.label for p in pts if p.params.fingerprint() == base), pts[0].label)


def scored_protocols(results: SweepResults, sweep: str) -> tuple[str, ...]:
    """The protocols every run of the sweep scored (the default ones and any its params name, a registered protocol
    among them), in the first run's order."""
    runs = [r for p in results.study.sweeps[sweep].points for r in results.runs[(sweep, p.label)]]
    return tuple(n for n in runs[0].meta["protocols"] if all(n in r.meta["protocols"] for r in runs))


def sweep_summary(results: SweepResults, sweep: str, protocols: tuple[str, ...] | None = None,
                  n_boot: int = 1000) -> pd.DataFrame:
    """One row per (point, protocol, scope): the point's label and swept values, geometry, parameters, training time
    (mean over seeds, with the hardware), ours (UF1/UAR mean, sd, interval over subjects), the paper's cell and the
    difference (when the sweep names a paper table), and the paired difference from the reference point.
    `protocols`: default, every protocol the sweep's runs scored (`scored_protocols`)."""
    protocols = protocols or scored_protocols(results, sweep)
    sw = results.study.sweeps[sweep]
    paper = PAPER_SWEEPS.get(sw.paper)
    prows = paper.rows() if paper else None
    ref = reference_label(results, sweep)
    t = results.table[results.table["sweep"] == sweep]
    described = list(dict.fromkeys(k for p in sw.points for k in p.params.model.describe()))  # e.g. HTNet's blocks
    info_cols = ["label", *sw.varied, *described, "params"]
    rows = []
    for point in sw.points:
        runs = results.runs[(sweep, point.label)]
        info = t[t["label"] == point.label].iloc[0][info_cols].to_dict()
        info.update({k: _paper_key(point.params.to_flat()[k]) for k in sw.varied})  # the values as set, typed
        info.update({"train_s": float(np.mean([r.train_seconds for r in runs])),
                     "train_s_paper_scale": float(np.mean([r.seconds_per_fold_epoch for r in runs])) * 68 * 800,
                     "hardware": runs[0].hardware,
                     "seeds": len(runs)})
        preds = [r.predictions() for r in runs]
        ref_preds = results.predictions(sweep, ref)
        for proto in protocols:
            boot = metrics.bootstrap(preds, pred_col=proto, n_boot=n_boot)
            sd = pd.concat([r.metrics() for r in runs]).query("protocol == @proto").groupby("scope")[["UF1", "UAR"]] \
                .std(ddof=1)
            paired = metrics.paired_bootstrap(preds, ref_preds, proto, n_boot=n_boot) if point.label != ref else None
            for scope, b in boot.iterrows():
                row = {**info, "protocol": proto, "scope": scope, **b.to_dict(),
                       "UF1_sd": sd.loc[scope, "UF1"] if scope in sd.index else np.nan,
                       "UAR_sd": sd.loc[scope, "UAR"] if scope in sd.index else np.nan, "reference": ref}
                if paired is not None:
                    row.update(paired.loc[scope].to_dict())
                if prows is not None:
                    k = _paper_key(point.params.to_flat()[paper.key])
                    for m in ("UF1", "UAR"):
                        row[f"paper_{m}"] = prows[f"{m} {scope}"].get(k, np.nan) if f"{m} {scope}" in prows else np.nan
                    if "train_time_s" in prows:
                        row["paper_train_s"] = prows["train_time_s"].get(k, np.nan)
                rows.append(row)
    out = pd.DataFrame(rows)
    for m in ("UF1", "UAR"):
        if f"paper_{m}" in out:
            out[f"diff_{m}"] = out[m] - out[f"paper_{m}"]
    return out


def _paper_key(v: Any) -> Any:
    return "(" + ", ".join(map(str, v)) + ")" if isinstance(v, (list, tuple)) else v


def sweep_table(summary: pd.DataFrame, protocol: str = "paper", scopes: tuple[str, ...] | None = None,
                digits: int = 4) -> pd.DataFrame:
    """A readable wide view of a `sweep_summary`: one row per point; per scope ours as 'mean ± sd [lo, hi]' beside
    the paper's value and the difference; the paired difference from the reference point on Full."""
    s = summary[summary["protocol"] == protocol]
    keep = [c for c in s.columns if c in ("label", "block_px", "tokens_per_block", "params", "train_s",
                                          "train_s_paper_scale", "paper_train_s", "hardware", "seeds")
            or c in _varied(s)]
    keep = [c for c in keep if s[c].notna().any()]
    out = s.drop_duplicates("label").set_index("label")[keep[1:] if keep[0] == "label" else keep].copy()
    for scope in scopes or release.scopes_of(s):  # the data's scopes: a dataset outside Full has its own columns
        sc = s[s["scope"] == scope].set_index("label")
        if sc.empty:
            continue
        out[f"{scope} UF1 (ours)"] = [f"{r.UF1:.{digits}f} ± {r.UF1_sd:.{digits - 1}f} [{r.UF1_lo:.{digits - 1}f}, "
                                      f"{r.UF1_hi:.{digits - 1}f}]" for r in sc.itertuples()]
        if "paper_UF1" in sc and sc["paper_UF1"].notna().any():
            out[f"{scope} UF1 (paper)"] = sc["paper_UF1"]
            out[f"{scope} UF1 diff"] = sc["diff_UF1"].round(digits)
    full = s[s["scope"] == release.FULL].set_index("label")
    if "dUF1" in full:
        out["Full UF1 vs reference"] = [
            "reference" if pd.isna(r.dUF1) else
            f"{r.dUF1:+.{digits - 1}f} [{r.dUF1_lo:+.{digits - 1}f}, {r.dUF1_hi:+.{digits - 1}f}]"
            + (" *" if r.exceeds_noise else "") for r in full.itertuples()]
    return out.reset_index()


def _varied(summary: pd.DataFrame) -> list[str]:
    fixed = {"label", "block_px", "tokens_per_block", "params", "train_s", "train_s_paper_scale", "hardware", "seeds",
             "protocol", "scope", "reference", "exceeds_noise", "paper_train_s"}
    metric = ("UF1", "UAR", "dUF1", "dUAR", "p_", "paper_", "diff_")
    return [c for c in summary.columns if c not in fixed and not c.startswith(metric)]


def noise_sentence(summary: pd.DataFrame, protocol: str = "paper", scope: str = "Full") -> str:
    """In words: which points differ from the reference by more than the noise (paired 95% interval excludes 0)."""
    s = summary[(summary["protocol"] == protocol) & (summary["scope"] == scope)]
    if "dUF1" not in s:
        return f"{scope}, {protocol_label(protocol)}: one point only, nothing to compare."
    ref = s["reference"].iloc[0]
    others = s[s["label"] != ref]
    real = others[others["exceeds_noise"].astype(bool)]
    seeds = int(s["seeds"].max())
    head = (f"{scope} UF1, {protocol_label(protocol)}, against '{ref}' (paired bootstrap over subjects, "
            f"{seeds} seed(s)): ")
    if real.empty:
        return head + f"no point differs by more than the noise ({len(others)} compared)."
    parts = [f"'{r.label}' {r.dUF1:+.3f} [{r.dUF1_lo:+.3f}, {r.dUF1_hi:+.3f}]" for r in real.itertuples()]
    return head + f"{len(real)} of {len(others)} differ beyond the noise: " + "; ".join(parts) + "."


def sweep_figure(summary: pd.DataFrame, sweep: str, paper: str = "", title: str = "", metric: str = "UF1",
                 protocols: tuple[str, ...] | None = None) -> plt.Figure:
    """Ours (mean over seeds, 95% interval over subjects) per scope against the swept points, one panel per protocol
    (default: every protocol of `summary`); the paper's values as black crosses on the paper protocol's panel, or its
    stated best as a note."""
    protocols = protocols or tuple(dict.fromkeys(summary["protocol"]))
    ps = PAPER_SWEEPS.get(paper)
    fig, axes = plt.subplots(1, len(protocols), figsize=(5.6 * len(protocols), 3.9), sharey=True, squeeze=False)
    labels = list(dict.fromkeys(summary["label"]))
    x = np.arange(len(labels))
    for ax, proto in zip(axes[0], protocols):
        s = summary[summary["protocol"] == proto]
        for j, scope in enumerate(release.scopes_of(s)):
            sc = s[s["scope"] == scope].set_index("label").reindex(labels)
            off = (j - 1.5) * 0.08
            err = np.vstack([sc[metric] - sc[f"{metric}_lo"], sc[f"{metric}_hi"] - sc[metric]])
            ax.errorbar(x + off, sc[metric], yerr=np.nan_to_num(err), marker="o", ms=4, capsize=2, label=scope)
            if proto == "paper" and f"paper_{metric}" in sc and sc[f"paper_{metric}"].notna().any():
                ax.scatter(x + off, sc[f"paper_{metric}"], marker="x", color="black", s=25, zorder=5,
                           label="paper" if j == 0 else None)
        ax.set_xticks(x, labels, rotation=25, fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_ylabel(metric)
        ax.set_xlabel(ps.x_label if ps else sweep)
        ax.set_title(f"ours, {protocol_label(proto)}", fontsize=9)
        if ps and ps.note and proto == "paper":
            ax.text(0.02, 0.04, ps.note, transform=ax.transAxes, fontsize=7)
    axes[0, -1].legend(fontsize=7, loc="lower right")
    seeds = int(summary["seeds"].max())
    fig.suptitle((title or sweep) + f" (ours: mean of {seeds} seed(s), 95% interval over subjects)", fontsize=10)
    fig.tight_layout()
    return finish(fig)


def geometry_table(study, sweep: str) -> pd.DataFrame:
    """For each point of a study's sweep: the network, its input side, what its config says tells its configurations
    apart (`ModelConfig.describe`; HTNet: block sides per level in px and tokens per block) and, when it reads the four
    regions tiled, the side each region spans; the geometry of Table 4's block sizes (`regions.model_inputs` resizes
    the 28x28 input to the side)."""
    rows = []
    for p in study.sweeps[sweep].points:
        m = p.params.model
        tiled = p.params.train.regions in geometry(m).regions and p.params.train.regions != "whole"
        rows.append({"label": p.label, "arch": m.arch, "input side (px)": m.image_size, **m.describe(),
                     **({"each region spans (px)": m.image_size // 2} if tiled else {})})
    return pd.DataFrame(rows)


@dataclass
class SweepReport:
    """One sweep, reported: the tidy summary (saved as CSV), its readable table, its figure, and what it says."""

    summary: pd.DataFrame
    table: pd.DataFrame
    figure: plt.Figure
    words: str


def report(results: SweepResults, sweep: str, out_dir=None, name: str | None = None, n_boot: int = 1000) -> SweepReport:
    """Summarise, tabulate, draw and describe one sweep; with `out_dir`, write `<name>.csv/.md/.png` there."""
    from . import save_figure, save_table

    sw = results.study.sweeps[sweep]
    summary = sweep_summary(results, sweep, n_boot=n_boot)
    table = sweep_table(summary)
    fig = sweep_figure(summary, sweep, paper=sw.paper, title=sw.title or sweep)
    words = "\n".join(noise_sentence(summary, p) for p in ("paper", "last"))
    if sw.paper in PAPER_SWEEPS:
        words += "\n" + "\n".join(ordering_words(summary, sw.paper, p) for p in ("paper", "last"))
    if out_dir is not None:
        name = name or sweep
        save_table(summary, name, out_dir)
        save_table(table, f"{name}_table", out_dir)
        save_figure(fig, name, out_dir=out_dir)
    return SweepReport(summary, table, fig, words)


# ------------------------------------------------------------------ whether the paper's ordering holds (§4.4)

def paper_best(sweep_paper: str) -> Any:
    """The swept value the paper ranks first: the best Full UF1 of Table 4 or 5, or the best that §4.4.2-4.4.3 state
    for Figs. 5-6 (values not printed)."""
    if sweep_paper in ("fig5", "fig6"):
        return (paper_values.FIG5 if sweep_paper == "fig5" else paper_values.FIG6)["best"]
    rows = PAPER_SWEEPS[sweep_paper].rows()
    return rows[f"UF1 {paper_values.FULL}"].idxmax()


def ordering_words(summary: pd.DataFrame, sweep_paper: str, protocol: str = "paper", scope: str = "Full") -> str:
    """In words: does the paper's ordering hold here? The paper's best point against each other point (paired
    bootstrap, same seeds), and Kendall's tau between the paper's printed order and ours (Tables 4-5).

    Verdict: 'holds' when every other point scores below the paper's best beyond the noise; 'is contradicted' when
    some point scores above it beyond the noise; otherwise 'is neither confirmed nor contradicted (within the
    noise)'."""
    from scipy.stats import kendalltau

    ps = PAPER_SWEEPS[sweep_paper]
    s = summary[(summary["protocol"] == protocol) & (summary["scope"] == scope)].set_index("label")
    head = f"{ps.source}, {protocol_label(protocol)}, {scope} UF1: "
    best = paper_best(sweep_paper)
    keyed = {_paper_key(v): label for label, v in s[ps.key].items()}
    if best not in keyed:
        top = s["UF1"].idxmax()
        return head + (f"the paper's best ({ps.key} {best}) is not a point of this level's grid "
                       f"({', '.join(map(str, keyed))}); ours is highest at '{top}' ({s.loc[top, 'UF1']:.3f}).")
    best_label = keyed[best]
    ref = s["reference"].iloc[0]
    if best_label != ref:  # the paper's best is always its initial setting in §4.4; say so if a grid differs
        return head + f"the paper's best '{best_label}' is not this sweep's reference '{ref}': no paired comparison."
    others = s.drop(index=ref)
    below, above = others[others["dUF1"] < 0], others[others["dUF1"] > 0]
    sig_below = below[below["exceeds_noise"].astype(bool)]
    sig_above = above[above["exceeds_noise"].astype(bool)]
    if len(sig_below) == len(others):
        verdict = "holds"
    elif len(sig_above):
        verdict = "is contradicted"
    else:
        verdict = "is neither confirmed nor contradicted (within the noise)"
    words = (f"the paper ranks '{best_label}' first. Ours: {len(below)} of {len(others)} other points score below it "
             f"({len(sig_below)} beyond the noise), {len(above)} above ({len(sig_above)} beyond the noise"
             + (": " + ", ".join(f"'{i}' {r.dUF1:+.3f}" for i, r in sig_above.iterrows()) if len(sig_above) else "")
             + ")")
    if "paper_UF1" in s and s["paper_UF1"].notna().sum() >= 3:
        both = s[s["paper_UF1"].notna()]
        tau = kendalltau(both["paper_UF1"], both["UF1"]).statistic
        words += f"; Kendall's tau between the paper's order and ours {tau:+.2f}"
    return head + words + f". The paper's ordering {verdict}."


# ---------------------------------------------------------------------------------------- the noise floor

def reference_runs(results: SweepResults) -> list:
    """The runs (one per seed) of the study's base: the reference point every sweep shares (Table 2's run at a level
    whose ablations have no overrides)."""
    base = results.study.base.fingerprint()
    for sweep in results.study.sweeps.values():
        for p in sweep.points:
            if p.params.fingerprint() == base:
                return results.runs[(sweep.name, p.label)]
    raise ValueError("no sweep has a point equal to the study's base: nothing to measure the noise on")


def noise_floor(results: SweepResults, protocols: tuple[str, ...] = ("paper", "last"), seeds: tuple[int, ...] = (1, 3, 5),
                power: float = 0.8, alpha: float = 0.05, n_boot: int = 1000) -> pd.DataFrame:
    """The smallest paired difference from the reference that this design detects (`metrics.detectable_difference`:
    two-sided level `alpha`, probability `power`), when each point is the mean of 1, 3 or 5 seeds; measured on the
    reference's own seeds and subject resampling (`metrics.null_differences`).

    One row per (protocol, scope, metric): seeds_measured, seed_sd (sd of the reference's seeds), null_sd (sd of a
    difference between two single-seed runs of the same network), and `floor_<k>_seeds` per k in `seeds`.
    """
    preds = [r.predictions() for r in reference_runs(results)]
    rows = []
    for proto in protocols:
        nd = metrics.null_differences(preds, proto, n_boot=n_boot)
        for scope, r in nd.iterrows():
            for m in ("UF1", "UAR"):
                row = {"protocol": proto, "scope": scope, "metric": m, "seeds_measured": int(r["seeds"]),
                       "seed_sd": r[f"{m}_seed_sd"], "null_sd": r[f"{m}_null_sd"], "power": power, "alpha": alpha}
                row.update({f"floor_{k}_seeds": metrics.detectable_difference(r[f"{m}_null_sd"], k, power, alpha)
                            for k in seeds})
                rows.append(row)
    return pd.DataFrame(rows)


def paper_differences(floor: pd.DataFrame, protocol: str = "paper") -> pd.DataFrame:
    """The paper's own ablation differences: each printed cell of Tables 4-5 minus its reference cell (7x7, (2, 2, 8);
    §4.4's initial setting), per scope and metric, beside the single-seed floor measured here under `protocol` (the
    paper protocol: how its numbers were made), and whether the difference exceeds it."""
    f = floor[floor["protocol"] == protocol].set_index(["scope", "metric"])
    rows = []
    for paper in ("table4", "table5"):
        ps = PAPER_SWEEPS[paper]
        t = ps.rows()
        ref = paper_best(paper)
        for setting in t.index:
            if setting == ref:
                continue
            for scope in release.scopes_of(f.reset_index()):
                for m in ("UF1", "UAR"):
                    col = f"{m} {scope}"
                    if col not in t or (scope, m) not in f.index:
                        continue
                    d = float(t.loc[setting, col] - t.loc[ref, col])
                    fl = float(f.loc[(scope, m), "floor_1_seeds"])
                    rows.append({"table": ps.source, "setting": _setting_label(paper, setting),
                                 "reference": _setting_label(paper, ref), "scope": scope, "metric": m,
                                 "paper": float(t.loc[setting, col]), "paper_reference": float(t.loc[ref, col]),
                                 "paper_diff": round(d, 4), "floor_1_seed": fl, "exceeds_floor": abs(d) > fl})
    return pd.DataFrame(rows)


def _setting_label(paper: str, key: Any) -> str:
    return f"{key}x{key}" if paper == "table4" else str(key)


def floor_table(floor: pd.DataFrame, protocol: str = "paper", metric: str = "UF1", digits: int = 3) -> pd.DataFrame:
    """A readable view of `noise_floor`: per scope, the seeds' sd, the single-seed null sd and the floors."""
    f = floor[(floor["protocol"] == protocol) & (floor["metric"] == metric)].set_index("scope")
    cols = ["seed_sd", "null_sd", *[c for c in f.columns if c.startswith("floor_")]]
    return f[cols].round(digits).rename(columns=lambda c: c.replace("_", " "))


def claims_words(diffs: pd.DataFrame, floor: pd.DataFrame, protocol: str = "paper", scope: str = "Full") -> str:
    """In words: which of §4.4's differences (Tables 4-5, `scope` UF1) one LOSO run (one seed) could support, judged
    against the single-seed floor measured here."""
    f = floor[(floor["protocol"] == protocol) & (floor["scope"] == scope) & (floor["metric"] == "UF1")].iloc[0]
    lines = [f"Single-seed floor, {scope} UF1, {protocol_label(protocol)}: {f['floor_1_seeds']:.3f} "
             f"({f['power']:.0%} power, two-sided {f['alpha']:.0%}; measured on {f['seeds_measured']} seeds of the "
             f"reference at this level's size). With 3 seeds per point: {f.get('floor_3_seeds', np.nan):.3f}; with 5: "
             f"{f.get('floor_5_seeds', np.nan):.3f}."]
    d = diffs[(diffs["scope"] == scope) & (diffs["metric"] == "UF1")]
    for table, g in d.groupby("table", sort=False):
        big = g[g["exceeds_floor"]]
        ref = g["reference"].iloc[0]
        span = f"{g['paper_diff'].min():+.4f} to {g['paper_diff'].max():+.4f}"
        if big.empty:
            lines.append(f"{table}: the paper's differences from {ref} ({span}) are all within one run's noise: "
                         f"one LOSO run cannot support its ordering.")
        else:
            parts = ", ".join(f"{r.setting} {r.paper_diff:+.4f}" for r in big.itertuples())
            lines.append(f"{table}: {len(big)} of {len(g)} differences from {ref} ({span}) exceed one run's noise "
                         f"({parts}); only these could one LOSO run support, the rest of the ordering it cannot.")
    return "\n".join(lines)


def reference_note(study, table2_params) -> str:
    """Whether the study's reference point is Table 2's run (same params, so the same run folder) or a shortened
    demonstration of it."""
    fp = study.base.fingerprint()
    if fp == table2_params.fingerprint():
        return (f"The reference point of every sweep is Table 2's run itself (notebook 03): the same params, so the same "
                f"run folders (loso-{fp}-*), trained once. Every point trains like it: {study.base.train.epochs} epochs, "
                f"{len(study.base.train.folds) or 'all'} folds, seeds {list(study.seeds)}.")
    t2, b = table2_params.to_flat(), study.base.to_flat()
    changed = ", ".join(f"{k}={b[k]!r} (Table 2: {t2[k]!r})" for k in b if k in t2 and b[k] != t2[k]
                        and k not in ("seeds", "progress"))
    return ("A fast demonstration: the points train shorter than Table 2's model (" + changed + "), so their "
            "reference point is not Table 2's run and their scores sit below it; the cpu level "
            "(params/cpu) trains every point like Table 2's model.")
