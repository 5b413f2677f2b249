"""Tables and figures of notebook 05 (protocol audit; §4.2): the paper protocol's pick applied to random guesses and
to a model trained on shuffled labels, beside real runs."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from .. import metrics, paper_values, release
from ..loso import Run, label as protocol_label, seed_summary
from ..models.registry import network_name
from . import finish


def audit_table(guess_scores: pd.DataFrame, real: Sequence[Run], shuffled: Sequence[Run] = ()) -> pd.DataFrame:
    """What the paper's selection gives on no information (random guesses, a model trained on shuffled labels) beside
    real runs, each under the paper protocol and at a fixed epoch; mean and sd over repeats/seeds."""
    frames = [metrics.mean_sd(guess_scores).assign(predictions="random guesses (class priors)")]
    for what, dirs in (("real labels", real), ("shuffled labels", shuffled)):
        if dirs:
            name = f"{network_name(dirs[0].params.model)}, {what}"
            s = seed_summary(dirs).rename(columns={"seeds": "n"})
            s = s[s["protocol"].isin(["paper", "last"])]
            frames.append(s.assign(predictions=name))
    out = pd.concat(frames, ignore_index=True)
    return out[["predictions", "protocol", "scope", "UF1_mean", "UF1_sd", "UAR_mean", "UAR_sd", "n"]]


def audit_figure(audit: pd.DataFrame, metric: str = "UF1") -> plt.Figure:
    """Bars: paper protocol vs fixed epoch for each kind of predictions, per scope; the paper's reported value marked."""
    scopes = release.scopes_of(audit)
    fig, axes = plt.subplots(1, 2, figsize=(12 * max(1, len(scopes) / 4), 4), sharey=True)
    reported = paper_values.htnet_table2()
    for ax, proto in zip(axes, ["paper", "last"]):
        sub = audit[audit["protocol"] == proto]
        sns.barplot(data=sub, x="scope", y=f"{metric}_mean", hue="predictions", order=scopes, ax=ax)
        for i, scope in enumerate(scopes):
            if scope in reported.index:
                ax.hlines(reported.loc[scope, metric], i - 0.42, i + 0.42, colors="black", linewidth=2.5,
                          label="paper (reported)" if i == 0 else None)
        ax.set_title(protocol_label(proto) + (": each subject's best epoch by its own labels" if proto == "paper"
                                              else ": no test labels used"), fontsize=9)
        ax.set_ylabel(metric)
        ax.set_xlabel("dataset")
        ax.set_ylim(0, 1)
        ax.get_legend().remove()
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=4, bbox_to_anchor=(0.5, -0.06))
    fig.suptitle(f"Protocol audit ({metric}): the paper's epoch selection applied to uninformative predictions")
    fig.tight_layout()
    return finish(fig)
