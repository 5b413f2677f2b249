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

Naming. ``hierarchies[i]`` / ``aggregations[i]`` are numbered in processing order, finest first: hierarchy ``i`` sits at
level ``L = num_hierarchies - 1 - i`` and has ``2**L`` blocks per side. With the paper's 28x28 input and 7x7 patches the
patch grid is 4x4 and every block holds a single position at all three hierarchies (softmax over one token is 1);
see ``ModelConfig.block_edge``.

Initialisation is PyTorch's default (as in the authors' code), and modules are created in the same order as in
vit-pytorch's ``NesT``: after ``torch.manual_seed(s)``, ``HTNet(cfg)`` holds exactly the weights of
``convert_nest_state_dict(NesT(...).state_dict())`` built after the same seed.
"""
from __future__ import annotations

import json
import os
import re
from collections import OrderedDict
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from einops import rearrange
from timm.layers import LayerNorm, LayerNorm2d, Mlp, create_conv2d, create_pool2d, use_fused_attn
from torch import nn

from ._io import HTNetInputError, atomic_path
from .config import ModelConfig

__all__ = [
    "HTNet", "Attention", "TransformerLayer", "Hierarchy", "BlockAggregation", "PatchEmbedding",
    "blockify", "deblockify", "convert_nest_state_dict", "save_weights", "load_weights",
    "count_parameters", "flops_per_sample", "flops_by_level", "stage_names",
]

LN_EPS = 1e-5  # the authors' LayerNorm eps (timm's default is 1e-6)
WEIGHTS_FORMAT = "htnet_lib.HTNet/1"


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

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        """``(B, H, W, C)`` -> ``(B, H, W, C)``; with ``return_attention`` also a list of per-layer attention weights."""
        x = blockify(x, self.blocks_per_side)
        x = x + self.pos_embed[:, None]
        maps = []
        for layer in self.layers:
            if return_attention:
                x, attn = layer(x, return_attention=True)
                maps.append(attn)
            else:
                x = layer(x)
        x = deblockify(x, self.blocks_per_side, self.block_edge)
        return (x, maps) if return_attention else x


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


# --------------------------------------------------------------------------------------------------------------------
# the model


def stage_names(cfg: ModelConfig) -> list[str]:
    """Names of the model's stages in processing order, as used by `HTNet.forward_levels` and `flops_by_level`."""
    names = ["patch_embedding"]
    for i in range(cfg.num_hierarchies):
        names.append(f"hierarchy{i}")
        if i < cfg.num_hierarchies - 1:
            names.append(f"aggregation{i}")
    names.append("head")
    return names


class HTNet(nn.Module):
    """HTNet (§3): patch embedding, ``num_hierarchies`` hierarchies of block-local transformers joined by block
    aggregation, and a LayerNorm / mean-pool / linear head. Input ``(B, channels, image_size, image_size)``, output
    logits ``(B, num_classes)``.

    ``hierarchies[i]`` (finest first) has width ``dim * 2**i``, ``heads * 2**i`` heads, ``block_repeats[i]`` layers and
    ``2**(num_hierarchies-1-i)`` blocks per side of ``cfg.block_edge`` positions each.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if not isinstance(cfg, ModelConfig):
            raise TypeError(f"HTNet needs a htnet_lib.config.ModelConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        nh = cfg.num_hierarchies
        dims = [cfg.dim * 2 ** i for i in range(nh)]
        heads = [cfg.heads * 2 ** i for i in range(nh)]
        self.dims = dims
        self.patch_embedding = PatchEmbedding(cfg.patch_size, cfg.channels, cfg.dim)
        self.hierarchies = nn.ModuleList()
        self.aggregations = nn.ModuleList()
        for i in range(nh):  # hierarchy then aggregation, interleaved: the authors' creation (and RNG) order
            self.hierarchies.append(Hierarchy(dims[i], heads[i], cfg.block_repeats[i], 2 ** (nh - 1 - i),
                                              cfg.block_edge, cfg.mlp_mult, cfg.dropout))
            if i < nh - 1:
                self.aggregations.append(BlockAggregation(dims[i], dims[i + 1]))
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
        """Image batch -> channels-last feature map of the last hierarchy ``(B, h, w, C)``."""
        self.check_input(x)
        x = self.patch_embedding(x)
        for i, hierarchy in enumerate(self.hierarchies):
            x = hierarchy(x)
            if i < len(self.aggregations):
                x = self.aggregations[i](x)
        return x

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Channels-last map ``(B, h, w, C)`` -> logits: LayerNorm, mean over positions, linear."""
        return self.head(self.norm(x).mean(dim=(1, 2)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    @torch.no_grad()
    def forward_levels(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        """Every intermediate feature map, for the walkthrough: ``{stage: (B, C, H, W)}`` (NCHW, like the paper) after
        the patch embedding, after each hierarchy and each aggregation (names from `stage_names`), then
        ``'head'`` -> logits ``(B, num_classes)``."""
        self.check_input(x)
        out: OrderedDict[str, torch.Tensor] = OrderedDict()
        x = self.patch_embedding(x)
        out["patch_embedding"] = x.permute(0, 3, 1, 2)
        for i, hierarchy in enumerate(self.hierarchies):
            x = hierarchy(x)
            out[f"hierarchy{i}"] = x.permute(0, 3, 1, 2)
            if i < len(self.aggregations):
                x = self.aggregations[i](x)
                out[f"aggregation{i}"] = x.permute(0, 3, 1, 2)
        out["head"] = self.forward_head(x)
        return out

    @torch.no_grad()
    def attention_maps(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        """Softmax attention weights of every layer: ``{'hierarchy{i}.layer{j}': (B, T, heads_i, N, N)}`` with ``T``
        blocks (row-major) of ``N = block_edge**2`` positions. With 28x28 inputs, 7x7 patches and 3 hierarchies
        ``N = 1`` and every map is exactly 1; with 2 hierarchies each block holds 2x2 positions."""
        self.check_input(x)
        out: OrderedDict[str, torch.Tensor] = OrderedDict()
        x = self.patch_embedding(x)
        for i, hierarchy in enumerate(self.hierarchies):
            x, maps = hierarchy(x, return_attention=True)
            for j, m in enumerate(maps):
                out[f"hierarchy{i}.layer{j}"] = m
            if i < len(self.aggregations):
                x = self.aggregations[i](x)
        return out


# --------------------------------------------------------------------------------------------------------------------
# vit-pytorch 0.35.8 NesT (the authors' model) -> HTNet


_NEST_RULES: list[tuple[re.Pattern, str, str]] = [  # (pattern, target, reshape: 'linear' | 'vector' | 'keep')
    (re.compile(r"to_patch_embedding\.1\.weight"), r"patch_embedding.proj.weight", "linear"),
    (re.compile(r"to_patch_embedding\.1\.bias"), r"patch_embedding.proj.bias", "keep"),
    (re.compile(r"layers\.(\d+)\.0\.pos_emb"), r"hierarchies.\1.pos_embed", "keep"),
    (re.compile(r"layers\.(\d+)\.0\.layers\.(\d+)\.0\.norm\.g"), r"hierarchies.\1.layers.\2.norm1.weight", "vector"),
    (re.compile(r"layers\.(\d+)\.0\.layers\.(\d+)\.0\.norm\.b"), r"hierarchies.\1.layers.\2.norm1.bias", "vector"),
    (re.compile(r"layers\.(\d+)\.0\.layers\.(\d+)\.0\.fn\.to_qkv\.weight"), r"hierarchies.\1.layers.\2.attn.qkv.weight", "linear"),
    (re.compile(r"layers\.(\d+)\.0\.layers\.(\d+)\.0\.fn\.to_out\.0\.weight"), r"hierarchies.\1.layers.\2.attn.proj.weight", "linear"),
    (re.compile(r"layers\.(\d+)\.0\.layers\.(\d+)\.0\.fn\.to_out\.0\.bias"), r"hierarchies.\1.layers.\2.attn.proj.bias", "keep"),
    (re.compile(r"layers\.(\d+)\.0\.layers\.(\d+)\.1\.norm\.g"), r"hierarchies.\1.layers.\2.norm2.weight", "vector"),
    (re.compile(r"layers\.(\d+)\.0\.layers\.(\d+)\.1\.norm\.b"), r"hierarchies.\1.layers.\2.norm2.bias", "vector"),
    (re.compile(r"layers\.(\d+)\.0\.layers\.(\d+)\.1\.fn\.net\.0\.weight"), r"hierarchies.\1.layers.\2.mlp.fc1.weight", "linear"),
    (re.compile(r"layers\.(\d+)\.0\.layers\.(\d+)\.1\.fn\.net\.0\.bias"), r"hierarchies.\1.layers.\2.mlp.fc1.bias", "keep"),
    (re.compile(r"layers\.(\d+)\.0\.layers\.(\d+)\.1\.fn\.net\.3\.weight"), r"hierarchies.\1.layers.\2.mlp.fc2.weight", "linear"),
    (re.compile(r"layers\.(\d+)\.0\.layers\.(\d+)\.1\.fn\.net\.3\.bias"), r"hierarchies.\1.layers.\2.mlp.fc2.bias", "keep"),
    (re.compile(r"layers\.(\d+)\.1\.0\.(weight|bias)"), r"aggregations.\1.conv.\2", "keep"),
    (re.compile(r"layers\.(\d+)\.1\.1\.g"), r"aggregations.\1.norm.weight", "vector"),
    (re.compile(r"layers\.(\d+)\.1\.1\.b"), r"aggregations.\1.norm.bias", "vector"),
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
    return json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in cfg.__dict__.items()}, sort_keys=True)


def _config_from_json(text: str, path: str) -> ModelConfig:
    from .config import params_from_dict  # validates every key and type
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise HTNetInputError(path, "htnet_config", f"metadata is not valid JSON: {e}") from None
    model_keys = set(ModelConfig.__dataclass_fields__)
    unknown = set(raw) - model_keys
    if unknown:
        raise HTNetInputError(path, "htnet_config", f"unknown model keys {sorted(unknown)}")
    try:
        return params_from_dict(raw, source=path).model
    except HTNetInputError as e:
        raise HTNetInputError(path, f"htnet_config.{e.field}", e.problem) from None


def save_weights(model: HTNet, path: str | os.PathLike, metadata: Mapping[str, str] | None = None) -> None:
    """Write the model's weights to a ``.safetensors`` file (atomically), its `ModelConfig` as JSON in the metadata
    under ``htnet_config``. Extra ``metadata`` (str -> str) is stored alongside."""
    from safetensors.torch import save_file
    if not isinstance(model, HTNet):
        raise TypeError(f"save_weights needs an HTNet, got {type(model).__name__}")
    meta = {"format": WEIGHTS_FORMAT, "htnet_config": _config_to_json(model.cfg)}
    for k, v in (metadata or {}).items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise HTNetInputError(path, str(k), "safetensors metadata must map str to str")
        meta[k] = v
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def load_weights(path: str | os.PathLike, device: str | torch.device = "cpu") -> HTNet:
    """Build an `HTNet` from a file written by `save_weights` (safetensors only: nothing is unpickled).

    Raises `HTNetInputError` naming the file and the key for a missing file, a file without an HTNet config, a missing
    or unexpected tensor, or a tensor whose shape does not match the stored config.
    """
    from safetensors import SafetensorError, safe_open
    path = str(path)
    if not os.path.isfile(path):
        raise HTNetInputError(path, None, "weights file not found")
    try:
        with safe_open(path, framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            if "htnet_config" not in meta:
                raise HTNetInputError(path, "htnet_config", "no HTNet config in the safetensors metadata "
                                                            "(not written by htnet_lib.model.save_weights?)")
            cfg = _config_from_json(meta["htnet_config"], path)
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except SafetensorError as e:
        raise HTNetInputError(path, None, f"not a readable safetensors file: {e}") from None
    with torch.device("meta"):
        expected = {k: v.shape for k, v in HTNet(cfg).state_dict().items()}
    for k in expected:
        if k not in tensors:
            raise HTNetInputError(path, k, "tensor missing from the weights file")
    for k, t in tensors.items():
        if k not in expected:
            raise HTNetInputError(path, k, "unexpected tensor (not part of HTNet for the stored config)")
        if tuple(t.shape) != tuple(expected[k]):
            raise HTNetInputError(path, k, f"shape {tuple(t.shape)} does not match {tuple(expected[k])} "
                                           f"expected by the stored config")
    with torch.device("meta"):
        model = HTNet(cfg)
    model.load_state_dict(tensors, strict=True, assign=True)
    return model.to(device)


# --------------------------------------------------------------------------------------------------------------------
# sizes and costs


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements (works on meta-device models)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _meta_model(cfg: ModelConfig) -> tuple[HTNet, torch.Tensor]:
    with torch.device("meta"):
        model = HTNet(cfg)
        x = torch.zeros(1, cfg.channels, cfg.image_size, cfg.image_size)
    return model, x


def flops_per_sample(cfg: ModelConfig, train: bool = True) -> int:
    """FLOPs (multiply-add = 2) for one sample as counted by ``torch.utils.flop_counter.FlopCounterMode``: forward, or
    forward + backward (weight and activation gradients) when ``train``. Counts matmuls, convolutions and attention;
    norms, activations, pooling and the optimiser are not counted. Runs on the meta device: no memory, no time."""
    from torch.utils.flop_counter import FlopCounterMode
    model, x = _meta_model(cfg)
    model.train(train)
    with FlopCounterMode(display=False) as counter:
        out = model(x)
        if train:
            out.sum().backward()
    return int(counter.get_total_flops())


def flops_by_level(cfg: ModelConfig, train: bool = False) -> dict[str, int]:
    """Per-stage FLOPs for one sample (forward, or forward + backward when ``train``), keyed by `stage_names`:
    ``patch_embedding``, ``hierarchy{i}``, ``aggregation{i}``, ``head``, plus ``total``."""
    from torch.utils.flop_counter import FlopCounterMode
    model, x = _meta_model(cfg)
    model.train(train)
    stages: list[tuple[str, Any]] = [("patch_embedding", model.patch_embedding)]
    for i, h in enumerate(model.hierarchies):
        stages.append((f"hierarchy{i}", h))
        if i < len(model.aggregations):
            stages.append((f"aggregation{i}", model.aggregations[i]))
    stages.append(("head", model.forward_head))
    result: dict[str, int] = {}
    for name, fn in stages:
        # each stage on its own: a detached input that needs a gradient (except the image), then backward of a sum
        inp = x.detach().requires_grad_(train and name != "patch_embedding")
        with FlopCounterMode(display=False) as counter:
            y = fn(inp)
            if train:
                y.sum().backward()
        result[name] = int(counter.get_total_flops())
        x = y.detach()
    result["total"] = sum(result.values())
    return result
