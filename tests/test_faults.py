"""Fault cases: tampered weights, damaged images, no motion, folders that cannot be written, recovery that works as
advised, exact messages, crashing Ray workers, interrupts, settings that would cost hours. Each test's docstring opens
with one sentence naming the case and what the user gets instead (one `HTNetInputError` naming the file and the field,
exit status 2; a warning beside the answer; a rerun that works): the docs' list of fault cases is made from them."""
from __future__ import annotations

import json
import os
import types

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from htnet_lib import config, loso, predict
from htnet_lib.__main__ import main
from htnet_lib._io import HTNetInputError
from htnet_lib.loso import executors, runs as runs_mod
from htnet_lib.loso.engines import init_model

TINY = dict(dim=16, heads=2, block_repeats=[1, 1, 1], epochs=2, progress=False, regions="whole", engine="loop")


def tiny_weights(folder, card: bool = True):
    """Small untrained weights (whole-map input: no face needed); with `card`, a card naming their tensors' sha256
    as `train-weights` writes it."""
    p = config.params_from_dict({"dim": 16, "heads": 3, "block_repeats": [1, 1, 1], "regions": "whole"})
    path = folder / "w.safetensors"
    predict.save(init_model(p.model, 3).eval(), p.train, path)
    path.with_suffix(".json").unlink(missing_ok=True)
    if card:
        path.with_suffix(".json").write_text(json.dumps({"recipe": "test",
                                                         "tensors_sha256": predict.tensors_sha256(path)}))
    return path


def tensor_bytes_start(path) -> int:
    """Where a safetensors file's tensor bytes begin (after its 8-byte header length and JSON header)."""
    return 8 + int.from_bytes(path.read_bytes()[:8], "little")


def cli(capfd, *args) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    out, err = capfd.readouterr()
    return rc, out, err


def one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


# ---------------------------------------------------------------- 1. weights

def test_weights_whose_tensors_differ_from_their_card_are_refused(tmp_path, samples, capfd):
    """Weights whose tensors differ from their card's sha256 are refused with status 2 and an error naming the file, never
    answered with."""
    path = tiny_weights(tmp_path)
    raw = bytearray(path.read_bytes())
    raw[tensor_bytes_start(path) + 100] ^= 0xFF  # one flipped byte
    path.write_bytes(bytes(raw))
    with pytest.raises(HTNetInputError, match=r"sha256.*differ") as e:
        predict.load(path)
    assert e.value.field == "tensors_sha256" and str(path) in str(e.value)
    rc, out, err = cli(capfd, "predict", "--flow-map", samples["flow_path"].iloc[0], "--weights", path)
    assert rc == 2 and "sha256" in one_error_line(err) and "prediction" not in out


def test_nan_weights_are_an_error_and_no_json_is_written(tmp_path, samples, capfd):
    """Weights that give NaN probabilities are an error naming them (status 2), and no JSON result is written."""
    path = tiny_weights(tmp_path, card=False)
    raw = bytearray(path.read_bytes())
    start = tensor_bytes_start(path)
    raw[start:] = np.full((len(raw) - start) // 4, np.nan, np.float32).tobytes()
    path.write_bytes(bytes(raw))
    out_json = tmp_path / "p.json"
    rc, out, err = cli(capfd, "predict", "--flow-map", samples["flow_path"].iloc[0], "--weights", path,
                       "--json", out_json)
    assert rc == 2 and "not finite" in one_error_line(err) and str(path) in err
    assert "nan" not in out.lower() and not out_json.exists()


def test_weights_without_a_card_are_said_to_be_unchecked(tmp_path, samples, capfd):
    """Weights without a card are used, and the output says that nothing could check them."""
    path = tiny_weights(tmp_path, card=False)
    rc, out, err = cli(capfd, "predict", "--flow-map", samples["flow_path"].iloc[0], "--weights", path,
                       "--print-json")
    assert rc == 0 and "prediction:" in out
    assert "no card" in err and str(path.with_suffix(".json")) in err
    assert "no card" in json.loads(out[out.index("{"):])["weights_check"]
    (tmp_path / "c").mkdir()
    checked = tiny_weights(tmp_path / "c")
    assert predict.load(checked).check.startswith("tensors match the card")


# ---------------------------------------------------------------- 2. damaged frames

def face_frames(samples, row=309):
    face = cv2.imread(samples["face_path"].iloc[row])
    onset = np.full((320, 320, 3), 120, np.uint8)
    onset[48:272, 48:272] = face
    return onset


def test_a_truncated_frame_is_an_error_naming_it(tmp_path, samples, capfd):
    """A truncated `--onset` or `--apex` frame (JPEG or PNG) stops `predict` with status 2 and one error naming the
    file."""
    onset = face_frames(samples)
    cv2.imwrite(str(tmp_path / "onset.jpg"), onset)
    whole = cv2.imencode(".jpg", onset)[1].tobytes()
    (tmp_path / "apex.jpg").write_bytes(whole[:len(whole) // 2])  # a copy cut short
    with pytest.raises(HTNetInputError, match="truncated") as e:
        predict.read_image(tmp_path / "apex.jpg", "apex")
    assert e.value.field == "apex" and "apex.jpg" in str(e.value)
    path = tiny_weights(tmp_path)
    rc, out, err = cli(capfd, "predict", "--onset", tmp_path / "onset.jpg", "--apex", tmp_path / "apex.jpg",
                       "--weights", path)
    assert rc == 2 and "apex.jpg" in one_error_line(err) and "prediction" not in out  # no OpenCV warning either
    png = cv2.imencode(".png", onset)[1].tobytes()
    (tmp_path / "apex.png").write_bytes(png[:len(png) - 40])
    with pytest.raises(HTNetInputError, match="apex.png.*truncated"):
        predict.read_image(tmp_path / "apex.png", "apex")
    assert predict.read_image(tmp_path / "onset.jpg", "onset").shape == (320, 320, 3)


# ---------------------------------------------------------------- 3. no motion

def test_identical_frames_are_said_to_show_no_motion(tmp_path, samples, capfd):
    """Onset and apex frames between which nothing moved are answered with a `no_motion` warning.

    The raw pipeline's rule (`raw.apex.NO_MOTION` on eq. 1's feature difference, what flags.csv's
    `apex_no_motion` uses) decides; a moved mouth is motion."""
    onset = face_frames(samples)
    apex = onset.copy()
    apex[190:230, 100:220] = onset[190:230, 101:221]
    cv2.imwrite(str(tmp_path / "onset.png"), onset)
    cv2.imwrite(str(tmp_path / "apex.png"), apex)
    pred = predict.load(tiny_weights(tmp_path))
    still = predict.predict_frames(tmp_path / "onset.png", tmp_path / "onset.png", pred)
    assert [w["flag"] for w in still["warnings"]] == ["no_motion"]
    moved = predict.predict_frames(tmp_path / "onset.png", tmp_path / "apex.png", pred)
    assert moved["warnings"] == []
    rc, out, err = cli(capfd, "predict", "--onset", tmp_path / "onset.png", "--apex", tmp_path / "onset.png",
                       "--weights", tmp_path / "w.safetensors")
    assert rc == 0 and "warning: no motion" in err


# ---------------------------------------------------------------- 4. a runs folder that cannot be written

def test_runs_dir_under_a_regular_file_is_one_message(samples, tmp_path, capfd):
    """A runs folder that cannot be created stops `loso` with status 2 and one message naming it.

    Root ignores chmod, so the folder is made unwritable in a way root respects: its parent is a regular file
    (mkdir fails with ENOTDIR)."""
    (tmp_path / "file").write_text("not a folder")
    runs_dir = tmp_path / "file" / "runs"
    p = config.params_from_dict({**TINY, "folds": ["s01"], "runs_dir": str(runs_dir)})
    with pytest.raises(HTNetInputError, match="cannot") as e:
        loso.run_loso(p, samples=samples)
    assert str(runs_dir) in str(e.value) and e.value.field == "runs_dir"
    yaml = tmp_path / "p.yaml"
    yaml.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in {**TINY, "folds": ["s01"]}.items()))
    rc, _, err = cli(capfd, "loso", "--params", yaml, "--set", f"runs_dir={runs_dir}")
    assert rc == 2 and str(runs_dir) in one_error_line(err)


def test_lock_or_fold_file_refused_by_permissions_is_one_message(samples, tmp_path, monkeypatch):
    """A run folder whose lock or fold files cannot be written stops `loso` with one message naming the folder.

    Root ignores chmod: the refusal is simulated by monkeypatching the lock's acquire, then the temporary file
    that a fold file is written through, to raise PermissionError as a read-only folder does."""
    p = config.params_from_dict({**TINY, "folds": ["s01"], "runs_dir": str(tmp_path / "runs")})

    class ReadOnlyLock:
        def __init__(self, path, *a, **k):
            self.lock_file = path

        def acquire(self, *a, **k):
            raise PermissionError(13, "Permission denied", self.lock_file)

    with monkeypatch.context() as m:
        m.setattr(runs_mod, "FileLock", ReadOnlyLock)
        with pytest.raises(HTNetInputError, match="cannot write") as e:
            loso.run_loso(p, samples=samples)
    assert str(tmp_path / "runs") in str(e.value)

    import tempfile

    real = tempfile.mkstemp

    def refuse(*a, dir=None, **k):
        if dir is not None and "folds" in str(dir):
            raise PermissionError(13, "Permission denied", str(dir))
        return real(*a, dir=dir, **k)

    with monkeypatch.context() as m:
        m.setattr(tempfile, "mkstemp", refuse)
        with pytest.raises(HTNetInputError, match="cannot write") as e:
            loso.run_loso(p, samples=samples)
    assert "loso-" in str(e.value)


# ---------------------------------------------------------------- 5. recovery as advised

def test_deleting_a_damaged_run_json_rebuilds_it_finished_or_not(samples, tmp_path):
    """A damaged `run.json` is an error that writes nothing, and deleting it as advised rebuilds the run, finished or not,
    byte for byte."""
    p = config.params_from_dict({**TINY, "folds": ["s01", "s02"], "runs_dir": str(tmp_path / "runs")})
    run = loso.run_loso(p, samples=samples)
    good = run.predictions()
    seconds = run.train_seconds
    meta_file = run.dir / "run.json"
    csvs = {f: (run.dir / f).stat().st_mtime_ns for f in ("predictions.csv", "metrics.csv", "curve.csv")}
    meta_file.write_text('{"params": {')
    with pytest.raises(HTNetInputError, match="delete this file"):
        loso.run_loso(p, samples=samples)
    assert {f: (run.dir / f).stat().st_mtime_ns for f in csvs} == csvs  # the failed attempt wrote nothing
    meta_file.unlink()  # as advised: a finished run
    again = loso.run_loso(p, samples=samples)
    assert again.finished and again.params == p.replace(progress=False) and again.meta["finished"]
    pd_equal(again.predictions(), good)
    assert again.train_seconds == pytest.approx(seconds, abs=0.01)  # from the fold files
    # an unfinished run: one fold and the metadata gone
    (run.dir / "folds" / "s02.npz").unlink()
    (run.dir / "metrics.csv").unlink()
    meta_file.unlink()
    resumed = loso.run_loso(p, samples=samples)
    assert resumed.finished and resumed.meta["numerics"]["engine"] == "loop"
    pd_equal(resumed.predictions(), good)
    # a finished run found again is read, not rewritten
    csvs = {f: (run.dir / f).stat().st_mtime_ns for f in ("predictions.csv", "metrics.csv", "curve.csv", "run.json")}
    loso.run_loso(p, samples=samples)
    assert {f: (run.dir / f).stat().st_mtime_ns for f in csvs} == csvs


def pd_equal(a, b):
    import pandas as pd

    pd.testing.assert_frame_equal(a, b)


# ---------------------------------------------------------------- 6. messages

@pytest.mark.parametrize("text, value", [("lr: 1.0e6\n", 1.0e6), ("lr: 5e-5\n", 5e-5), ("dropout: 1e-1\n", 0.1),
                                         ("lr: 1.0e+6\n", 1.0e6), ("gpu_fraction: 5E-1\n", 0.5)])
def test_floats_yaml_reads_as_text_are_accepted(tmp_path, text, value):
    """A float such as `5e-5` in a params file, which YAML reads as text, is taken as the number it is.

    YAML 1.1 (PyYAML) reads 5e-5 and 1.0e6 as text (it wants a dot and the exponent's sign): a float field takes
    any text that is a number, so the params mean what they say."""
    path = tmp_path / "p.yaml"
    path.write_text(text)
    p = config.load_params(path)
    key = text.split(":")[0]
    got = {**p.to_flat()}[key]
    assert isinstance(got, float) and got == value
    assert config.params_from_dict({key: value}).fingerprint() == p.fingerprint()


@pytest.mark.parametrize("text", ["lr: fast\n", "lr: .nan\n", "lr: 'nan'\n", "lr: 'inf'\n", "dropout: true\n",
                                  "lr: '1_0'\n", "epochs: 1e3\n"])
def test_text_that_is_no_float_is_still_refused(tmp_path, text):
    """Text that is no number (`fast`, `.nan`, `1e3` for an integer) in a params file is refused with an error naming the
    file and the key."""
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(HTNetInputError) as e:
        config.load_params(path)
    assert e.value.field == text.split(":")[0] and str(path) in str(e.value)
    if text.startswith("epochs"):
        assert "write 1000" in str(e.value)  # the hint is exact: an integer field wants digits


def test_crashing_ray_workers_are_one_message_that_suggests_the_rerun(samples, tmp_path, monkeypatch, capfd):
    """Ray workers that crash stop `loso` with one message suggesting the rerun that resumes, keeping the finished folds.

    No real worker is crashed: a stand-in for Ray finishes the first chunk and raises Ray's WorkerCrashedError
    (what ray.get raises once the task's retries are spent) for the second."""
    ray_exceptions = pytest.importorskip("ray.exceptions")
    calls = []

    class Ref:
        def __init__(self, args):
            self.args = args

    def remote(**opts):
        def wrap(fn):
            return types.SimpleNamespace(remote=lambda *args: Ref(args))
        return wrap

    def get(ref):
        calls.append(ref)
        if len(calls) > 1:
            raise ray_exceptions.WorkerCrashedError()
        X, y, plans, params, engine, threads, device = ref.args
        records, seconds = executors.train_chunk(X, y, plans, params, engine)
        return records, seconds, "fake:1"

    fake = types.SimpleNamespace(is_initialized=lambda: True, put=lambda t: t, remote=remote,
                                 wait=lambda refs, num_returns=1: (refs[:1], refs[1:]), get=get,
                                 exceptions=ray_exceptions)
    monkeypatch.setattr(executors, "import_ray", lambda: fake)
    yaml = tmp_path / "p.yaml"
    yaml.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in
                            {**TINY, "folds": ["s01", "s02"], "executor": "ray", "fold_chunk": 1,
                             "runs_dir": str(tmp_path / "runs")}.items()))
    rc, _, err = cli(capfd, "loso", "--params", yaml)
    line = one_error_line(err)
    assert rc == 2 and "crashed" in line and "rerun" in line and "resume" in line
    run_dir = next((tmp_path / "runs").glob("loso-*"))
    assert len(list((run_dir / "folds").glob("*.npz"))) == 1  # the chunk that finished is kept for the rerun


# ---------------------------------------------------------------- 7. rebuilt weights

def test_rebuilt_weights_do_not_depend_on_the_callers_thread_count(tmp_path, samples, monkeypatch):
    """Rebuilding the shipped weights gives the same tensors whatever torch thread count the caller set.

    The rebuild trains on the card's recorded thread count, whatever the caller set (and restores it). The two
    rebuilds are compared with each other, which holds on any machine; whether they equal the card's bytes depends
    on the CPU's instruction set as well (tests/test_predict.py, the full recipe). Here the card's recipe is cut to 4
    epochs (averaging from the third): the thread count is set before the first step."""
    card = json.loads(predict.CARD.read_text())
    assert card["threads"] == card["params"]["threads"] == 2
    short = tmp_path / "card.json"
    short.write_text(json.dumps({**card, "params": {**card["params"], "epochs": 4, "swa_start": 2}}))
    monkeypatch.setattr(predict, "CARD", short)
    before = torch.get_num_threads()
    built = {}
    for caller in (1, 3):
        torch.set_num_threads(caller)
        try:
            path, _ = predict.build_shipped(tmp_path / f"caller{caller}.safetensors", samples, progress=False)
            assert torch.get_num_threads() == caller
        finally:
            torch.set_num_threads(before)
        assert json.loads(path.with_suffix(".json").read_text())["threads"] == 2
        built[caller] = predict.tensors_sha256(path)
    assert built[1] == built[3], "the rebuild's tensors depend on the caller's thread count"


# ---------------------------------------------------------------- 8. settings that surprise

def test_htnet_weights_takes_a_folder_or_a_safetensors_file(tmp_path, monkeypatch):
    """`HTNET_WEIGHTS` takes a folder or a `.safetensors` file, and anything else is refused with a message naming it."""
    monkeypatch.setenv(predict.WEIGHTS_ENV, str(tmp_path))
    assert predict.default_weights() == tmp_path / "htnet-honest.safetensors"
    monkeypatch.setenv(predict.WEIGHTS_ENV, str(tmp_path / "new") + os.sep)
    assert predict.default_weights() == tmp_path / "new" / "htnet-honest.safetensors"
    monkeypatch.setenv(predict.WEIGHTS_ENV, str(tmp_path / "mine.safetensors"))
    assert predict.default_weights() == tmp_path / "mine.safetensors"
    monkeypatch.setenv(predict.WEIGHTS_ENV, str(tmp_path / "weights"))
    with pytest.raises(HTNetInputError, match=r"HTNET_WEIGHTS.*folder.*\.safetensors"):
        predict.default_weights()


def test_a_run_trains_on_its_threads_and_gives_the_callers_back(samples, tmp_path, monkeypatch):
    """A run trains on its `threads` and then gives the caller's torch thread count back: a notebook or test that
    runs LOSO keeps its own setting for what it does next."""
    seen, train_chunk = [], executors.train_chunk

    def watched(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return train_chunk(*args, **kwargs)

    monkeypatch.setattr(executors, "train_chunk", watched)
    p = config.params_from_dict({**TINY, "folds": ["s01"], "threads": 1, "runs_dir": str(tmp_path / "runs")})
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        assert loso.run_loso(p, samples=samples).finished
        assert seen == [1] and torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_no_lock_file_is_left_beside_run_folders(samples, tmp_path):
    """A finished or failed `loso` run leaves no lock file beside the run folders."""
    p = config.params_from_dict({**TINY, "folds": ["s01"], "runs_dir": str(tmp_path / "runs")})
    run = loso.run_loso(p, samples=samples)
    assert run.finished and not list((tmp_path / "runs").glob("*.lock"))
    with pytest.raises(loso.TrainingDiverged):  # a run that writes nothing leaves nothing
        loso.run_loso(p.replace(lr=1.0e30, folds=["s02"]), samples=samples)
    assert sorted(x.name for x in (tmp_path / "runs").iterdir()) == [run.dir.name]


def test_reproduce_progress_has_no_kernel_transport_warning(tmp_path, monkeypatch, capfd):
    """`reproduce` shows each notebook's progress without the kernel's plain-text transport warning."""
    import nbformat

    from htnet_lib import reproduce

    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "language": "python",
                                                           "display_name": "Python 3"}})
    nb.cells = [nbformat.v4.new_code_cell("params_dir = ''", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("print('cell ran')")]
    nbformat.write(nb, nb_dir / "01_t.ipynb")
    (tmp_path / "params" / "t").mkdir(parents=True)
    monkeypatch.setenv("HTNET_ROOT", str(tmp_path))  # its notebooks/, params/ and figures/ (_io.project_root)
    reproduce.reproduce(str(tmp_path / "params" / "t"), out_dir=tmp_path / "executed")
    out, err = capfd.readouterr()
    assert "cell ran" in out and "[01_t.ipynb] done" in out
    assert "without encryption" not in out + err and "WARNING" not in err, err
    if os.path.isfile("/proc/self/status"):  # the kernel was found and measured: an ipykernel holds tens of MiB
        entry = reproduce.read_provenance(tmp_path / "figures" / "t" / reproduce.PROVENANCE)["01_t.ipynb"]
        assert 20 < entry[reproduce.PEAK_MEMORY] < 2000


# ---------------------------------------------------------------- 9. every image through one reader

def damage(release, sample_row, column, how):
    """Replace one release image (a symlink into the shared release) by a damaged copy; returns its path."""
    src = sample_row[column]
    rel = src[src.index("datasets/"):]
    path = release / rel
    whole = open(src, "rb").read()
    path.unlink()
    if how == "truncated":
        path.write_bytes(whole[:len(whole) // 2])
    else:  # the same picture stored as a JPEG under the .png name
        path.write_bytes(cv2.imencode(".jpg", cv2.imread(src))[1].tobytes())
    return path


@pytest.mark.parametrize("how", ["truncated", "jpeg_named_png"])
def test_a_damaged_flow_map_inside_the_release_stops_loso_naming_it(release_copy, samples, tmp_path, capfd, how):
    """A truncated flow map, or a JPEG renamed .png, inside the release stops `loso` before training with an error naming
    the file."""
    bad = damage(release_copy, samples.iloc[5], "flow_path", how)
    yaml = tmp_path / "p.yaml"
    yaml.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in
                            {**TINY, "folds": ["s01"], "runs_dir": str(tmp_path / "runs")}.items()))
    rc, out, err = cli(capfd, "loso", "--params", yaml, "--data-dir", release_copy)
    line = one_error_line(err)
    assert rc == 2 and str(bad) in line and ("decode completely" in line if how == "truncated" else "JPEG" in line)
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_a_truncated_face_inside_the_release_is_an_error_naming_it(release_copy, samples):
    """A truncated apex face inside the release stops the landmark detection with an error naming the file."""
    from htnet_lib import data, regions

    bad = damage(release_copy, samples.iloc[2], "face_path", "truncated")
    rows = data.load_samples(release_copy).iloc[:4]
    with pytest.raises(HTNetInputError, match="decode completely") as e:
        regions.detect_landmarks(rows, "official", progress=False)
    assert str(bad) in str(e.value) and e.value.field == "face_path"


def test_predict_with_a_truncated_flow_map_or_face_is_an_error_naming_it(tmp_path, samples, capfd):
    """`predict --flow-map` with a truncated map or a truncated `--face` gives one error naming the file and no answer."""
    weights = tiny_weights(tmp_path)
    for opt, col in (("--flow-map", "flow_path"), ("--face", "face_path")):
        whole = open(samples[col].iloc[0], "rb").read()
        bad = tmp_path / ("cut" + os.path.splitext(samples[col].iloc[0])[1])
        bad.write_bytes(whole[:len(whole) // 2])
        args = {"--flow-map": samples["flow_path"].iloc[0], "--face": samples["face_path"].iloc[0], opt: bad}
        rc, out, err = cli(capfd, "predict", *[x for kv in args.items() for x in kv], "--weights", weights)
        assert rc == 2 and str(bad) in one_error_line(err) and "prediction" not in out  # no libjpeg warning either


def test_a_face_without_landmarks_is_a_warning_in_the_result(tmp_path, samples):
    """A noise `--face` with region weights is answered with a `no_landmarks` warning saying the fixed fallback landmarks
    were used."""
    p = config.params_from_dict({"dim": 16, "heads": 3, "block_repeats": [1, 1, 1], "regions": "official"})
    weights = predict.save(init_model(p.model, 3).eval(), p.train, tmp_path / "w.safetensors")
    noise = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "noise.png"), noise)
    pred = predict.load(weights)
    got = predict.predict_map(samples["flow_path"].iloc[0], tmp_path / "noise.png", pred)
    assert [w["flag"] for w in got["warnings"]] == ["no_landmarks"] and "noise.png" in got["warnings"][0]["detail"]
    real = predict.predict_map(samples["flow_path"].iloc[309], samples["face_path"].iloc[309], pred)
    assert real["warnings"] == []


def test_an_image_over_the_size_limit_is_one_message_of_the_project(tmp_path):
    """A 10000x10000 frame is refused with the project's own message stating the size limit, not Pillow's warning."""
    import warnings

    big = tmp_path / "big.png"
    cv2.imwrite(str(big), np.zeros((10000, 10000), np.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning would fail here
        with pytest.raises(HTNetInputError, match=r"10000x10000 pixels, more than the 50,000,000") as e:
            predict.read_image(big, "onset")
    assert e.value.field == "onset" and str(big) in str(e.value)


# ---------------------------------------------------------------- 10. output paths checked before the work

def params_file(tmp_path, **values):
    """A params file of `values` (over TINY, one fold, runs in tmp_path/runs)."""
    path = tmp_path / "p.yaml"
    flat = {**TINY, "folds": ["s01"], "runs_dir": str(tmp_path / "runs"), **values}
    path.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in flat.items()))
    return path


def test_predict_json_onto_a_folder_or_an_unwritable_place_is_one_message_before_the_answer(tmp_path, samples, capfd):
    """`predict --json` onto a folder, or under a regular file, stops with status 2 and one message naming the path, before
    printing any answer."""
    weights = tiny_weights(tmp_path)
    (tmp_path / "file").write_text("not a folder")
    for target in (tmp_path, tmp_path / "file" / "p.json"):
        rc, out, err = cli(capfd, "predict", "--flow-map", samples["flow_path"].iloc[0], "--weights", weights,
                           "--json", target)
        assert rc == 2 and str(target) in one_error_line(err) and "--json" in err and out == ""


def test_train_weights_out_checked_before_training(tmp_path, capfd):
    """`train-weights --out` in a place that cannot be written, or without `.safetensors`, or with an unknown `--protocol`,
    stops with status 2 before any training."""
    yaml = params_file(tmp_path)
    (tmp_path / "file").write_text("not a folder")
    cases = [(["--out", tmp_path / "file" / "w.safetensors"], str(tmp_path / "file" / "w.safetensors")),
             (["--out", tmp_path / "weights"], ".safetensors"),  # the rule $HTNET_WEIGHTS follows
             (["--out", tmp_path / "w.safetensors", "--protocol", "bogus"], "unknown protocol 'bogus'")]
    for args, said in cases:
        rc, out, err = cli(capfd, "train-weights", "--params", yaml, *args)
        assert rc == 2 and said in one_error_line(err)
    assert not (tmp_path / "runs").exists()  # nothing trained


def tiny_project(tmp_path, monkeypatch, code="print('cell ran')"):
    """A project folder (HTNET_ROOT) with one notebook running `code` and an empty params level `t`."""
    import nbformat

    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir(exist_ok=True)
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "language": "python",
                                                           "display_name": "Python 3"}})
    nb.cells = [nbformat.v4.new_code_cell("params_dir = ''", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(code)]
    nbformat.write(nb, nb_dir / "01_t.ipynb")
    (tmp_path / "params" / "t").mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("HTNET_ROOT", str(tmp_path))
    return tmp_path / "params" / "t"


def test_reproduce_with_outputs_that_cannot_be_written_stops_before_any_notebook(tmp_path, monkeypatch, capfd):
    """`reproduce` whose executed/ or figures/ cannot be written stops with status 2 and one message naming the folder,
    before any notebook runs."""
    level = tiny_project(tmp_path, monkeypatch)
    (tmp_path / "file").write_text("not a folder")
    rc, out, err = cli(capfd, "reproduce", "--params", level, "--out", tmp_path / "file" / "executed")
    assert rc == 2 and str(tmp_path / "file" / "executed") in one_error_line(err) and "running" not in out
    (tmp_path / "figures").write_text("not a folder")
    rc, out, err = cli(capfd, "reproduce", "--params", level, "--out", tmp_path / "executed")
    assert rc == 2 and str(tmp_path / "figures" / "t") in one_error_line(err) and "running" not in out


def test_a_failed_notebook_does_not_replace_the_good_executed_copy(tmp_path, monkeypatch, capfd):
    """A notebook that fails in `reproduce` leaves the last good executed copy as it was and keeps the failed one beside
    it."""
    from htnet_lib import reproduce

    level = tiny_project(tmp_path, monkeypatch)
    reproduce.reproduce(str(level), out_dir=tmp_path / "executed")
    good = tmp_path / "executed" / "01_t.ipynb"
    before = good.read_bytes()
    tiny_project(tmp_path, monkeypatch, code="raise RuntimeError('broken cell')")
    with pytest.raises(SystemExit):
        reproduce.reproduce(str(level), out_dir=tmp_path / "executed")
    assert good.read_bytes() == before and "broken cell" in (tmp_path / "executed" / "01_t.failed.ipynb").read_text()
    assert not list((tmp_path / "executed").glob(".*"))  # no temporary file left
    capfd.readouterr()


# ---------------------------------------------------------------- 11. interrupts

def cli_stopped(capfd, *args) -> tuple[int, str, str]:
    """`cli` for a command that a (simulated) Ctrl-C stops: an interrupt escaping `main` fails the test, not pytest."""
    try:
        return cli(capfd, *args)
    except KeyboardInterrupt:
        pytest.fail("the interrupt escaped the command as a traceback")


def leftovers(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name.endswith((".lock", ".tmp")))


def test_ctrl_c_during_loso_is_one_line_saying_where_and_status_130(tmp_path, samples, monkeypatch, capfd):
    """Ctrl-C during `loso` prints one line naming the run folder and the folds done, saying the same command resumes, and
    exits with status 130, leaving no lock or temporary file."""
    real, calls = executors.train_chunk, []

    def interrupted_second(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(executors, "train_chunk", interrupted_second)
    yaml = params_file(tmp_path, folds=["s01", "s02", "s03"])
    rc, out, err = cli_stopped(capfd, "loso", "--params", yaml)
    line = [x for x in err.strip().splitlines() if x.strip()]
    assert rc == 130 and len(line) == 1 and "1 of 3 folds done" in line[0] and "resumes" in line[0], err
    run_dir = next((tmp_path / "runs").glob("loso-*"))
    assert str(run_dir) in line[0] and leftovers(tmp_path / "runs") == []
    monkeypatch.setattr(executors, "train_chunk", real)
    rc, out, err = cli(capfd, "loso", "--params", yaml)
    assert rc == 0 and len(calls) == 2  # resumed: two folds trained, the first one kept


def test_what_a_killed_loso_leaves_is_cleared_by_the_next_run(tmp_path, samples, capfd):
    """After `loso` is killed (SIGKILL, or SIGTERM which exits with status 143) mid-run, the next run clears the lock
    and temporary files it left and finishes, leaving none: the folds finished before the kill are kept as they were,
    and the results are those of a run never interrupted. (Both processes start together: their interpreters'
    start-up is most of their time.)"""
    import signal
    import subprocess
    import sys
    import time

    started = {}
    for sig in ("SIGKILL", "SIGTERM"):
        root = tmp_path / sig
        root.mkdir()
        engine = {"engine": "batched", "fold_chunk": 1} if sig == "SIGKILL" else {}  # each engine saves fold by fold
        yaml = params_file(root, folds=["s01", "s02", "s03", "s04"], epochs=3, **engine)
        started[sig] = root, yaml, subprocess.Popen([sys.executable, "-m", "htnet_lib", "loso", "--params", str(yaml)],
                                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    waiting, deadline = dict(started), time.time() + 300
    while waiting and time.time() < deadline:
        for sig, (root, _, proc) in list(waiting.items()):
            if list((root / "runs").glob("loso-*/folds/*.npz")):
                proc.send_signal(getattr(signal, sig))  # while a later fold trains
                del waiting[sig]
        time.sleep(0.05)
    for sig, (root, yaml, proc) in started.items():
        _, err = proc.communicate(timeout=60)
        run_dir = next(d for d in (root / "runs").glob("loso-*") if d.is_dir())
        kept = {f: f.read_bytes() for f in sorted(run_dir.glob("folds/*.npz"))}
        assert 1 <= len(kept) < 4, f"{sig}: the kill should land mid-run"
        assert not (run_dir / "metrics.csv").exists()
        if sig == "SIGKILL":
            assert proc.returncode == -9 and (root / "runs" / (run_dir.name + ".lock")).exists()
            (run_dir / ".predictions.csv.abc123.tmp").write_text("half a file")  # killed during the final write
        else:
            assert proc.returncode == 143 and "terminated" in err and "resumes" in err, err
            assert leftovers(root / "runs") == []  # SIGTERM stops as Ctrl-C does: nothing left behind
        rc, out, err = cli(capfd, "loso", "--params", yaml)
        assert rc == 0 and leftovers(root / "runs") == [] and (run_dir / "metrics.csv").is_file()
        assert len(list(run_dir.glob("folds/*.npz"))) == 4
        assert all(f.read_bytes() == payload for f, payload in kept.items())  # not trained again
        clean = loso.run_loso(config.load_params(yaml).replace(runs_dir=str(root / "clean")))
        pd.testing.assert_frame_equal(loso.Run(run_dir).predictions(), clean.predictions())


# ---------------------------------------------------------------- 12. settings that cost hours, caught first

def test_an_empty_params_file_is_refused_naming_it(tmp_path, capfd):
    """An empty params file is refused with status 2 and a message naming it, instead of training the paper's model for 800
    epochs."""
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    with pytest.raises(HTNetInputError, match="empty params file") as e:
        config.load_params(empty)
    assert str(empty) in str(e.value)
    rc, out, err = cli(capfd, "loso", "--params", empty)
    assert rc == 2 and str(empty) in one_error_line(err)


def test_reproduce_only_needs_a_value(tmp_path, monkeypatch, capfd):
    """`reproduce --only` with no value is a usage error (status 2), not a run of every notebook."""
    level = tiny_project(tmp_path, monkeypatch)  # were it run, only this project's notebook
    with pytest.raises(SystemExit) as e:
        main(["reproduce", "--params", str(level), "--out", str(tmp_path / "executed"), "--only"])
    assert e.value.code == 2 and "--only" in capfd.readouterr().err and not (tmp_path / "executed").exists()


@pytest.mark.parametrize("protocols, said", [(["fixed@99"], "epoch 99 is not recorded"),
                                             (["bogus"], "unknown protocol 'bogus'")])
def test_a_protocol_that_cannot_be_scored_is_refused_before_training_naming_the_params_file(tmp_path, capfd,
                                                                                            protocols, said):
    """A protocol the run cannot score (`fixed@99` with fewer epochs, an unknown name) stops `loso` with status 2 before
    any training, naming the params file and `protocols`."""
    yaml = params_file(tmp_path, protocols=protocols)
    rc, out, err = cli(capfd, "loso", "--params", yaml)
    line = one_error_line(err)
    assert rc == 2 and said in line and str(yaml) in line and "'protocols'" in line
    assert not (tmp_path / "runs").exists()


def test_a_long_run_says_what_it_trains_and_its_cost_first(tmp_path, samples, monkeypatch, capfd):
    """A run over the cost threshold (the paper's 800 epochs) first prints what it trains and its estimated FLOPs and
    hours; a small run prints nothing."""
    def stop(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(executors, "train_chunk", stop)
    yaml = tmp_path / "paper.yaml"
    yaml.write_text(f"regions: whole\nengine: loop\nfolds: [s01]\nruns_dir: {tmp_path / 'runs'}\nprogress: false\n")
    rc, out, err = cli_stopped(capfd, "loso", "--params", yaml)
    first = err.strip().splitlines()[0]
    assert rc == 130 and "training 1 run(s) of htnet: 1 fold(s), 800 fold-epochs" in first and "PFLOP" in first, err
    (tmp_path / "s").mkdir()
    small = params_file(tmp_path / "s")
    rc, out, err = cli_stopped(capfd, "loso", "--params", small)
    assert rc == 130 and "PFLOP" not in err


# ---------------------------------------------------------------- 13. a run name is one folder name

@pytest.mark.parametrize("name", ["../escape", "a/b", ".."])
def test_a_run_name_that_is_not_one_folder_name_is_refused(tmp_path, capfd, name):
    """`loso --name ../escape` (or any name with a path separator) is refused with status 2 and writes nothing outside
    runs_dir."""
    yaml = params_file(tmp_path)
    rc, out, err = cli(capfd, "loso", "--params", yaml, "--name", name)
    assert rc == 2 and "--name" in one_error_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.yaml"]


# ---------------------------------------------------------------- 14. smaller things

def test_weights_files_follow_the_umask(tmp_path):
    """Weights files written by `save` get the mode the umask gives every other output, not 0600."""
    old = os.umask(0o022)
    try:
        path = tiny_weights(tmp_path)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_tampered_shipped_copy_with_an_edited_card_is_refused(tmp_path, monkeypatch):
    """Shipped weights altered together with their card are refused: the sha256 pinned in the code does not match."""
    card = json.loads(predict.CARD.read_text())
    assert predict.SHIPPED_TENSORS_SHA256 == card["tensors_sha256"] == predict.tensors_sha256(predict.SHIPPED)
    copy = tmp_path / predict.WEIGHTS_NAME
    raw = bytearray(predict.SHIPPED.read_bytes())
    raw[tensor_bytes_start(predict.SHIPPED) + 100] ^= 0xFF
    copy.write_bytes(bytes(raw))
    copy.with_suffix(".json").write_text(json.dumps({**card, "tensors_sha256": predict.tensors_sha256(copy)}))
    monkeypatch.setattr(predict, "SHIPPED", copy)  # the package's copy, as an installed one that was edited
    monkeypatch.setattr(predict, "CARD", copy.with_suffix(".json"))
    with pytest.raises(HTNetInputError, match="pins") as e:
        predict.load(copy)
    assert e.value.field == "tensors_sha256" and str(copy) in str(e.value)


def test_notebooks_under_the_tests_write_their_runs_into_a_temporary_folder(monkeypatch):
    """The notebooks that `make test` runs write their run folders into a temporary folder, never the checkout's runs/.

    nbval's notebooks are items under notebooks/, so the hook is notebooks/conftest.py's (loaded here by path)."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("notebooks_conftest", root / "notebooks" / "conftest.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    monkeypatch.setenv(config.SESSION_ENV, "{}")  # restored (unset) after the test: the hook's setting stays here
    hooks.pytest_runtest_setup(types.SimpleNamespace(path=root / "notebooks" / "03_loso_train.ipynb"))
    try:
        runs_dir = Path(config.load_params(root / "params" / "smoke" / "loso.yaml").run.runs_dir)
        assert runs_dir.is_absolute() and runs_dir.is_dir() and runs_dir.name.startswith("htnet-notebook-runs-")
        assert not runs_dir.is_relative_to(root)
    finally:
        hooks.pytest_sessionfinish(None)
    assert not runs_dir.exists()  # removed when the session ends
