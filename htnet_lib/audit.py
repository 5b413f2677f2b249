"""The protocol audit: what picking each subject's best epoch by its own test labels is worth on its own (§4.2).

The paper's protocol (the authors' code) keeps, for every held-out subject, the predictions of the epoch with the
best accuracy on that subject. Applied to predictions that carry no information, the same choice still scores
well above chance: the maximum over many noisy draws of a small subject's accuracy is high. This module measures it
with guesses drawn from the class priors (a fresh guess per epoch) and, through `loso.run_loso` with
`label_shuffle: true`, with a real model trained on shuffled labels.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from . import loso, metrics
from ._io import HTNetInputError
from .config import Params, load_base, read_yaml_mapping


def guess_records(samples: pd.DataFrame, epochs: int, seed: int) -> dict[str, dict[str, np.ndarray]]:
    """Records shaped like a LOSO run's, holding random guesses: per subject and epoch, each prediction drawn from
    the class priors of the *other* subjects (what a model that learnt only the priors could know)."""
    rng = np.random.default_rng(seed)
    labels = samples["label"].to_numpy()
    subjects = samples["subject"].to_numpy()
    records = {}
    for s in dict.fromkeys(subjects):
        test = np.flatnonzero(subjects == s)
        prior = np.bincount(labels[subjects != s], minlength=3) / (subjects != s).sum()
        records[s] = {"epochs": np.arange(1, epochs + 1),
                      "test_pred": rng.choice(3, size=(epochs, len(test)), p=prior).astype(np.int8),
                      "inner_pred": np.zeros((epochs, 0), np.int8), "test_idx": test,
                      "inner_idx": np.zeros(0, np.int64)}
    return records


def random_guess_oracle(samples: pd.DataFrame, epochs: int = 800, repeats: int = 5, seed: int = 0,
                        curve_at: Sequence[int] = (1, 2, 5, 10, 20, 50, 100, 200, 400, 800)) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Random guesses scored under the paper's selection and at a fixed epoch, `repeats` times.

    Returns (scores: repeat, protocol, scope, UF1, UAR; curve: repeat, epoch, protocol, scope, UF1, UAR).
    """
    score_rows, curves = [], []
    for r in range(repeats):
        rec = guess_records(samples, epochs, seed + r)
        preds = loso.protocol_predictions(rec, samples)
        score_rows.append(loso.protocol_scores(preds).assign(repeat=r))
        curves.append(loso.epoch_curve(rec, samples, at=[e for e in curve_at if e <= epochs]).assign(repeat=r))
    scores = pd.concat(score_rows, ignore_index=True)
    scores["protocol"] = scores["protocol"].replace({"paper": "paper (oracle)", "last": "fixed epoch"})
    return scores, pd.concat(curves, ignore_index=True)


def summarize(scores: pd.DataFrame, by: Sequence[str] = ("protocol", "scope")) -> pd.DataFrame:
    """Mean and sd of UF1/UAR over repeats or seeds."""
    return metrics.mean_sd(scores, by)


def chance_level(samples: pd.DataFrame, draws: int = 200, seed: int = 0) -> pd.DataFrame:
    """UF1/UAR of prior-drawn guesses with no selection (the level the oracle starts from)."""
    rng = np.random.default_rng(seed)
    prior = np.bincount(samples["label"], minlength=3) / len(samples)
    rows = []
    for _ in range(draws):
        p = samples.assign(pred=rng.choice(3, size=len(samples), p=prior))
        rows.append(metrics.scores(p).reset_index(names="scope"))
    allr = pd.concat(rows)
    return allr.groupby("scope", sort=False)[["UF1", "UAR"]].mean()


@dataclass(frozen=True)
class AuditPlan:
    """`params/<level>/audit.yaml`: the base params, the seeds of real runs, whether to add a shuffled-label run, and
    the random-guess simulation's size."""

    base: Params
    seeds: tuple[int, ...]
    label_shuffle_run: bool
    guess_epochs: int
    guess_repeats: int


def load_audit(path: str | os.PathLike) -> AuditPlan:
    """Read and validate an audit file; errors name the file and the key."""
    known = {"base", "overrides", "seeds", "label_shuffle_run", "guess_epochs", "guess_repeats"}
    spec = read_yaml_mapping(path, "audit", known)
    base = load_base(path, spec)
    path = Path(path)
    seeds = spec.get("seeds", [base.train.seed])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise HTNetInputError(path, "seeds", f"expected a non-empty list of integers, got {seeds!r}")
    for key in ("guess_epochs", "guess_repeats"):
        v = spec.get(key, 1)
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise HTNetInputError(path, key, f"expected a positive integer, got {v!r}")
    shuffle = spec.get("label_shuffle_run", False)
    if not isinstance(shuffle, bool):
        raise HTNetInputError(path, "label_shuffle_run", f"expected true/false, got {shuffle!r}")
    return AuditPlan(base, tuple(seeds), shuffle, spec.get("guess_epochs", 800), spec.get("guess_repeats", 5))


def run_audit_training(plan: AuditPlan, progress: bool = True) -> tuple[list[Path], list[Path]]:
    """The real runs (one per seed) and, if asked, the shuffled-label run: (real run folders, shuffled run folders)."""
    from . import data

    samples = data.load_samples(plan.base.run.data_dir or None)
    real = [loso.run_loso(plan.base.replace(seed=s), samples=samples, progress=progress) for s in plan.seeds]
    shuffled = []
    if plan.label_shuffle_run:
        shuffled = [loso.run_loso(plan.base.replace(label_shuffle=True), name="shuffled", samples=samples,
                                  progress=progress)]
    return real, shuffled


def describe(table: pd.DataFrame, scope: str = "Full") -> str:
    """A short, neutral reading of an `figures.audit_table` for one scope, with the numbers it rests on."""
    t = table[table["scope"] == scope].set_index(["predictions", "protocol"])
    parts = []
    for kind in dict.fromkeys(t.index.get_level_values(0)):
        try:
            oracle = t.loc[(kind, "paper (oracle)"), "UF1_mean"]
            fixed = t.loc[(kind, "fixed epoch"), "UF1_mean"]
        except KeyError:
            continue
        parts.append(f"{kind}: UF1 {fixed:.3f} at a fixed epoch, {oracle:.3f} when each subject's epoch is picked by "
                     f"its test labels (+{oracle - fixed:.3f})")
    return f"{scope}: " + "; ".join(parts) + "."
