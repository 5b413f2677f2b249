"""Tables and figures of notebook 07 (what HTNet achieves without test labels): honest candidates against today's
honest baseline, seed ensembles, the input ablation, and the recipe against STSTNet.

Every candidate is a point of a study sweep (`params/<level>/honest.yaml`) trained once per seed; it is scored under
each honest protocol that applies to it (none reads the held-out subject's labels: `loso.protocols`), as a mean over
seeds with a 95% interval over subjects, and compared with the reference (the baseline at its last epoch) by a paired
bootstrap over the same subjects and seeds.
"""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .. import metrics
from ..loso import Run, ensemble_predictions, label as protocol_label, parse
from ..loso.folds import eval_epochs
from ..studies.sweeps import SweepResults
from . import finish

HONEST = ("last", "mean@5", "inner", "inner-es@10")


def applicable(protocols: Sequence[str], run: Run) -> list[str]:
    """The honest protocols a run can be scored under (inner ones need inner validation subjects; `mean@k` needs k
    evaluated epochs)."""
    inner = run.params.train.inner_val_subjects > 0
    evaluated = len(eval_epochs(run.params.train))
    out = []
    for name in protocols:
        p, arg = parse(name)
        if p.reads_test_labels:
            raise ValueError(f"{name!r} reads the held-out labels: not an honest protocol")
        if (not p.needs_inner or inner) and not (p.arg_counts_epochs and arg > evaluated):
            out.append(name)
    return out


def point_predictions(results: SweepResults, sweep: str, label: str, protocols: Sequence[str],
                      samples=None) -> list[pd.DataFrame]:
    """One point's predictions under `protocols`, one table per seed (`samples`: read from its first run if None)."""
    runs = results.runs[(sweep, label)]
    samples = runs[0].samples() if samples is None else samples
    return [r.protocol_predictions(protocols, samples) for r in runs]


def candidate_table(results: SweepResults, sweep: str, reference: tuple[str, str], protocols: Sequence[str] = HONEST,
                    scope: str = "Full", n_boot: int = 1000, test_labels: bool = False) -> pd.DataFrame:
    """One row per (candidate, honest protocol): UF1/UAR (mean over seeds, sd, 95% interval over subjects) in `scope`,
    and the paired difference from `reference` (candidate label, protocol) with `exceeds_noise`. A protocol that reads
    the held-out labels (the paper's) is refused unless `test_labels`: then it shows what it adds to the same runs."""
    first = next(iter(results.runs.values()))[0]
    samples = first.samples()
    ref_label, ref_proto = reference
    ref = point_predictions(results, sweep, ref_label, [ref_proto], samples)
    rows = []
    for point in results.study.sweeps[sweep].points:
        runs = results.runs[(sweep, point.label)]
        names = list(protocols) if test_labels else applicable(protocols, runs[0])
        preds = [r.protocol_predictions(names, samples) for r in runs]
        for row in scored(point.label, preds, names, scope, n_boot):
            if (point.label, row["protocol"]) != (ref_label, ref_proto):
                d = metrics.paired_bootstrap(preds, ref, row["protocol"], ref_proto, n_boot=n_boot).loc[scope]
                row.update({k: d[k] for k in ("dUF1", "dUF1_lo", "dUF1_hi", "p_UF1", "exceeds_noise")})
            rows.append(row)
    return pd.DataFrame(rows)


def scored(label: str, preds: Sequence[pd.DataFrame], protocols: Sequence[str], scope: str = "Full",
           n_boot: int = 1000) -> list[dict]:
    """One row per protocol for one candidate's per-seed predictions: UF1/UAR mean over seeds with the sd between
    seeds and a 95% interval over subjects (eq. 8-9)."""
    rows = []
    for name in protocols:
        per_seed = [metrics.scores(p, pred_col=name).loc[scope] for p in preds]
        b = metrics.bootstrap(preds, pred_col=name, n_boot=n_boot).loc[scope]
        rows.append({"candidate": label, "protocol": name, "protocol_label": protocol_label(name),
                     "UF1": b["UF1"], "UF1_sd": np.std([s["UF1"] for s in per_seed], ddof=1) if len(preds) > 1 else np.nan,
                     "UF1_lo": b["UF1_lo"], "UF1_hi": b["UF1_hi"], "UAR": b["UAR"],
                     "UAR_sd": np.std([s["UAR"] for s in per_seed], ddof=1) if len(preds) > 1 else np.nan,
                     "UAR_lo": b["UAR_lo"], "UAR_hi": b["UAR_hi"], "seeds": len(preds)})
    return rows


def ensemble_table(results: SweepResults, sweep: str, labels: Sequence[str], reference: str, protocol: str = "last",
                   scope: str = "Full", n_boot: int = 1000) -> pd.DataFrame:
    """Each candidate's seeds averaged into one model (their class probabilities under `protocol`): UF1/UAR with a
    95% interval over subjects, and the paired difference from the reference's ensemble."""
    samples = next(iter(results.runs.values()))[0].samples()
    ref = ensemble_predictions(results.runs[(sweep, reference)], protocol, samples)
    rows = []
    for label in labels:
        ens = ensemble_predictions(results.runs[(sweep, label)], protocol, samples)
        b = metrics.bootstrap(ens, pred_col=protocol, n_boot=n_boot).loc[scope]
        row = {"candidate": f"{label}: ensemble of {len(results.runs[(sweep, label)])} seeds", "protocol": protocol,
               **{k: b[k] for k in ("UF1", "UF1_lo", "UF1_hi", "UAR", "UAR_lo", "UAR_hi")}}
        if label != reference:
            d = metrics.paired_bootstrap(ens, ref, protocol, n_boot=n_boot).loc[scope]
            row.update({k: d[k] for k in ("dUF1", "dUF1_lo", "dUF1_hi", "p_UF1", "exceeds_noise")})
        rows.append(row)
    return pd.DataFrame(rows)


def formatted(table: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """A readable view: 'mean ± sd [lo, hi]' and the paired difference '+d [lo, hi] *' (* beyond the noise)."""
    out = pd.DataFrame({"candidate": table["candidate"], "protocol": table.get("protocol_label", table["protocol"])})
    for m in ("UF1", "UAR"):
        sd = table.get(f"{m}_sd", pd.Series(np.nan, index=table.index))
        out[m] = [f"{v:.{digits}f}" + (f" ± {s:.{digits - 1}f}" if s == s else "") + f" [{lo:.{digits - 1}f}, "
                  f"{hi:.{digits - 1}f}]" for v, s, lo, hi in zip(table[m], sd, table[f"{m}_lo"], table[f"{m}_hi"])]
    if "dUF1" in table:
        out["UF1 vs reference"] = ["reference" if pd.isna(d) else f"{d:+.{digits - 1}f} [{lo:+.{digits - 1}f}, "
                                   f"{hi:+.{digits - 1}f}]" + (" *" if ex else "")
                                   for d, lo, hi, ex in zip(table["dUF1"], table["dUF1_lo"], table["dUF1_hi"],
                                                            table["exceeds_noise"].fillna(False))]
    return out


def words(table: pd.DataFrame) -> str:
    """Which candidates beat the reference beyond the noise, which were worse, and which made no clear difference."""
    t = table[table["dUF1"].notna()] if "dUF1" in table else table.iloc[0:0]
    name = lambda r: f"{r.candidate} ({protocol_label(r.protocol)}) {r.dUF1:+.3f} [{r.dUF1_lo:+.3f}, {r.dUF1_hi:+.3f}]"  # noqa: E731
    better = [name(r) for r in t.itertuples() if r.exceeds_noise and r.dUF1 > 0]
    worse = [name(r) for r in t.itertuples() if r.exceeds_noise and r.dUF1 < 0]
    same = [f"{r.candidate} ({protocol_label(r.protocol)})" for r in t.itertuples() if not r.exceeds_noise]
    return "\n".join([f"Better than the reference beyond the noise: {'; '.join(better) or 'none'}.",
                      f"Worse beyond the noise: {'; '.join(worse) or 'none'}.",
                      f"No difference beyond the noise: {'; '.join(same) or 'none'}."])


def forest_figure(table: pd.DataFrame, title: str = "") -> plt.Figure:
    """The paired difference in Full UF1 from the reference, with its 95% interval, one row per candidate."""
    t = table[table["dUF1"].notna()].reset_index(drop=True) if "dUF1" in table else table.iloc[0:0]
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(t) + 1.4))
    y = np.arange(len(t))[::-1]
    colours = ["tab:green" if (e and d > 0) else "tab:red" if e else "grey"
               for d, e in zip(t["dUF1"], t["exceeds_noise"].astype(bool))]
    for yi, (_, r), c in zip(y, t.iterrows(), colours):  # one call per row: caps take a single colour
        ax.errorbar(r["dUF1"], yi, xerr=[[r["dUF1"] - r["dUF1_lo"]], [r["dUF1_hi"] - r["dUF1"]]], fmt="none",
                    ecolor=c, capsize=2)
    ax.scatter(t["dUF1"], y, color=colours, zorder=3)
    ax.axvline(0, color="black", linewidth=1)
    ax.set_yticks(y, [f"{c} ({protocol_label(p)})" for c, p in zip(t["candidate"], t["protocol"])], fontsize=8)
    ax.set_xlabel("Full UF1 difference from the reference (paired bootstrap over subjects, 95% interval)")
    ax.set_title(title or "Honest candidates against the reference", fontsize=10)
    fig.tight_layout()
    return finish(fig)


def inputs_table(results: SweepResults, sweep: str, reference: str, protocols: Sequence[str] = ("paper", "last"),
                 scope: str = "Full", n_boot: int = 1000) -> pd.DataFrame:
    """The input ablation: each input under the paper protocol and an honest one, mean over seeds with interval, and
    the paired difference from the reference input under the same protocol."""
    rows = []
    for proto in protocols:
        ref = [r.predictions() for r in results.runs[(sweep, reference)]]
        for point in results.study.sweeps[sweep].points:
            preds = [r.predictions() for r in results.runs[(sweep, point.label)]]
            b = metrics.bootstrap(preds, pred_col=proto, n_boot=n_boot).loc[scope]
            row = {"candidate": point.label, "protocol": proto, "protocol_label": protocol_label(proto),
                   **{k: b[k] for k in ("UF1", "UF1_lo", "UF1_hi", "UAR", "UAR_lo", "UAR_hi")}, "seeds": len(preds),
                   "UF1_sd": pd.concat([r.metrics() for r in results.runs[(sweep, point.label)]])
                   .query("protocol == @proto and scope == @scope")["UF1"].std(ddof=1)}
            if point.label != reference:
                d = metrics.paired_bootstrap(preds, ref, proto, n_boot=n_boot).loc[scope]
                row.update({k: d[k] for k in ("dUF1", "dUF1_lo", "dUF1_hi", "p_UF1", "exceeds_noise")})
            rows.append(row)
    return pd.DataFrame(rows)


def versus(results: SweepResults, sweep: str, a: tuple[str, str], b: tuple[str, str], n_boot: int = 2000
           ) -> pd.DataFrame:
    """Candidate a against candidate b, each under its protocol (candidate label, protocol): the paired difference
    a - b per scope over the same subjects and seeds."""
    samples = next(iter(results.runs.values()))[0].samples()
    pa = point_predictions(results, sweep, a[0], [a[1]], samples)
    pb = point_predictions(results, sweep, b[0], [b[1]], samples)
    return metrics.paired_bootstrap(pa, pb, a[1], b[1], n_boot=n_boot)


def versus_each(results: SweepResults, sweep: str, a: tuple[str, str], others: Sequence[tuple[str, str]],
                n_boot: int = 2000) -> pd.DataFrame:
    """`versus` of candidate a against each of `others`, one block of scopes per other candidate (index: against,
    scope); an empty table when there is none."""
    if not others:
        return pd.DataFrame()
    return pd.concat({b[0]: versus(results, sweep, a, b, n_boot) for b in others}, names=["against", "scope"])


def prediction_figure(face_rgb: np.ndarray, flow_map: np.ndarray, result: dict, centres: np.ndarray | None = None,
                      title: str = "") -> plt.Figure:
    """One prediction: the apex face with the four facial regions drawn (crop centres (5, 2) as (row, col) on the
    28x28 map, from `regions.crop_centres`), the flow map's strain channel, and the class probabilities."""
    from matplotlib.patches import Rectangle

    from ..regions import HALF, MAP_SIZE, QUADRANT_LANDMARKS

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6), gridspec_kw={"width_ratios": [1, 1, 1.2]})
    axes[0].imshow(face_rgb)
    if centres is not None:
        scale = face_rgb.shape[0] / MAP_SIZE
        for k, name in zip(QUADRANT_LANDMARKS, ("left eye", "right eye", "left mouth", "right mouth")):
            r, c = centres[k]
            axes[0].add_patch(Rectangle(((c - HALF) * scale, (r - HALF) * scale), 2 * HALF * scale, 2 * HALF * scale,
                                        fill=False, ec="yellow", lw=1.5))
            axes[0].text((c - HALF) * scale + 3, (r - HALF) * scale + 12, name, color="yellow", fontsize=7)
    axes[0].set_title("apex face and the four facial regions", fontsize=9)
    axes[1].imshow(flow_map[..., 0], cmap="magma", vmin=0, vmax=255)
    axes[1].set_title("flow map: optical strain", fontsize=9)
    for ax in axes[:2]:
        ax.set_xticks([])
        ax.set_yticks([])
    names, probs = list(result["probabilities"]), list(result["probabilities"].values())
    axes[2].barh(names[::-1], probs[::-1], color=["tab:blue" if n != result["prediction"] else "tab:orange"
                                                  for n in names[::-1]])
    axes[2].set_xlim(0, 1)
    axes[2].set_xlabel("class probability")
    axes[2].set_title(f"prediction: {result['prediction']} ({result['weights']})", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return finish(fig)
