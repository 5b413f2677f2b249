"""UF1 and UAR (§4.2, eq. 8-9) over the pooled predictions of all LOSO folds, per dataset, with bootstrap intervals.

UF1 is the mean over classes of the per-class F1 = 2TP / (2TP + FP + FN); UAR the mean over classes of the per-class
recall TP / (TP + FN). Both pool every fold's predictions first (the MEGC2019 convention the paper follows).

Classes with no ground-truth sample in the scored set are left out of both means: their recall is undefined. The
authors' `recognition_evaluation` skips a class only when it is absent from both truth and predictions (their 2x2
confusion matrix cannot be formed); when a class is absent from the truth but predicted, their UAR becomes NaN. On the
composite data every dataset holds all three classes, so the two rules give the same numbers.
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

SCOPES = tuple(release.scopes())  # Full, SMIC-HS, CASME II, SAMM


def confusion(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int = 3) -> np.ndarray:
    """Confusion matrix C[true, pred] of counts."""
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    if t.shape != p.shape:
        raise HTNetInputError(None, "pred", f"{p.shape[0]} predictions for {t.shape[0]} labels")
    for name, a in (("label", t), ("pred", p)):
        if a.size and (a.min() < 0 or a.max() >= num_classes):
            raise HTNetInputError(None, name, f"values must be in 0..{num_classes - 1}, got {sorted(set(a.tolist()))}")
    return np.bincount(t * num_classes + p, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def uf1_uar(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int = 3) -> tuple[float, float]:
    """(UF1, UAR) over the classes present in `y_true` (eq. 8-9). NaN for an empty input."""
    c = confusion(y_true, y_pred, num_classes)
    tp = np.diag(c).astype(float)
    support = c.sum(axis=1)
    predicted = c.sum(axis=0)
    present = support > 0
    if not present.any():
        return float("nan"), float("nan")
    # 2TP / (2TP + FP + FN) with support = TP+FN and predicted = TP+FP; absent classes are dropped below
    f1 = 2 * tp / np.maximum(support + predicted, 1)
    recall = tp / np.maximum(support, 1)
    return float(f1[present].mean()), float(recall[present].mean())


def scores(predictions: pd.DataFrame, pred_col: str = "pred") -> pd.DataFrame:
    """UF1/UAR for Full and each dataset present, from a table with columns dataset, label and `pred_col`.

    Returns a DataFrame indexed by scope (Full, SMIC-HS, CASME II, SAMM, or CAS(ME)^3) with columns UF1, UAR, n.
    """
    for col in ("dataset", "label", pred_col):
        if col not in predictions.columns:
            raise HTNetInputError(None, col, f"predictions table lacks column '{col}'")
    rows = {}
    groups = [(FULL, predictions)] + [(release.name_of(d), predictions[predictions["dataset"].astype(str) == d])
                                      for d in release.KEYS]
    for name, g in groups:
        if len(g):
            uf1, uar = uf1_uar(g["label"], g[pred_col])
            rows[name] = {"UF1": uf1, "UAR": uar, "n": len(g)}
    return pd.DataFrame.from_dict(rows, orient="index")[["UF1", "UAR", "n"]]


def scope_rows(predictions: pd.DataFrame, scope: str) -> pd.DataFrame:
    """The rows of one scope: all of them for Full, else those of the dataset named `scope` (e.g. 'SAMM')."""
    if scope == FULL:
        return predictions
    key = release.key_of(scope)
    return predictions[predictions["dataset"].astype(str) == key]


def mean_sd(scores: pd.DataFrame, by: Sequence[str] = ("protocol", "scope"), count: str = "n") -> pd.DataFrame:
    """Mean, sd and count of UF1/UAR per group, over repeats or seeds: columns *by, UF1_mean, UAR_mean, UF1_sd, ..."""
    g = scores.groupby(list(by), sort=False)[["UF1", "UAR"]]
    return g.mean().add_suffix("_mean").join(g.std(ddof=1).add_suffix("_sd")).join(g.size().rename(count)).reset_index()


def bootstrap(predictions: pd.DataFrame, pred_col: str = "pred", n_boot: int = 1000, seed: int = 0,
              level: float = 0.95) -> pd.DataFrame:
    """Percentile intervals for UF1/UAR by resampling subjects with replacement (LOSO's unit), per scope.

    Within a dataset only that dataset's subjects are resampled. Columns: UF1, UF1_lo, UF1_hi, UAR, UAR_lo, UAR_hi.
    """
    rng = np.random.default_rng(seed)
    point = scores(predictions, pred_col)
    out = {}
    alpha = (1 - level) / 2
    for name in point.index:
        g = scope_rows(predictions, name)
        by_subject = {s: (sg["label"].to_numpy(), sg[pred_col].to_numpy()) for s, sg in g.groupby("subject", sort=False)}
        keys = list(by_subject)
        stats = np.empty((n_boot, 2))
        for b in range(n_boot):
            pick = rng.integers(0, len(keys), len(keys))
            t = np.concatenate([by_subject[keys[i]][0] for i in pick])
            p = np.concatenate([by_subject[keys[i]][1] for i in pick])
            stats[b] = uf1_uar(t, p)
        lo, hi = np.nanquantile(stats, [alpha, 1 - alpha], axis=0)
        out[name] = {"UF1": point.loc[name, "UF1"], "UF1_lo": lo[0], "UF1_hi": hi[0],
                     "UAR": point.loc[name, "UAR"], "UAR_lo": lo[1], "UAR_hi": hi[1]}
    return pd.DataFrame.from_dict(out, orient="index")


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
