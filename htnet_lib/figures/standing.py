"""Tables of notebooks 08 and 09 (where honest HTNet stands): a candidate (width, schedule) chosen on some seeds
(`selection.yaml`), reported on seeds that chose nothing (`fresh.yaml`, notebook 08); then the headline, the recorded
choice on seeds that trained only after it was final (`unseen.yaml`, notebook 09), beside published baselines trained
here at their authors' settings (`baselines.yaml`) and the honest numbers published for them (`htnet_lib.published`).

The rule is fixed before any fresh seed is trained: the candidate with the highest mean Full UF1 at the last epoch on
the selection seeds is the one reported, and the fresh seeds must share no seed with the studies that chose it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .. import metrics, published
from .._io import HTNetInputError
from ..studies.spec import Study
from ..studies.sweeps import SweepResults
from . import honest

BASELINES = "baselines"  # the sweep of params/<level>/baselines.yaml
HEADLINE = "unseen"  # the sweep of params/<level>/unseen.yaml: the headline's seeds (notebook 09)


def selected(table: pd.DataFrame, protocol: str = "last") -> str:
    """The candidate the selection seeds choose: the highest mean Full UF1 under `protocol` (ties: the first listed,
    the smaller model in our selection files).

    >>> selected(pd.DataFrame({"candidate": ["a", "b"], "protocol": ["last", "last"], "UF1": [0.70, 0.71]}))
    'b'
    """
    t = table[table["protocol"] == protocol]
    if t.empty:
        raise ValueError(f"no candidate scored under {protocol!r}")
    return str(t.loc[t["UF1"].idxmax(), "candidate"])


def seeds_apart(reported: Study, *choosers: Study) -> tuple[int, ...]:
    """The seeds of `reported`, after checking that none of them was used by a study that chose what it reports
    (the selection, the candidate screening): a shared seed would make the headline the optimistic number."""
    shared = sorted(set(reported.seeds) & {s for c in choosers for s in c.seeds})
    if shared:
        raise HTNetInputError(reported.path, "seeds", f"seed(s) {shared} also chose the recipe "
                                                      f"({', '.join(str(c.path.name) for c in choosers)}): report on "
                                                      f"seeds that chose nothing")
    return reported.seeds


def reported_here(fresh: Study, chosen: str, sweep: str = "fresh") -> list[str]:
    """The candidates `fresh` reports, after checking that it holds the `chosen` one: the headline is the chosen
    candidate on the fresh seeds, so a fresh study without it has nothing to report (add the point to its file)."""
    labels = [p.label for p in fresh.sweeps[sweep].points]
    if chosen not in labels:
        raise HTNetInputError(fresh.path, f"sweeps.{sweep}.points", f"the selection chose {chosen!r}, which this "
                                                                    f"study does not train: add it (with the "
                                                                    f"selection's settings) to report it")
    return labels


CHOSEN_MARK = " (chosen)"  # how `mark_chosen` labels the chosen candidate in a saved table
SELECTION_TABLE = "standing_selection.csv"  # notebook 08's record of the choice, in figures/<level>/


def mark_chosen(table: pd.DataFrame, chosen: str) -> pd.DataFrame:
    """`table` with the chosen candidate's label marked, for display."""
    out = table.copy()
    out["candidate"] = [f"{c}{CHOSEN_MARK}" if c == chosen else c for c in out["candidate"]]
    return out


def recorded_choice(folder: str | os.PathLike) -> str:
    """The candidate the selection seeds chose, read from the table notebook 08 saved in `folder` (figures/<level>):
    the choice is made once, on the selection seeds, and every later report reads it instead of choosing again."""
    path = Path(folder) / SELECTION_TABLE
    if not path.is_file():
        raise HTNetInputError(path, None, "no recorded choice: notebook 08 writes it (python -m htnet_lib reproduce "
                                          f"--params {Path(folder).name} --only 08)")
    table = pd.read_csv(path)
    if "candidate" not in table:
        raise HTNetInputError(path, "candidate", "column missing: not a table of notebook 08")
    marked = sorted({c.removesuffix(CHOSEN_MARK) for c in table["candidate"].astype(str) if c.endswith(CHOSEN_MARK)})
    if len(marked) != 1:
        raise HTNetInputError(path, "candidate", f"{len(marked)} candidates marked{CHOSEN_MARK!r}, expected one")
    return marked[0]


def standing_table(ours: pd.DataFrame | Sequence[pd.DataFrame], names: dict[str, str], headline: str,
                   protocol: str = "last",
                   baselines: Sequence[published.PublishedBaseline] = published.PUBLISHED) -> pd.DataFrame:
    """Published honest baselines beside the networks trained here. `ours`: rows of `honest.candidate_table` or
    `reproduced_table` (mean over seeds, 95% interval over subjects; several tables are joined); `names` maps the
    candidates to show to their names in the table;
    `headline`: the candidate every published number is compared with. A published number comes from one run with
    no interval, so the comparison is unpaired: where it falls against the headline's 95% interval over subjects
    (`above`, `inside`, `below`) and the difference published - headline."""
    ours = ours if isinstance(ours, pd.DataFrame) else pd.concat(list(ours), ignore_index=True)
    t = ours[ours["protocol"] == protocol].set_index("candidate")
    missing = sorted(set(names) - set(t.index))
    if missing or headline not in names:
        raise ValueError(f"not in the table under {protocol!r}: {missing or [headline]}")
    h = t.loc[headline]
    seeds = {c: int(t.loc[c, "seeds"]) for c in names}
    rows = [{"network": names[c], "where": f"here, {seeds[c]} seed{'s' * (seeds[c] > 1)}", "maps": "release",
             "UF1": t.loc[c, "UF1"], "UF1_sd": t.loc[c, "UF1_sd"], "UF1_lo": t.loc[c, "UF1_lo"],
             "UF1_hi": t.loc[c, "UF1_hi"], "UAR": t.loc[c, "UAR"], "source": "this project"} for c in names]
    for b in baselines:
        rows.append({"network": b.network, "where": "published, one run", "maps": b.maps, "UF1": b.uf1,
                     "UF1_sd": np.nan, "UF1_lo": np.nan, "UF1_hi": np.nan, "UAR": np.nan if b.uar is None else b.uar,
                     "source": b.source, "minus_headline": b.uf1 - h["UF1"],
                     "against_headline": "above" if b.uf1 > h["UF1_hi"] else "below" if b.uf1 < h["UF1_lo"]
                     else "inside"})
    return pd.DataFrame(rows)


def _interval(mean: float, sd: float, lo: float, hi: float, digits: int) -> str:
    """`mean ± sd [lo, hi]`; without the sd when it is NaN (one seed), the mean alone without an interval."""
    if lo != lo:  # a published number: no interval
        return f"{mean:.{digits}f}"
    spread = f" ± {sd:.{digits - 1}f}" if sd == sd else ""
    return f"{mean:.{digits}f}{spread} [{lo:.{digits - 1}f}, {hi:.{digits - 1}f}]"


def formatted(table: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """A readable view of `standing_table`."""
    def cell(r) -> str:
        return _interval(r.UF1, r.UF1_sd, r.UF1_lo, r.UF1_hi, digits)
    vs = ["" if pd.isna(m) else f"{m:+.{digits - 1}f} ({a} its interval)"
          for m, a in zip(table.get("minus_headline", pd.Series(np.nan, index=table.index)),
                          table.get("against_headline", pd.Series("", index=table.index)))]
    return pd.DataFrame({"network": table["network"], "where": table["where"], "maps": table["maps"],
                         "Full UF1": [cell(r) for r in table.itertuples()],
                         "Full UAR": ["not reported" if u != u else f"{u:.{digits}f}" for u in table["UAR"]],
                         "published - headline": vs, "source": table["source"]})


def words(table: pd.DataFrame, headline_name: str) -> str:
    """Where the headline stands among the published numbers, on the same maps and on others."""
    pub = table[table["where"].str.startswith("published")]
    out = []
    for maps, what in (("release", "on the same maps"), ("MEB", "on MEB's own optical flow")):
        p = pub[pub["maps"] == maps]
        if p.empty:
            continue
        parts = [f"{r.network} {r.UF1:.4f} ({r.against_headline})" for r in p.itertuples()]
        out.append(f"Published {what}: {'; '.join(parts)}.")
    above = pub[pub["against_headline"] == "above"]
    out.append(f"{len(above)} of {len(pub)} published numbers lie above the 95% interval of {headline_name}; "
               f"{(pub['minus_headline'] > 0).sum()} lie above its mean.")
    return "\n".join(out)


def protocol_gap_words(table: pd.DataFrame, headline_name: str, honest_protocol: str = "last",
                       scope: str = "Full") -> str:
    """One sentence on `table` (rows of `honest.candidate_table` for one candidate under several protocols, paired
    against `honest_protocol`): the honest number, then each other protocol's number on the same runs and its paired
    difference (§4.2: how much of a number the epoch pick alone gives).

    >>> t = pd.DataFrame({"protocol": ["last", "paper"], "protocol_label": ["last epoch", "paper protocol"],
    ...                   "UF1": [0.72, 0.85], "UF1_lo": [0.66, 0.80], "UF1_hi": [0.77, 0.89], "seeds": [5, 5],
    ...                   "dUF1": [np.nan, 0.13], "dUF1_lo": [np.nan, 0.10], "dUF1_hi": [np.nan, 0.16],
    ...                   "exceeds_noise": [np.nan, True]})
    >>> print(protocol_gap_words(t, "HTNet"))
    HTNet, 5 seeds, last epoch: Full UF1 0.720 [0.660, 0.770]; paper protocol on the same runs: 0.850 (+0.130 [+0.100, +0.160], beyond the paired noise).
    """
    base = table[table["protocol"] == honest_protocol].iloc[0]
    parts = [f"{headline_name}, {int(base['seeds'])} seed{'s' * (int(base['seeds']) > 1)}, {base['protocol_label']}: "
             f"{scope} UF1 {base['UF1']:.3f} [{base['UF1_lo']:.3f}, {base['UF1_hi']:.3f}]"]
    for _, r in table[table["protocol"] != honest_protocol].iterrows():
        noise = "beyond" if bool(r["exceeds_noise"]) else "within"
        parts.append(f"{r['protocol_label']} on the same runs: {r['UF1']:.3f} ({r['dUF1']:+.3f} "
                     f"[{r['dUF1_lo']:+.3f}, {r['dUF1_hi']:+.3f}], {noise} the paired noise)")
    return "; ".join(parts) + "."


def reproducing(study: Study, sweep: str = BASELINES) -> dict[str, published.PublishedBaseline]:
    """Each point of a baselines study (label) and the published number it reproduces; a point that names none is
    refused (a baseline is compared with HTNet only once it is checked against its authors' number)."""
    if sweep not in study.sweeps:
        raise HTNetInputError(study.path, "sweeps", f"expected a sweep named {sweep!r}: the published baselines")
    out = {}
    for i, p in enumerate(study.sweeps[sweep].points):
        if not p.reproduces:
            raise HTNetInputError(study.path, f"sweeps.{sweep}[{i}].reproduces", f"{p.label!r} names no published "
                                  f"number (known: {', '.join(b.key for b in published.PUBLISHED)})")
        out[p.label] = published.by_key(p.reproduces)
    return out


def reproduced_table(results: SweepResults, protocol: str = "last", n_boot: int = 1000,
                     sweep: str = BASELINES) -> pd.DataFrame:
    """Each baseline trained here at its authors' settings beside the number they published: ours (mean over seeds,
    sd, 95% interval over subjects, as `honest.candidate_table`) and `reproduced`: whether the published UF1 lies
    inside that interval (else `above` or `below`), with the difference published - ours."""
    t = honest.candidate_table(results, sweep, (results.study.sweeps[sweep].points[0].label, protocol),
                               protocols=(protocol,), n_boot=n_boot)
    t = t.drop(columns=[c for c in PAIRED if c in t])
    return against_published(t, reproducing(results.study, sweep))


PAIRED = ("dUF1", "dUF1_lo", "dUF1_hi", "p_UF1", "exceeds_noise")


def protocols_table(reported: SweepResults, candidates: Sequence[str], baselines: SweepResults | None = None,
                    protocols: Sequence[str] = ("paper", "last"), reported_sweep: str = HEADLINE,
                    n_boot: int = 1000) -> pd.DataFrame:
    """The same runs scored under each of `protocols` (§4.2: the paper's pick of each subject's best epoch, read from
    its test labels, beside the last epoch): `candidates` of a study that chose nothing (`reported`, its sweep
    `reported_sweep`: the headline's unseen seeds by default) and every baseline trained here, one row per (candidate,
    protocol) as `honest.scored` gives it. How much of a number is the protocol, on runs that chose nothing; for scale
    only, never a choice."""
    points = [(reported, reported_sweep, label) for label in candidates]
    if baselines is not None:
        points += [(baselines, BASELINES, p.label) for p in baselines.study.sweeps[BASELINES].points]
    rows = []
    for results, sweep, label in points:
        preds = honest.point_predictions(results, sweep, label, protocols)
        rows += honest.scored(label, preds, protocols, n_boot=n_boot)
    return pd.DataFrame(rows)


def against_published(ours: pd.DataFrame, pub: dict[str, published.PublishedBaseline]) -> pd.DataFrame:
    """`ours` (rows with candidate, UF1, UF1_lo, UF1_hi) with the published number each candidate reproduces
    (`pub`: label -> published baseline) and where it falls against our interval.

    >>> ours = pd.DataFrame({"candidate": ["a"], "UF1": [0.70], "UF1_lo": [0.65], "UF1_hi": [0.72]})
    >>> against_published(ours, {"a": published.by_key("ststnet-port")})[["published", "reproduced"]].values.tolist()
    [[0.7209, 'above']]
    """
    t = ours.copy()
    t["published"] = [pub[c].uf1 for c in t["candidate"]]
    t["published_UAR"] = [np.nan if pub[c].uar is None else pub[c].uar for c in t["candidate"]]
    t["published_minus_ours"] = t["published"] - t["UF1"]
    t["reproduced"] = ["inside" if lo <= p <= hi else "above" if p > hi else "below"
                       for p, lo, hi in zip(t["published"], t["UF1_lo"], t["UF1_hi"])]
    t["source"] = [pub[c].source for c in t["candidate"]]
    return t


def reproduced_formatted(table: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """A readable view of `reproduced_table`."""
    return pd.DataFrame({
        "baseline": table["candidate"], "seeds": table["seeds"],
        "Full UF1 here": [_interval(r.UF1, r.UF1_sd, r.UF1_lo, r.UF1_hi, digits) for r in table.itertuples()],
        "Full UAR here": [_interval(r.UAR, np.nan, r.UAR_lo, r.UAR_hi, digits) for r in table.itertuples()],
        "published UF1 / UAR": [f"{p:.{digits}f} / " + ("not reported" if u != u else f"{u:.{digits}f}")
                                for p, u in zip(table["published"], table["published_UAR"])],
        "published - here": [f"{d:+.{digits - 1}f} ({w} our interval)" for d, w in
                             zip(table["published_minus_ours"], table["reproduced"])],
        "source": table["source"]})


def versus_baselines(reported: SweepResults, headline: str, baselines: SweepResults, protocol: str = "last",
                     n_boot: int = 2000, reported_sweep: str = HEADLINE, sweep: str = BASELINES) -> pd.DataFrame:
    """The headline (`headline`, a point of `reported`'s sweep `reported_sweep`: the unseen seeds by default) minus
    each baseline trained here (its own seeds), paired over the same subjects (`metrics.paired_bootstrap`: each side a
    mean over its seeds, every draw resamples the subjects for both); index (against, scope). Both must have held out
    the same subjects, or the pairing would be unequal."""
    a = honest.point_predictions(reported, reported_sweep, headline, [protocol])
    subjects = set(a[0]["subject"])
    out = {}
    for point in baselines.study.sweeps[sweep].points:
        b = honest.point_predictions(baselines, sweep, point.label, [protocol])
        if set(b[0]["subject"]) != subjects:
            raise HTNetInputError(baselines.study.path, f"sweeps.{sweep}", f"{point.label!r} holds out other subjects "
                                  f"than {reported.study.path.name}'s {headline!r}: give both the same folds")
        out[point.label] = metrics.paired_bootstrap(a, b, protocol, protocol, n_boot=n_boot)
    return pd.concat(out, names=["against", "scope"])


def versus_words(table: pd.DataFrame, headline_name: str, scope: str = "Full") -> str:
    """One line per baseline: the headline's paired difference from it and whether it exceeds the noise.

    >>> t = pd.DataFrame({"dUF1": [0.031], "dUF1_lo": [-0.004], "dUF1_hi": [0.066], "exceeds_noise": [False]},
    ...                  index=pd.MultiIndex.from_tuples([("STSTNet", "Full")], names=["against", "scope"]))
    >>> print(versus_words(t, "HTNet"))
    HTNet - STSTNet: Full UF1 +0.031 [-0.004, +0.066], within the paired noise.
    """
    lines = []
    for (against, sc), r in table.iterrows():
        if sc == scope:
            verdict = "exceeds the paired noise" if r["exceeds_noise"] else "within the paired noise"
            lines.append(f"{headline_name} - {against}: {scope} UF1 {r['dUF1']:+.3f} [{r['dUF1_lo']:+.3f}, "
                         f"{r['dUF1_hi']:+.3f}], {verdict}.")
    return "\n".join(lines)
