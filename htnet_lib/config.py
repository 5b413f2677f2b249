"""Typed configuration for every params section: the model (§3), the training protocol (§4.2) and the run.

Params files are flat YAML (papermill merges parameters shallowly, so nested sections would be replaced whole):
every key belongs to exactly one of `ModelConfig`, `TrainConfig` or `RunConfig`. An unknown key, a wrong type or
an out-of-range value raises `HTNetInputError` naming the params file and the key, before any work starts.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml

from ._io import HTNetInputError


@dataclass(frozen=True)
class ModelConfig:
    """HTNet hyper-parameters (§3.2-3.3, §4.2). Defaults are the authors' released (2,2,10) configuration.

    `dim` and `heads` are those of the first (finest) hierarchy; both double at each coarser level.
    `block_repeats` counts transformer layers per hierarchy, finest first.
    """

    image_size: int = 28
    patch_size: int = 7
    dim: int = 256
    heads: int = 3
    num_hierarchies: int = 3
    block_repeats: tuple[int, ...] = (2, 2, 10)
    mlp_mult: int = 4
    dropout: float = 0.0
    num_classes: int = 3
    channels: int = 3

    def __post_init__(self) -> None:
        for name in ("image_size", "patch_size", "dim", "heads", "num_hierarchies", "mlp_mult", "num_classes", "channels"):
            if getattr(self, name) <= 0:
                raise HTNetInputError(None, name, f"must be positive, got {getattr(self, name)}")
        if self.image_size % self.patch_size:
            raise HTNetInputError(None, "patch_size", f"{self.patch_size} does not divide image_size {self.image_size}")
        if len(self.block_repeats) != self.num_hierarchies or any(r <= 0 for r in self.block_repeats):
            raise HTNetInputError(None, "block_repeats",
                                  f"needs {self.num_hierarchies} positive entries (one per hierarchy), got {self.block_repeats}")
        if self.heads > self.dim:
            raise HTNetInputError(None, "heads", f"{self.heads} heads exceed dim {self.dim}")
        fmap = self.image_size // self.patch_size
        blocks = 2 ** (self.num_hierarchies - 1)
        if fmap % blocks:
            raise HTNetInputError(None, "num_hierarchies",
                                  f"{self.num_hierarchies} hierarchies need a patch grid divisible by {blocks}, got {fmap}x{fmap}")
        if not 0.0 <= self.dropout < 1.0:
            raise HTNetInputError(None, "dropout", f"must be in [0, 1), got {self.dropout}")

    @property
    def grid(self) -> int:
        """Patches per side after patch embedding."""
        return self.image_size // self.patch_size

    @property
    def block_edge(self) -> int:
        """Patches per block side; the authors' code makes it grid / 2**(num_hierarchies-1) at every level."""
        return self.grid // 2 ** (self.num_hierarchies - 1)


@dataclass(frozen=True)
class TrainConfig:
    """The LOSO training protocol (§4.2). Defaults are the paper's: Adam, lr 5e-5, batch 256, 800 epochs."""

    epochs: int = 800
    batch_size: int = 256
    lr: float = 5.0e-5
    seed: int = 0
    shuffle: bool = False  # the authors' DataLoader does not shuffle
    preprocessing: Literal["official", "scaled"] = "official"  # official: raw 0..255; scaled: x / 127.5 - 1
    regions: Literal["official", "corrected"] = "official"
    eval_every: int = 1
    fixed_epochs: tuple[int, ...] = ()  # honest protocol: report these epochs (empty: the last one)
    inner_val_subjects: int = 0  # honest protocol: held-out training subjects that choose the epoch (0: off)
    label_shuffle: bool = False  # audit: train on labels permuted among each fold's training samples
    folds: tuple[str, ...] = ()  # subjects to hold out; empty means all subjects
    datasets: tuple[str, ...] = ()  # restrict samples to these datasets; empty means all

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_every"):
            if getattr(self, name) <= 0:
                raise HTNetInputError(None, name, f"must be positive, got {getattr(self, name)}")
        if self.lr <= 0:
            raise HTNetInputError(None, "lr", f"must be positive, got {self.lr}")
        if self.inner_val_subjects < 0:
            raise HTNetInputError(None, "inner_val_subjects", f"must be >= 0, got {self.inner_val_subjects}")
        for e in self.fixed_epochs:
            if not 1 <= e <= self.epochs:
                raise HTNetInputError(None, "fixed_epochs", f"{e} is outside 1..epochs ({self.epochs})")
        if self.preprocessing not in ("official", "scaled"):
            raise HTNetInputError(None, "preprocessing", f"must be 'official' or 'scaled', got {self.preprocessing!r}")
        if self.regions not in ("official", "corrected"):
            raise HTNetInputError(None, "regions", f"must be 'official' or 'corrected', got {self.regions!r}")


@dataclass(frozen=True)
class RunConfig:
    """Where and how a run executes; none of it changes the numbers except `device` and `amp` (float rounding)."""

    data_dir: str = ""  # empty: $HTNET_DATA_DIR, then ./data/htnet-release
    runs_dir: str = "runs"
    device: str = "auto"  # auto: cuda when available, else cpu
    engine: Literal["auto", "loop", "batched"] = "auto"
    fold_chunk: int = 0  # folds trained together by the batched engine; 0: choose from device memory
    amp: bool = False  # bf16 autocast on CUDA
    threads: int = 0  # torch CPU threads; 0 leaves torch's default
    seeds: tuple[int, ...] = ()  # several seeds: the run repeats per seed (empty: TrainConfig.seed only)
    progress: bool = True

    def __post_init__(self) -> None:
        if self.engine not in ("auto", "loop", "batched"):
            raise HTNetInputError(None, "engine", f"must be auto, loop or batched, got {self.engine!r}")
        if self.fold_chunk < 0:
            raise HTNetInputError(None, "fold_chunk", f"must be >= 0, got {self.fold_chunk}")


SECTIONS: tuple[type, ...] = (ModelConfig, TrainConfig, RunConfig)


@dataclass(frozen=True)
class Params:
    """A whole params file: model, training and run sections, plus free-form notebook-only keys in `extra`."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    run: RunConfig = field(default_factory=RunConfig)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_flat(self) -> dict[str, Any]:
        flat: dict[str, Any] = {}
        for section in (self.model, self.train, self.run):
            for f in fields(section):
                v = getattr(section, f.name)
                flat[f.name] = list(v) if isinstance(v, tuple) else v
        flat.update(self.extra)
        return flat

    def replace(self, **changes: Any) -> "Params":
        """A copy with some flat keys changed (validated like a params file)."""
        flat = self.to_flat()
        flat.update(changes)
        return params_from_dict(flat, source="<replace>", extra_keys=tuple(self.extra))

    def fingerprint(self) -> str:
        """Hash of everything that changes the numbers (model and train sections), naming a run folder."""
        payload = {"model": _plain(self.model), "train": _plain(self.train)}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def _plain(section: Any) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(section).items()}


_OWNER = {f.name: cls for cls in SECTIONS for f in fields(cls)}


def _coerce(value: Any, tp: Any, source: str, key: str) -> Any:
    """Check `value` against a dataclass field type; lists become tuples. Raises naming the key."""
    origin = typing.get_origin(tp)
    if tp is bool:
        if not isinstance(value, bool):
            raise HTNetInputError(source, key, f"expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise HTNetInputError(source, key, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            hint = " (YAML reads 5e-5 as text: write 5.0e-5)" if isinstance(value, str) else ""
            raise HTNetInputError(source, key, f"expected a number, got {value!r}{hint}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise HTNetInputError(source, key, f"expected text, got {value!r}")
        return value
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise HTNetInputError(source, key, f"must be one of {list(typing.get_args(tp))}, got {value!r}")
        return value
    if origin is tuple:
        (item_tp, _ellipsis) = typing.get_args(tp)
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise HTNetInputError(source, key, f"expected a list, got {value!r}")
        return tuple(_coerce(v, item_tp, source, key) for v in value)
    if origin in (typing.Union, types.UnionType):
        raise TypeError(f"unsupported field type {tp}")  # not used; keeps the checker honest
    raise TypeError(f"unsupported field type {tp}")


def params_from_dict(flat: Mapping[str, Any], source: str = "<dict>", extra_keys: tuple[str, ...] = ()) -> Params:
    """Validate a flat mapping into `Params`. Keys listed in `extra_keys` pass through untyped (notebook-only keys)."""
    if not isinstance(flat, Mapping):
        raise HTNetInputError(source, None, f"params must be a mapping of key: value, got {type(flat).__name__}")
    per_section: dict[type, dict[str, Any]] = {cls: {} for cls in SECTIONS}
    extra: dict[str, Any] = {}
    for key, value in flat.items():
        if key in extra_keys:
            extra[key] = value
            continue
        cls = _OWNER.get(key)
        if cls is None:
            known = ", ".join(sorted(_OWNER))
            raise HTNetInputError(source, key, f"unknown key (known keys: {known})")
        hints = typing.get_type_hints(cls)
        per_section[cls][key] = _coerce(value, hints[key], source, key)
    built = {}
    for cls in SECTIONS:
        try:
            built[cls] = cls(**per_section[cls])
        except HTNetInputError as e:
            raise HTNetInputError(source, e.field, e.problem) from None
    return Params(model=built[ModelConfig], train=built[TrainConfig], run=built[RunConfig], extra=extra)


def read_yaml_mapping(path: str | Path, what: str, known: set[str] | None = None) -> dict[str, Any]:
    """A YAML file holding a mapping; errors name the file (and an unknown key when `known` is given)."""
    path = Path(path)
    if not path.is_file():
        raise HTNetInputError(path, None, f"{what} file not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise HTNetInputError(path, None, f"not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise HTNetInputError(path, None, f"{what} file must be a mapping of key: value")
    for key in raw if known is not None else ():
        if key not in known:
            raise HTNetInputError(path, key, f"unknown key (known: {', '.join(sorted(known))})")
    return raw


def load_base(path: str | Path, spec: Mapping[str, Any]) -> Params:
    """The params a sweep or audit file starts from: its `base` params file (beside it) with its `overrides`."""
    if "base" not in spec:
        raise HTNetInputError(path, "base", "missing: the params file (beside this one) to start from")
    return load_params(Path(path).parent / spec["base"], spec.get("overrides") or None)


def load_params(path: str | Path, overrides: Mapping[str, Any] | None = None,
                extra_keys: tuple[str, ...] = ()) -> Params:
    """Read a flat YAML params file (see module docstring); `overrides` win over the file."""
    raw = read_yaml_mapping(path, "params")
    if overrides:
        raw.update(overrides)
    return params_from_dict(raw, source=str(path), extra_keys=extra_keys)
