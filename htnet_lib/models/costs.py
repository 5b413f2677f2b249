"""What a network costs: parameters and FLOPs per sample of any registered network (counted on the meta device: no
memory, no time), and HTNet's costs per level (notebook 02's table, Table 5's sizes)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from .._io import HTNetInputError
from .htnet import HTNet, HTNetConfig, stage_names
from .registry import ModelConfig, build_on_meta, forward_on_meta, geometry

__all__ = ["count_parameters", "parameter_count", "count_flops", "flops_per_sample", "flops_by_level", "stage_costs"]

def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements (works on meta-device models)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def parameter_count(cfg: ModelConfig) -> int:
    """Exact parameter count of the network a config builds (on the meta device: no memory, no time)."""
    return count_parameters(build_on_meta(cfg))


def count_flops(model: nn.Module, input_shape: Sequence[int] | None = None, train: bool = True,
                by_module: bool = False) -> int | dict[str, int]:
    """FLOPs (multiply-add = 2) for one sample as counted by ``torch.utils.flop_counter.FlopCounterMode``: forward, or
    forward + backward (weight and activation gradients) when ``train``. Matmuls, convolutions and attention are
    counted; norms, activations, pooling and the optimiser are not. With ``by_module``, a dict of FLOPs by module path
    (``'HTNet.stages.0.hierarchy'``; ``'Global'`` is the total): backward ops count for the module that ran them.

    ``input_shape`` is one sample's ``(channels, H, W)``, by default what the network's registry entry reads
    (`registry.InputGeometry`). The model runs through `registry.forward_on_meta`: no memory, no time, the model
    left as it was.
    """
    from torch.utils.flop_counter import FlopCounterMode
    if input_shape is None:
        cfg = getattr(model, "cfg", None)
        if not isinstance(cfg, ModelConfig):
            raise HTNetInputError(None, "input_shape", f"needed for a {type(model).__name__} without a cfg")
        input_shape = geometry(cfg).shape
    with FlopCounterMode(display=False) as counter:
        out = forward_on_meta(model, tuple(input_shape), train=train)
        if train:
            out.sum().backward()
    if by_module:
        return {k: int(sum(v.values())) for k, v in counter.get_flop_counts().items()}
    return int(counter.get_total_flops())


_COUNTED: dict[tuple, int] = {}  # (config type, its JSON, train) -> FLOPs: a key for any config, hashable or not


def flops_per_sample(cfg: ModelConfig, train: bool = True) -> int:
    """`count_flops` of the network a config builds (built on the meta device: no memory). One-token blocks skip the
    query and key projections (see `Attention`), so they are not counted either. Remembered per (config, train): a
    count traces the network once (about 0.4 s on a small CPU), and every run of a sweep asks before it trains."""
    key = (type(cfg), cfg.model_dump_json(), train)
    if key not in _COUNTED:
        _COUNTED[key] = count_flops(build_on_meta(cfg), train=train)
    return _COUNTED[key]


def flops_by_level(cfg: HTNetConfig, train: bool = False) -> dict[str, int]:
    """Per-level FLOPs for one sample (forward, or forward + backward when ``train``), keyed by `stage_names`, plus
    ``total``; read from one counted pass (`FlopCounterMode` attributes every op, backward ones included, to the
    module that ran it)."""
    model = build_on_meta(cfg)
    counts = count_flops(model, train=train, by_module=True)
    root = type(model).__name__
    paths = {m: n for n, m in model.named_modules()}
    out: dict[str, int] = {}
    for name, module in model.level_modules().items():
        if name == "head":
            out[name] = counts.get(f"{root}.norm", 0) + counts.get(f"{root}.head", 0)
        else:
            out[name] = counts.get(f"{root}.{paths[module]}", 0)
    out["total"] = int(counts.get("Global", 0))
    if sum(v for k, v in out.items() if k != "total") != out["total"]:
        raise AssertionError("per-level FLOPs do not add up to the total")  # guards the level split
    return out


def stage_costs(cfg: HTNetConfig) -> pd.DataFrame:
    """Per level (patch embedding, hierarchies, aggregations, head) and in total: parameters, their float32 size in
    MB (2**20 bytes), forward MFLOPs per sample and forward+backward MFLOPs per sample (`flops_by_level`; a
    multiply-add counts 2), and each level's share of the parameters.

    Built on the meta device: instant, no memory, even for the paper's 139.6M-parameter configuration.
    """
    with torch.device("meta"):
        m = HTNet(cfg)
    params = {name: count_parameters(mod) for name, mod in m.level_modules().items()}
    fwd, train = flops_by_level(cfg, train=False), flops_by_level(cfg, train=True)
    names = stage_names(cfg)
    df = pd.DataFrame({"params": [params[s] for s in names],
                       "params_MB_fp32": [params[s] * 4 / 2 ** 20 for s in names],
                       "MFLOPs_forward": [fwd[s] / 1e6 for s in names],
                       "MFLOPs_train": [train[s] / 1e6 for s in names]}, index=pd.Index(names, name="stage"))
    df.loc["total"] = df.sum()
    if int(df.loc["total", "params"]) != count_parameters(m):
        raise AssertionError("per-level parameters do not add up to the model's")  # guards the level split
    df["params"] = df["params"].astype(np.int64)
    df["params_share"] = df["params"] / df.loc["total", "params"]
    return df

