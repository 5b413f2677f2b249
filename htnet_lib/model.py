"""HTNet: the hierarchical transformer of Wang et al., "HTNet for micro-expression recognition" (§3.2-3.3).

Built from `timm.layers` pieces in the style of timm's `models/nest.py`, with exactly the structure of the authors'
model (which is `vit_pytorch.nest.NesT` of vit-pytorch 0.35.8):

* **patch embedding** (§3.2): each ``patch_size``x``patch_size`` patch of the input (3 optical-flow / strain maps) is
  flattened in ``(p1 p2 c)`` order and projected linearly to ``dim`` channels;
* **hierarchies** (§3.3): at hierarchy level ``L`` (coarsest ``L = 0``) the patch grid is cut into ``2**L x 2**L``
  non-overlapping square **blocks**; a transformer (pre-norm multi-head self-attention *within each block* and a
  pre-norm feed-forward, both residual) runs on every block independently, after adding a learned positional
  embedding of one scalar per position in the block (shared by all channels and blocks);
* **block aggregation** (§3.3) between hierarchies: 3x3 convolution ``dim -> 2*dim``, channel LayerNorm (eps 1e-5) and
  3x3 max-pool with stride 2, so that each 2x2 group of neighbouring blocks becomes one block of the next hierarchy;
  ``dim`` and ``heads`` double at each hierarchy, the block edge (in positions) stays the same;
* **head**: LayerNorm, mean over positions, linear classifier.

Layout. Tokens stay channels-last, ``(B, H, W, C)`` between hierarchies and ``(B, T, N, C)`` inside a transformer
(``T`` blocks of ``N`` positions), so every projection is an ``nn.Linear`` and every norm a last-dim LayerNorm. Only the
aggregation's 3x3 convolution and max-pool see NCHW. This matters for training many copies of the model at once with
``torch.func.stack_module_state`` + ``torch.vmap(functional_call)``: under vmap with batched weights a Linear becomes a
batched matmul, whereas a 1x1 convolution (the authors' layout) would become a grouped convolution. ``forward`` has no
in-place ops on parameters and no data-dependent Python control flow.

Naming. The model is one **stage** per level, ``stages[i]``, numbered in processing order, finest first: a stage is a
hierarchy followed by its block aggregation (none after the last, coarsest one). Stage ``i`` sits at level
``L = num_hierarchies - 1 - i`` and has ``2**L`` blocks per side. With the paper's 28x28 input and 7x7 patches the patch
grid is 4x4 and every block holds a single position at all three hierarchies (softmax over one token is 1; see
``ModelConfig.block_edge``). `HTNet.forward_intermediates` is the one walk through the stages that returns every level's
output and, on request, every attention map; the walkthrough, `flops_by_level` and `stage_costs` all use it.

Initialisation is PyTorch's default (as in the authors' code), and modules are created in the same order as in
vit-pytorch's ``NesT``: after ``torch.manual_seed(s)``, ``HTNet(cfg)`` holds exactly the weights of
``convert_nest_state_dict(NesT(...).state_dict())`` built after the same seed.
"""
from __future__ import annotations

import json
import os
import re
from collections import OrderedDict
from typing import Mapping, NamedTuple, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from einops import rearrange
from timm.layers import LayerNorm, LayerNorm2d, Mlp, create_conv2d, create_pool2d, use_fused_attn
from torch import nn

from ._io import HTNetInputError, atomic_path
from .config import ModelConfig

__all__ = [
    "HTNet", "Stage", "Attention", "TransformerLayer", "Hierarchy", "BlockAggregation", "PatchEmbedding",
    "Intermediates", "blockify", "deblockify", "build", "convert_nest_state_dict", "save_weights", "load_weights",
    "count_parameters", "parameter_count", "count_flops", "flops_per_sample", "flops_by_level", "stage_names", "stage_costs", "region_influence",
    "pos_embed_effect", "attention_widths",
]

LN_EPS = 1e-5  # the authors' LayerNorm eps (timm's default is 1e-6)
WEIGHTS_FORMAT = "htnet_lib.HTNet/2"  # 2: one `stages.i.{hierarchy,aggregation}` unit per level (1: separate lists)


# --------------------------------------------------------------------------------------------------------------------
# blocks


def blockify(x: torch.Tensor, blocks_per_side: int) -> torch.Tensor:
    """Cut a channels-last map ``(B, H, W, C)`` into ``blocks_per_side**2`` square blocks: ``(B, T, N, C)``.

    ``T = blocks_per_side**2`` blocks in row-major order, ``N`` positions per block in row-major order (§3.3).
    Note: timm's ``blockify`` takes the block *edge*; this one (like the authors' ``block_size``) takes blocks per side.
    """
    return rearrange(x, "b (t1 h) (t2 w) c -> b (t1 t2) (h w) c", t1=blocks_per_side, t2=blocks_per_side)


def deblockify(x: torch.Tensor, blocks_per_side: int, block_edge: int) -> torch.Tensor:
    """Inverse of `blockify`: ``(B, T, N, C)`` -> ``(B, H, W, C)``."""
    return rearrange(x, "b (t1 t2) (h w) c -> b (t1 h) (t2 w) c",
                     t1=blocks_per_side, t2=blocks_per_side, h=block_edge, w=block_edge)


# --------------------------------------------------------------------------------------------------------------------
# layers


class PatchEmbedding(nn.Module):
    """§3.2: flatten non-overlapping patches in ``(p1 p2 c)`` order and project them to ``dim``; NCHW in, NHWC out."""

    def __init__(self, patch_size: int, channels: int, dim: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Linear(channels * patch_size * patch_size, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch_size
        x = rearrange(x, "b c (h p1) (w p2) -> b h w (p1 p2 c)", p1=p, p2=p)
        return self.proj(x)


class Attention(nn.Module):
    """Multi-head self-attention within each block (§3.3), on ``(B, T, N, C)`` tokens.

    As in the authors' code the per-head width is ``dim // heads`` and the inner width ``heads * (dim // heads)``
    (255 for dim 256 and 3 heads); the qkv projection has no bias, the output projection has one.
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        inner = self.heads * self.head_dim
        self.scale = self.head_dim ** -0.5
        self.fused_attn = use_fused_attn()
        self.qkv = nn.Linear(dim, inner * 3, bias=False)
        self.attn_drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.proj = nn.Linear(inner, dim)
        self.proj_drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.dropout = dropout

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        """``(B, T, N, C)`` -> ``(B, T, N, C)``; with ``return_attention`` also the weights ``(B, T, heads, N, N)``."""
        if x.shape[2] == 1 and not return_attention:
            # One token per block (the paper's geometry): softmax over one key is exactly 1, so attention returns v.
            # Computing only the value third of qkv gives the same output, and q and k get the same (zero) gradient.
            inner = self.heads * self.head_dim
            v = F.linear(x, self.qkv.weight[2 * inner:])
            return self.proj_drop(self.proj(v))
        qkv = self.qkv(x)
        q, k, v = rearrange(qkv, "b t n (three h d) -> three b t h n d", three=3, h=self.heads).unbind(0)
        if self.fused_attn and not return_attention:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
            attn = None
        else:
            attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
            out = self.attn_drop(attn) @ v
        out = self.proj_drop(self.proj(rearrange(out, "b t h n d -> b t n (h d)")))
        return (out, attn) if return_attention else out


class TransformerLayer(nn.Module):
    """One pre-norm transformer layer (§3.3): ``x + MSA(LN(x))`` then ``x + FFN(LN(x))``, FFN ``dim -> dim*mlp_mult -> dim``
    with GELU."""

    def __init__(self, dim: int, heads: int, mlp_mult: int, dropout: float = 0.0):
        super().__init__()
        # creation order (attn, norm1, mlp, norm2) follows vit-pytorch so that the RNG stream matches its NesT
        self.attn = Attention(dim, heads, dropout)
        self.norm1 = LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, dim * mlp_mult, act_layer=nn.GELU, drop=dropout)
        if dropout == 0:  # no dropout modules at all: keeps vmap(randomness='error') happy in train mode
            self.mlp.drop1 = nn.Identity()
            self.mlp.drop2 = nn.Identity()
        self.norm2 = LayerNorm(dim, eps=LN_EPS)

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        if return_attention:
            y, attn = self.attn(self.norm1(x), return_attention=True)
        else:
            y, attn = self.attn(self.norm1(x)), None
        x = x + y
        x = x + self.mlp(self.norm2(x))
        return (x, attn) if return_attention else x


class Hierarchy(nn.Module):
    """One hierarchy of §3.3: blockify, add the positional embedding, run the transformer on every block, deblockify.

    ``blocks_per_side = 2**level``; the positional embedding holds ``block_edge**2`` scalars (one per position in a
    block, drawn from a standard normal as in the authors' code) broadcast over channels and blocks.
    """

    def __init__(self, dim: int, heads: int, depth: int, blocks_per_side: int, block_edge: int, mlp_mult: int,
                 dropout: float = 0.0):
        super().__init__()
        self.blocks_per_side = blocks_per_side
        self.block_edge = block_edge
        self.pos_embed = nn.Parameter(torch.randn(block_edge * block_edge))
        self.layers = nn.ModuleList([TransformerLayer(dim, heads, mlp_mult, dropout) for _ in range(depth)])

    def forward(self, x: torch.Tensor, attention: list | None = None) -> torch.Tensor:
        """``(B, H, W, C)`` -> ``(B, H, W, C)``; when a list is given as ``attention``, each layer's weights
        ``(B, T, heads, N, N)`` are appended to it."""
        x = blockify(x, self.blocks_per_side)
        x = x + self.pos_embed[:, None]
        for layer in self.layers:
            if attention is None:
                x = layer(x)
            else:
                x, attn = layer(x, return_attention=True)
                attention.append(attn)
        return deblockify(x, self.blocks_per_side, self.block_edge)


class BlockAggregation(nn.Module):
    """Block aggregation (§3.3): 3x3 conv ``dim -> dim_out`` (padding 1), channel LayerNorm (eps 1e-5), 3x3 max-pool
    with stride 2 and padding 1. Channels-last in and out; NCHW only inside."""

    def __init__(self, dim: int, dim_out: int):
        super().__init__()
        self.conv = create_conv2d(dim, dim_out, 3, padding=1, bias=True)
        self.norm = LayerNorm2d(dim_out, eps=LN_EPS)
        self.pool = create_pool2d("max", kernel_size=3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 3, 1, 2)
        x = self.pool(self.norm(self.conv(x)))
        return x.permute(0, 2, 3, 1)


class Stage(nn.Module):
    """One level of HTNet (§3.2-3.3): a hierarchy of block-local transformer layers, then the block aggregation that
    merges each 2x2 group of blocks for the next level (an identity after the last level)."""

    def __init__(self, dim: int, dim_out: int | None, heads: int, depth: int, blocks_per_side: int, block_edge: int,
                 mlp_mult: int, dropout: float = 0.0):
        super().__init__()
        # hierarchy before aggregation: the authors' creation (and so RNG) order
        self.hierarchy = Hierarchy(dim, heads, depth, blocks_per_side, block_edge, mlp_mult, dropout)
        self.aggregation = BlockAggregation(dim, dim_out) if dim_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.aggregation(self.hierarchy(x))


# --------------------------------------------------------------------------------------------------------------------
# the model


def stage_names(cfg: ModelConfig) -> list[str]:
    """Names of the levels' outputs in processing order, as keys of `HTNet.forward_intermediates` and
    `flops_by_level`: patch_embedding, hierarchy0, aggregation0, ..., hierarchy{n-1}, head."""
    names = ["patch_embedding"]
    for i in range(cfg.num_hierarchies):
        names.append(f"hierarchy{i}")
        if i < cfg.num_hierarchies - 1:
            names.append(f"aggregation{i}")
    return names + ["head"]


class Intermediates(NamedTuple):
    """What `HTNet.forward_intermediates` returns: the logits, every level's output ``{name: (B, C, H, W)}`` (NCHW, like
    the paper's figures; names from `stage_names`, without 'head') and, when asked, every layer's attention weights
    ``{'hierarchy{i}.layer{j}': (B, T, heads_i, N, N)}``."""

    logits: torch.Tensor
    levels: "OrderedDict[str, torch.Tensor]"
    attention: "OrderedDict[str, torch.Tensor]"


class HTNet(nn.Module):
    """HTNet (§3): patch embedding, one `Stage` per level (hierarchy + block aggregation) and a LayerNorm / mean-pool /
    linear head. Input ``(B, channels, image_size, image_size)``, output logits ``(B, num_classes)``.

    ``stages[i]`` (finest first) has width ``dim * 2**i``, ``heads * 2**i`` heads, ``block_repeats[i]`` layers and
    ``2**(num_hierarchies-1-i)`` blocks per side of ``cfg.block_edge`` positions each.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if not isinstance(cfg, ModelConfig):
            raise TypeError(f"HTNet needs a htnet_lib.config.ModelConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        nh = cfg.num_hierarchies
        dims = [cfg.dim * 2 ** i for i in range(nh)]
        self.dims = dims
        self.patch_embedding = PatchEmbedding(cfg.patch_size, cfg.channels, cfg.dim)
        self.stages = nn.ModuleList([
            Stage(dims[i], dims[i + 1] if i < nh - 1 else None, cfg.heads * 2 ** i, cfg.block_repeats[i],
                  2 ** (nh - 1 - i), cfg.block_edge, cfg.mlp_mult, cfg.dropout) for i in range(nh)])
        self.norm = LayerNorm(dims[-1], eps=LN_EPS)
        self.head = nn.Linear(dims[-1], cfg.num_classes)

    # ---- input check
    def check_input(self, x: torch.Tensor) -> None:
        """Raise `HTNetInputError` (field 'input') unless ``x`` is a float batch ``(B, channels, image_size, image_size)``."""
        c, s = self.cfg.channels, self.cfg.image_size
        if not isinstance(x, torch.Tensor):
            raise HTNetInputError(None, "input", f"expected a torch.Tensor of shape (B, {c}, {s}, {s}), got {type(x).__name__}")
        if x.dim() != 4 or tuple(x.shape[1:]) != (c, s, s):
            raise HTNetInputError(None, "input", f"expected shape (B, {c}, {s}, {s}) (batch, channels, height, width), "
                                                 f"got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise HTNetInputError(None, "input", f"expected a floating-point tensor, got {x.dtype}")

    # ---- forward
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Image batch -> channels-last feature map of the last level ``(B, h, w, C)``."""
        self.check_input(x)
        x = self.patch_embedding(x)
        for stage in self.stages:
            x = stage(x)
        return x

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Channels-last map ``(B, h, w, C)`` -> logits: LayerNorm, mean over positions, linear."""
        return self.head(self.norm(x).mean(dim=(1, 2)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(self, x: torch.Tensor, attention: bool = False) -> Intermediates:
        """One pass that keeps every level's output (and, with ``attention``, every layer's attention weights): the
        model walkthrough, `flops_by_level` and `stage_costs` all read the model through it. Differentiable; the
        logits equal `forward`'s."""
        self.check_input(x)
        levels: OrderedDict[str, torch.Tensor] = OrderedDict()
        maps: OrderedDict[str, torch.Tensor] = OrderedDict()
        x = self.patch_embedding(x)
        levels["patch_embedding"] = x.permute(0, 3, 1, 2)
        for i, stage in enumerate(self.stages):
            per_layer: list | None = [] if attention else None
            x = stage.hierarchy(x, per_layer)
            levels[f"hierarchy{i}"] = x.permute(0, 3, 1, 2)
            for j, m in enumerate(per_layer or []):
                maps[f"hierarchy{i}.layer{j}"] = m
            if not isinstance(stage.aggregation, nn.Identity):
                x = stage.aggregation(x)
                levels[f"aggregation{i}"] = x.permute(0, 3, 1, 2)
        return Intermediates(self.forward_head(x), levels, maps)

    @torch.no_grad()
    def forward_levels(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        """Every level's output ``{name: (B, C, H, W)}`` and ``'head'`` -> logits (no gradients): for the walkthrough."""
        out = self.forward_intermediates(x)
        return OrderedDict([*out.levels.items(), ("head", out.logits)])

    @torch.no_grad()
    def attention_maps(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        """Softmax attention weights of every layer: ``{'hierarchy{i}.layer{j}': (B, T, heads_i, N, N)}`` with ``T``
        blocks (row-major) of ``N = block_edge**2`` positions. With 28x28 inputs, 7x7 patches and 3 hierarchies
        ``N = 1`` and every map is exactly 1; with 2 hierarchies each block holds 2x2 positions."""
        return self.forward_intermediates(x, attention=True).attention

    def level_modules(self) -> "OrderedDict[str, nn.Module]":
        """The module behind each name of `stage_names` ('head' is the final norm and linear layer)."""
        out: OrderedDict[str, nn.Module] = OrderedDict(patch_embedding=self.patch_embedding)
        for i, stage in enumerate(self.stages):
            out[f"hierarchy{i}"] = stage.hierarchy
            if not isinstance(stage.aggregation, nn.Identity):
                out[f"aggregation{i}"] = stage.aggregation
        out["head"] = nn.ModuleList([self.norm, self.head])
        return out


def build(cfg: ModelConfig) -> nn.Module:
    """The network named by ``cfg.arch``: `HTNet`, or the STSTNet baseline (`htnet_lib.ststnet`)."""
    if cfg.arch == "htnet":
        return HTNet(cfg)
    from .ststnet import STSTNet

    net = STSTNet(num_classes=cfg.num_classes, channels=cfg.channels, image_size=cfg.image_size, dropout=cfg.dropout)
    net.cfg = cfg
    return net


# --------------------------------------------------------------------------------------------------------------------
# vit-pytorch 0.35.8 NesT (the authors' model) -> HTNet


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


# --------------------------------------------------------------------------------------------------------------------
# safetensors weights (no pickle)


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
        return ModelConfig(**raw)  # validates every key and type
    except HTNetInputError as e:
        raise HTNetInputError(path, f"htnet_config.{e.field}", e.problem) from None


def save_weights(model: nn.Module, path: str | os.PathLike, metadata: Mapping[str, str] | None = None) -> None:
    """Write a model built by `build` (HTNet or STSTNet) to a ``.safetensors`` file (atomically), its `ModelConfig` as
    JSON in the metadata under ``htnet_config``. Extra ``metadata`` (str -> str) is stored alongside."""
    from safetensors.torch import save_file
    cfg = getattr(model, "cfg", None)
    if not isinstance(cfg, ModelConfig):
        raise TypeError(f"save_weights needs a model built by htnet_lib.model.build, got {type(model).__name__}")
    meta = {"format": WEIGHTS_FORMAT, "htnet_config": _config_to_json(cfg)}
    for k, v in (metadata or {}).items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise HTNetInputError(path, str(k), "safetensors metadata must map str to str")
        meta[k] = v
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
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
                                                    "(not written by htnet_lib.model.save_weights?)")
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
    with torch.device("meta"):
        expected = {k: v.shape for k, v in build(cfg).state_dict().items()}
    for k in expected:
        if k not in tensors:
            raise HTNetInputError(path, k, "tensor missing from the weights file")
    for k, t in tensors.items():
        if k not in expected:
            raise HTNetInputError(path, k, f"unexpected tensor (not part of {cfg.arch} for the stored config)")
        if tuple(t.shape) != tuple(expected[k]):
            raise HTNetInputError(path, k, f"shape {tuple(t.shape)} does not match {tuple(expected[k])} "
                                           f"expected by the stored config")
    with torch.device("meta"):
        model = build(cfg)
    model.load_state_dict(tensors, strict=True, assign=True)
    return model.to(device)


# --------------------------------------------------------------------------------------------------------------------
# sizes and costs


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements (works on meta-device models)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def parameter_count(cfg: ModelConfig) -> int:
    """Exact parameter count of the network a config builds (on the meta device: no memory, no time)."""
    with torch.device("meta"):
        return count_parameters(build(cfg))


def count_flops(model: nn.Module, input_shape: Sequence[int] | None = None, train: bool = True,
                by_module: bool = False) -> int | dict[str, int]:
    """FLOPs (multiply-add = 2) for one sample as counted by ``torch.utils.flop_counter.FlopCounterMode``: forward, or
    forward + backward (weight and activation gradients) when ``train``. Matmuls, convolutions and attention are
    counted; norms, activations, pooling and the optimiser are not. With ``by_module``, a dict of FLOPs by module path
    (``'HTNet.stages.0.hierarchy'``; ``'Global'`` is the total): backward ops count for the module that ran them.

    ``input_shape`` is one sample's ``(channels, H, W)``, by default from ``model.cfg``. The model runs through
    ``functional_call`` on meta-device stand-ins for its parameters and buffers: no memory, no time, and the model's
    own tensors are left untouched (it may itself live on the meta device).
    """
    from torch.utils.flop_counter import FlopCounterMode
    if input_shape is None:
        cfg = getattr(model, "cfg", None)
        if cfg is None:
            raise HTNetInputError(None, "input_shape", f"needed for a {type(model).__name__} without a cfg")
        input_shape = (cfg.channels, cfg.image_size, cfg.image_size)
    state = {k: torch.empty_like(v, device="meta").requires_grad_(v.requires_grad)
             for k, v in [*model.named_parameters(), *model.named_buffers()]}
    was_training = model.training
    model.train(train)
    try:
        x = torch.zeros(1, *input_shape, device="meta")
        with FlopCounterMode(display=False) as counter:
            out = torch.func.functional_call(model, state, (x,))
            if train:
                out.sum().backward()
    finally:
        model.train(was_training)
    if by_module:
        return {k: int(sum(v.values())) for k, v in counter.get_flop_counts().items()}
    return int(counter.get_total_flops())


def _meta(cfg: ModelConfig) -> nn.Module:
    with torch.device("meta"):
        return build(cfg)


def flops_per_sample(cfg: ModelConfig, train: bool = True) -> int:
    """`count_flops` of the network a config builds (built on the meta device: no memory, no time). One-token blocks
    skip the query and key projections (see `Attention`), so they are not counted either."""
    return count_flops(_meta(cfg), train=train)


def flops_by_level(cfg: ModelConfig, train: bool = False) -> dict[str, int]:
    """Per-level FLOPs for one sample (forward, or forward + backward when ``train``), keyed by `stage_names`, plus
    ``total``; read from one counted pass (`FlopCounterMode` attributes every op, backward ones included, to the
    module that ran it)."""
    model = _meta(cfg)
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


def stage_costs(cfg: ModelConfig) -> pd.DataFrame:
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


# --------------------------------------------------------------------------------------------------------------------
# analyses (the walkthrough, notebook 02)


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
