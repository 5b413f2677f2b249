"""LOSO: folds, engines, protocols and run folders (htnet_lib.loso), on the real release."""
import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from htnet_lib import config, data, loso, models, regions, release
from htnet_lib._io import HTNetInputError
from htnet_lib.loso import FoldRecord, engines, foldwise, protocols

TINY = dict(dim=16, heads=2, block_repeats=[1, 1, 1], epochs=3, progress=False)


@pytest.fixture(scope="module")
def inputs(samples, flow_maps):
    p = config.params_from_dict(TINY)
    X = regions.model_inputs(samples, flow_maps, p.train, progress=False)
    return X, torch.tensor(samples["label"].to_numpy())


def tiny(tmp_path, **kw):
    return config.params_from_dict({**TINY, "runs_dir": str(tmp_path / "runs"), **kw})


def test_inputs_are_official_regions(inputs):
    X, _ = inputs
    assert X.shape == (442, 3, 28, 28) and X.dtype == torch.float32
    assert X.max() == 255 and X.min() == 0  # raw 0..255, no normalisation (the authors' input)


def test_folds(samples):
    plans = loso.plan_folds(samples, config.TrainConfig())
    assert len(plans) == 68 and sum(len(p.test_idx) for p in plans) == 442
    for p in plans:
        assert len(p.train_idx) + len(p.test_idx) == 442
        assert p.subject not in set(samples["subject"].iloc[p.train_idx])
    one = loso.plan_folds(samples, config.TrainConfig(folds=("s01",)))
    assert [p.subject for p in one] == ["s01"] and one[0].dataset == "smic"
    with pytest.raises(HTNetInputError, match="nobody") as e:
        loso.plan_folds(samples, config.TrainConfig(folds=("nobody",)))
    assert e.value.field == "folds"
    inner = loso.plan_folds(samples, config.TrainConfig(folds=("s01",), inner_val_subjects=3))[0]
    assert samples["subject"].iloc[inner.inner_idx].nunique() == 3
    assert set(inner.inner_idx).isdisjoint(inner.train_idx) and set(inner.test_idx).isdisjoint(inner.inner_idx)


@pytest.mark.parametrize("extra", [{}, {"shuffle": True, "inner_val_subjects": 2, "batch_size": 150, "label_shuffle": True},
                                   {"mirror": True, "shift_px": 1}, {"loss": "balanced", "label_smoothing": 0.1},
                                   {"swa_start": 2, "mirror": True}])
def test_fold_alone_equals_fold_in_batch(samples, inputs, extra):
    """The batched engine trains each fold exactly as the loop does: same init, same batches, same predictions; the
    honest recipe's options (augmentation drawn per fold, weighted or smoothed loss, weight averaging) too."""
    X, y = inputs
    p = config.params_from_dict({**TINY, **extra, "folds": ["sub01", "s03", "006", "s05", "sub07", "020"]})
    plans = loso.plan_folds(samples, p.train)
    target = next(q for q in plans if q.subject == "s03")
    plans = engines.same_batch_count([target] + [q for q in plans if q is not target], p)
    assert len(plans) >= 3
    alone = engines.train_loop(X, y, [target], p)[0]
    batch = engines.train_batched(X, y, plans, p)[0]
    assert alone.subject == batch.subject == "s03"
    np.testing.assert_array_equal(alone.test_pred, batch.test_pred)
    np.testing.assert_array_equal(alone.inner_pred, batch.inner_pred)
    np.testing.assert_allclose(alone.test_logits, batch.test_logits, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(alone.train_loss, batch.train_loss, rtol=1e-4)  # float32 rounding of 0..255 inputs
    assert alone.train_loss[-1] < alone.train_loss[0]  # it learns
    recipe = {k: v for k, v in extra.items() if k in ("mirror", "shift_px", "loss", "label_smoothing", "swa_start")}
    if recipe:  # the option changed the training
        plain = engines.train_loop(X, y, [target], p.replace(mirror=False, shift_px=0, loss="ce", label_smoothing=0.0,
                                                             swa_start=0))[0]
        assert not np.allclose(plain.test_logits[-1], alone.test_logits[-1])


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


def one_hot(pred):
    return np.eye(3, dtype=np.float32)[np.asarray(pred)]


def test_protocols_from_records(samples):
    """Hand-made records: the paper protocol peeks at the test labels, `inner` only at inner subjects."""
    s = samples
    t = np.flatnonzero(s["subject"] == "s01")  # 7 test samples
    i = np.flatnonzero(s["subject"] == "s02")
    yt, yi = s["label"].to_numpy()[t], s["label"].to_numpy()[i]
    wrong_t, wrong_i = (yt + 1) % 3, (yi + 1) % 3
    rec = FoldRecord("s01", np.array([1, 2, 3]), t, i,
                     one_hot([wrong_t, yt, wrong_t]),  # epoch 2 is perfect on the test subject
                     one_hot([wrong_i, wrong_i, yi]),  # epoch 3 is best on inner subjects
                     np.zeros(3))
    preds = loso.protocol_predictions({"s01": rec}, s, ["paper", "last", "fixed@1", "inner"])
    assert (preds["paper_epoch"] == 2).all() and (preds["paper"] == yt).all()
    assert (preds["inner_epoch"] == 3).all() and (preds["inner"] == wrong_t).all()
    assert (preds["last"] == wrong_t).all() and (preds["fixed@1"] == wrong_t).all()
    scores = loso.protocol_scores(preds).set_index(["protocol", "scope"])
    assert scores.loc[("paper", "Full"), "UF1"] == 1.0 and scores.loc[("inner", "Full"), "UF1"] == 0.0
    curve = loso.epoch_curve({"s01": rec}, s).set_index(["epoch", "protocol", "scope"])
    assert curve.loc[(1, "paper", "Full"), "UF1"] == 0.0
    assert curve.loc[(3, "paper", "Full"), "UF1"] == 1.0
    assert curve.loc[(3, "last", "Full"), "UF1"] == 0.0
    # every protocol the run scores is on the curve, from the first epoch where it is defined
    curve = loso.epoch_curve({"s01": rec}, s, names=["paper", "last", "fixed@2", "inner", "mean@2"])
    assert sorted(curve.groupby("protocol")["epoch"].min().items()) == [
        ("fixed@2", 2), ("inner", 1), ("last", 1), ("mean@2", 2), ("paper", 1)]
    curve = curve.set_index(["epoch", "protocol", "scope"])
    assert curve.loc[(3, "fixed@2", "Full"), "UF1"] == 1.0  # epoch 2's perfect predictions, whatever E
    assert curve.loc[(2, "inner", "Full"), "UF1"] == 1.0  # epochs 1-2 tie on the inner subjects: the later one
    assert curve.loc[(3, "inner", "Full"), "UF1"] == 0.0


def test_honest_protocols_cannot_read_test_labels(samples):
    """The registry hands the held-out labels only to protocols that declare reading them; a new protocol is one
    entry."""
    seen = {}

    def spy(view, arg):  # a chooser returns class probabilities (samples, classes) and an epoch
        seen["labels"] = view.test_labels
        return protocols.softmax(view.test_logits[-1]), float(view.epochs[-1])

    protocols.register(protocols.Protocol("spy", "spy", False, "test only", spy))
    try:
        t = np.flatnonzero(samples["subject"] == "s01")
        rec = FoldRecord("s01", np.array([1]), t, np.zeros(0, np.int64), one_hot([np.zeros(len(t), int)]),
                         np.zeros((1, 0, 3), np.float32), np.zeros(1))
        preds = loso.protocol_predictions({"s01": rec}, samples, ["spy"])
        assert seen["labels"] is None and (preds["spy"] == 0).all() and loso.label("spy") == "spy"
    finally:
        protocols.unregister("spy")
    assert protocols.PROTOCOLS["paper"].reads_test_labels and not protocols.PROTOCOLS["inner"].reads_test_labels
    assert loso.label("fixed@30") == "epoch 30"
    with pytest.raises(HTNetInputError, match="unknown protocol"):
        loso.parse("best")
    with pytest.raises(HTNetInputError, match="needs an argument"):
        loso.parse("fixed")


def test_no_duplicate_last_epoch_protocol():
    """`fixed@E` for the last epoch is the `last` protocol: listed once (Table 2 showed two identical rows)."""
    assert loso.default_names(config.TrainConfig(epochs=30, fixed_epochs=(15, 30))) == ["paper", "last", "fixed@15"]


def test_run_is_reproducible_and_complete(samples, tmp_path):
    p = tiny(tmp_path, folds=["s01", "sub02"], fixed_epochs=[2], engine="batched")
    r1 = loso.run_loso(p, samples=samples)
    r2 = loso.run_loso(p.replace(runs_dir=str(tmp_path / "b")), samples=samples)
    a, b = r1.predictions(), r2.predictions()
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns[:4]) == ["dataset", "subject", "sample", "label"]
    assert {"paper", "paper_epoch", "last", "fixed@2"} <= set(a.columns)
    meta = r1.meta
    assert meta["params"]["seed"] == 0 and len(meta["data_fingerprint"]) == 16 and meta["git_revision"]
    assert meta["numerics"] == {**meta["numerics"], "engine": "batched", "device": "cpu", "amp": False}
    assert set(r1.metrics()["protocol"]) == {"paper", "last", "fixed@2"}
    assert r1.train_seconds > 0 and r1.params == p and r1.id.startswith("loso-")
    with pytest.raises(HTNetInputError, match="resume"):
        loso.Run(tmp_path / "nothing").metrics()


@pytest.mark.skipif(os.environ.get("HTNET_COMPILE_TEST") != "1",
                    reason="compiled engine: set HTNET_COMPILE_TEST=1 (`make bench` runs it before it times the "
                           "compiled engine, the only place that uses it; compiling takes about a minute)")
@pytest.mark.skipif(not (os.environ.get("CXX") or __import__("shutil").which("g++") or __import__("shutil").which("clang++")),
                    reason="torch.compile's CPU backend needs a C++ compiler")
def test_compiled_batched_engine_trains_the_same_folds(samples, inputs):
    """`compile` (what `make bench` times) changes float rounding only: same predictions, logits within 1e-3."""
    X, y = inputs
    p = config.params_from_dict({**TINY, "folds": ["sub01", "s03", "006", "s05", "sub07", "020"]})
    plans = engines.same_batch_count(loso.plan_folds(samples, p.train), p)
    eager = engines.train_batched(X, y, plans, p)
    compiled = engines.train_batched(X, y, plans, p, compile=True)
    for a, b in zip(eager, compiled):
        np.testing.assert_array_equal(a.test_pred, b.test_pred)
        np.testing.assert_allclose(a.test_logits, b.test_logits, rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(a.train_loss, b.train_loss, rtol=1e-4)


def test_unknown_fold_fails_before_training(samples, tmp_path):
    p = tiny(tmp_path, folds=["s01", "nobody"])
    with pytest.raises(HTNetInputError, match="nobody"):
        loso.run_loso(p, samples=samples)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_bad_image_leaves_no_run_folder(release_copy, tmp_path):
    """Every input is read and checked before the run folder exists (it used to hold a lone run.json)."""
    s = data.load_samples(release_copy)
    flow = release_copy / release.FLOW_DIR / os.path.basename(s.loc[s["subject"] == "s02", "flow_path"].iloc[0])
    flow.unlink()
    flow.write_bytes(b"not a png")
    p = tiny(tmp_path, folds=["s01"], data_dir=str(release_copy))
    with pytest.raises(HTNetInputError, match="unreadable") as e:
        loso.run_loso(p)
    assert e.value.field == "flow_path"
    assert not list((tmp_path / "runs").glob("loso-*/"))


@pytest.mark.parametrize("lr", [float("inf"), 1.0e30])
def test_diverging_training_stops_naming_fold_and_epoch(samples, inputs, tmp_path, lr):
    """`lr: .inf` is refused by validation; a finite but huge lr trains to a non-finite loss and stops the run with
    the fold and the epoch, writing nothing."""
    X, _ = inputs
    if not np.isfinite(lr):
        with pytest.raises(HTNetInputError, match="finite") as e:
            tiny(tmp_path, lr=lr)
        assert e.value.field == "lr"
        return
    for engine in ("loop", "batched"):
        p = tiny(tmp_path, folds=["s01", "s02"], lr=lr, engine=engine)
        with pytest.raises(loso.TrainingDiverged, match=r"fold 's0[12]' at epoch \d") as e:
            loso.run_loso(p, samples=samples, X=X)
        assert e.value.field == "lr"
        assert not list((tmp_path / "runs").glob("loso-*/"))


def test_incomplete_release_is_refused(release_copy, tmp_path):
    """A CSV that lost every row of one subject while its images stayed: `verify` and `loso` say so; a subset must
    be asked for explicitly."""
    csv = release_copy / release.CSV_NAME
    rows = pd.read_csv(csv, dtype=str)
    rows[rows["sub"] != "s03"].to_csv(csv, index=False)
    with pytest.raises(HTNetInputError, match=r"s03") as e:
        data.verify_release(release_copy)
    assert e.value.field == "sub" and release.CSV_NAME in str(e.value)
    p = tiny(tmp_path, epochs=1, folds=["s01"], data_dir=str(release_copy))
    with pytest.raises(HTNetInputError, match="allow_incomplete"):
        loso.run_loso(p)
    run = loso.run_loso(p.replace(allow_incomplete=True))
    assert run.finished and set(run.predictions()["subject"]) == {"s01"}


def test_second_writer_stops_with_a_message(samples, tmp_path):
    """A run folder is locked while it trains: a second process stops at once instead of training every fold too."""
    p = tiny(tmp_path, folds=["s01"], epochs=1)
    run_dir = loso.run_dir_for(p, data.fingerprint(samples.attrs["data_dir"]))
    run_dir.parent.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from filelock import FileLock
        with FileLock({str(run_dir) + '.lock'!r}):
            print("locked", flush=True)
            time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(HTNetInputError, match="another process is training this run"):
            loso.run_loso(p, samples=samples)
    finally:
        holder.kill()
        holder.wait()
    assert loso.run_loso(p, samples=samples).finished  # free again


def test_damaged_files(samples, tmp_path):
    """A truncated fold file is retrained with a warning naming it; a damaged run.json is an error naming it."""
    p = tiny(tmp_path, folds=["s01", "s02"], epochs=2, engine="loop")
    run = loso.run_loso(p, samples=samples)
    good = run.predictions()
    fold = run.dir / "folds" / "s02.npz"
    fold.write_bytes(fold.read_bytes()[:100])
    (run.dir / "metrics.csv").unlink()
    with pytest.warns(loso.DamagedFoldFile, match="s02.npz"):
        again = loso.run_loso(p, samples=samples)
    pd.testing.assert_frame_equal(again.predictions(), good)  # retrained, same numbers
    assert np.load(fold)["test_logits"].shape[0] == 2
    (run.dir / "run.json").write_text('{"params": {')
    with pytest.raises(HTNetInputError, match="damaged run metadata") as e:
        loso.run_loso(p, samples=samples)
    assert str(run.dir / "run.json") in str(e.value)


def test_resume_refuses_other_numerics(samples, inputs, tmp_path):
    """Engine, device and amp change float rounding: a run records them; `auto` adopts them, others are refused."""
    X, _ = inputs
    p = tiny(tmp_path, folds=["s01", "s02"], epochs=2, engine="loop", fold_chunk=1)
    run = loso.run_loso(p, samples=samples, X=X)
    (run.dir / "folds" / "s02.npz").unlink()
    with pytest.raises(HTNetInputError, match="trained with engine 'loop', not 'batched'") as e:
        loso.run_loso(p.replace(engine="batched"), samples=samples, X=X)
    assert e.value.field == "engine" and "run.json" in str(e.value)
    with pytest.raises(HTNetInputError, match="amp"):
        loso.run_loso(p.replace(amp=True), samples=samples, X=X)
    resumed = loso.run_loso(p.replace(engine="auto"), samples=samples, X=X)
    assert resumed.finished and [c["engine"] for c in resumed.meta["chunks"]] == ["loop", "loop", "loop"]
    # a finished run is read whatever the settings now (nothing trains): a study with other run settings finds it
    assert loso.run_loso(p.replace(engine="batched", amp=True), samples=samples, X=X) == resumed


def test_dropout_is_seeded_per_fold(samples, inputs):
    """With dropout each fold's masks come from the fold's seed: a fold trains the same alone or after another,
    whatever the global stream."""
    X, y = inputs
    p = config.params_from_dict({**TINY, "dropout": 0.3, "folds": ["s01", "s02"]})
    plans = loso.plan_folds(samples, p.train)
    after = engines.train_loop(X, y, plans, p)[1]
    torch.manual_seed(123)  # the global stream must not matter
    alone = engines.train_loop(X, y, plans[1:], p)[0]
    np.testing.assert_array_equal(after.test_logits, alone.test_logits)
    no_dropout = engines.train_loop(X, y, plans[1:], p.replace(dropout=0.0))[0]
    assert not np.array_equal(no_dropout.test_logits, alone.test_logits)


def every_network(arch: str, **extra) -> config.Params:
    """`arch` with its default config, dropout on (where it has the key) and its first accepted regions setting."""
    cfg = models.network(arch).config()
    keys = {"dropout": 0.3} if "dropout" in type(cfg).model_fields else {}
    return config.params_from_dict({**TINY, "arch": arch, **keys, "regions": models.geometry(cfg).regions[0],
                                    "folds": ["s03", "sub01", "006"], **extra})


def test_dropout_sites_are_read_without_touching_the_network():
    """`foldwise.dropout_sites`: STSTNet's dropout calls with their per-sample shapes, read on meta-device stand-ins,
    the network's own tensors and each module's train/eval mode left as they were; none for a network that drops
    nothing (HTNet at the paper's settings: no forward is traced)."""
    p = config.params_from_dict({"arch": "ststnet", "regions": "whole", "dropout": 0.5})
    net = foldwise.foldwise(models.build(p.model)).eval()
    next(net.children()).train()  # modes mixed on purpose: each comes back as it was
    modes = [m.training for m in net.modules()]
    before = {k: v.clone() for k, v in net.state_dict().items()}
    sites = foldwise.dropout_sites(net, models.geometry(p.model).shape)
    assert sites and all(prob == 0.5 and len(shape) >= 1 for prob, shape in sites)
    assert [m.training for m in net.modules()] == modes
    assert all(torch.equal(before[k], v) and v.device.type == "cpu" for k, v in net.state_dict().items())
    htnet = foldwise.foldwise(models.build(config.params_from_dict(TINY).model))
    assert foldwise.dropout_sites(htnet, (3, 28, 28)) == []


@pytest.mark.parametrize("arch", sorted(models.NETWORKS))
def test_every_network_trains_the_same_fold_alone_or_in_a_chunk(samples, flow_maps, arch):
    """Every registered network, dropout on: a fold trained inside a batched chunk of folds with fewer training
    samples (padded batches) gives the predictions of the same fold trained alone by the loop engine. Dropout masks
    come from the fold's own generator and BatchNorm's batch statistics skip the padding (`loso.foldwise`)."""
    p = every_network(arch)
    X = regions.model_inputs(samples, flow_maps, p.train, models.geometry(p.model), progress=False)
    y = torch.tensor(samples["label"].to_numpy())
    plans = sorted(loso.plan_folds(samples, p.train), key=lambda q: q.subject != "s03")  # s03 first
    plans = engines.same_batch_count(plans, p)
    assert plans[0].subject == "s03" and len({len(q.train_idx) for q in plans}) > 1  # padding happens
    assert engines.batchable(p.model)
    loop = engines.train(X, y, plans[:1], p, "loop", keep_models=True)
    batched = engines.train(X, y, plans, p, "batched", keep_models=True)
    alone, batch = loop.records[0], batched.records[0]
    np.testing.assert_array_equal(alone.test_pred, batch.test_pred)
    np.testing.assert_allclose(alone.test_logits, batch.test_logits, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(alone.train_loss, batch.train_loss, rtol=1e-5)
    net = foldwise.foldwise(models.build(p.model))
    if "dropout" in type(p.model).model_fields:  # its dropout draws masks, and they change the training
        assert foldwise.dropout_sites(net, models.geometry(p.model).shape)
        still = engines.train_loop(X, y, plans[:1], p.replace(dropout=0.0))[0]
        assert not np.allclose(still.test_logits, alone.test_logits)
    if any(isinstance(m, foldwise.MaskedBatchNorm) for m in net.modules()):  # and each fold's running statistics
        for (name, a), b in zip(loop.models[0].named_buffers(), batched.models[0].buffers()):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.parametrize("arch", sorted(models.NETWORKS))
def test_adam_steps_gradients_in_their_weights_layout(samples, flow_maps, arch, monkeypatch):
    """Every network, batched engine, fused Adam: each gradient Adam steps has its stacked weight's strides. torch's
    fused CPU Adam reads a gradient as if it had its weight's layout, so a transposed one (what vmap's stacked hidden
    layers produce) would train wrongly without an error; the step's backward() copies it into the weight's layout."""
    p = every_network(arch, epochs=1, fused_adam=True)
    X = regions.model_inputs(samples, flow_maps, p.train, models.geometry(p.model), progress=False)
    plans = engines.same_batch_count(loso.plan_folds(samples, p.train), p)[:2]
    seen, step = [], torch.optim.Adam.step

    def recording(self, *args, **kwargs):
        seen.extend((w.grad.stride(), w.stride()) for g in self.param_groups for w in g["params"] if w.dim() > 1)
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", recording)
    engines.train(X, torch.tensor(samples["label"].to_numpy()), plans, p, "batched")
    assert seen and all(g == w for g, w in seen), arch


def test_fold_dropout_draws_what_nn_dropout_draws():
    """The loop engine's masks are bit for bit those `nn.Dropout` draws on the CPU from the same seed, so runs trained
    before the fold-wise modules repeat exactly; a padded chunk gives each fold the rows it would draw alone."""
    x = torch.randn(5, 7, 3)
    torch.manual_seed(11)
    reference = nn.Dropout(0.4).train()(x)
    streams = foldwise.DropoutStreams([(0.4, (7, 3))], [10, 20], torch.device("cpu"))
    masks = streams.draw([5, 2], 5)[0]
    with foldwise.step(None, [masks[0]]):
        assert torch.equal(foldwise.FoldDropout(0.4).train()(x), reference)
    assert masks[1, 2:].eq(0).all() and torch.equal(masks[1, :2], foldwise.DropoutStreams(
        [(0.4, (7, 3))], [20], torch.device("cpu")).draw([2], 2)[0][0])


def test_fused_adam_names_its_own_run_and_trains_alike(samples, inputs):
    """`fused_adam` (torch's one-pass Adam) gives the same predictions up to float rounding, and names its own run
    folder; left at its default it leaves every earlier run folder's name as it was."""
    X, y = inputs
    p = config.params_from_dict({**TINY, "folds": ["s01"]})
    plan = loso.plan_folds(samples, p.train)
    fused = p.replace(fused_adam=True)
    a, b = engines.train_loop(X, y, plan, p)[0], engines.train_loop(X, y, plan, fused)[0]
    np.testing.assert_array_equal(a.test_pred, b.test_pred)
    np.testing.assert_allclose(a.test_logits, b.test_logits, rtol=1e-3, atol=1e-3)
    assert fused.fingerprint() != p.fingerprint()
    assert "fused_adam" not in json.dumps(p._train_payload())


def test_engine_choice_by_measurement(samples, inputs, tmp_path, monkeypatch):
    monkeypatch.setenv("HTNET_CACHE_DIR", str(tmp_path))
    X, y = inputs
    p = config.params_from_dict({**TINY, "folds": ["s01", "s02", "s03", "s04", "s05"]})
    plans = loso.plan_folds(samples, p.train)
    assert engines.chunk_candidates(68) == [4, 16, 68] and engines.chunk_candidates(5) == [4, 5]
    timing = loso.calibrate_engine(X, y, plans, p, max_chunk=5, epochs=2)
    assert set(timing) == {"loop", "batched@4", "batched@5"} and all(t > 0 for t in timing.values())
    assert loso.calibrate_engine(X, y, plans, p, max_chunk=5, epochs=2) == timing  # cached: measured once
    assert loso.choose_engine({"loop": 2.0, "batched@4": 1.0, "batched@16": 1.5}) == ("batched", 4)
    assert loso.choose_engine({"loop": 0.5, "batched@4": 1.0}) == ("loop", 1)


def test_datasets_filter_trains_on_that_dataset_only(samples, inputs, tmp_path):
    X, _ = inputs
    p = tiny(tmp_path, epochs=2, datasets=["samm"], folds=["006"], engine="loop")
    preds = loso.run_loso(p, samples=samples, X=X).predictions()
    assert set(preds["subject"]) == {"006"} and set(preds["dataset"]) == {"samm"}
    with pytest.raises(HTNetInputError, match="datasets"):
        loso.run_loso(p.replace(datasets=["mmew"]), samples=samples)


def test_run_many_trains_equal_params_once(samples, inputs, tmp_path):
    """Several runs in one call (seeds, sweep points): equal params are one run; each seed its own folder."""
    X, _ = inputs
    p = tiny(tmp_path, epochs=1, folds=["s01"], engine="loop")
    runs = loso.run_many([p, p.replace(seed=1), p], samples=samples, X=X)
    assert runs[0] == runs[2] and runs[0] != runs[1] and [r.seed for r in runs] == [0, 1, 0]
    assert len(list((tmp_path / "runs").glob("loso-*/run.json"))) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert loso.run_seeds(p.replace(seeds=[0, 1]), samples=samples, X=X) == runs[:2]


def test_head_counts_of_equal_width_train_the_same_network(samples, inputs):
    """One token per block: attention returns its value projection whatever the heads, so head counts with the same
    width heads * (dim // heads) build the same parameters and train to the same predictions (Fig. 6's 1, 2, 4, 8
    heads at dim 256 are one model); another width is another model."""
    X, y = inputs
    p = config.params_from_dict({**TINY, "folds": ["s01"], "epochs": 2})
    plan = loso.plan_folds(samples, p.train)
    one, two, three = (engines.train_loop(X, y, plan, p.replace(heads=h))[0] for h in (1, 2, 3))
    np.testing.assert_array_equal(one.test_logits, two.test_logits)
    assert not np.array_equal(one.test_logits, three.test_logits)  # width 15, not 16


def test_ststnet_trains_through_the_same_engines_and_protocols(samples, inputs, tmp_path):
    """The baseline is one params key away (`arch: ststnet`), on either engine, and scored by the same protocols."""
    X, y = inputs
    p = tiny(tmp_path, arch="ststnet", epochs=2, folds=["s01", "s02"], engine="batched")
    run = loso.run_loso(p, samples=samples, X=X)
    assert run.meta["numerics"]["engine"] == "batched" and run.finished
    assert set(run.metrics()["protocol"]) == {"paper", "last"}


def test_bf16_autocast_on_the_cpu_keeps_predictions(samples, inputs):
    """`amp: true` (bf16 autocast) is checked on the CPU before any GPU run uses it. Stated tolerance: at least 97% of
    the held-out predictions equal fp32's at every evaluated epoch, mean training losses within 0.01 (measured here:
    99.9% and 0.003 over 8 folds x 10 epochs of the quick model)."""
    X, y = inputs
    p = config.params_from_dict({**TINY, "dim": 16, "heads": 3, "block_repeats": [2, 2, 8], "epochs": 3,
                                 "lr": 2.0e-4, "folds": ["s01", "sub01", "006"]})  # a subject of each database
    plans = loso.plan_folds(samples, p.train)
    fp32 = engines.train_loop(X, y, plans, p)
    bf16 = engines.train_loop(X, y, plans, p.replace(amp=True))
    agree = np.concatenate([(a.test_pred == b.test_pred).ravel() for a, b in zip(fp32, bf16)]).mean()
    assert agree >= 0.97
    assert max(np.abs(a.train_loss - b.train_loss).max() for a, b in zip(fp32, bf16)) < 0.01
    assert any(not np.array_equal(a.test_logits, b.test_logits) for a, b in zip(fp32, bf16))  # bf16 did run


def test_train_returns_the_trained_models_of_both_engines(samples, inputs):
    """`engines.train` hands back what callers need: the records and, when asked, each fold's trained model (the
    batched engine's unstacked from the chunk); a model's outputs are the record's last evaluated logits."""
    X, y = inputs
    p = config.params_from_dict({**TINY, "epochs": 2, "folds": ["s01", "s03"]})
    plans = engines.same_batch_count(loso.plan_folds(samples, p.train), p)
    for engine in ("loop", "batched"):
        trained = engines.train(X, y, plans, p, engine, keep_models=True)
        assert len(trained.models) == len(trained.records) == len(plans)
        for plan, rec, model in zip(plans, trained.records, trained.models):
            assert not model.training
            with torch.no_grad():
                out = model(X[torch.as_tensor(plan.test_idx)]).numpy()
            np.testing.assert_allclose(out, rec.test_logits[-1], rtol=1e-4, atol=1e-4)
    assert engines.train(X, y, plans, p, "loop").models is None


def test_fit_trains_on_every_sample_without_a_fold(samples, inputs):
    """`engines.fit`: one model on all samples, nothing scored, the loop's step (the shipped weights use it)."""
    X, y = inputs
    p = config.params_from_dict({**TINY, "epochs": 2})
    a, b = engines.fit(X, y, p, seed=3), engines.fit(X, y, p, seed=3)
    assert not a.training and all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())
    assert not torch.equal(next(iter(engines.fit(X, y, p, seed=4).parameters())), next(iter(a.parameters())))


def test_a_finished_run_adds_the_protocols_its_params_name(samples, inputs, tmp_path):
    """`protocols:` in params is a run setting: the same run folder, which then also scores the named protocols; the
    columns it had are unchanged, and they never disappear."""
    X, _ = inputs
    p = tiny(tmp_path, folds=["s01", "sub01"], engine="batched")
    run = loso.run_loso(p, samples=samples, X=X)
    before = run.predictions()
    again = loso.run_loso(p.replace(protocols=["mean@2"]), samples=samples, X=X)
    assert again == run and run.meta["protocols"] == ["paper", "last", "mean@2"]
    after = run.predictions()
    assert "mean@2" in after.columns and set(run.metrics()["protocol"]) == {"paper", "last", "mean@2"}
    pd.testing.assert_frame_equal(after[before.columns], before)
    assert "mean@2" in loso.run_loso(p, samples=samples, X=X).predictions().columns  # kept
    with pytest.raises(HTNetInputError) as e:
        loso.run_loso(p.replace(protocols=["inner"]), samples=samples, X=X)  # needs inner subjects
    assert e.value.field == "protocols"


def test_weight_decay_is_adams_coupled_l2(samples, inputs):
    """`weight_decay` reaches Adam: after one step from the same initial weights, each weight moved as
    torch.optim.Adam with that decay moves it (the gradient plus decay times the weight), and differs from no decay."""
    X, y = inputs
    from htnet_lib.loso import engines
    trained = {}
    for wd in (0.0, 0.5):
        p = config.params_from_dict({**TINY, "folds": ["s01"], "epochs": 1, "batch_size": 512, "weight_decay": wd})
        plan = loso.plan_folds(samples, p.train)[0]
        trained[wd] = engines.train(X, y, [plan], p, "loop", keep_models=True).models[0]
        ref = engines.init_model(p.model, plan.seed)
        opt = torch.optim.Adam(ref.parameters(), lr=p.train.lr, weight_decay=wd)
        idx = torch.as_tensor(plan.train_idx)
        torch.nn.functional.cross_entropy(ref(X[idx]), y[idx]).backward()
        opt.step()
        for (name, a), b in zip(trained[wd].named_parameters(), ref.parameters()):
            assert torch.allclose(a, b, atol=1e-6), (wd, name)
    moved = [(a - b).abs().max() for a, b in zip(trained[0.5].parameters(), trained[0.0].parameters())]
    assert max(moved) > 0
