"""The honest recipe's training options (htnet_lib.loso.augment, SWA in the engines, the mean@K and inner-es@P
protocols, seed ensembles), exact against hand-made references (that both engines train them the same:
tests/test_loso.py::test_fold_alone_equals_fold_in_batch)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from htnet_lib import config, data, loso, regions
from htnet_lib.loso import FoldRecord, augment, engines

TINY = dict(dim=16, heads=2, block_repeats=[1, 1, 1], epochs=3, progress=False)


@pytest.fixture(scope="module")
def inputs(samples, flow_maps):
    X = regions.model_inputs(samples, flow_maps, config.TrainConfig(), progress=False)
    return X, torch.tensor(samples["label"].to_numpy())


def test_mirror_flips_columns_and_reverses_horizontal_flow(flow_maps):
    """The mirror is an involution, flips columns, inverts u in normalised units and keeps strain and v as they are;
    on the release it maps the channels' mirror statistics onto themselves (u stays anti-symmetric)."""
    x = torch.from_numpy(flow_maps).permute(0, 3, 1, 2).float()
    m = augment.mirror(x, scaled=False)
    assert torch.equal(augment.mirror(m, scaled=False), x)
    assert torch.equal(m[:, :2], x[:, :2].flip(-1)) and torch.equal(m[:, 2], 255 - x[:, 2].flip(-1))
    sym = data.flow_channel_symmetry(m.permute(0, 2, 3, 1).numpy())
    ref = data.flow_channel_symmetry(flow_maps)
    assert sym == pytest.approx(ref, abs=1e-6) and sym[2] < 0 < sym[1]
    scaled = x / 127.5 - 1
    torch.testing.assert_close(augment.mirror(scaled, scaled=True), m / 127.5 - 1)


def test_shift_moves_by_whole_pixels_with_repeated_edges():
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).view(2, 3, 5, 5)
    s = augment._shifted(x, 1, -1, 2)
    assert torch.equal(s[..., 1:, :-1], x[..., :-1, 1:])  # content moved down one row and left one column
    assert torch.equal(s[..., 0, :-1], x[..., 0, 1:]) and torch.equal(s[..., :, -1], s[..., :, -2])  # edges repeated
    assert torch.equal(augment._shifted(x, 0, 0, 2), x)


def test_fold_loss_is_pytorchs_cross_entropy():
    torch.manual_seed(0)
    logits, y = torch.randn(2, 7, 3), torch.randint(0, 3, (2, 7))
    mask = torch.ones(2, 7)
    mask[1, 5:] = 0
    w = torch.tensor([[1.0, 2.0, 3.0], [0.5, 1.0, 4.0]])
    got = augment.fold_loss(logits, y, mask, w, 0.1)
    for i, n in enumerate((7, 5)):
        ref = F.cross_entropy(logits[i, :n], y[i, :n], weight=w[i], label_smoothing=0.1)
        torch.testing.assert_close(got[i], ref)
    torch.testing.assert_close(augment.fold_loss(logits, y, mask, None, 0.0)[0], F.cross_entropy(logits[0], y[0]))
    cw = augment.class_weights(torch.tensor([0, 0, 0, 1]), 3)
    assert cw.tolist() == pytest.approx([4 / 9, 4 / 3, 0.0])


def test_swa_records_the_running_average(samples, inputs):
    """From `swa_start` on, the recorded outputs are those of the weights' running average: starting at the last
    epoch it is the final weights; earlier epochs are untouched."""
    X, y = inputs
    p = config.params_from_dict({**TINY, "folds": ["s01"]})
    plan = loso.plan_folds(samples, p.train)
    plain = engines.train_loop(X, y, plan, p)[0]
    at_end = engines.train_loop(X, y, plan, p.replace(swa_start=3))[0]
    from_one = engines.train_loop(X, y, plan, p.replace(swa_start=1))[0]
    np.testing.assert_array_equal(at_end.test_logits, plain.test_logits)
    np.testing.assert_array_equal(from_one.test_logits[0], plain.test_logits[0])
    assert not np.allclose(from_one.test_logits[2], plain.test_logits[2])
    np.testing.assert_array_equal(from_one.train_loss, plain.train_loss)  # averaging does not touch training


def one_hot(pred):
    return np.eye(3, dtype=np.float32)[np.asarray(pred)] * 5


def test_mean_and_early_stopping_protocols(samples):
    t = np.flatnonzero(samples["subject"] == "s01")
    i = np.flatnonzero(samples["subject"] == "s02")
    yt, yi = samples["label"].to_numpy()[t], samples["label"].to_numpy()[i]
    wrong_t, wrong_i = (yt + 1) % 3, (yi + 1) % 3
    # inner accuracy over 6 epochs: 0, 1/2, 0, 0, 0, 1: patience 2 stops at epoch 4 (best: 2); patience 4 reaches 6
    half = np.where(np.arange(len(yi)) < len(yi) // 2, yi, wrong_i)
    inner = one_hot([wrong_i, half, wrong_i, wrong_i, wrong_i, yi])
    test = one_hot([wrong_t, yt, wrong_t, wrong_t, yt, yt])
    rec = FoldRecord("s01", np.arange(1, 7), t, i, test, inner, np.zeros(6))
    preds = loso.protocol_predictions({"s01": rec}, samples, ["inner-es@2", "inner-es@4", "inner", "mean@3", "mean@2"])
    assert (preds["inner-es@2_epoch"] == 2).all() and (preds["inner-es@2"] == yt).all()
    assert (preds["inner_epoch"] == 6).all()
    assert (preds["inner-es@4_epoch"] == 6).all()
    assert (preds["mean@2"] == yt).all() and (preds["mean@3"] == yt).all()  # 2 of the last 3 epochs are right
    assert loso.label("mean@5") == "mean probability of the last 5 epochs" and loso.parse("inner-es@3")[0].honest


def test_ensemble_of_seeds(samples, inputs, tmp_path):
    X, _ = inputs
    p = config.params_from_dict({**TINY, "epochs": 2, "folds": ["s01", "006"], "engine": "loop",
                                 "runs_dir": str(tmp_path)})
    runs = loso.run_many([p, p.replace(seed=1)], samples=samples, X=X)
    one = loso.ensemble_predictions(runs[:1], "last", samples)
    np.testing.assert_array_equal(one["last"].to_numpy(), runs[0].predictions()["last"].to_numpy())
    both = loso.ensemble_predictions(runs, "last", samples)
    probs = [loso.protocol_probabilities(r.records(), samples, "last")[["p0", "p1", "p2"]].to_numpy() for r in runs]
    np.testing.assert_array_equal(both["last"].to_numpy(), ((probs[0] + probs[1]) / 2).argmax(1))
    assert runs[0].protocol_predictions(["mean@2"], samples)["mean@2"].between(0, 2).all()
