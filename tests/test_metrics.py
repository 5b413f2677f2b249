import pandas as pd
import pytest

from htnet_lib import metrics
from htnet_lib._io import HTNetInputError


def test_hand_computed():
    # truth 0 0 0 1 1 2, pred 0 0 1 1 2 2
    # class 0: TP2 FP0 FN1 -> F1 4/5, recall 2/3; class 1: TP1 FP1 FN1 -> 1/2, 1/2; class 2: TP1 FP1 FN0 -> 2/3, 1
    uf1, uar = metrics.uf1_uar([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 2, 2])
    assert uf1 == pytest.approx((4 / 5 + 1 / 2 + 2 / 3) / 3)
    assert uar == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)


def test_confusion_by_hand_per_subject_and_with_bad_rows():
    """C[true, pred] of the hand-computed case above; per subject, one matrix each in the order asked (zeros for a
    subject without rows); a label outside the classes is refused in either, naming the column."""
    assert metrics.confusion([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 2, 2]).tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    table = pd.DataFrame({"subject": ["a", "b", "a", "b", "c"], "label": [0, 2, 1, 2, 1], "pred": [0, 1, 1, 2, 0]})
    per = metrics.subject_confusions(table, "pred", ["b", "z", "a"])
    assert per.tolist() == [[[0, 0, 0], [0, 0, 0], [0, 1, 1]], [[0] * 3] * 3, [[1, 0, 0], [0, 1, 0], [0, 0, 0]]]
    assert per.dtype.kind == "i"  # counts, for the bootstrap's integer weights
    with pytest.raises(HTNetInputError, match="label.*0..2"):
        metrics.subject_confusions(table.assign(label=[0, 2, 1, 3, 1]), "pred", ["b"])
    with pytest.raises(HTNetInputError, match="pred.*0..2"):
        metrics.confusion([0, 1], [0, -1])


def test_class_absent_from_truth_is_left_out():
    # no surprise in the truth; one surprise predicted: class 2 is not scored, its false positive still costs class 0
    uf1, uar = metrics.uf1_uar([0, 0, 1, 1], [0, 2, 1, 1])
    assert uf1 == pytest.approx((2 / 3 + 1) / 2)
    assert uar == pytest.approx((1 / 2 + 1) / 2)
    assert metrics.uf1_uar([1, 1], [1, 1]) == (1.0, 1.0)


def test_bad_predictions():
    with pytest.raises(HTNetInputError, match="pred"):
        metrics.uf1_uar([0, 1], [0])
    with pytest.raises(HTNetInputError, match="label"):
        metrics.uf1_uar([0, 3], [0, 1])


def test_authors_predictions_reproduce_reported_scores(samples, data_dir):
    """The authors' stored per-subject predictions score 0.8313 / 0.8175 Full (below the paper's Table 2, 0.8603 / 0.8475)."""
    preds = metrics.authors_predictions(samples, data_dir)
    assert len(preds) == 442 and preds["subject"].nunique() == 68
    s = metrics.scores(preds).round(4)
    assert s.loc["Full", ["UF1", "UAR"]].tolist() == [0.8313, 0.8175]
    assert s.loc["SMIC-HS", ["UF1", "UAR"]].tolist() == [0.7691, 0.7620]
    assert s.loc["CASME II", ["UF1", "UAR"]].tolist() == [0.9367, 0.9242]
    assert s.loc["SAMM", ["UF1", "UAR"]].tolist() == [0.7870, 0.7590]


def test_bootstrap_interval_contains_point(samples, data_dir):
    preds = metrics.authors_predictions(samples, data_dir)
    b = metrics.bootstrap(preds, n_boot=200, seed=1)
    assert (b["UF1_lo"] <= b["UF1"]).all() and (b["UF1"] <= b["UF1_hi"]).all()
    assert (b["UF1_hi"] - b["UF1_lo"]).loc["Full"] < (b["UF1_hi"] - b["UF1_lo"]).loc["SAMM"]
    # perfect predictions have a degenerate interval at 1
    perfect = preds.assign(pred=preds["label"])
    assert metrics.bootstrap(perfect, n_boot=20).loc["Full", ["UF1_lo", "UF1_hi"]].tolist() == [1.0, 1.0]


def test_stacked_confusions_match_one_by_one():
    import numpy as np

    rng = np.random.default_rng(0)
    mats = rng.integers(0, 5, size=(7, 3, 3))
    mats[2, 1, :] = 0  # a class absent from the truth of one matrix
    uf1, uar = metrics.uf1_uar_from_confusion(mats)
    for k, m in enumerate(mats):
        t = np.repeat(np.arange(3), m.sum(1))
        p = np.concatenate([np.repeat(np.arange(3), m[i]) for i in range(3)])
        assert (uf1[k], uar[k]) == pytest.approx(metrics.uf1_uar(t, p))
    assert np.isnan(metrics.uf1_uar_from_confusion(np.zeros((3, 3)))[0])


def test_bootstrap_of_seeds_and_paired_differences(samples, data_dir):
    preds = metrics.authors_predictions(samples, data_dir)
    one = metrics.bootstrap(preds, n_boot=300, seed=2)
    two = metrics.bootstrap([preds, preds], n_boot=300, seed=2)  # the mean of equal seeds is the same run
    pd.testing.assert_frame_equal(one, two)
    same = metrics.paired_bootstrap(preds, preds, n_boot=200)
    assert (same[["dUF1", "dUF1_lo", "dUF1_hi"]] == 0).all().all() and not same["exceeds_noise"].any()
    perfect = preds.assign(pred=preds["label"])
    d = metrics.paired_bootstrap(perfect, preds, n_boot=500)
    assert d.loc["Full", "dUF1"] == pytest.approx(1 - 0.8313, abs=1e-4)  # perfect minus the authors' 0.8313
    assert d.loc["Full", "exceeds_noise"] and d.loc["Full", "dUF1_lo"] > 0 and d.loc["Full", "p_UF1"] < 0.01
    # pairing removes what both share: the paired interval is narrower than the unpaired intervals' spread
    wrong_one = preds.copy()
    wrong_one.loc[wrong_one.index[0], "pred"] = (wrong_one["label"].iloc[0] + 1) % 3
    d1 = metrics.paired_bootstrap(preds, wrong_one, n_boot=500).loc["Full"]
    b = metrics.bootstrap(preds, n_boot=500).loc["Full"]
    assert d1["dUF1_hi"] - d1["dUF1_lo"] < 0.2 * (b["UF1_hi"] - b["UF1_lo"])
