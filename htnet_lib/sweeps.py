"""Ablation sweeps (§4.3-4.4: Table 4 block size, Table 5 depth, Fig. 5 hidden dimension, Fig. 6 heads).

A sweep file (`params/<level>/ablations.yaml`) names a base params file, overrides applied to every point (a quick
level trains fewer epochs on a subset of folds), and per sweep a list of points, each a few params keys plus an
optional `label`. Every point is an ordinary LOSO run, so finished points are found in their run folder and a rerun
is instant.

Block size and the authors' code. Their `NesT` ties the block size to image size, patch size and the number of
hierarchies: the patch grid is (image / patch)^2, and at the finest hierarchy it is cut into 2^(h-1) x 2^(h-1) blocks,
so a block covers image / 2^(h-1) pixels per side and holds ((image / patch) / 2^(h-1))^2 tokens. With the paper's 28x28
input and 7x7 patches: 3 hierarchies give 7-pixel blocks of 1 token, 2 hierarchies 14-pixel blocks of 2x2 tokens (one
block per facial region), 1 hierarchy a single 28-pixel block of 4x4 tokens (global attention, no aggregation).
`block_geometry` computes this for any point.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from . import data, loso
from ._io import HTNetInputError
from .config import ModelConfig, Params, load_base, params_from_dict, read_yaml_mapping
from .model import HTNet, count_parameters

SWEEPS = ("block_size", "depth", "dim", "heads")


def block_geometry(cfg: ModelConfig) -> dict[str, int]:
    """Block edge in pixels and tokens per block at the finest hierarchy, as the authors' code lays them out."""
    return {"block_px": cfg.image_size // 2 ** (cfg.num_hierarchies - 1), "tokens_per_block": cfg.block_edge ** 2}


def load_sweeps(path: str | os.PathLike) -> tuple[Params, dict[str, list[tuple[str, Params]]]]:
    """Read a sweep file: (base params with the common overrides, {sweep: [(label, params), ...]}).

    Every point is validated before anything trains; errors name the file and the sweep/point.
    """
    path = Path(path)
    spec = read_yaml_mapping(path, "sweep", {"base", "overrides", "sweeps"})
    base = load_base(path, spec)
    sweeps: dict[str, list[tuple[str, Params]]] = {}
    for name, points in (spec.get("sweeps") or {}).items():
        if name not in SWEEPS:
            raise HTNetInputError(path, f"sweeps.{name}", f"unknown sweep (known: {', '.join(SWEEPS)})")
        if not isinstance(points, list) or not points:
            raise HTNetInputError(path, f"sweeps.{name}", "expected a non-empty list of points")
        out = []
        for i, point in enumerate(points):
            if not isinstance(point, dict):
                raise HTNetInputError(path, f"sweeps.{name}[{i}]", "expected a mapping of params keys")
            point = dict(point)
            label = str(point.pop("label", ", ".join(f"{k}={v}" for k, v in point.items())))
            try:
                p = params_from_dict({**base.to_flat(), **point}, source=f"{path} sweeps.{name}[{i}]")
            except HTNetInputError as e:
                raise HTNetInputError(path, f"sweeps.{name}[{i}].{e.field}", e.problem) from None
            out.append((label, p))
        sweeps[name] = out
    return base, sweeps


def run_sweep(path: str | os.PathLike, names: tuple[str, ...] = SWEEPS, progress: bool = True) -> pd.DataFrame:
    """Train (or find) every point of the named sweeps; one row per point, protocol and scope.

    Columns: sweep, label, point (the point's keys), block_px, tokens_per_block, params (model parameters),
    train_s (seconds of training, summed over chunks), protocol, scope, UF1, UAR, run.
    """
    _, sweeps = load_sweeps(path)
    samples = None
    rows = []
    for name in names:
        for label, p in sweeps.get(name, []):
            samples = data.load_samples(p.run.data_dir or None) if samples is None else samples
            run_dir = loso.run_loso(p, name="sweep", samples=samples, progress=progress)  # shared by equal points
            meta = json.loads((run_dir / "run.json").read_text())
            with torch.device("meta"):
                n_params = count_parameters(HTNet(p.model))
            extra: dict[str, Any] = {"sweep": name, "label": label, **block_geometry(p.model), "params": n_params,
                                     "train_s": sum(c["seconds"] for c in meta["chunks"]), "run": str(run_dir),
                                     "dim": p.model.dim, "heads": p.model.heads,
                                     "block_repeats": str(tuple(p.model.block_repeats))}
            for _, r in loso.read_metrics(run_dir).iterrows():
                rows.append({**extra, "protocol": r["protocol"], "scope": r["scope"], "UF1": r["UF1"], "UAR": r["UAR"]})
    return pd.DataFrame(rows)
