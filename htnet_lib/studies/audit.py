"""The protocol audit: what picking each subject's best epoch by its own test labels is worth on its own (§4.2).

The paper's protocol (the authors' code) keeps, for every held-out subject, the predictions of the epoch with the
best accuracy on that subject. Applied to predictions that carry no information, the same choice still scores
well above chance: the maximum over many noisy draws of a small subject's accuracy is high. This module measures it
with guesses drawn from the class priors (a fresh guess per epoch) and, through `loso.run_loso` with
`label_shuffle: true`, with a real model trained on shuffled labels.
"""
from __future__ import annotations

import os
from typing import Annotated, Sequence

import numpy as np
import pandas as pd
from pydantic import Field, StrictInt

from .. import loso, metrics, release
from ..config import Ints, Section
from ..loso import FoldRecord
from .spec import Study, load_study


class AuditOptions(Section):
    """The audit file's own keys."""

    label_shuffle_seeds: Ints = ()  # seeds of the runs trained on shuffled labels (empty: none)
    guess_epochs: Annotated[StrictInt, Field(gt=0)] = 800  # the paper's epoch count
    guess_repeats: Annotated[StrictInt, Field(gt=0)] = 5


def guess_records(samples: pd.DataFrame, epochs: int, seed: int) -> dict[str, FoldRecord]:
    """Records shaped like a LOSO run's, holding random guesses: per subject and epoch, each prediction drawn from
    the class priors of the *other* subjects (what a model that learnt only the priors could know), as one-hot
    logits."""
    rng = np.random.default_rng(seed)
    labels = samples["label"].to_numpy()
    subjects = samples["subject"].to_numpy()
    k = len(release.LABELS)  # the release's classes
    records = {}
    for s in dict.fromkeys(subjects):
        test = np.flatnonzero(subjects == s)
        prior = np.bincount(labels[subjects != s], minlength=k) / (subjects != s).sum()
        guesses = rng.choice(k, size=(epochs, len(test)), p=prior)
        records[s] = FoldRecord(s, np.arange(1, epochs + 1), test, np.zeros(0, np.int64),
                                np.eye(k, dtype=np.float32)[guesses], np.zeros((epochs, 0, k), np.float32),
                                np.zeros(epochs))
    return records


def random_guess_oracle(samples: pd.DataFrame, epochs: int = 800, repeats: int = 5, seed: int = 0,
                        curve_at: Sequence[int] = (1, 2, 5, 10, 20, 50, 100, 200, 400, 800)) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Random guesses scored under the paper's selection and at a fixed epoch, `repeats` times.

    Returns (scores: repeat, protocol, scope, UF1, UAR; curve: repeat, epoch, protocol, scope, UF1, UAR).
    """
    score_rows, curves = [], []
    for r in range(repeats):
        rec = guess_records(samples, epochs, seed + r)
        preds = loso.protocol_predictions(rec, samples, ["paper", "last"])
        score_rows.append(loso.protocol_scores(preds).assign(repeat=r))
        curves.append(loso.epoch_curve(rec, samples, at=[e for e in curve_at if e <= epochs]).assign(repeat=r))
    return pd.concat(score_rows, ignore_index=True), pd.concat(curves, ignore_index=True)


def summarize(scores: pd.DataFrame, by: Sequence[str] = ("protocol", "scope")) -> pd.DataFrame:
    """Mean and sd of UF1/UAR over repeats or seeds."""
    return metrics.mean_sd(scores, by)


def chance_level(samples: pd.DataFrame, draws: int = 200, seed: int = 0) -> pd.DataFrame:
    """UF1/UAR of prior-drawn guesses with no selection (the level the oracle starts from)."""
    rng = np.random.default_rng(seed)
    k = len(release.LABELS)
    prior = np.bincount(samples["label"], minlength=k) / len(samples)
    rows = []
    for _ in range(draws):
        p = samples.assign(pred=rng.choice(k, size=len(samples), p=prior))
        rows.append(metrics.scores(p).reset_index(names="scope"))
    allr = pd.concat(rows)
    return allr.groupby("scope", sort=False)[["UF1", "UAR"]].mean()


def load_audit(path: str | os.PathLike) -> Study:
    """Read and validate an audit file (a study file with `AuditOptions`); errors name the file and the key."""
    return load_study(path, AuditOptions)


def run_audit_training(study: Study, progress: bool = True, executor=None) -> tuple[list[loso.Run], list[loso.Run]]:
    """The real runs (one per seed) and the shuffled-label runs (one per `label_shuffle_seeds`), trained together:
    (real runs, shuffled runs)."""
    real = study.seeded(study.base)
    shuffled = [study.base.replace(seed=s, label_shuffle=True) for s in study.options.label_shuffle_seeds]
    runs = loso.run_many(real + shuffled, progress=progress, executor=executor)
    return runs[:len(real)], runs[len(real):]


def describe(table: pd.DataFrame, scope: str = "Full") -> str:
    """A short, neutral reading of a `figures.audit.audit_table` for one scope, with the numbers it rests on."""
    t = table[table["scope"] == scope].set_index(["predictions", "protocol"])
    parts = []
    for kind in dict.fromkeys(t.index.get_level_values(0)):
        try:
            oracle = t.loc[(kind, "paper"), "UF1_mean"]
            fixed = t.loc[(kind, "last"), "UF1_mean"]
        except KeyError:
            continue
        parts.append(f"{kind}: UF1 {fixed:.3f} at a fixed epoch, {oracle:.3f} when each subject's epoch is picked by "
                     f"its test labels (+{oracle - fixed:.3f})")
    return f"{scope}: " + "; ".join(parts) + "."
