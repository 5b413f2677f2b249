"""Tables of notebook 08 (where honest HTNet stands): a candidate (width, schedule) chosen on some seeds
(`selection.yaml`), reported on seeds that chose nothing (`fresh.yaml`), beside the published honest baselines
(`htnet_lib.published`).

The rule is fixed before any fresh seed is trained: the candidate with the highest mean Full UF1 at the last epoch on
the selection seeds is the one reported, and the fresh seeds must share no seed with the studies that chose it.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from .. import published
from .._io import HTNetInputError
from ..studies.spec import Study


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


def mark_chosen(table: pd.DataFrame, chosen: str) -> pd.DataFrame:
    """`table` with the chosen candidate's label marked, for display."""
    out = table.copy()
    out["candidate"] = [f"{c} (chosen)" if c == chosen else c for c in out["candidate"]]
    return out


def standing_table(ours: pd.DataFrame, names: dict[str, str], headline: str, protocol: str = "last",
                   baselines: Sequence[published.PublishedBaseline] = published.PUBLISHED) -> pd.DataFrame:
    """Published honest baselines beside HTNet trained here. `ours`: rows of `honest.candidate_table` (mean over
    seeds, 95% interval over subjects); `names` maps the candidates to show to their names in the table;
    `headline`: the candidate every published number is compared with. A published number comes from one run with
    no interval, so the comparison is unpaired: where it falls against the headline's 95% interval over subjects
    (`above`, `inside`, `below`) and the difference published - headline."""
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


def formatted(table: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """A readable view of `standing_table`."""
    def cell(r) -> str:
        if r.UF1_lo != r.UF1_lo:  # a published number: no interval
            return f"{r.UF1:.{digits}f}"
        sd = f" ± {r.UF1_sd:.{digits - 1}f}" if r.UF1_sd == r.UF1_sd else ""
        return f"{r.UF1:.{digits}f}{sd} [{r.UF1_lo:.{digits - 1}f}, {r.UF1_hi:.{digits - 1}f}]"
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
