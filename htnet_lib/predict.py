"""Predict the micro-expression class of new data with trained weights (the recipe shipped with the package, or any
file written by `models.save_weights`).

From frames: the onset and apex frames of one micro-expression (any size, the same for both) -> the face box found by
MTCNN on the onset frame, framed as the release's crops are -> the same crop of both frames -> optical flow onset to
apex and optical strain (eq. 3) -> the 28x28 (strain, v, u) map, exactly as `htnet_lib.raw` builds a release -> the
apex face (224x224) -> MTCNN landmarks and the four facial regions as the weights' config asks -> the model -> class
probabilities. From a prepared map: a release-style 28x28 map and its 224x224 apex face.

`python -m htnet_lib predict --onset A --apex B` (or `--flow-map M --face F`) prints the probabilities and writes
them as JSON with `--json`. Every bad input (an unreadable file, frames of different sizes, no face found) is one
`HTNetInputError` naming the file and the field; the command then exits with status 2.

What is checked, and said:

- weights with a JSON card beside them (`save` writes one; the shipped recipe's is `CARD`) are loaded only when their
  tensors' sha256 equals the card's: altered bytes are an error, not a confident wrong answer. Weights without a card
  load, and the result says that nothing could check them (`Predictor.check`);
- probabilities that are not finite (NaN weights) are an error, never a class;
- an image (frame, map or face) that does not decode completely (a truncated JPEG or PNG) or is not the format its
  extension says is an error naming it (`data.read_image`, the one reader);
- a face in which MTCNN finds no landmarks gets a warning in the result: the regions then sit at the authors' fixed
  fallback landmarks;
- frames between which nothing moved get a warning in the result (`warnings`), by the raw pipeline's own rule
  (`raw.apex.NO_MOTION` on eq. 1's feature difference, what `flags.csv`'s `apex_no_motion` uses).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from . import regions, release
from ._io import HTNetInputError, atomic_write_json, cache_dir, check_writable
from .config import TrainConfig
from .models import geometry
from .models.io import load_weights, read_weights_metadata, save_weights, tensors_sha256

CARD = Path(__file__).with_name("weights") / "htnet-honest.json"  # the shipped recipe's card
WEIGHTS_ENV = "HTNET_WEIGHTS"
WEIGHTS_NAME = "htnet-honest.safetensors"  # the shipped recipe's file name in a weights folder
SHIPPED = CARD.with_name(WEIGHTS_NAME)  # the shipped weights (3.6 MB in float16, in git and in the package, beside their card)
# The shipped tensors' sha256, pinned in the code itself: a copy of the package whose weights were altered and whose
# card was edited to match still fails (`load`). A test checks that the card names the same.
SHIPPED_TENSORS_SHA256 = "cc985e6b2459ebf3da91af4f8232a3f4c7637e94ba1eeab0375b518214c54475"


def weights_path(value: str | os.PathLike, source: str) -> Path:
    """A weights setting as a file: a `.safetensors` file as given, or a folder (one that exists, or written with a
    trailing slash) holding `WEIGHTS_NAME`. Anything else is refused, naming `source`: a name without the suffix used
    to become a file named like the intended folder."""
    text = os.fspath(value)
    path = Path(text).expanduser()
    if path.is_dir() or text.endswith(("/", os.sep)):
        return path / WEIGHTS_NAME
    if path.suffix == ".safetensors":
        return path
    raise HTNetInputError(source, None, f"{text!r} is neither a folder (an existing one, or end it with /) nor a "
                                        f".safetensors file")


def default_weights() -> Path:
    """The weights `predict` loads: $HTNET_WEIGHTS (a folder or a .safetensors file) when set, else the shipped file
    beside its card (the same bytes on every machine, so the same answers)."""
    value = os.environ.get(WEIGHTS_ENV)
    return weights_path(value, f"${WEIGHTS_ENV}") if value else SHIPPED


def rebuild_path() -> Path:
    """Where `python -m htnet_lib weights` writes its rebuild by default: $HTNET_WEIGHTS, or the user cache (never
    over the shipped file)."""
    value = os.environ.get(WEIGHTS_ENV)
    return weights_path(value, f"${WEIGHTS_ENV}") if value else cache_dir() / "weights" / WEIGHTS_NAME


@dataclass
class Predictor:
    """A loaded model with the training settings its inputs need (regions, preprocessing, input side)."""

    model: nn.Module
    train: TrainConfig
    path: str
    info: dict[str, Any] = field(default_factory=dict)  # the weights' JSON card, when there is one
    check: str = ""  # what vouches for the tensors: their card's sha256, or a note that nothing could


def load(weights: str | os.PathLike | None = None) -> Predictor:
    """Load weights (default: `default_weights()`, the shipped recipe) safely (safetensors) with the training
    settings stored beside them (`htnet_train_config` in the metadata: how inputs must be prepared)."""
    path = Path(weights) if weights else default_weights()
    if path.is_dir():  # a weights folder, as $HTNET_WEIGHTS may be
        path = path / WEIGHTS_NAME
    if not weights and not path.is_file():
        raise HTNetInputError(path, None, "no weights here: `python -m htnet_lib weights --out "
                                          f"{path}` trains the shipped recipe from the release in seconds and checks "
                                          f"them against the tensors' sha256 in {CARD.name} (or unset ${WEIGHTS_ENV} "
                                          "to use the shipped file)")
    meta = read_weights_metadata(path)
    if "htnet_train_config" not in meta:
        raise HTNetInputError(path, "htnet_train_config", "the weights do not say how their inputs were prepared "
                                                          "(save them with htnet_lib.predict.save)")
    try:
        train = TrainConfig(**json.loads(meta["htnet_train_config"]))
    except (json.JSONDecodeError, TypeError) as e:
        raise HTNetInputError(path, "htnet_train_config", f"not a JSON object of training keys: {e}") from None
    except HTNetInputError as e:
        raise HTNetInputError(path, f"htnet_train_config.{e.field}", e.problem) from None
    if path.resolve() == SHIPPED.resolve():
        _require_tensors(path, SHIPPED_TENSORS_SHA256, "this code pins (predict.SHIPPED_TENSORS_SHA256)",
                         "whatever its card says; reinstall the package")
    info, check = check_card(path)
    return Predictor(load_weights(path).eval(), train, str(path), info, check)


def _require_tensors(path: Path, want: str, named_by: str, remedy: str) -> None:
    """Raise naming `path` unless its tensors' sha256 is `want` (`named_by`: who names that sha256)."""
    got = tensors_sha256(path)
    if got != want:
        raise HTNetInputError(path, "tensors_sha256", f"the tensors' sha256 {got[:16]}... differ from the one "
                                                      f"{named_by}, {want[:16]}...: the file was altered or damaged; "
                                                      f"{remedy}")


def check_card(path: Path) -> tuple[dict[str, Any], str]:
    """(the card beside weights `path`, what it vouches for). A card's `tensors_sha256` must be the tensors': a
    mismatch (altered or damaged bytes) raises naming both files. No card, or one without the sha256, loads with a
    note saying so, since nothing can tell such weights from damaged ones."""
    card = path.with_suffix(".json")
    if not card.is_file():
        return {}, f"not checked: no card {card} beside the weights (nothing names their tensors' sha256)"
    try:
        info = json.loads(card.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise HTNetInputError(card, None, f"damaged weights card ({e})") from None
    if not isinstance(info, dict):
        raise HTNetInputError(card, None, "a weights card is a JSON object")
    want = info.get("tensors_sha256")
    if not want:
        return info, f"not checked: the card {card} names no tensors_sha256"
    _require_tensors(path, want, f"their card {card} names",
                     "restore it (the shipped recipe: rebuild it with python -m htnet_lib weights)")
    return info, f"tensors match the card's sha256 ({want[:16]}...)"


def shipped() -> Predictor:
    """The shipped recipe: the file beside its card, or $HTNET_WEIGHTS (built there first by `build_shipped`, a few
    seconds with the release, when it is missing)."""
    if not default_weights().is_file():
        path, identical = build_shipped(default_weights(), progress=False)
        print(f"built {path}: tensors {'identical to' if identical else 'NOT identical to'} the card's")
    return load()


STORAGE = {"float32": None, "float16": torch.float16}  # a card's `storage`: the type its tensors are kept in


def save(model: nn.Module, train: TrainConfig, path: str | os.PathLike, card: dict[str, Any] | None = None,
         storage: str = "float32") -> Path:
    """Write weights for `load`: safetensors with the model config and the training settings, and (given `card`) a
    JSON card beside them (config, data fingerprint, git revision, scores...) naming the tensors' sha256, which `load`
    checks. ``storage='float16'`` keeps the tensors in half precision (half the bytes; computed with in float32)."""
    path = Path(path)
    if storage not in STORAGE:
        raise HTNetInputError(path, "storage", f"{storage!r} is not one of {sorted(STORAGE)}")
    save_weights(model, path, metadata={"htnet_train_config": json.dumps(train.model_dump(), sort_keys=True)},
                 dtype=STORAGE[storage])
    if card is not None:
        atomic_write_json(path.with_suffix(".json"), {**card, "tensors_sha256": tensors_sha256(path)})
    return path


def build_shipped(dest: str | os.PathLike | None = None, samples=None, progress: bool = True) -> tuple[Path, bool]:
    """Train the shipped recipe from its card (params, seed; all samples, fixed epochs: a few seconds on a CPU) and
    write it with the card beside it. Returns (path, identical): whether the tensors match the card's sha256.

    Training runs on the card's torch thread count (`threads`), whatever the caller's: the order of float sums in
    torch's CPU kernels depends on it, so another count gives other bytes. With that count, the hardware
    and the torch the card names, the tensors are the card's; elsewhere rounding may differ. The card written beside
    the weights then names the tensors built here (so `load` checks these bytes) and keeps the shipped card's sha256
    as `card_tensors_sha256`."""
    from ._io import torch_threads
    from .config import params_from_dict

    path = weights_path(dest, "--out") if dest else rebuild_path()
    if path.resolve() == SHIPPED.resolve():
        raise HTNetInputError("--out", None, f"{path} is the shipped file itself: write the rebuild elsewhere and "
                                             "compare (it is checked against the card's sha256)")
    for out in (path, path.with_suffix(".json")):
        check_writable(out, "--out")  # before the training, not after it
    card = json.loads(CARD.read_text())
    params = params_from_dict(card["params"], source=str(CARD)).replace(seeds=[], progress=progress)
    threads = card_threads(card)
    with torch_threads(threads):
        model = train_final(params, samples, seed=card["seed"], progress=progress)
    save(model, params.train, path, storage=card.get("storage", "float32"))
    built = tensors_sha256(path)
    identical = built == card["tensors_sha256"]
    local = card if identical else {**card, "tensors_sha256": built, "card_tensors_sha256": card["tensors_sha256"]}
    atomic_write_json(path.with_suffix(".json"), {**local, "threads": threads})
    return path, identical


def storage_check(trained: nn.Module, stored: nn.Module, params, samples) -> dict[str, Any]:
    """How weights kept in a smaller type (`save`'s storage) answer against the trained float32 ones, on every sample
    of the release: samples given the same class, and the largest change of a class probability."""
    from . import data

    X = regions.model_inputs(samples, data.load_flow_maps(samples), params.train, geometry(params.model),
                             progress=False)
    with torch.no_grad():
        a, b = (torch.softmax(m.eval()(X), -1) for m in (trained, stored))
    return {"samples": len(X), "same_class": int((a.argmax(-1) == b.argmax(-1)).sum()),
            "max_abs_probability_change": float(f"{(a - b).abs().max().item():.2e}")}


def card_threads(card: dict[str, Any]) -> int:
    """The torch thread count the card's weights were trained with (`threads`; older cards: params' `threads`)."""
    return int(card.get("threads") or card["params"].get("threads") or 1)


def train_final(params, samples=None, seed: int | None = None, progress: bool = True) -> nn.Module:
    """The recipe trained on every sample of the release (no fold, no test data: `epochs` fixed in advance), with the
    loop engine's exact steps (the same batches, augmentation, loss and averaging as a LOSO fold: `loso.engines.fit`)."""
    from . import data
    from .loso.engines import fit

    samples = data.load_samples(params.run.data_dir or None) if samples is None else samples
    X = regions.model_inputs(samples, data.load_flow_maps(samples), params.train, geometry(params.model),
                             progress=progress)
    return fit(X, torch.tensor(samples["label"].to_numpy()), params, seed)


def read_image(path: str | os.PathLike, field: str) -> np.ndarray:
    """A frame as a BGR uint8 image (grey images are expanded), through the project's one image reader
    (`data.read_image`): a missing, damaged or incompletely decodable file raises naming it."""
    from .data import read_image as read

    return read(path, field, flags=cv2.IMREAD_COLOR)


def frames_to_map(onset: np.ndarray, apex: np.ndarray, onset_path: str = "onset", apex_path: str = "apex",
                  method: str = "tvl1") -> tuple[np.ndarray, np.ndarray, bool]:
    """Onset and apex frames (BGR) -> (the 28x28x3 map, the 224x224 BGR apex face, moved), as `raw.build` makes a
    release. `moved` is False when the two face crops show no motion by the rule with which the raw pipeline flags
    a sequence (`raw.apex.spot_apex_detail` on the same grey crops: eq. 1's feature difference <= NO_MOTION)."""
    from .raw import apex as apex_mod
    from .raw import build, flow

    if onset.shape != apex.shape:
        raise HTNetInputError(apex_path, "apex", f"frame size {apex.shape[:2]} differs from the onset's "
                                                 f"{onset.shape[:2]} ({onset_path})")
    found = build.detect_face_box(onset)
    if found is None:
        raise HTNetInputError(onset_path, "onset", "no face found on the onset frame")
    box = build.square_box(found, onset.shape, build.RELEASE_BOX_SCALE, build.RELEASE_BOX_SHIFT)
    on_face, ap_face = build.crop(onset, box), build.crop(apex, box)
    fmap = flow.face_pair_to_map(on_face, ap_face, method)
    size = release.FACE_SHAPE[0]
    face = cv2.resize(ap_face, (size, size), interpolation=cv2.INTER_AREA if ap_face.shape[0] > size else cv2.INTER_CUBIC)
    moved = apex_mod.spot_apex_detail([build.spotting_crop(onset, box), build.spotting_crop(apex, box)]).reliable
    return fmap, face, moved


def inputs(predictor: Predictor, flow_map: np.ndarray, face_bgr: np.ndarray | None, face_path: str = "face"
           ) -> tuple[torch.Tensor, list[dict[str, str]]]:
    """The model's input (1, 3, S, S) for one map and its apex face, prepared as the weights were trained, and the
    warnings about it (a face without landmarks: the regions sit at the authors' fixed fallback ones)."""
    tr = predictor.train
    if flow_map.shape != release.FLOW_SHAPE or flow_map.dtype != np.uint8:
        raise HTNetInputError(None, "flow_map", f"expected a {release.FLOW_SHAPE} uint8 map, got {flow_map.shape} "
                                                f"{flow_map.dtype}")
    warnings: list[dict[str, str]] = []
    if tr.regions == "whole":
        x = flow_map[None]
    else:
        if face_bgr is None:
            raise HTNetInputError(None, "face", f"regions {tr.regions!r} need the apex face for the landmarks (--face)")
        if face_bgr.shape != release.FACE_SHAPE:
            raise HTNetInputError(face_path, "face", f"face shape {face_bgr.shape}, expected {release.FACE_SHAPE}")
        from ._io import torch_threads

        with torch_threads(1):
            pts, found = regions.face_landmarks(face_bgr, tr.regions, regions._mtcnn())
        x = regions.assemble(flow_map[None], regions.crop_centres(pts[None], tr.regions))
        if not found:
            warnings.append({"flag": NO_LANDMARKS_FLAG, "detail": f"MTCNN found no face landmarks in {face_path}: "
                                                                  f"the four regions sit at the authors' fixed "
                                                                  f"fallback landmarks, not on this face"})
    return regions.to_tensor(x, tr, geometry(predictor.model.cfg)), warnings


def probabilities(predictor: Predictor, x: torch.Tensor) -> np.ndarray:
    """Class probabilities; NaN or infinite ones (damaged weights) raise naming the weights, never name a class."""
    with torch.no_grad():
        probs = torch.softmax(predictor.model(x), -1)[0].numpy()
    if not np.isfinite(probs).all():
        raise HTNetInputError(predictor.path, None, f"the model's probabilities are not finite ({probs.tolist()}): "
                                                    f"the weights hold NaN or infinite values, or values that "
                                                    f"overflow (damaged?)")
    return probs


def report(probs: np.ndarray, predictor: Predictor, source: dict[str, str],
           warnings: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """The JSON-ready result: probabilities by class, the predicted class, the weights and the inputs used, what
    checked the weights, and warnings about the input (`flag`, `detail`)."""
    return {"prediction": release.CLASSES[int(np.argmax(probs))],
            "probabilities": {c: round(float(p), 6) for c, p in zip(release.CLASSES, probs)},
            "weights": os.path.basename(predictor.path), "weights_check": predictor.check, "input": source,
            "warnings": warnings or []}


NO_MOTION_FLAG = "no_motion"  # frames between which nothing moved (the raw pipeline's rule; see frames_to_map)
NO_LANDMARKS_FLAG = "no_landmarks"  # a face without MTCNN landmarks: regions at the fixed fallback ones


def predict_frames(onset_path: str | os.PathLike, apex_path: str | os.PathLike, predictor: Predictor | None = None,
                   method: str = "tvl1") -> dict[str, Any]:
    predictor = predictor or load()
    fmap, face, moved = frames_to_map(read_image(onset_path, "onset"), read_image(apex_path, "apex"),
                                      str(onset_path), str(apex_path), method)
    x, warnings = inputs(predictor, fmap, face, str(apex_path))
    warnings += [] if moved else [{"flag": NO_MOTION_FLAG, "detail": "no motion found between the onset and apex "
                                  "faces (the rule with which preprocess-raw flags a sequence): the flow is near zero "
                                  "everywhere, so the class says nothing about an expression"}]
    return report(probabilities(predictor, x), predictor, {"onset": os.path.basename(onset_path),
                                                           "apex": os.path.basename(apex_path), "flow": method},
                  warnings)


def predict_map(map_path: str | os.PathLike, face_path: str | os.PathLike | None = None,
                predictor: Predictor | None = None) -> dict[str, Any]:
    from .data import read_image

    predictor = predictor or load()
    fmap = read_image(map_path, "flow_map", release.FLOW_SHAPE)
    face = read_image(face_path, "face", release.FACE_SHAPE) if face_path else None
    x, warnings = inputs(predictor, fmap, face, str(face_path))
    source = {"flow_map": os.path.basename(map_path)} | ({"face": os.path.basename(face_path)} if face_path else {})
    return report(probabilities(predictor, x), predictor, source, warnings)
