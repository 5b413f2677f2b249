"""Conversion of the authors' weights: a vit-pytorch 0.35.8 ``NesT`` state dict (which is the authors' HTNet, see
NOTES) to `htnet_lib.models.htnet.HTNet`'s names and shapes."""
from __future__ import annotations

import re
from typing import Mapping

import torch

from .._io import HTNetInputError

__all__ = ["convert_nest_state_dict"]

_NEST_RULES: list[tuple[re.Pattern, str, str]] = [  # (pattern, target, reshape: 'linear' | 'vector' | 'keep')
    (re.compile(r"to_patch_embedding\.1\.weight"), r"patch_embedding.proj.weight", "linear"),
    (re.compile(r"to_patch_embedding\.1\.bias"), r"patch_embedding.proj.bias", "keep"),
    (re.compile(r"layers\.(\d+)\.0\.pos_emb"), r"stages.\1.hierarchy.pos_embed", "keep"),
    (re.compile(r"layers\.(\d+)\.0\.layers\.(\d+)\.0\.norm\.g"), r"stages.\1.hierarchy.layers.\2.norm1.weight", "vector"),
    (re.compile(r"layers\.(\d+)\.0\.layers\.(\d+)\.0\.norm\.b"), r"stages.\1.hierarchy.layers.\2.norm1.bias", "vector"),
    (re.compile(r"layers\.(\d+)\.0\.layers\.(\d+)\.0\.fn\.to_qkv\.weight"), r"stages.\1.hierarchy.layers.\2.attn.qkv.weight", "linear"),
    (re.compile(r"layers\.(\d+)\.0\.layers\.(\d+)\.0\.fn\.to_out\.0\.weight"), r"stages.\1.hierarchy.layers.\2.attn.proj.weight", "linear"),
    (re.compile(r"layers\.(\d+)\.0\.layers\.(\d+)\.0\.fn\.to_out\.0\.bias"), r"stages.\1.hierarchy.layers.\2.attn.proj.bias", "keep"),
    (re.compile(r"layers\.(\d+)\.0\.layers\.(\d+)\.1\.norm\.g"), r"stages.\1.hierarchy.layers.\2.norm2.weight", "vector"),
    (re.compile(r"layers\.(\d+)\.0\.layers\.(\d+)\.1\.norm\.b"), r"stages.\1.hierarchy.layers.\2.norm2.bias", "vector"),
    (re.compile(r"layers\.(\d+)\.0\.layers\.(\d+)\.1\.fn\.net\.0\.weight"), r"stages.\1.hierarchy.layers.\2.mlp.fc1.weight", "linear"),
    (re.compile(r"layers\.(\d+)\.0\.layers\.(\d+)\.1\.fn\.net\.0\.bias"), r"stages.\1.hierarchy.layers.\2.mlp.fc1.bias", "keep"),
    (re.compile(r"layers\.(\d+)\.0\.layers\.(\d+)\.1\.fn\.net\.3\.weight"), r"stages.\1.hierarchy.layers.\2.mlp.fc2.weight", "linear"),
    (re.compile(r"layers\.(\d+)\.0\.layers\.(\d+)\.1\.fn\.net\.3\.bias"), r"stages.\1.hierarchy.layers.\2.mlp.fc2.bias", "keep"),
    (re.compile(r"layers\.(\d+)\.1\.0\.(weight|bias)"), r"stages.\1.aggregation.conv.\2", "keep"),
    (re.compile(r"layers\.(\d+)\.1\.1\.g"), r"stages.\1.aggregation.norm.weight", "vector"),
    (re.compile(r"layers\.(\d+)\.1\.1\.b"), r"stages.\1.aggregation.norm.bias", "vector"),
    (re.compile(r"mlp_head\.0\.g"), r"norm.weight", "vector"),
    (re.compile(r"mlp_head\.0\.b"), r"norm.bias", "vector"),
    (re.compile(r"mlp_head\.2\.(weight|bias)"), r"head.\1", "keep"),
]


def convert_nest_state_dict(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a vit-pytorch 0.35.8 ``NesT`` (= the authors' HTNet) state dict to this module's names and shapes.

    1x1 convolution weights ``(out, in, 1, 1)`` become linear weights ``(out, in)``; channel-LayerNorm parameters
    ``(1, C, 1, 1)`` become ``(C,)``. The patch embedding keeps the ``(p1 p2 c)`` input order, so no reordering is needed.
    A ``module.`` prefix (DataParallel) is stripped. An unknown key raises `HTNetInputError` naming the key.
    171 keys for 3 hierarchies with block_repeats (2, 2, 10): 2 (patch embedding) + 3 (positional embeddings)
    + 14 layers x 11 + 2 aggregations x 4 + 4 (head); as many keys come out.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        k = key[len("module."):] if key.startswith("module.") else key
        for pattern, target, kind in _NEST_RULES:
            if pattern.fullmatch(k):
                if kind == "linear":
                    if value.dim() != 4 or value.shape[2:] != (1, 1):
                        raise HTNetInputError(None, key, f"expected a 1x1 conv weight (out, in, 1, 1), got {tuple(value.shape)}")
                    value = value.reshape(value.shape[0], value.shape[1])
                elif kind == "vector":
                    value = value.reshape(-1)
                out[pattern.sub(target, k)] = value.detach().clone().contiguous()
                break
        else:
            raise HTNetInputError(None, key, "not a vit-pytorch 0.35.8 NesT state-dict key")
    return out

