"""Typed configuration for every params section: the model (§3), the training protocol (§4.2) and the run.

Params files are flat YAML (papermill merges parameters shallowly, so nested sections would be replaced whole): every
key belongs to exactly one of the model section, `TrainConfig` or `RunConfig`. The model section is the config of the
network `arch` names (`htnet` by default): each registered network's config class (`htnet_lib.models.registry`) owns
its keys, so a new network's keys are params keys as soon as it is registered. The sections are pydantic models in
strict mode (`htnet_lib.schema`): an unknown key, a wrong type (`true` for a number, text for an integer), a non-finite
number (`.nan`, `.inf`) or an out-of-range value raises `HTNetInputError` naming the params file (or `--set`) and the
key, before any work starts. A float key takes text that is a decimal number (`5e-5`: YAML 1.1 reads it as text).

A params file may set keys of another network than the one it selects (a study's STSTNet point inherits HTNet's `dim`
from its base): they are validated, kept (`Params.other_model_keys`) and do not change the network.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Mapping

import yaml
from pydantic import Field, StrictInt, field_validator, model_validator

from ._io import HTNetInputError
from .models import HTNetConfig, ModelConfig, make_config, model_keys
from .models.registry import default_of, fingerprint_base
from .schema import Float, Ints, Positive, Section, Strs, input_error

__all__ = ["ModelConfig", "HTNetConfig", "TrainConfig", "RunConfig", "Params", "Section", "Float", "Ints", "Positive",
           "Strs", "input_error", "params_from_dict", "load_params", "parse_set", "read_yaml_mapping", "known_keys",
           "AUTHORS_SCRIPT", "SESSION_ENV", "session_overrides"]

PROTOCOL_NAME = re.compile(r"[A-Za-z][\w-]*(@\d+)?")  # a protocol key, then `@` and its argument if it takes one


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
    weight_decay: Annotated[Float, Field(ge=0.0)] = 0.0  # Adam's (coupled L2, torch.optim.Adam's), as MEB trains
    # torch's fused Adam: the same update in one pass per step (about 4x faster a step on a CPU), equal to the default
    # implementation up to float rounding, so it names its own run folders
    fused_adam: bool = False
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


TRAIN_KEYS_ADDED = ("weight_decay", "fused_adam")  # train keys newer than the first runs: in a fingerprint only when set


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
    # protocols the run scores besides the default ones (`loso.protocols.default_names`), e.g. [mean@5, inner-es@10];
    # any registered protocol. They choose among recorded predictions, so they name no run folder.
    protocols: Strs = ()

    @field_validator("protocols")
    @classmethod
    def _protocol_names(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for i, name in enumerate(names):
            if not PROTOCOL_NAME.fullmatch(name):
                raise HTNetInputError(None, "protocols", f"{name!r} (item {i}) is not a protocol name such as "
                                                         f"'last' or 'mean@5'")
        return names


SECTIONS: tuple[type[Section], ...] = (TrainConfig, RunConfig)  # and the model section: the chosen network's config
AUTHORS_SCRIPT = HTNetConfig(block_repeats=(2, 2, 10))  # what the authors' released script builds (its comment: 2,2,8)

def known_keys() -> dict[str, str]:
    """Every params key and its section ('model', 'train', 'run'); model keys are those of every registered network."""
    out = {k: "model" for k in model_keys()}
    for cls, name in ((TrainConfig, "train"), (RunConfig, "run")):
        for k in cls.model_fields:
            if k in out:
                raise AssertionError(f"params key {k!r} belongs to two sections ({out[k]}, {name})")
            out[k] = name
    return out


@dataclass(frozen=True)
class Params:
    """A whole params file: the network's config (`model`), training and run sections, plus free-form notebook-only
    keys in `extra` and keys of networks other than the chosen one in `other_model_keys` (see the module docstring)."""

    model: ModelConfig = field(default_factory=HTNetConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    run: RunConfig = field(default_factory=RunConfig)
    extra: Mapping[str, Any] = field(default_factory=dict)
    other_model_keys: Mapping[str, Any] = field(default_factory=dict)

    def to_flat(self) -> dict[str, Any]:
        flat: dict[str, Any] = {k: _plain_value(v) for k, v in self.other_model_keys.items()}
        for section in (self.model, self.train, self.run):
            flat.update(_plain(section))
        flat.update(self.extra)
        return flat

    def replace(self, **changes: Any) -> "Params":
        """A copy with some flat keys changed (validated like a params file)."""
        return params_from_dict({**self.to_flat(), **changes}, source="<replace>", extra_keys=tuple(self.extra))

    def fingerprint(self) -> str:
        """Hash of everything that changes the numbers (model and train sections), naming a run folder. The model
        part is `models.registry.fingerprint_base()` filled in from the params (the network's config, else the other
        networks' keys they set, else the defaults), plus any other key of the network's config set off its default."""
        payload = {"model": self._model_payload(), "train": self._train_payload()}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]

    def _train_payload(self) -> dict[str, Any]:
        """The train section; keys added after runs existed (`TRAIN_KEYS_ADDED`) only when set off their default, so
        the folders of earlier runs keep their names."""
        out = _plain(self.train)
        for key in TRAIN_KEYS_ADDED:
            if out[key] == _plain_value(TrainConfig.model_fields[key].default):
                del out[key]
        return out

    def _model_payload(self) -> dict[str, Any]:
        out = {k: _plain_value(v) for k, v in fingerprint_base().items()}
        out.update({k: _plain_value(v) for k, v in self.other_model_keys.items() if k in out})
        base = set(out)
        for key, value in _plain(self.model).items():
            if key in base or value != _plain_value(default_of(key, type(self.model))):
                out[key] = value
        return out


def _plain_value(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def _plain(section: Section) -> dict[str, Any]:
    return {k: _plain_value(v) for k, v in section.model_dump().items()}


def params_from_dict(flat: Mapping[str, Any], source: str = "<dict>", extra_keys: tuple[str, ...] = ()) -> Params:
    """Validate a flat mapping into `Params`. Keys listed in `extra_keys` pass through untyped (notebook-only keys)."""
    if not isinstance(flat, Mapping):
        raise HTNetInputError(source, None, f"params must be a mapping of key: value, got {type(flat).__name__}")
    owner = known_keys()
    per_section: dict[str, dict[str, Any]] = {"model": {}, "train": {}, "run": {}}
    extra: dict[str, Any] = {}
    for key, value in flat.items():
        if key in extra_keys:
            extra[key] = value
        elif key in owner:
            per_section[owner[key]][key] = value
        else:
            raise HTNetInputError(source, key, "unknown key (known keys: " + ", ".join(sorted(owner)) + ")")
    try:
        model, others = make_config(per_section["model"])
        train, run = TrainConfig(**per_section["train"]), RunConfig(**per_section["run"])
    except HTNetInputError as e:
        raise HTNetInputError(source, e.field, e.problem) from None
    return Params(model=model, train=train, run=run, extra=extra, other_model_keys=others)


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
    to every notebook through $HTNET_SET, and `sweep --set` to the runs it trains."""
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
            raise HTNetInputError("--set", key, "reproduce and sweep --set take run settings only (how to run, not "
                                                f"what: {', '.join(sorted(RunConfig.model_fields))})")
    return out


def load_params(path: str | Path, overrides: Mapping[str, Any] | None = None, extra_keys: tuple[str, ...] = (),
                overrides_source: str = "--set") -> Params:
    """Read a flat YAML params file (see module docstring). `overrides` win over the file; an error they cause is
    blamed on `overrides_source` (the command line's `--set`, or a study file's overrides), not on the file. Run
    settings of the session (`session_overrides`) apply last. An empty file is refused (every key at its default is
    the paper's model trained for 800 epochs: hours, never what an empty file meant), and the protocols the params
    name are checked against the registry and the recorded epochs here, before any training."""
    raw = read_yaml_mapping(path, "params")
    if not raw:
        raise HTNetInputError(path, None, "empty params file: with every key at its default it would train the "
                                          "paper's model for 800 epochs; write the keys you mean (e.g. epochs, dim)")
    source = str(path)
    params = params_from_dict(raw, source=source, extra_keys=extra_keys)
    if overrides:
        source = f"{overrides_source} (over {path})"
        params = params_from_dict({**raw, **overrides}, source=source, extra_keys=extra_keys)
    session = session_overrides()
    if session:
        params = params_from_dict({**params.to_flat(), **session}, source="--set", extra_keys=tuple(params.extra))
    for check in PARAMS_CHECKS:
        try:
            check(params)
        except HTNetInputError as e:
            raise HTNetInputError(source, e.field, e.problem) from None
    return params


# Checks of loaded params by what this module cannot see without importing upward: the protocol registry
# (`loso.protocols` adds its own when imported, as every command that trains does). Each raises `HTNetInputError`.
PARAMS_CHECKS: list[Callable[[Params], Any]] = []


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
