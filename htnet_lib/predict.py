"""Predict the micro-expression class of new data with trained weights (the recipe shipped with the package, or any
file written by `model.save_weights`).

From frames: the onset and apex frames of one micro-expression (any size, the same for both) -> the face box found by
MTCNN on the onset frame, framed as the release's crops are -> the same crop of both frames -> optical flow onset to
apex and optical strain (eq. 3) -> the 28x28 (strain, v, u) map, exactly as `htnet_lib.raw` builds a release -> the
apex face (224x224) -> MTCNN landmarks and the four facial regions as the weights' config asks -> the model -> class
probabilities. From a prepared map: a release-style 28x28 map and its 224x224 apex face.

`python -m htnet_lib predict --onset A --apex B` (or `--flow-map M --face F`) prints the probabilities and writes
them as JSON with `--json`. Every bad input (an unreadable file, frames of different sizes, no face found) is one
`HTNetInputError` naming the file and the field; the command then exits with status 2.
"""
from __future__ import annotations

import hashlib
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
from ._io import HTNetInputError, atomic_write_json, cache_dir
from .config import TrainConfig
from .model import load_weights, read_weights_metadata

CARD = Path(__file__).with_name("weights") / "htnet-honest.json"  # the shipped recipe's card (the weights are built)
WEIGHTS_ENV = "HTNET_WEIGHTS"


def default_weights() -> Path:
    """Where the shipped recipe's weights are built and looked for: $HTNET_WEIGHTS, or the user cache."""
    return Path(os.environ.get(WEIGHTS_ENV) or cache_dir() / "weights" / "htnet-honest.safetensors")


@dataclass
class Predictor:
    """A loaded model with the training settings its inputs need (regions, preprocessing, input side)."""

    model: nn.Module
    train: TrainConfig
    path: str
    info: dict[str, Any] = field(default_factory=dict)  # the weights' JSON card, when there is one


def load(weights: str | os.PathLike | None = None) -> Predictor:
    """Load weights (default: the shipped recipe, built by `build_shipped`) safely (safetensors) with the training
    settings stored beside them (`htnet_train_config` in the metadata: how inputs must be prepared)."""
    path = Path(weights) if weights else default_weights()
    if not weights and not path.is_file():
        raise HTNetInputError(path, None, "the shipped recipe's weights are not built yet: `python -m htnet_lib "
                                          "weights` trains them from the release in seconds and checks them against "
                                          f"the tensors' sha256 in {CARD.name} (or set ${WEIGHTS_ENV} to a weights "
                                          "file)")
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
    card = path.with_suffix(".json")
    info = json.loads(card.read_text()) if card.is_file() else {}
    return Predictor(load_weights(path).eval(), train, str(path), info)


def shipped() -> Predictor:
    """The shipped recipe, built first (`build_shipped`, a few seconds; it needs the release) when it is missing."""
    if not default_weights().is_file():
        path, identical = build_shipped(progress=False)
        print(f"built {path}: tensors {'identical to' if identical else 'NOT identical to'} the card's")
    return load()


def save(model: nn.Module, train: TrainConfig, path: str | os.PathLike, card: dict[str, Any] | None = None) -> Path:
    """Write weights for `load`: safetensors with the model config and the training settings, and (given `card`) a
    JSON card beside them (config, data fingerprint, git revision, scores...)."""
    from .model import save_weights

    path = Path(path)
    save_weights(model, path, metadata={"htnet_train_config": json.dumps(train.model_dump(), sort_keys=True)})
    if card is not None:
        atomic_write_json(path.with_suffix(".json"), card)
    return path


def tensors_sha256(path: str | os.PathLike) -> str:
    """sha256 over a weights file's tensors (names, dtypes, shapes, bytes, in name order). Not of the file: safetensors
    writes its metadata in an arbitrary order, so equal weights can be different files."""
    from safetensors.torch import load_file

    digest = hashlib.sha256()
    for name, t in sorted(load_file(str(path)).items()):
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        digest.update(t.contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def build_shipped(dest: str | os.PathLike | None = None, samples=None, progress: bool = True) -> tuple[Path, bool]:
    """Train the shipped recipe from its card (params, seed; all samples, fixed epochs: a few seconds on a CPU) and
    write it with the card beside it. Returns (path, identical): whether the tensors match the card's sha256. They do
    with the hardware and torch the card names (the training is deterministic there); elsewhere rounding may differ."""
    from .config import params_from_dict

    card = json.loads(CARD.read_text())
    params = params_from_dict(card["params"], source=str(CARD)).replace(seeds=[], progress=progress)
    model = train_final(params, samples, seed=card["seed"], progress=progress)
    path = Path(dest) if dest else default_weights()
    path.parent.mkdir(parents=True, exist_ok=True)
    save(model, params.train, path)
    identical = tensors_sha256(path) == card["tensors_sha256"]
    atomic_write_json(path.with_suffix(".json"), card)
    return path, identical


def train_final(params, samples=None, seed: int | None = None, progress: bool = True) -> nn.Module:
    """The recipe trained on every sample of the release (no fold, no test data: `epochs` fixed in advance), with the
    loop engine's exact steps (the same batches, augmentation, loss and averaging as a LOSO fold)."""
    import numpy as np

    from . import data
    from .loso.engines import train_loop
    from .loso.folds import FoldPlan, fold_seed

    samples = data.load_samples(params.run.data_dir or None) if samples is None else samples
    X = regions.model_inputs(samples, data.load_flow_maps(samples), params.train, params.model.image_size,
                             progress=progress)
    y = torch.tensor(samples["label"].to_numpy())
    seed = params.train.seed if seed is None else seed
    everything = np.arange(len(samples))
    plan = FoldPlan("all", "all", everything, np.zeros(0, np.int64), everything[:1], fold_seed(seed, "all"))
    holder: dict[str, nn.Module] = {}
    train_loop(X, y, [plan], params, keep_model=holder)
    return holder["model"].eval()


def read_image(path: str | os.PathLike, field: str) -> np.ndarray:
    """A BGR uint8 image (grey images are expanded); an unreadable or missing file raises naming it."""
    if not os.path.isfile(path):  # before OpenCV, which would print its own warning
        raise HTNetInputError(path, field, "image missing")
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise HTNetInputError(path, field, "image unreadable (not an image, or corrupt)")
    return img


def frames_to_map(onset: np.ndarray, apex: np.ndarray, onset_path: str = "onset", apex_path: str = "apex",
                  method: str = "tvl1") -> tuple[np.ndarray, np.ndarray]:
    """Onset and apex frames (BGR) -> (the 28x28x3 map, the 224x224 BGR apex face), as `raw.build` makes a release."""
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
    return fmap, face


def inputs(predictor: Predictor, flow_map: np.ndarray, face_bgr: np.ndarray | None, face_path: str = "face"
           ) -> torch.Tensor:
    """The model's input (1, 3, S, S) for one map and its apex face, prepared as the weights were trained."""
    tr = predictor.train
    if flow_map.shape != release.FLOW_SHAPE or flow_map.dtype != np.uint8:
        raise HTNetInputError(None, "flow_map", f"expected a {release.FLOW_SHAPE} uint8 map, got {flow_map.shape} "
                                                f"{flow_map.dtype}")
    if tr.regions == "whole":
        x = flow_map[None]
    else:
        if face_bgr is None:
            raise HTNetInputError(None, "face", f"regions {tr.regions!r} need the apex face for the landmarks (--face)")
        if face_bgr.shape != release.FACE_SHAPE:
            raise HTNetInputError(face_path, "face", f"face shape {face_bgr.shape}, expected {release.FACE_SHAPE}")
        from ._io import torch_threads

        with torch_threads(1):
            pts, _ = regions.face_landmarks(face_bgr, tr.regions, regions._mtcnn())
        x = regions.assemble(flow_map[None], regions.crop_centres(pts[None], tr.regions))
    return regions.to_tensor(x, tr, predictor.model.cfg.image_size)


def probabilities(predictor: Predictor, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return torch.softmax(predictor.model(x), -1)[0].numpy()


def report(probs: np.ndarray, predictor: Predictor, source: dict[str, str]) -> dict[str, Any]:
    """The JSON-ready result: probabilities by class, the predicted class, the weights and the inputs used."""
    return {"prediction": release.CLASSES[int(np.argmax(probs))],
            "probabilities": {c: round(float(p), 6) for c, p in zip(release.CLASSES, probs)},
            "weights": os.path.basename(predictor.path), "input": source}


def predict_frames(onset_path: str | os.PathLike, apex_path: str | os.PathLike, predictor: Predictor | None = None,
                   method: str = "tvl1") -> dict[str, Any]:
    predictor = predictor or load()
    fmap, face = frames_to_map(read_image(onset_path, "onset"), read_image(apex_path, "apex"), str(onset_path),
                               str(apex_path), method)
    x = inputs(predictor, fmap, face)
    return report(probabilities(predictor, x), predictor, {"onset": os.path.basename(onset_path),
                                                           "apex": os.path.basename(apex_path), "flow": method})


def predict_map(map_path: str | os.PathLike, face_path: str | os.PathLike | None = None,
                predictor: Predictor | None = None) -> dict[str, Any]:
    from .data import _read_image

    predictor = predictor or load()
    fmap = _read_image(str(map_path), release.FLOW_SHAPE, "flow_map")
    face = _read_image(str(face_path), release.FACE_SHAPE, "face") if face_path else None
    x = inputs(predictor, fmap, face, str(face_path))
    source = {"flow_map": os.path.basename(map_path)} | ({"face": os.path.basename(face_path)} if face_path else {})
    return report(probabilities(predictor, x), predictor, source)
