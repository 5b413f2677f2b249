"""One loader for every study file (sweeps, seeds, the protocol audit, the benchmark): base + overrides + points.

A study file is YAML beside the params file it starts from:

```yaml
base: loso.yaml              # the params file to start from (beside this file)
overrides: {epochs: 12}      # applied to every point
seeds: [0, 1, 2]             # every point is trained once per seed (default: the base's seed)
sweeps:                      # optional; any name, any params key
  lr:                        # a list of points ...
    - {lr: 1.0e-4}
    - {lr: 2.0e-4, label: "lr x2"}
  block_size:                # ... or a mapping with points and what the sweep reproduces
    paper: table4            # optional: the paper's table or figure (figures.ablations.PAPER_SWEEPS)
    title: "Table 4: block size"
    points:
      - {label: "5x5", patch_size: 5, image_size: 20}
  baselines:                 # a point may name the published number it reproduces (`htnet_lib.published`)
    - {label: "STSTNet", arch: ststnet, reproduces: ststnet-port}
# plus the keys a study type declares as its options (e.g. the audit's guess_epochs)
```

Every point is an ordinary params set, validated with the rest before anything trains; an error names the file and the
sweep, point and key. The keys a sweep's points set (for a `from` point: the keys where it differs from the base) are
its `varied` keys: its table shows their values.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from pydantic import BaseModel, ValidationError

from .. import published
from .._io import HTNetInputError
from ..config import Params, RunConfig, input_error, load_params, params_from_dict, read_yaml_mapping

STUDY_KEYS = {"base", "overrides", "seeds", "sweeps"}
SWEEP_KEYS = {"points", "paper", "title"}
POINT_META = ("label", "from", "reproduces")  # a point's keys that are not params keys
RUN_KEYS = set(RunConfig.model_fields)  # how a run executes: never what a point changes


@dataclass(frozen=True)
class Point:
    """One point of a sweep: its label, the keys it sets, and its full params (base + overrides + point)."""

    sweep: str
    label: str
    changes: Mapping[str, Any]
    params: Params
    reproduces: str = ""  # the key of the published number it reproduces (`published.by_key`), if any


@dataclass(frozen=True)
class Sweep:
    name: str
    points: tuple[Point, ...]
    paper: str = ""  # the paper's table or figure it reproduces, if any
    title: str = ""

    @property
    def varied(self) -> list[str]:
        """The params keys the points set, in first-seen order."""
        return list(dict.fromkeys(k for p in self.points for k in p.changes))


@dataclass(frozen=True)
class Study:
    path: Path
    base: Params
    seeds: tuple[int, ...]
    sweeps: dict[str, Sweep] = field(default_factory=dict)
    options: Any = None  # the study type's validated options (a pydantic model), or None

    def seeded(self, params: Params) -> list[Params]:
        """`params` once per seed of the study."""
        return [params.replace(seed=s) for s in self.seeds]

    def all_params(self) -> list[Params]:
        """Every run of the study: each point (or the base, without sweeps) once per seed."""
        points = [p.params for s in self.sweeps.values() for p in s.points] or [self.base]
        return [q for p in points for q in self.seeded(p)]


def load_study(path: str | os.PathLike, options: type[BaseModel] | None = None) -> Study:
    """Read and validate a study file (module docstring); `options` is the pydantic model of its extra keys."""
    path = Path(path)
    extra = set(options.model_fields) if options is not None else set()
    spec = read_yaml_mapping(path, "study", STUDY_KEYS | extra)
    if "base" not in spec:
        raise HTNetInputError(path, "base", "missing: the params file (beside this one) to start from")
    overrides = spec.get("overrides") or {}
    if not isinstance(overrides, Mapping):
        raise HTNetInputError(path, "overrides", "expected a mapping of params keys")
    base = load_params(path.parent / str(spec["base"]), overrides, overrides_source=f"{path} overrides")
    seeds = spec.get("seeds", [base.train.seed])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise HTNetInputError(path, "seeds", f"expected a non-empty list of integers, got {seeds!r}")
    sweeps = {}
    raw_sweeps = spec.get("sweeps") or {}
    if not isinstance(raw_sweeps, Mapping):
        raise HTNetInputError(path, "sweeps", "expected a mapping of sweep name: points")
    for name, body in raw_sweeps.items():
        sweeps[str(name)] = _sweep(path, str(name), body, base)
    opts = None
    if options is not None:
        try:
            opts = options(**{k: spec[k] for k in extra if k in spec})
        except ValidationError as e:
            raise input_error(e, str(path)) from None
        except HTNetInputError as e:
            raise HTNetInputError(path, e.field, e.problem) from None
    return Study(path, base, tuple(seeds), sweeps, opts)


def _sweep(path: Path, name: str, body: Any, base: Params) -> Sweep:
    where = f"sweeps.{name}"
    paper = title = ""
    if isinstance(body, Mapping):
        unknown = set(body) - SWEEP_KEYS
        if unknown:
            raise HTNetInputError(path, f"{where}.{sorted(unknown)[0]}", f"unknown key (known: {', '.join(sorted(SWEEP_KEYS))})")
        paper, title = str(body.get("paper", "")), str(body.get("title", ""))
        body = body.get("points")
    if not isinstance(body, list) or not body:
        raise HTNetInputError(path, where, "expected a non-empty list of points")
    points = []
    for i, point in enumerate(body):
        if not isinstance(point, Mapping):
            raise HTNetInputError(path, f"{where}[{i}]", "expected a mapping of params keys")
        keys = {k: v for k, v in point.items() if k not in POINT_META}
        start, changes = base.to_flat(), keys
        if "from" in point:  # another params file beside the study, then this point's keys
            try:
                start = load_params(path.parent / str(point["from"])).to_flat()
            except HTNetInputError as e:
                raise HTNetInputError(e.source, f"{where}[{i}].from" + (f".{e.field}" if e.field else ""),
                                      e.problem) from None
            changes = {k: v for k, v in {**start, **keys}.items()  # shown: where the point differs from the base
                       if _same(base.to_flat().get(k)) != _same(v) and k not in RUN_KEYS}
        label = str(point.get("label", ", ".join(f"{k}={_show(v)}" for k, v in changes.items())))
        try:
            params = params_from_dict({**start, **keys}, source=str(path))
        except HTNetInputError as e:
            raise HTNetInputError(path, f"{where}[{i}].{e.field}", e.problem) from None
        reproduces = str(point.get("reproduces", ""))
        if reproduces:
            try:
                published.by_key(reproduces)
            except KeyError as e:
                raise HTNetInputError(path, f"{where}[{i}].reproduces", e.args[0]) from None
        points.append(Point(name, label, changes, params, reproduces))
    return Sweep(name, tuple(points), paper, title)


def _same(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def _show(v: Any) -> str:
    return "(" + ", ".join(map(str, v)) + ")" if isinstance(v, (list, tuple)) else str(v)
