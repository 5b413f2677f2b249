import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch

from htnet_lib import config, loso
from htnet_lib._io import HTNetInputError

TINY = dict(dim=16, heads=2, block_repeats=[1, 1, 1], epochs=3, progress=False)


@pytest.fixture(scope="module")
def inputs(samples, flow_maps):
    p = config.params_from_dict(TINY)
    X = loso.prepare_inputs(samples, flow_maps, p.train, progress=False)
    return X, torch.tensor(samples["label"].to_numpy())


def test_inputs_are_official_regions(samples, flow_maps, inputs):
    X, _ = inputs
    assert X.shape == (442, 3, 28, 28) and X.dtype == torch.float32
    assert X.max() == 255 and X.min() == 0  # raw 0..255, no normalisation (the authors' input)


@pytest.mark.parametrize("extra", [{}, {"shuffle": True, "inner_val_subjects": 2, "batch_size": 150, "label_shuffle": True}])
def test_fold_alone_equals_fold_in_batch(samples, inputs, extra):
    """The batched engine trains each fold exactly as the loop does: same init, same batches, same predictions."""
    X, y = inputs
    p = config.params_from_dict({**TINY, **extra, "folds": ["sub01", "s03", "006", "s05", "sub07", "020"]})
    plans = loso.plan_folds(samples, p.train)
    target = next(q for q in plans if q.subject == "s03")
    n_b = len(loso.epoch_batches(target, 1, p.train))
    plans = [q for q in plans if len(loso.epoch_batches(q, 1, p.train)) == n_b]  # a chunk holds equal batch counts
    assert len(plans) >= 3
    alone = loso.train_loop(X, y, [target], p)[0]
    batch = loso.train_batched(X, y, plans, p)[plans.index(target)]
    assert alone.subject == batch.subject == "s03"
    np.testing.assert_array_equal(alone.test_pred, batch.test_pred)
    np.testing.assert_array_equal(alone.inner_pred, batch.inner_pred)
    np.testing.assert_allclose(alone.train_loss, batch.train_loss, rtol=1e-4)  # float32 rounding of 0..255 inputs
    assert alone.train_loss[-1] < alone.train_loss[0]  # it learns


def test_label_shuffle_keeps_priors_and_test_labels(samples, inputs):
    _, y = inputs
    p = config.params_from_dict({**TINY, "label_shuffle": True, "folds": ["s01"]})
    plan = loso.plan_folds(samples, p.train)[0]
    ys = loso.fold_labels(plan, y, p.train)
    tr = torch.as_tensor(plan.train_idx)
    assert torch.equal(ys[plan.test_idx], y[plan.test_idx])
    assert torch.equal(torch.bincount(ys[tr]), torch.bincount(y[tr]))
    assert (ys[tr] != y[tr]).float().mean() > 0.3


def test_pick_epoch_ties_go_to_the_later_epoch():
    assert loso.pick_epoch([0.5, 0.8, 0.8, 0.2]) == 2
    assert loso.pick_epoch([0.0, 0.0]) == 1


def test_protocols_from_records(samples):
    """Hand-made records: the paper protocol peeks at the test labels, `inner` only at inner subjects."""
    s = samples
    t = np.flatnonzero(s["subject"] == "s01")  # 7 test samples
    i = np.flatnonzero(s["subject"] == "s02")
    yt, yi = s["label"].to_numpy()[t], s["label"].to_numpy()[i]
    wrong_t, wrong_i = (yt + 1) % 3, (yi + 1) % 3
    rec = {"epochs": np.array([1, 2, 3]),
           "test_pred": np.stack([wrong_t, yt, wrong_t]).astype(np.int8),  # epoch 2 is perfect on the test subject
           "inner_pred": np.stack([wrong_i, wrong_i, yi]).astype(np.int8),  # epoch 3 is best on inner subjects
           "test_idx": t, "inner_idx": i}
    preds = loso.protocol_predictions({"s01": rec}, s, fixed_epochs=[1])
    assert (preds["paper_epoch"] == 2).all() and (preds["paper"] == yt).all()
    assert (preds["inner_epoch"] == 3).all() and (preds["inner"] == wrong_t).all()
    assert (preds["last"] == wrong_t).all() and (preds["fixed@1"] == wrong_t).all()
    scores = loso.protocol_scores(preds).set_index(["protocol", "scope"])
    assert scores.loc[("paper", "Full"), "UF1"] == 1.0 and scores.loc[("inner", "Full"), "UF1"] == 0.0
    curve = loso.epoch_curve({"s01": rec}, s).set_index(["epoch", "protocol", "scope"])
    assert curve.loc[(1, "paper (oracle)", "Full"), "UF1"] == 0.0
    assert curve.loc[(3, "paper (oracle)", "Full"), "UF1"] == 1.0
    assert curve.loc[(3, "fixed epoch", "Full"), "UF1"] == 0.0


def test_run_is_reproducible_and_complete(samples, tmp_path):
    p = config.params_from_dict({**TINY, "folds": ["s01", "sub02"], "fixed_epochs": [2], "runs_dir": str(tmp_path / "a"),
                                 "engine": "batched"})
    d1 = loso.run_loso(p, samples=samples)
    d2 = loso.run_loso(p.replace(runs_dir=str(tmp_path / "b")), samples=samples)
    a, b = pd.read_csv(d1 / "predictions.csv"), pd.read_csv(d2 / "predictions.csv")
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns[:4]) == ["dataset", "subject", "sample", "label"]
    assert {"paper", "paper_epoch", "last", "fixed@2"} <= set(a.columns)
    meta = json.loads((d1 / "run.json").read_text())
    assert meta["params"]["seed"] == 0 and len(meta["data_fingerprint"]) == 16 and meta["git_revision"]
    m = loso.read_metrics(d1)
    assert set(m["protocol"]) == {"paper", "last", "fixed@2"}
    # an unfinished run says how to resume
    with pytest.raises(HTNetInputError, match="resume"):
        loso.read_metrics(tmp_path / "nothing")


def test_unknown_fold_fails_before_training(samples, tmp_path):
    p = config.params_from_dict({**TINY, "folds": ["s01", "nobody"], "runs_dir": str(tmp_path)})
    with pytest.raises(HTNetInputError, match="nobody"):
        loso.run_loso(p, samples=samples)
    assert not any(tmp_path.iterdir())


def test_killed_run_resumes(tmp_path, data_dir):
    """SIGKILL a run mid-way, rerun the same command: finished folds are kept, the rest done, results as uninterrupted."""
    params = tmp_path / "p.yaml"
    folds = ["s01", "s02", "s03", "s04", "s05"]
    params.write_text(json.dumps({**TINY, "epochs": 4, "folds": folds, "fold_chunk": 1, "engine": "batched",
                                  "runs_dir": str(tmp_path / "runs")}))
    cmd = [sys.executable, "-m", "htnet_lib", "loso", "--params", str(params)]
    env = {**os.environ, "HTNET_DATA_DIR": str(data_dir)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    first = []
    while time.time() < deadline and len(first) < 2:
        first = sorted(tmp_path.glob("runs/*/folds/*.npz"))
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 2 <= len(first) < len(folds), "the kill should land mid-run"
    kept = {f: f.read_bytes() for f in sorted(tmp_path.glob("runs/*/folds/*.npz"))}
    run_dir = first[0].parent.parent
    assert not (run_dir / "metrics.csv").exists()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    for f, payload in kept.items():
        assert f.read_bytes() == payload  # finished folds were not recomputed
    assert len(list(run_dir.glob("folds/*.npz"))) == len(folds)
    resumed = pd.read_csv(run_dir / "predictions.csv")
    clean = loso.run_loso(config.load_params(params).replace(runs_dir=str(tmp_path / "clean")))
    pd.testing.assert_frame_equal(resumed, pd.read_csv(clean / "predictions.csv"))
    assert not list(run_dir.rglob("*.tmp"))


def test_engine_choice_by_measurement(samples, inputs, tmp_path, monkeypatch):
    monkeypatch.setenv("HTNET_CACHE_DIR", str(tmp_path))
    X, y = inputs
    p = config.params_from_dict({**TINY, "folds": ["s01", "s02", "s03", "s04", "s05"]})
    plans = loso.plan_folds(samples, p.train)
    assert loso.chunk_candidates(68) == [4, 16, 68] and loso.chunk_candidates(5) == [4, 5]
    timing = loso.calibrate_engine(X, y, plans, p, max_chunk=5, epochs=2)
    assert set(timing) == {"loop", "batched@4", "batched@5"} and all(t > 0 for t in timing.values())
    assert loso.calibrate_engine(X, y, plans, p, max_chunk=5, epochs=2) == timing  # cached: measured once
    assert loso.choose_engine({"loop": 2.0, "batched@4": 1.0, "batched@16": 1.5}) == ("batched", 4)
    assert loso.choose_engine({"loop": 0.5, "batched@4": 1.0}) == ("loop", 1)


def test_datasets_filter_trains_on_that_dataset_only(samples, inputs, tmp_path):
    X, _ = inputs
    p = config.params_from_dict({**TINY, "epochs": 2, "datasets": ["samm"], "folds": ["006"], "runs_dir": str(tmp_path),
                                 "engine": "loop"})
    d = loso.run_loso(p, samples=samples, X=X)
    preds = pd.read_csv(d / "predictions.csv", dtype={"subject": str})
    assert set(preds["subject"]) == {"006"} and set(preds["dataset"]) == {"samm"}
    with pytest.raises(HTNetInputError, match="datasets"):
        loso.run_loso(p.replace(datasets=["mmew"]), samples=samples)
