"""Weights files of any registered network: safetensors (nothing is unpickled), the network's config as JSON in the
metadata (``htnet_config``, read back through the registry), optional extra metadata (str -> str)."""
from __future__ import annotations

import hashlib
import json
import os
from typing import Mapping

import torch
from torch import nn

from .._io import HTNetInputError, atomic_path
from .registry import ModelConfig, build_on_meta, make_config

__all__ = ["WEIGHTS_FORMAT", "save_weights", "load_weights", "read_weights_metadata", "tensors_sha256"]

WEIGHTS_FORMAT = "htnet_lib.HTNet/2"  # 2: one `stages.i.{hierarchy,aggregation}` unit per level (1: separate lists)

def _config_to_json(cfg: ModelConfig) -> str:
    return json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in cfg.model_dump().items()}, sort_keys=True)


def _config_from_json(text: str, path: str) -> ModelConfig:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise HTNetInputError(path, "htnet_config", f"metadata is not valid JSON: {e}") from None
    if not isinstance(raw, dict):
        raise HTNetInputError(path, "htnet_config", "metadata must be a JSON object of model keys")
    try:
        return make_config(raw)[0]  # validates every key and type; keys of other networks are not the network's
    except HTNetInputError as e:
        raise HTNetInputError(path, f"htnet_config.{e.field}", e.problem) from None


def save_weights(model: nn.Module, path: str | os.PathLike, metadata: Mapping[str, str] | None = None,
                 dtype: torch.dtype | None = None) -> None:
    """Write a network built by `registry.build` to a ``.safetensors`` file (atomically), its config as JSON in the
    metadata under ``htnet_config``. Extra ``metadata`` (str -> str) is stored alongside. ``dtype`` (e.g.
    ``torch.float16``) stores the floating tensors in that type, half the bytes; `load_weights` reads them back into
    float32."""
    from safetensors.torch import save_file
    cfg = getattr(model, "cfg", None)
    if not isinstance(cfg, ModelConfig):
        raise TypeError(f"save_weights needs a network built by htnet_lib.models.build, got {type(model).__name__}")
    meta = {"format": WEIGHTS_FORMAT, "htnet_config": _config_to_json(cfg)}
    for k, v in (metadata or {}).items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise HTNetInputError(path, str(k), "safetensors metadata must map str to str")
        meta[k] = v
    tensors = {k: v.detach().cpu().to(dtype if dtype and v.is_floating_point() else v.dtype).contiguous()
               for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def read_weights_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata of a weights file (no tensors read); raises naming the file when it is not safetensors."""
    from safetensors import SafetensorError, safe_open
    path = str(path)
    if not os.path.isfile(path):
        raise HTNetInputError(path, None, "weights file not found")
    try:
        with safe_open(path, framework="pt", device="cpu") as f:
            return dict(f.metadata() or {})
    except SafetensorError as e:
        raise HTNetInputError(path, None, f"not a readable safetensors file: {e}") from None


def load_weights(path: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """Build the model a file written by `save_weights` describes and load its weights (safetensors only: nothing is
    unpickled).

    Raises `HTNetInputError` naming the file and the key for a missing file, a file of another format version or
    without an HTNet config, a missing or unexpected tensor, or a tensor whose shape does not match the stored config.
    """
    from safetensors import SafetensorError, safe_open
    path = str(path)
    meta = read_weights_metadata(path)
    if "htnet_config" not in meta:
        raise HTNetInputError(path, "htnet_config", "no HTNet config in the safetensors metadata "
                                                    "(not written by htnet_lib.models.save_weights?)")
    if meta.get("format") != WEIGHTS_FORMAT:
        raise HTNetInputError(path, "format", f"weights format {meta.get('format')!r}, this version reads "
                                              f"{WEIGHTS_FORMAT!r} (re-save the model, or convert the authors' "
                                              f"weights with convert_nest_state_dict)")
    cfg = _config_from_json(meta["htnet_config"], path)
    try:
        with safe_open(path, framework="pt", device="cpu") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except SafetensorError as e:
        raise HTNetInputError(path, None, f"not a readable safetensors file: {e}") from None
    expected = {k: v.shape for k, v in build_on_meta(cfg).state_dict().items()}
    for k in expected:
        if k not in tensors:
            raise HTNetInputError(path, k, "tensor missing from the weights file")
    for k, t in tensors.items():
        if k not in expected:
            raise HTNetInputError(path, k, f"unexpected tensor (not part of {cfg.arch} for the stored config)")
        if tuple(t.shape) != tuple(expected[k]):
            raise HTNetInputError(path, k, f"shape {tuple(t.shape)} does not match {tuple(expected[k])} "
                                           f"expected by the stored config")
    # tensors stored in a smaller float type (save_weights' dtype) are computed with in float32, as trained
    tensors = {k: t.float() if t.is_floating_point() else t for k, t in tensors.items()}
    model = build_on_meta(cfg)
    model.load_state_dict(tensors, strict=True, assign=True)
    return model.to(device)


def tensors_sha256(path: str | os.PathLike) -> str:
    """sha256 over a weights file's tensors (names, dtypes, shapes, bytes, in name order). Not of the file: safetensors
    writes its metadata in an arbitrary order, so equal weights can be different files."""
    from safetensors.torch import load_file

    digest = hashlib.sha256()
    for name, t in sorted(load_file(str(path)).items()):
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        digest.update(t.contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
