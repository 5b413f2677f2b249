"""What notebook 02 (the model walkthrough) measures on HTNet: where a change in one facial region reaches, stage by
stage; what the positional embedding can change; which head counts build the same network."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pandas as pd
import torch

__all__ = ["region_influence", "pos_embed_effect", "attention_widths"]

def region_influence(model: torch.nn.Module, x: torch.Tensor, quadrant: int = 0, seed: int = 0
                     ) -> "OrderedDict[str, np.ndarray]":
    """Change every pixel of one 14x14 facial region (quadrant 0 TL, 1 TR, 2 BL, 3 BR) of input `x` (1, C, 28, 28)
    to random values and return, per stage of `model.forward_levels`, the size of the change at each position
    (L2 norm over channels, divided by the largest): which positions the region reaches after each stage.

    Hierarchies without any block of several tokens cannot carry the change to another position; block
    aggregation's 3x3 convolution and max-pool can.
    """
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"expected one sample (1, C, H, W), got {tuple(x.shape)}")
    h = x.shape[-1] // 2
    r0, c0 = (quadrant // 2) * h, (quadrant % 2) * h
    g = torch.Generator().manual_seed(seed)
    x2 = x.clone()
    lo, hi = float(x.min()), float(x.max())
    x2[..., r0:r0 + h, c0:c0 + h] = lo + (hi - lo) * torch.rand(x2[..., r0:r0 + h, c0:c0 + h].shape, generator=g)
    a, b = model.forward_levels(x), model.forward_levels(x2)
    out: OrderedDict[str, np.ndarray] = OrderedDict()
    out["input"] = (x2 - x).norm(dim=1)[0].numpy()
    for k in a:
        if k == "head":
            continue
        d = (b[k] - a[k]).norm(dim=1)[0].numpy()
        out[k] = d / d.max() if d.max() > 0 else d
    out["input"] = out["input"] / max(float(out["input"].max()), 1e-12)
    return out


def pos_embed_effect(model: torch.nn.Module, x: torch.Tensor, shift: float = 5.0) -> pd.DataFrame:
    """Add `shift` to one hierarchy's positional embedding at a time and report the largest change of the logits.

    The embedding is one scalar per position in a block, the same for every channel, and every transformer layer
    starts with a LayerNorm over channels, which removes exactly such a shift; only block aggregation's convolution
    sees it. So the last hierarchy's embedding (no aggregation after it; the head starts with a LayerNorm too) cannot
    change the output. The model is restored afterwards.
    """
    rows = []
    with torch.no_grad():
        base = model(x)
        for i, h in enumerate(s.hierarchy for s in model.stages):
            saved = h.pos_embed.detach().clone()  # restore bit for bit (x + s - s need not equal x)
            h.pos_embed.add_(shift)
            try:
                changed = model(x)
            finally:
                h.pos_embed.copy_(saved)
            rows.append({"hierarchy": f"hierarchy{i}", "pos_embed shape": tuple(h.pos_embed.shape),
                         "pos_embed values": [round(float(v), 4) for v in h.pos_embed],
                         f"max |logit change| for +{shift:g}": float((changed - base).abs().max())})
    return pd.DataFrame(rows).set_index("hierarchy")


def attention_widths(dim: int, heads: tuple[int, ...] = (1, 2, 3, 4, 6, 8)) -> pd.DataFrame:
    """For each head count: the attention width heads * (dim // heads), and which head counts build the same network.

    With one token per block (the paper's geometry) attention returns its value projection, so the number of heads
    matters only through this width: head counts of equal width make the same parameters, drawn in the same order,
    and train to the same predictions (a test checks it)."""
    width = {h: h * (dim // h) for h in heads}
    return pd.DataFrame({"heads": list(heads), "attention width": [width[h] for h in heads],
                         "same network as heads": [", ".join(str(g) for g in heads if width[g] == width[h])
                                                   for h in heads]}).set_index("heads")
