"""Notebooks 08 and 09's pieces: the selection rule, the fresh-seed check, the recorded choice, the published honest
baselines (sourced, checked against the paper's Table 2 and against the STSTNet authors' own confusion matrix) and the
standing table."""
import doctest
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from htnet_lib import metrics, paper_values, published
from htnet_lib._io import HTNetInputError
from htnet_lib.figures import standing
from htnet_lib.studies import load_study

ROOT = Path(__file__).resolve().parent.parent


def test_doc_examples_run():
    for module in (published, standing):
        r = doctest.testmod(module)
        assert r.attempted > 0 and r.failed == 0, module.__name__


def test_published_numbers_that_htnets_table2_copies_are_its_cells():
    """STSTNet's and OFF-ApexNet's printed composite numbers are HTNet's Table 2 cells (which copies them); only the
    STSTNet UAR differs, on purpose: the printed one is a precision (next test)."""
    rows = {r[0]: r for r in paper_values.TABLE2}
    paper_rows = [b for b in published.PUBLISHED if b.source.startswith(("Liong", "STSTNet paper"))]
    assert [b.network for b in paper_rows] == ["STSTNet", "OFF-ApexNet"]
    for b in paper_rows:
        assert b.uf1 == rows[b.network][1]
    off = paper_rows[1]
    assert off.uar == rows["OFF-ApexNet"][2]
    assert rows["STSTNet"][2] == 0.7605 and paper_rows[0].uar == 0.7186


def test_ststnets_printed_uar_is_macro_precision_and_its_recall_is_0_7186():
    """The confusion matrix of the STSTNet authors' MATLAB log (rows true negative/positive/surprise; docs/
    baselines-sources.md section 2.2) gives their Table III's UF1 0.7353, a recall (UAR) of 0.7186, and the printed
    "UAR" 0.7605 as the mean of the columns' precisions."""
    c = np.array([[219, 22, 9], [40, 62, 7], [21, 3, 59]])
    y_true = np.repeat([0, 1, 2], c.sum(1))
    y_pred = np.concatenate([np.repeat([0, 1, 2], row) for row in c])
    uf1, uar = metrics.uf1_uar(y_true, y_pred)
    precision = np.mean(np.diag(c) / c.sum(0))
    stst = published.PUBLISHED[0]
    assert (round(uf1, 4), round(uar, 4), round(precision, 4)) == (stst.uf1, stst.uar, 0.7605)


def test_the_selection_rule_and_fresh_seeds_at_every_level():
    """At every level the fresh seeds share none with the selection's or the screening's, the fresh study holds the
    baseline and only candidates of the selection, and a fresh seed set that overlaps is refused naming the file; a
    fresh study without the chosen candidate is refused naming its points."""
    for level in ("smoke", "quick", "honest"):
        sel, fresh, screen = (load_study(ROOT / "params" / level / f) for f in ("selection.yaml", "fresh.yaml",
                                                                               "honest.yaml"))
        assert standing.seeds_apart(fresh, sel, screen) == fresh.seeds
        labels = {p.label for p in fresh.sweeps["fresh"].points}
        candidates = {p.label for p in sel.sweeps["candidates"].points}
        assert "baseline" in labels and labels - {"baseline"} <= candidates, level
        for chosen in candidates & labels:  # whichever the selection picks, the fresh study reports it
            assert standing.reported_here(fresh, chosen) == [p.label for p in fresh.sweeps["fresh"].points], level
        if level != "honest":  # chosen within `make run`: the fresh study trains every candidate
            assert candidates <= labels, level
    assert standing.reported_here(fresh, "recipe, dim 32") == [p.label for p in fresh.sweeps["fresh"].points]
    with pytest.raises(HTNetInputError, match=r"fresh\.yaml.*sweeps\.fresh\.points.*'recipe, dim 64'"):
        standing.reported_here(fresh, "recipe, dim 64")
    with pytest.raises(HTNetInputError, match=r"selection\.yaml.*seeds.*\[0, 1\]"):
        standing.seeds_apart(sel, screen)  # honest: selection seeds 0-1 are among the screening's 0-4
    t = pd.DataFrame({"candidate": ["a", "b", "c"], "protocol": ["last", "paper", "last"], "UF1": [0.7, 0.9, 0.6]})
    assert standing.selected(t) == "a" and standing.selected(t, "paper") == "b"


def test_the_headline_reads_the_recorded_choice_and_its_seeds_chose_nothing(tmp_path):
    """Notebook 09 reads the choice from notebook 08's saved table (the one candidate marked chosen), never choosing
    again; at every level the unseen seeds share none with the screening, selection or fresh studies, and the honest
    level's headline point is the recipe its selection chose. A missing table, or one with no or two marks, is refused
    naming the file and the field."""
    choice = pd.DataFrame({"candidate": ["a", "b"], "protocol": ["last", "last"], "UF1": [0.70, 0.71]})
    standing.mark_chosen(choice, standing.selected(choice)).to_csv(tmp_path / standing.SELECTION_TABLE, index=False)
    assert standing.recorded_choice(tmp_path) == "b"
    for level in ("smoke", "quick", "honest"):
        unseen, *choosers = (load_study(ROOT / "params" / level / f) for f in ("unseen.yaml", "honest.yaml",
                                                                              "selection.yaml", "fresh.yaml"))
        assert standing.seeds_apart(unseen, *choosers) == unseen.seeds
    recorded = standing.recorded_choice(ROOT / "figures" / "honest")
    assert standing.reported_here(unseen, recorded, sweep="unseen") == [recorded]
    choice.to_csv(tmp_path / standing.SELECTION_TABLE, index=False)
    with pytest.raises(HTNetInputError, match=r"standing_selection\.csv.*candidate.*0 candidates marked"):
        standing.recorded_choice(tmp_path)
    with pytest.raises(HTNetInputError, match=r"nothing.*standing_selection\.csv.*--only 08"):
        standing.recorded_choice(tmp_path / "nothing")


def test_standing_table_places_published_numbers_against_the_headline_interval():
    ours = pd.DataFrame({"candidate": ["recipe", "baseline"], "protocol": ["last", "last"], "UF1": [0.70, 0.63],
                         "UF1_sd": [0.01, 0.02], "UF1_lo": [0.65, 0.58], "UF1_hi": [0.725, 0.68], "UAR": [0.69, 0.62],
                         "seeds": [5, 5]})
    t = standing.standing_table(ours, {"recipe": "HTNet recipe", "baseline": "HTNet baseline"}, "recipe")
    pub = t[t["where"].str.startswith("published")].set_index("source")
    assert len(pub) == len(published.PUBLISHED) and t["network"].iloc[0] == "HTNet recipe"
    where = dict(zip(pub["UF1"], pub["against_headline"]))
    assert where[0.7353] == "above" and where[0.7209] == "inside" and where[0.7032] == "inside"
    assert pub["minus_headline"].round(4).tolist() == [round(b.uf1 - 0.70, 4) for b in published.PUBLISHED]
    words = standing.words(t, "HTNet recipe")
    assert "2 of 6 published numbers lie above the 95% interval" in words and "6 lie above its mean" in words
    with pytest.raises(ValueError, match="ensemble"):
        standing.standing_table(ours, {"ensemble": "x"}, "ensemble")


def test_every_level_trains_ststnet_at_its_authors_settings_on_the_headlines_folds():
    """Each level's baselines.yaml names the published number it reproduces; the honest level trains the STSTNet port's
    settings (main.py of github.com/christy1206/STSTNet) on all folds, five seeds; every level holds out the subjects
    of its headline study (unseen.yaml), so notebook 09 pairs the two over the same subjects."""
    for level in ("smoke", "quick", "honest"):
        base, unseen = (load_study(ROOT / "params" / level / f) for f in ("baselines.yaml", "unseen.yaml"))
        pub = standing.reproducing(base)
        assert [b.key for b in pub.values()][0] == "ststnet-port", level
        p = base.sweeps["baselines"].points[0].params
        t, m = p.train, p.model
        assert (m.arch, t.lr, t.batch_size, t.weight_decay, p.run.engine) == ("ststnet", 5.0e-5, 256, 0.0, "loop"), level
        assert (t.regions, t.preprocessing, t.fixed_epochs) == ("whole", "official", ()), level
        assert (m.dropout, m.batch_norm, m.padding) == (0.5, True, 2), level
        assert (t.shuffle, t.loss, t.label_smoothing, t.mirror, t.shift_px, t.swa_start) == (False, "ce", 0, False, 0, 0)
        assert t.folds == unseen.base.train.folds, level
        assert all(q.params.train.folds == t.folds for q in unseen.sweeps[standing.HEADLINE].points), level
        if level != "smoke":
            assert t.epochs == 800, level
    assert base.seeds == (0, 1, 2, 3, 4) and p.train.folds == ()


def test_offapexnet_at_mebs_settings_is_the_point_its_own_study_trains():
    """params/honest/offapexnet.yaml trains OFF-ApexNet one seed per process; the honest baselines.yaml holds the
    same point (settings, seeds, base), so notebook 09 reads the run folders that study trained. Smoke trains it at
    2 epochs; quick leaves it out (3,000 epochs on 5 folds would outlast `make run`)."""
    own = load_study(ROOT / "params" / "honest" / "offapexnet.yaml")
    (point,) = own.sweeps["baselines"].points
    honest = load_study(ROOT / "params" / "honest" / "baselines.yaml")
    there = {p.label: p for p in honest.sweeps["baselines"].points}
    assert own.seeds == honest.seeds == (0, 1, 2, 3, 4) and own.base == honest.base
    assert [b.key for b in standing.reproducing(honest).values()][0] == "ststnet-port"
    assert [b.key for b in standing.reproducing(own).values()] == ["offapexnet-meb"]
    assert there[point.label].params == point.params
    assert [p.label for p in honest.sweeps["baselines"].points][1] == point.label
    assert (point.params.train.epochs, point.params.train.lr, point.params.train.batch_size) == (3000, 1.0e-4, 32)
    smoke = {p.label: p.params for p in load_study(ROOT / "params" / "smoke" / "baselines.yaml").sweeps["baselines"].points}
    mine = smoke[point.label]
    assert mine.train.epochs == 2 and (mine.model, mine.run) == (point.params.model, point.params.run)
    assert mine.train.model_copy(update={"epochs": 3000, "folds": ()}) == point.params.train
    quick = load_study(ROOT / "params" / "quick" / "baselines.yaml")
    assert [b.key for b in standing.reproducing(quick).values()] == ["ststnet-port"]


def test_a_baseline_names_a_known_published_number(tmp_path):
    """An unknown key is refused when the study loads, naming the file and the point; a point naming none is refused
    when the notebook asks what it reproduces."""
    text = (ROOT / "params" / "smoke" / "baselines.yaml").read_text()
    (tmp_path / "loso.yaml").write_text((ROOT / "params" / "smoke" / "loso.yaml").read_text())
    bad = tmp_path / "baselines.yaml"
    bad.write_text(text.replace("reproduces: ststnet-port", "reproduces: ststnet-v2"))
    with pytest.raises(HTNetInputError, match=r"baselines\.yaml.*sweeps\.baselines\[0\]\.reproduces.*ststnet-v2.*"
                                              r"known: ststnet-matlab"):
        load_study(bad)
    bad.write_text(text.replace(",\n         reproduces: ststnet-port", ""))
    with pytest.raises(HTNetInputError, match=r"sweeps\.baselines\[0\]\.reproduces.*names no published number"):
        standing.reproducing(load_study(bad))


def test_a_reproduced_baseline_is_placed_against_its_published_number():
    """Inside, above or below our 95% interval over subjects, with published - ours (hand-computed)."""
    pub = {"a": published.by_key("ststnet-port"), "b": published.by_key("ststnet-matlab"),
           "c": published.by_key("offapexnet-meb")}
    ours = pd.DataFrame({"candidate": ["a", "b", "c"], "protocol": ["last"] * 3, "UF1": [0.70, 0.70, 0.75],
                         "UF1_sd": [0.01] * 3, "UF1_lo": [0.66, 0.66, 0.71], "UF1_hi": [0.73, 0.73, 0.79],
                         "UAR": [0.7] * 3, "UAR_lo": [0.64] * 3, "UAR_hi": [0.75] * 3, "seeds": [5] * 3})
    t = standing.against_published(ours, pub)
    assert t["reproduced"].tolist() == ["inside", "above", "below"]
    assert t["published_minus_ours"].round(4).tolist() == [0.0209, 0.0353, -0.0468]
    assert t["published_UAR"].iloc[:2].tolist() == [0.725, 0.7186] and np.isnan(t["published_UAR"].iloc[2])
    view = standing.reproduced_formatted(t)
    assert view["published - here"].tolist()[0] == "+0.021 (inside our interval)"
    assert view["Full UF1 here"].tolist()[0] == "0.7000 ± 0.010 [0.660, 0.730]"
    assert view["published UF1 / UAR"].tolist()[2] == "0.7032 / not reported"
    assert view["Full UAR here"].tolist()[0] == "0.7000 [0.640, 0.750]"  # the published UAR 0.725 lies inside
    table = standing.standing_table([ours.iloc[:1], ours.iloc[1:2]], {"a": "A", "b": "B"}, "a")
    assert table["network"].tolist()[:2] == ["A", "B"] and table["where"].iloc[1] == "here, 5 seeds"
