"""UF1 and UAR (§4.2, eq. 8-9) over the pooled predictions of all LOSO folds, per dataset, with bootstrap intervals.

UF1 is the mean over classes of the per-class F1 = 2TP / (2TP + FP + FN); UAR the mean over classes of the per-class
recall TP / (TP + FN). Both pool every fold's predictions first (the MEGC2019 convention the paper follows).

Classes with no ground-truth sample in the scored set are left out of both means: their recall is undefined. The
authors' `recognition_evaluation` skips a class only when it is absent from both truth and predictions (their 2x2
confusion matrix cannot be formed); when a class is absent from the truth but predicted, their UAR becomes NaN. On the
composite data every dataset holds all three classes, so the two rules give the same numbers. A confusion matrix is one
`np.bincount` of true x C + predicted (per subject: of (subject x C + true) x C + predicted, so a bootstrap's per-subject
matrices are one call); `uf1_uar_from_confusion` applies this rule to one matrix or a stack of them.

Intervals resample subjects (LOSO's unit: a subject's samples stay together): `bootstrap` for one run or the mean of
several seeds, `paired_bootstrap` for the difference between two configurations on the same subjects.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from . import release
from ._io import HTNetInputError
from .data import resolve_data_dir
from .release import FULL, LABELS, PREDICTIONS_NAME

def _checked(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels and predictions as int64 arrays of one shape, every value a class index."""
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    if t.shape != p.shape:
        raise HTNetInputError(None, "pred", f"{p.shape[0]} predictions for {t.shape[0]} labels")
    for name, a in (("label", t), ("pred", p)):
        if a.size and (a.min() < 0 or a.max() >= num_classes):
            raise HTNetInputError(None, name, f"values must be in 0..{num_classes - 1}, got {sorted(set(a.tolist()))}")
    return t, p


def confusion(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int = 3) -> np.ndarray:
    """Confusion matrix C[true, pred] of counts, over all `num_classes` labels."""
    t, p = _checked(y_true, y_pred, num_classes)
    return np.bincount(t * num_classes + p, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def uf1_uar_from_confusion(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(UF1, UAR) of one confusion matrix (C, C) or a stack (..., C, C), over the classes present in the truth (the
    rule of the module docstring); NaN where no class is present."""
    c = np.asarray(c, dtype=float)
    tp = np.diagonal(c, axis1=-2, axis2=-1)
    support, predicted = c.sum(-1), c.sum(-2)
    present = support > 0
    # 2TP / (2TP + FP + FN) with support = TP+FN and predicted = TP+FP; absent classes drop out of both means
    f1 = np.where(present, 2 * tp / np.maximum(support + predicted, 1), 0.0)
    recall = np.where(present, tp / np.maximum(support, 1), 0.0)
    n = present.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, f1.sum(-1) / n, np.nan), np.where(n > 0, recall.sum(-1) / n, np.nan)


def uf1_uar(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int = 3) -> tuple[float, float]:
    """(UF1, UAR) over the classes present in `y_true` (eq. 8-9). NaN for an empty input."""
    uf1, uar = uf1_uar_from_confusion(confusion(y_true, y_pred, num_classes))
    return float(uf1), float(uar)


def _groups(predictions: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(scope, rows) in report order: Full (the composite datasets pooled), then each dataset present."""
    ds = predictions["dataset"].astype(str)
    out = []
    composite = predictions[ds.isin(release.COMPOSITE)]
    if len(composite):
        out.append((FULL, composite))
    out += [(release.name_of(k), predictions[ds == k]) for k in release.KEYS if (ds == k).any()]
    return out


def scores(predictions: pd.DataFrame, pred_col: str = "pred") -> pd.DataFrame:
    """UF1/UAR for Full and each dataset present, from a table with columns dataset, label and `pred_col`.

    Returns a DataFrame indexed by scope (Full, SMIC-HS, CASME II, SAMM, CAS(ME)^3: `release.scopes`) with columns
    UF1, UAR, n. Full pools the composite's datasets (Table 2); CAS(ME)^3 is its own scope (Table 3).
    """
    for col in ("dataset", "label", pred_col):
        if col not in predictions.columns:
            raise HTNetInputError(None, col, f"predictions table lacks column '{col}'")
    rows = {}
    for name, g in _groups(predictions):
        uf1, uar = uf1_uar(g["label"], g[pred_col])
        rows[name] = {"UF1": uf1, "UAR": uar, "n": len(g)}
    return pd.DataFrame.from_dict(rows, orient="index", columns=["UF1", "UAR", "n"])


def scope_rows(predictions: pd.DataFrame, scope: str) -> pd.DataFrame:
    """The rows of one scope: the composite's datasets for Full, else those of the dataset named `scope`."""
    ds = predictions["dataset"].astype(str)
    if scope == FULL:
        return predictions[ds.isin(release.COMPOSITE)]
    return predictions[ds == release.key_of(scope)]


def mean_sd(scores: pd.DataFrame, by: Sequence[str] = ("protocol", "scope"), count: str = "n") -> pd.DataFrame:
    """Mean, sd and count of UF1/UAR per group, over repeats or seeds: columns *by, UF1_mean, UAR_mean, UF1_sd, ..."""
    g = scores.groupby(list(by), sort=False)[["UF1", "UAR"]]
    return g.mean().add_suffix("_mean").join(g.std(ddof=1).add_suffix("_sd")).join(g.size().rename(count)).reset_index()


# ---------------------------------------------------------------- intervals over subjects

def subject_confusions(predictions: pd.DataFrame, pred_col: str, subjects: Sequence[str],
                       num_classes: int = 3) -> np.ndarray:
    """(S, C, C): each subject's confusion matrix, in the order of `subjects` (zeros for a subject not in the table)."""
    where = predictions["subject"].map({s: i for i, s in enumerate(subjects)})
    keep = where.notna().to_numpy()
    t, p = _checked(predictions["label"].to_numpy()[keep], predictions[pred_col].to_numpy()[keep], num_classes)
    codes = (where.to_numpy()[keep].astype(np.int64) * num_classes + t) * num_classes + p
    return np.bincount(codes, minlength=len(subjects) * num_classes ** 2).reshape(len(subjects), num_classes,
                                                                                   num_classes)


def _as_list(predictions: pd.DataFrame | Sequence[pd.DataFrame]) -> list[pd.DataFrame]:
    return [predictions] if isinstance(predictions, pd.DataFrame) else list(predictions)


def _draws(n_subjects: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, S) how often each subject is drawn when S subjects are resampled with replacement."""
    picks = rng.integers(0, n_subjects, size=(n_boot, n_subjects))
    return np.stack([np.bincount(row, minlength=n_subjects) for row in picks])


def _boot_stats(runs: list[pd.DataFrame], col: str, scope: str, weights: np.ndarray | None, rng, n_boot: int):
    """Per bootstrap draw, UF1 and UAR averaged over `runs` (seeds); subjects are drawn once for all runs."""
    rows = [scope_rows(p, scope) for p in runs]
    subjects = list(dict.fromkeys(s for r in rows for s in r["subject"]))
    m = np.stack([subject_confusions(r, col, subjects) for r in rows])  # (R, S, C, C)
    w = _draws(len(subjects), n_boot, rng) if weights is None else weights
    boot = np.einsum("bs,rsij->brij", w, m)
    uf1, uar = uf1_uar_from_confusion(boot)  # (B, R)
    point = uf1_uar_from_confusion(m.sum(1))
    return (np.nanmean(uf1, 1), np.nanmean(uar, 1)), (float(np.mean(point[0])), float(np.mean(point[1]))), w


def bootstrap(predictions: pd.DataFrame | Sequence[pd.DataFrame], pred_col: str = "pred", n_boot: int = 1000,
              seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Percentile intervals for UF1/UAR by resampling subjects with replacement (LOSO's unit), per scope.

    Given several predictions tables (one per seed), the point is the mean over seeds and every draw resamples the same
    subjects for all of them, so the interval is that of the seed mean. Within a dataset only that dataset's subjects
    are resampled. Columns: UF1, UF1_lo, UF1_hi, UAR, UAR_lo, UAR_hi.
    """
    runs = _as_list(predictions)
    rng = np.random.default_rng(seed)
    alpha = (1 - level) / 2
    out = {}
    for name, _ in _groups(runs[0]):
        (b_uf1, b_uar), (uf1, uar), _ = _boot_stats(runs, pred_col, name, None, rng, n_boot)
        lo, hi = np.nanquantile(np.stack([b_uf1, b_uar], 1), [alpha, 1 - alpha], axis=0)
        out[name] = {"UF1": uf1, "UF1_lo": lo[0], "UF1_hi": hi[0], "UAR": uar, "UAR_lo": lo[1], "UAR_hi": hi[1]}
    return pd.DataFrame.from_dict(out, orient="index")


def paired_bootstrap(a: pd.DataFrame | Sequence[pd.DataFrame], b: pd.DataFrame | Sequence[pd.DataFrame],
                     col_a: str = "pred", col_b: str | None = None, n_boot: int = 2000, seed: int = 0,
                     level: float = 0.95) -> pd.DataFrame:
    """The difference a - b of UF1/UAR (each a mean over its seeds) with a paired bootstrap over subjects: every draw
    resamples the same subjects for both sides, so what the two share (the subjects' difficulty) cancels.

    Columns per scope: dUF1, dUF1_lo, dUF1_hi, p_UF1 (two-sided: twice the smaller share of draws on either side of
    0), the same for UAR, and `exceeds_noise` (the UF1 interval excludes 0).
    """
    ra, rb = _as_list(a), _as_list(b)
    col_b = col_b or col_a
    alpha = (1 - level) / 2
    out = {}
    for name, _ in _groups(ra[0]):
        subjects = list(dict.fromkeys(s for r in ra + rb for s in scope_rows(r, name)["subject"]))
        w = _draws(len(subjects), n_boot, np.random.default_rng(seed))
        (ba_f, ba_r), (pa_f, pa_r), _ = _boot_stats(ra, col_a, name, w, None, n_boot)
        (bb_f, bb_r), (pb_f, pb_r), _ = _boot_stats(rb, col_b, name, w, None, n_boot)
        row = {}
        for m, da, point in (("UF1", ba_f - bb_f, pa_f - pb_f), ("UAR", ba_r - bb_r, pa_r - pb_r)):
            lo, hi = np.nanquantile(da, [alpha, 1 - alpha])
            p = min(1.0, 2 * min(np.nanmean(da <= 0), np.nanmean(da >= 0)))
            row.update({f"d{m}": point, f"d{m}_lo": lo, f"d{m}_hi": hi, f"p_{m}": p})
        row["exceeds_noise"] = bool(row["dUF1_lo"] > 0 or row["dUF1_hi"] < 0)
        out[name] = row
    return pd.DataFrame.from_dict(out, orient="index")


def null_differences(predictions: Sequence[pd.DataFrame], pred_col: str = "pred", n_boot: int = 1000,
                     seed: int = 0) -> pd.DataFrame:
    """How far apart two single-seed runs of the *same* network land, per scope: the noise a paired comparison of
    two single runs must rise above (§4.4's ablations compare single runs).

    `predictions`: one table per seed of one configuration (two or more). For every bootstrap draw of subjects (shared
    by all seeds, as in `paired_bootstrap`) and every pair of seeds, the difference of their UF1 (UAR) is a draw of the
    null difference: it holds both the seed-to-seed spread and the subject resampling. Columns per scope: seeds,
    pairs, UF1_seed_sd / UAR_seed_sd (sd of the seeds' scores, no resampling) and UF1_null_sd / UAR_null_sd (root mean
    square of the null differences: the sd of a single-seed difference).
    """
    runs = _as_list(predictions)
    if len(runs) < 2:
        raise ValueError("the null difference needs at least two seeds of one configuration")
    rng = np.random.default_rng(seed)
    pairs = [(i, j) for i in range(len(runs)) for j in range(i + 1, len(runs))]
    out = {}
    for name, _ in _groups(runs[0]):
        rows = [scope_rows(p, name) for p in runs]
        subjects = list(dict.fromkeys(s for r in rows for s in r["subject"]))
        m = np.stack([subject_confusions(r, pred_col, subjects) for r in rows])  # (R, S, C, C)
        boot = np.einsum("bs,rsij->brij", _draws(len(subjects), n_boot, rng), m)
        row: dict[str, float] = {"seeds": len(runs), "pairs": len(pairs)}
        for metric, b, point in zip(("UF1", "UAR"), uf1_uar_from_confusion(boot), uf1_uar_from_confusion(m.sum(1))):
            d = np.stack([b[:, i] - b[:, j] for i, j in pairs])  # (pairs, B)
            row[f"{metric}_seed_sd"] = float(np.std(point, ddof=1))
            row[f"{metric}_null_sd"] = float(np.sqrt(np.nanmean(d ** 2)))  # E[d] = 0 under the null: rms, not sd
        out[name] = row
    return pd.DataFrame.from_dict(out, orient="index")


def detectable_difference(null_sd: float | np.ndarray, seeds: int = 1, power: float = 0.8,
                          alpha: float = 0.05) -> float | np.ndarray:
    """The smallest true difference between two configurations, each the mean of `seeds` runs, that a two-sided test
    at level `alpha` detects with probability `power`, given the sd of a single-seed null difference
    (`null_differences`): (z_{1-alpha/2} + z_power) * null_sd / sqrt(seeds). The normal approximation; seeds averaged
    independently on both sides.

    >>> round(detectable_difference(0.01, seeds=1), 4)
    0.028
    >>> round(detectable_difference(0.01, seeds=4), 4)
    0.014
    """
    from scipy.stats import norm

    return (norm.ppf(1 - alpha / 2) + norm.ppf(power)) * null_sd / np.sqrt(seeds)


def authors_predictions(samples: pd.DataFrame, data_dir: str | os.PathLike | None = None,
                        path: str | os.PathLike | None = None) -> pd.DataFrame:
    """The authors' stored per-subject predictions (`authors_predictions.json`) as a table: subject, dataset, label, pred.

    Each subject's `truth` list must be a permutation of that subject's labels in the samples table.
    """
    p = Path(path) if path else resolve_data_dir(data_dir) / PREDICTIONS_NAME
    if not p.is_file():
        raise HTNetInputError(p, None, "the authors' predictions file is missing")
    try:
        stored = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise HTNetInputError(p, None, f"not valid JSON: {e}") from None
    ds_of = dict(zip(samples["subject"], samples["dataset"].astype(str)))
    rows = []
    for subject, entry in stored.items():
        if subject not in ds_of:
            raise HTNetInputError(p, subject, "subject not in the samples table")
        for key in ("pred", "truth"):
            if key not in entry:
                raise HTNetInputError(p, f"{subject}.{key}", "missing")
        if len(entry["pred"]) != len(entry["truth"]):
            raise HTNetInputError(p, f"{subject}.pred", "length differs from truth")
        ours = sorted(samples.loc[samples["subject"] == subject, "label"].tolist())
        if sorted(entry["truth"]) != ours:
            raise HTNetInputError(p, f"{subject}.truth", f"labels {sorted(entry['truth'])} differ from the CSV's {ours}")
        for t, pr in zip(entry["truth"], entry["pred"]):
            if pr not in LABELS:
                raise HTNetInputError(p, f"{subject}.pred", f"unknown label {pr!r}")
            rows.append({"subject": subject, "dataset": ds_of[subject], "label": int(t), "pred": int(pr)})
    return pd.DataFrame(rows)
