"""`predict`: on release samples a prepared map gives exactly the model's own predictions on the same
inputs; frames go end to end; a missing face, frames of different sizes and unreadable files are one clear error and
a non-zero exit."""
import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from htnet_lib import config, predict, regions
from htnet_lib._io import HTNetInputError
from htnet_lib.loso.engines import init_model

ROWS = [0, 150, 309, 441]  # CASME II, SMIC-HS, SAMM samples


def tiny_weights(folder, regions_variant):
    p = config.params_from_dict({"dim": 16, "heads": 3, "block_repeats": [1, 1, 1], "regions": regions_variant})
    path = folder / f"tiny-{regions_variant}.safetensors"
    predict.save(init_model(p.model, 3).eval(), p.train, path, card={"recipe": "test"})
    return path, p


@pytest.fixture(scope="module", params=["official", "corrected", "whole"])
def any_weights(request, tmp_path_factory):
    return tiny_weights(tmp_path_factory.mktemp("w"), request.param)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return tiny_weights(tmp_path_factory.mktemp("w"), "corrected")


def start_cli(*args) -> subprocess.Popen:
    """`python -m htnet_lib predict ARGS` started: a test starts its processes together, as their interpreters' start-up
    is most of their time."""
    return subprocess.Popen([sys.executable, "-m", "htnet_lib", "predict", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finished(proc: subprocess.Popen) -> subprocess.CompletedProcess:
    out, err = proc.communicate(timeout=600)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_flow_map_prediction_equals_the_models_own(any_weights, samples, flow_maps):
    path, p = any_weights
    pred = predict.load(path)
    assert pred.train.regions == p.train.regions and pred.info["recipe"] == "test"
    assert pred.info["tensors_sha256"] == predict.tensors_sha256(path) and pred.check.startswith("tensors match")
    X = regions.model_inputs(samples.iloc[ROWS], flow_maps[ROWS], p.train, progress=False)
    with torch.no_grad():
        own = torch.softmax(pred.model(X), -1).numpy()
    for k, row in enumerate(ROWS):
        out = predict.predict_map(samples["flow_path"].iloc[row], samples["face_path"].iloc[row], pred)
        got = np.array([out["probabilities"][c] for c in ("negative", "positive", "surprise")])
        np.testing.assert_allclose(got, own[k], atol=1e-6)
        assert out["prediction"] == ("negative", "positive", "surprise")[int(own[k].argmax())]


def test_cli_writes_json_and_frames_go_end_to_end(weights, samples, tmp_path):
    path, _ = weights
    row = ROWS[2]
    out = tmp_path / "p.json"
    # frames: the release's apex face pasted on a grey frame, the apex frame moved by a pixel at the mouth
    face = cv2.imread(samples["face_path"].iloc[row])
    onset = np.full((320, 320, 3), 120, np.uint8)
    onset[48:272, 48:272] = face
    apex = onset.copy()
    apex[190:230, 100:220] = onset[190:230, 101:221]
    cv2.imwrite(str(tmp_path / "onset.png"), onset)
    cv2.imwrite(str(tmp_path / "apex.png"), apex)
    from_map = start_cli("--flow-map", samples["flow_path"].iloc[row], "--face", samples["face_path"].iloc[row],
                         "--weights", path, "--json", out)
    from_frames = start_cli("--onset", tmp_path / "onset.png", "--apex", tmp_path / "apex.png", "--weights", path,
                            "--print-json")
    r = finished(from_map)
    assert r.returncode == 0, r.stderr
    result = json.loads(out.read_text())
    assert abs(sum(result["probabilities"].values()) - 1) < 1e-5 and "prediction:" in r.stdout
    r = finished(from_frames)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout[r.stdout.index("{"):])["input"]["flow"] == "tvl1"


def test_bad_inputs_are_one_clear_error(weights, samples, tmp_path, capsys):
    """Each bad input is exit status 2 and one line naming it: the first case through a real `python -m htnet_lib`
    process, the others through the same `main` in this process (a new interpreter per case would only add its
    start-up)."""
    from htnet_lib.__main__ import main

    path, _ = weights
    blank = np.full((240, 320, 3), 128, np.uint8)
    cv2.imwrite(str(tmp_path / "blank.png"), blank)
    cv2.imwrite(str(tmp_path / "small.png"), blank[:200])
    (tmp_path / "broken.png").write_bytes(b"not an image")
    cases = [
        (["--onset", tmp_path / "blank.png", "--apex", tmp_path / "blank.png"], "no face found on the onset frame"),
        (["--onset", tmp_path / "blank.png", "--apex", tmp_path / "small.png"], "differs from the onset"),
        (["--onset", tmp_path / "broken.png", "--apex", tmp_path / "blank.png"], "broken.png.*unreadable"),
        (["--onset", tmp_path / "missing.png", "--apex", tmp_path / "blank.png"], "missing.png.*missing"),
        (["--flow-map", tmp_path / "blank.png", "--face", samples["face_path"].iloc[0]], "shape"),
        (["--onset", tmp_path / "blank.png"], "--apex"),
    ]
    first = start_cli(*cases[0][0], "--weights", path)  # runs while the others run in this process
    seen = []
    for args, message in cases[1:]:
        code = main(["predict", *map(str, args), "--weights", str(path)])
        seen.append((args, message, code, capsys.readouterr().err))
    r = finished(first)
    for args, message, code, stderr in [(*cases[0], r.returncode, r.stderr), *seen]:
        assert code == 2, (args, stderr)
        assert stderr.startswith("error: ") and len(stderr.strip().splitlines()) == 1, stderr
        assert re.search(message, stderr), (message, stderr)
    with pytest.raises(HTNetInputError, match="htnet_train_config"):
        from htnet_lib.models import save_weights
        plain = tmp_path / "plain.safetensors"
        save_weights(init_model(config.HTNetConfig(dim=16, block_repeats=(1, 1, 1)), 0), plain)
        predict.load(plain)


def test_shipped_weights_rebuild_from_their_card_bit_for_bit(tmp_path, samples, flow_maps):
    """The rebuild is a check of the shipped file: `build_shipped` trains the card's recipe (params/honest/loso.yaml)
    and, on the hardware and torch the card names, gives exactly the tensors its sha256 names, which are the shipped
    file's (elsewhere its card names the bytes built and keeps the shipped sha256 beside them); its honest score is
    stated with an interval; saving then loading gives the same tensors and the same probabilities. The hardware
    includes the CPU's instruction set (`_io.hardware`): one CPU model name covers machines with and without AVX-512,
    which round differently, so a card that does not name it is not compared byte for byte."""
    from htnet_lib._io import hardware

    path, identical = predict.build_shipped(tmp_path / "shipped.safetensors", samples, progress=False)
    shipped = predict.load(path)
    card = shipped.info
    recipe = config.load_params(Path(__file__).resolve().parents[1] / card["recipe"], config.parse_set(card["set"]))
    assert shipped.train == recipe.train and shipped.model.cfg == recipe.model and recipe.model.dim == 32
    shipped_card = json.loads(predict.CARD.read_text())
    built = predict.tensors_sha256(path)
    assert identical == (built == shipped_card["tensors_sha256"]) and card["params"]["regions"] == "whole"
    # elsewhere (other hardware or torch) the rebuild's card names its own bytes and keeps the shipped sha256 beside them
    assert card == (shipped_card if identical else {**shipped_card, "tensors_sha256": built,
                                                    "card_tensors_sha256": shipped_card["tensors_sha256"]})
    assert predict.tensors_sha256(predict.SHIPPED) == shipped_card["tensors_sha256"]
    if card["hardware"] == hardware() and card["torch"] == torch.__version__:
        assert identical, "the recipe no longer trains to the bytes its card names"
    score = card["honest_loso_full"]
    assert score["UF1_95"][0] < score["UF1"] < score["UF1_95"][1] and len(score["UF1_per_seed"]) == 5
    assert card["storage"] == "float16" and card["float16_check"]["same_class"] == card["float16_check"]["samples"]
    again = predict.load(predict.save(shipped.model, shipped.train, tmp_path / "again.safetensors", storage="float16"))
    a, b = shipped.model.state_dict(), again.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    X = regions.model_inputs(samples.iloc[ROWS], flow_maps[ROWS], shipped.train, progress=False)
    with torch.no_grad():
        assert torch.equal(shipped.model(X), again.model(X))


def test_missing_weights_say_how_to_build_them(tmp_path, monkeypatch):
    monkeypatch.setenv(predict.WEIGHTS_ENV, str(tmp_path / "none.safetensors"))
    with pytest.raises(HTNetInputError, match=r"none\.safetensors.*no weights here.*python -m htnet_lib weights --out"):
        predict.load()


def test_the_shipped_weights_are_in_the_package_and_load_checked(monkeypatch):
    """The weights ship beside their card (under 5 MB), so `predict` needs no rebuild and answers alike everywhere:
    without $HTNET_WEIGHTS `load` reads that file, checked against the card's sha256; a rebuild never overwrites it."""
    monkeypatch.delenv(predict.WEIGHTS_ENV, raising=False)
    assert predict.default_weights() == predict.SHIPPED and predict.SHIPPED.stat().st_size < 5e6
    p = predict.load()
    assert p.path == str(predict.SHIPPED) and p.check.startswith("tensors match the card's sha256")
    assert p.info["tensors_sha256"] == json.loads(predict.CARD.read_text())["tensors_sha256"]
    assert predict.rebuild_path() != predict.SHIPPED
    with pytest.raises(HTNetInputError, match="shipped file itself"):
        predict.build_shipped(predict.SHIPPED, progress=False)

def test_float16_storage_halves_the_file_and_loads_as_float32(tmp_path, samples, flow_maps):
    """`storage='float16'` keeps every floating tensor in half precision (half the bytes, another sha256); loading
    gives a float32 model whose weights are the half-precision values; an unknown storage is refused naming it."""
    p = config.params_from_dict({"dim": 32, "heads": 3, "block_repeats": [1, 1, 1], "regions": "whole"})
    model = init_model(p.model, 1).eval()
    full = predict.save(model, p.train, tmp_path / "full.safetensors")
    half = predict.save(model, p.train, tmp_path / "half.safetensors", storage="float16")
    assert 0.45 < half.stat().st_size / full.stat().st_size < 0.55
    assert predict.tensors_sha256(half) != predict.tensors_sha256(full)
    loaded = predict.load(half).model
    for k, v in model.state_dict().items():
        got = loaded.state_dict()[k]
        assert got.dtype == v.dtype and torch.equal(got, v.half().to(v.dtype) if v.is_floating_point() else v), k
    X = regions.model_inputs(samples.iloc[ROWS], flow_maps[ROWS], p.train, progress=False)
    with torch.no_grad():
        assert torch.allclose(torch.softmax(loaded(X), -1), torch.softmax(model(X), -1), atol=1e-2)
    with pytest.raises(HTNetInputError, match=r"odd\.safetensors.*storage.*'int8'"):
        predict.save(model, p.train, tmp_path / "odd.safetensors", storage="int8")
