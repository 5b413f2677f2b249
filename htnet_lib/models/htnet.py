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
``HTNetConfig.block_edge``). `HTNet.forward_intermediates` is the one walk through the stages that returns every level's
output and, on request, every attention map; the walkthrough, `flops_by_level` and `stage_costs` all use it.

Initialisation is PyTorch's default (as in the authors' code), and modules are created in the same order as in
vit-pytorch's ``NesT``: after ``torch.manual_seed(s)``, ``HTNet(cfg)`` holds exactly the weights of
``convert_nest_state_dict(NesT(...).state_dict())`` built after the same seed (`htnet_lib.models.convert`).

This file is HTNet's entry of the network registry (`htnet_lib.models.registry`): its config (`HTNetConfig`, the
params' model keys when ``arch: htnet``), the network, and its registration. Costs (`models.costs`), conversion of the
authors' weights (`models.convert`), weights files (`models.io`) and the walkthrough's analyses (`models.analyses`)
live beside it.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Annotated, Any, Literal, NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from pydantic import Field, model_validator
from timm.layers import LayerNorm, LayerNorm2d, Mlp, create_conv2d, create_pool2d, use_fused_attn
from torch import nn

from .._io import HTNetInputError
from ..schema import Float, Ints, Positive
from .registry import ModelConfig, check_input, register_model

__all__ = ["HTNetConfig", "HTNet", "Stage", "Attention", "TransformerLayer", "Hierarchy", "BlockAggregation",
           "PatchEmbedding", "Intermediates", "blockify", "deblockify", "stage_names", "LN_EPS"]

LN_EPS = 1e-5  # the authors' LayerNorm eps (timm's default is 1e-6)


# --------------------------------------------------------------------------------------------------------------------
# the config


class HTNetConfig(ModelConfig):
    """HTNet's hyper-parameters (§3.2-3.3, §4.4), the params' model keys when ``arch: htnet`` (the default). Defaults
    are the paper's initial settings of §4.4: block 7x7 at the bottom level (28 px input, 7 px patches, 3 hierarchies),
    dim 256, 3 heads, (2, 2, 8) layers. The authors' released script builds (2, 2, 10) (`config.AUTHORS_SCRIPT`).

    `dim` and `heads` are those of the first (finest) hierarchy; both double at each coarser level. `block_repeats`
    counts transformer layers per hierarchy, finest first. `image_size` is the model's input side: the assembled
    28x28 regions are resized to it when it differs (Table 4's geometry, `regions.model_inputs`).
    """

    arch: Literal["htnet"] = "htnet"
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
    def _geometry(self) -> "HTNetConfig":
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

    def describe(self) -> dict[str, Any]:
        """Block sides in input pixels per level (bottom first) and tokens per block (the same at every level)."""
        return {"block_px": "/".join(map(str, self.block_px)), "tokens_per_block": self.block_edge ** 2}

    def activation_bytes(self, batch_size: int) -> int:
        """A rough upper bound on a batch's training activations: tokens x width x (mlp_mult + 6) per layer."""
        tokens = (self.image_size // self.patch_size) ** 2
        return batch_size * tokens * self.dim * (self.mlp_mult + 6) * sum(self.block_repeats) * 4

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
        # fused attention without its own dropout draw: the attention dropout is a module (each fold's masks)
        if self.fused_attn and not return_attention and not (self.training and self.dropout > 0):
            out = F.scaled_dot_product_attention(q, k, v)
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


def stage_names(cfg: HTNetConfig) -> list[str]:
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

    def __init__(self, cfg: HTNetConfig):
        super().__init__()
        if not isinstance(cfg, HTNetConfig):
            raise TypeError(f"HTNet needs a htnet_lib.models.htnet.HTNetConfig, got {type(cfg).__name__}")
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
        check_input(x, self.cfg.channels, self.cfg.image_size)

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


# The params schema's model keys before the registry: every run folder's name hashes them (`registry.fingerprint_base`).
PRE_REGISTRY_KEYS = ("image_size", "patch_size", "dim", "heads", "num_hierarchies", "block_repeats", "mlp_mult",
                     "dropout", "num_classes", "channels")


@register_model(HTNetConfig, hashed_always=PRE_REGISTRY_KEYS)
def htnet(cfg: HTNetConfig) -> HTNet:
    """HTNet, the hierarchical transformer of Wang et al. (§3)."""
    return HTNet(cfg)
