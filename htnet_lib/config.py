"""Typed configuration for every params section: the model (§3), the training protocol (§4.2) and the run.

Params files are flat YAML (papermill merges parameters shallowly, so nested sections would be replaced whole): every
key belongs to exactly one of `ModelConfig`, `TrainConfig` or `RunConfig`. The sections are pydantic models in strict
mode: an unknown key, a wrong type (`true` for a number, text for an integer), a non-finite number (`.nan`, `.inf`) or
an out-of-range value raises `HTNetInputError` naming the params file (or `--set`) and the key, before any work starts.

One exception to strictness (issue 18): a float key takes text that is a decimal number (`Float`). PyYAML follows
YAML 1.1, which reads a float only with a dot and a signed exponent: `5e-5` and `1.0e6` come back as text, while
`5.0e-5` and `1.0e+6` are floats. Such text is read as the number it writes.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, StrictStr, ValidationError, model_validator

from ._io import HTNetInputError

_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")  # what YAML 1.1 may leave as text: 5e-5, 1.0e6


def _decimal_text(value: Any) -> Any:
    """A decimal number written as text (`5e-5`, `1.0e6`: YAML 1.1 reads them as strings) as the float it says; other
    values pass unchanged to strict validation (`true`, `.nan`, 'fast' are still refused)."""
    if isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
        return float(value)
    return value


Positive = Annotated[int, Field(gt=0)]
Float = Annotated[float, BeforeValidator(_decimal_text)]  # a float key: a YAML float, or a decimal number as text
Ints = Annotated[tuple[StrictInt, ...], Field(strict=False)]  # YAML gives lists; items stay strict
Strs = Annotated[tuple[StrictStr, ...], Field(strict=False)]


def input_error(e: ValidationError, source: str | None) -> HTNetInputError:
    """The first pydantic error as one `HTNetInputError` naming the key (and a list item's position)."""
    err = e.errors()[0]
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, HTNetInputError):  # raised by a cross-field check below: it knows its field
        return HTNetInputError(source, cause.field, cause.problem)
    loc = [str(p) for p in err["loc"]]
    key = loc[0] if loc else None
    where = f" (item {loc[1]})" if len(loc) > 1 else ""
    problem = err["msg"][0].lower() + err["msg"][1:]
    if err["type"] == "extra_forbidden":
        problem = "unknown key (known keys: " + ", ".join(sorted(OWNER)) + ")"
    elif isinstance(err.get("input"), str) and err["type"].startswith("int") and _is_number(err["input"]):
        # YAML reads 1e3 as text; an integer key wants digits (float keys take such text, see `Float`)
        number = float(err["input"])
        problem += f" (write {int(number)})" if number.is_integer() else " (an integer)"
    return HTNetInputError(source, key, f"{problem}{where}, got {err.get('input')!r}")


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as e:
            raise input_error(e, None) from None


class ModelConfig(Section):
    """Model hyper-parameters (§3.2-3.3, §4.4). Defaults are the paper's initial settings of §4.4: block 7x7 at the
    bottom level (28 px input, 7 px patches, 3 hierarchies), dim 256, 3 heads, (2, 2, 8) layers. The authors' released
    script builds (2, 2, 10) (`AUTHORS_SCRIPT`).

    `arch` names the network (`htnet`, or the `ststnet` baseline, which uses only image_size, channels, num_classes,
    dropout). `dim` and `heads` are those of the first (finest) hierarchy; both double at each coarser level.
    `block_repeats` counts transformer layers per hierarchy, finest first. `image_size` is the model's input side: the
    assembled 28x28 regions are resized to it when it differs (Table 4's geometry, `regions.model_inputs`).
    """

    arch: Literal["htnet", "ststnet"] = "htnet"
    image_size: Positive = 28
    patch_size: Positive = 7
    dim: Positive = 256
    heads: Positive = 3
    num_hierarchies: Positive = 3
    block_repeats: Ints = (2, 2, 8)
    mlp_mult: Positive = 4
    dropout: Annotated[Float, Field(ge=0.0, lt=1.0)] = 0.0
    num_classes: Positive = 3
    channels: Positive = 3

    @model_validator(mode="after")
    def _geometry(self) -> "ModelConfig":
        if self.arch != "htnet":
            return self
        if self.image_size % self.patch_size:
            raise HTNetInputError(None, "patch_size", f"{self.patch_size} does not divide image_size {self.image_size}")
        if len(self.block_repeats) != self.num_hierarchies or any(r <= 0 for r in self.block_repeats):
            raise HTNetInputError(None, "block_repeats", f"needs {self.num_hierarchies} positive entries (one per "
                                                         f"hierarchy), got {list(self.block_repeats)}")
        if self.heads > self.dim:
            raise HTNetInputError(None, "heads", f"{self.heads} heads exceed dim {self.dim}")
        if self.grid % 2 ** (self.num_hierarchies - 1):
            raise HTNetInputError(None, "num_hierarchies", f"{self.num_hierarchies} hierarchies need a patch grid "
                                                           f"divisible by {2 ** (self.num_hierarchies - 1)}, "
                                                           f"got {self.grid}x{self.grid}")
        return self

    @property
    def grid(self) -> int:
        """Patches per side after patch embedding."""
        return self.image_size // self.patch_size

    @property
    def block_edge(self) -> int:
        """Patches per block side; the authors' code makes it grid / 2**(num_hierarchies-1) at every level."""
        return self.grid // 2 ** (self.num_hierarchies - 1)

    @property
    def block_px(self) -> tuple[int, ...]:
        """Block side in input pixels per level, bottom (finest) first: Table 4's 7/14/28 for the paper's model."""
        return tuple(self.block_edge * self.patch_size * 2 ** i for i in range(self.num_hierarchies))


class TrainConfig(Section):
    """The LOSO training protocol (§4.2). Defaults are the paper's and the authors' code's: Adam, lr 5e-5, batch 256,
    800 epochs, no shuffling, raw 0..255 inputs, the authors' region placement."""

    epochs: Positive = 800
    batch_size: Positive = 256
    lr: Annotated[Float, Field(gt=0)] = 5.0e-5
    seed: StrictInt = 0
    shuffle: bool = False  # the authors' DataLoader does not shuffle
    preprocessing: Literal["official", "scaled"] = "official"  # official: raw 0..255; scaled: x / 127.5 - 1
    regions: Literal["official", "corrected", "whole"] = "official"  # whole: the 28x28 map itself, no regions
    eval_every: Positive = 1
    fixed_epochs: Ints = ()  # honest protocol: report these epochs (the last one always)
    inner_val_subjects: Annotated[int, Field(ge=0)] = 0  # honest protocol: held-out training subjects pick the epoch
    label_shuffle: bool = False  # audit: train on labels permuted among each fold's training samples
    # the honest recipe's options (notebook 07); the defaults are the authors' training
    loss: Literal["ce", "balanced"] = "ce"  # balanced: classes weighted by the inverse of their share in the fold
    label_smoothing: Annotated[Float, Field(ge=0.0, lt=1.0)] = 0.0
    mirror: bool = False  # augmentation: each training sample mirrored left-right with probability 1/2, per epoch
    shift_px: Annotated[int, Field(ge=0, le=4)] = 0  # augmentation: random translation by up to this many pixels
    swa_start: Annotated[int, Field(ge=0)] = 0  # from this epoch on, outputs come from the weights' running average
    folds: Strs = ()  # subjects to hold out; empty means all subjects
    datasets: Strs = ()  # restrict samples to these datasets; empty means all

    @model_validator(mode="after")
    def _epochs(self) -> "TrainConfig":
        for e in self.fixed_epochs:
            if not 1 <= e <= self.epochs:
                raise HTNetInputError(None, "fixed_epochs", f"{e} is outside 1..epochs ({self.epochs})")
        if self.swa_start > self.epochs:
            raise HTNetInputError(None, "swa_start", f"{self.swa_start} is after the last epoch ({self.epochs})")
        return self


class RunConfig(Section):
    """Where and how a run executes. None of it names a run folder; `device`, `amp` and `engine` can change float
    rounding, so a run records the ones it used and refuses to be resumed with others (`loso.runs`)."""

    data_dir: str = ""  # empty: $HTNET_DATA_DIR, then ./data/htnet-release
    runs_dir: str = "runs"
    device: str = "auto"  # auto: cuda when available, else cpu
    engine: Literal["auto", "loop", "batched"] = "auto"
    fold_chunk: Annotated[int, Field(ge=0)] = 0  # folds trained together by the batched engine; 0: from memory
    amp: bool = False  # bf16 autocast
    threads: Annotated[int, Field(ge=0)] = 0  # torch CPU threads; 0 leaves torch's default
    seeds: Ints = ()  # several seeds: the run repeats per seed (empty: TrainConfig.seed only)
    progress: bool = True
    allow_incomplete: bool = False  # train although the release has images that its CSV does not list
    executor: Literal["in-process", "ray"] = "in-process"  # where chunks of folds train (loso.executors)
    ray_address: str = ""  # executor ray: a running cluster ("auto", "ray://host:10001"); empty: a local Ray
    workers: Annotated[int, Field(ge=0)] = 0  # local Ray: tasks at a time (0: one per CPU core)
    worker_threads: Annotated[int, Field(ge=1)] = 1  # torch threads of each Ray task
    gpu_fraction: Annotated[Float, Field(gt=0.0, le=1.0)] = 1.0  # share of a GPU a Ray task asks for on CUDA


SECTIONS: tuple[type[Section], ...] = (ModelConfig, TrainConfig, RunConfig)
OWNER: dict[str, type[Section]] = {k: cls for cls in SECTIONS for k in cls.model_fields}
assert len(OWNER) == sum(len(c.model_fields) for c in SECTIONS), "a params key belongs to one section only"
AUTHORS_SCRIPT = ModelConfig(block_repeats=(2, 2, 10))  # what the authors' released script builds (its comment: 2,2,8)


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
            flat.update(_plain(section))
        flat.update(self.extra)
        return flat

    def replace(self, **changes: Any) -> "Params":
        """A copy with some flat keys changed (validated like a params file)."""
        return params_from_dict({**self.to_flat(), **changes}, source="<replace>", extra_keys=tuple(self.extra))

    def fingerprint(self) -> str:
        """Hash of everything that changes the numbers (model and train sections), naming a run folder."""
        payload = {"model": _plain(self.model), "train": _plain(self.train)}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def _plain(section: Section) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in section.model_dump().items()}


def params_from_dict(flat: Mapping[str, Any], source: str = "<dict>", extra_keys: tuple[str, ...] = ()) -> Params:
    """Validate a flat mapping into `Params`. Keys listed in `extra_keys` pass through untyped (notebook-only keys)."""
    if not isinstance(flat, Mapping):
        raise HTNetInputError(source, None, f"params must be a mapping of key: value, got {type(flat).__name__}")
    per_section: dict[type, dict[str, Any]] = {cls: {} for cls in SECTIONS}
    extra: dict[str, Any] = {}
    for key, value in flat.items():
        if key in extra_keys:
            extra[key] = value
        elif key in OWNER:
            per_section[OWNER[key]][key] = value
        else:
            raise HTNetInputError(source, key, "unknown key (known keys: " + ", ".join(sorted(OWNER)) + ")")
    try:
        built = {cls: cls(**per_section[cls]) for cls in SECTIONS}
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


SESSION_ENV = "HTNET_SET"  # run settings for every params file of a session (`reproduce --set`), as JSON


def session_overrides() -> dict[str, Any]:
    """Run settings (`RunConfig` keys only: how to run, never what) that `python -m htnet_lib reproduce --set` hands
    to every notebook through $HTNET_SET."""
    import os

    text = os.environ.get(SESSION_ENV)
    if not text:
        return {}
    try:
        out = json.loads(text)
    except json.JSONDecodeError as e:
        raise HTNetInputError(f"${SESSION_ENV}", None, f"not JSON: {e}") from None
    if not isinstance(out, dict):
        raise HTNetInputError(f"${SESSION_ENV}", None, "must be a JSON object of run keys")
    for key in out:
        if key not in RunConfig.model_fields:
            raise HTNetInputError("--set", key, "reproduce --set takes run settings only (how to run, not what: "
                                                f"{', '.join(sorted(RunConfig.model_fields))})")
    return out


def load_params(path: str | Path, overrides: Mapping[str, Any] | None = None, extra_keys: tuple[str, ...] = (),
                overrides_source: str = "--set") -> Params:
    """Read a flat YAML params file (see module docstring). `overrides` win over the file; an error they cause is
    blamed on `overrides_source` (the command line's `--set`, or a study file's overrides), not on the file. Run
    settings of the session (`session_overrides`) apply last."""
    raw = read_yaml_mapping(path, "params")
    params = params_from_dict(raw, source=str(path), extra_keys=extra_keys)
    if overrides:
        params = params_from_dict({**raw, **overrides}, source=f"{overrides_source} (over {path})",
                                  extra_keys=extra_keys)
    session = session_overrides()
    if session:
        params = params_from_dict({**params.to_flat(), **session}, source="--set", extra_keys=tuple(params.extra))
    return params


def parse_set(pairs: list[str]) -> dict[str, Any]:
    """`--set KEY=VALUE` pairs as a mapping; values are read as YAML (so `lr=5e-5`, `folds=[s01, s02]`)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise HTNetInputError("--set", pair, "expected KEY=VALUE")
        key, value = pair.split("=", 1)
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise HTNetInputError("--set", key.strip(), f"value {value!r} is not valid YAML: {e}") from None
    return out
