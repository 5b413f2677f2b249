"""The registry of networks as a listing, and named presets in the style of timm's (`htnet-paper`, `ststnet-authors`).

A preset names a params file of the project (and a point of a study file), so its values live in one place, the params
level that trains it: `preset("ststnet-authors")` is the network and training of `params/honest/baselines.yaml`'s
STSTNet point. `python -m htnet_lib models` prints both.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from ._io import HTNetInputError, project_root
from .config import Params, load_params

# name -> (params file under params/, the study point's label or None for a plain params file, what it is)
PRESETS = {
    "htnet-paper": ("paper/loso.yaml", None, "HTNet as the paper configures it (§4.2; a GPU)"),
    "htnet-quick": ("quick/loso.yaml", None, "the paper's structure at a laptop CPU's size (`make run`)"),
    "htnet-honest": ("honest/loso.yaml", None, "the honest recipe: whole map, mirrored, SWA, last epoch"),
    "ststnet-authors": ("honest/baselines.yaml", "STSTNet (authors' PyTorch settings)",
                        "STSTNet at its authors' published PyTorch settings"),
    "offapexnet-meb": ("honest/offapexnet.yaml", "OFF-ApexNet (MEB's network and settings)",
                       "OFF-ApexNet as MEB trains it"),
}


def preset(name: str) -> Params:
    """The params a preset names (its network in `.model`, its training in `.train`)."""
    if name not in PRESETS:
        raise HTNetInputError(None, "preset", f"unknown preset {name!r} (known: {', '.join(PRESETS)})")
    ref, label, _ = PRESETS[name]
    path = project_root() / "params" / ref
    if label is None:
        return load_params(path)
    from .studies import load_study

    points = [p for s in load_study(path).sweeps.values() for p in s.points if p.label == label]
    if len(points) != 1:
        raise HTNetInputError(path, "sweeps", f"preset {name!r} names the point {label!r}, found {len(points)}")
    return points[0].params


def networks() -> pd.DataFrame:
    """Every registered network's keys with their defaults: arch, summary, key, default (its config's own fields)."""
    from .models import registry

    rows = []
    for net in registry.NETWORKS.values():
        for key, f in net.config.model_fields.items():
            if key != "arch":
                rows.append({"arch": net.arch, "summary": net.summary, "key": key,
                             "default": f.get_default(call_default_factory=True)})
    return pd.DataFrame(rows)


def presets() -> pd.DataFrame:
    """Every preset: its network, what it is, where its values live, and the network keys it sets apart from the
    network's defaults."""
    rows = []
    for name, (ref, label, what) in PRESETS.items():
        model = preset(name).model
        defaults = type(model)()
        changed: dict[str, Any] = {k: v for k, v in model.model_dump().items() if v != getattr(defaults, k)}
        rows.append({"preset": name, "arch": model.arch, "what": what,
                     "params": f"params/{ref}" + (f" [{label}]" if label else ""),
                     "keys": ", ".join(f"{k}={v}" for k, v in changed.items()) or "the defaults"})
    return pd.DataFrame(rows)


def report() -> str:
    """`python -m htnet_lib models`: the registry, then the presets."""
    nets = networks()
    out = []
    for arch, g in nets.groupby("arch", sort=False):
        out.append(f"{arch}: {g['summary'].iloc[0]}")
        out += [f"  {r.key} = {r.default!r}" for r in g.itertuples()]
    out.append("\npresets (params files; `python -m htnet_lib loso --params FILE`):")
    try:
        table = presets()
    except (HTNetInputError, FileNotFoundError) as e:
        out.append(f"  none here: {e} (presets name the project's params files)")
    else:
        out += [f"  {r.preset} ({r.arch}): {r.what}; {r.params}; {r.keys}" for r in table.itertuples()]
    return "\n".join(out)
