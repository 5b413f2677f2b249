"""Dropout and BatchNorm that train each LOSO fold (§4.2) the same whether it trains alone or inside a chunk.

The batched engine trains a chunk of folds as one computation (vmap over stacked weights), with the shorter folds'
batches padded. Two operations would make a fold depend on its chunk:

- dropout: under vmap every fold's masks would come from one stream. `FoldDropout` instead multiplies by a mask the
  engine drew from the fold's own generator (`DropoutStreams`), drawn as `nn.Dropout` draws it on the CPU
  (`bernoulli_(1 - p)` on a tensor of the input's shape, then `/ (1 - p)`), so the masks are bit for bit those of
  the fold trained alone;
- BatchNorm: padded samples would enter the batch statistics. `MaskedBatchNorm` takes the mean and variance over the
  fold's real samples only, and updates the fold's own running statistics.

`foldwise` swaps them in for a network's `nn.Dropout` and BatchNorm modules (same parameter and buffer names, so the
weights load unchanged); `step` hands them the current masks around one forward. Both engines train the swapped
network, so the loop engine is still the reference the batched one is checked against.
"""
from __future__ import annotations

import contextlib
import copy
import threading
from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .._io import HTNetInputError
from ..models.registry import forward_on_meta

_NOW = threading.local()


@dataclass
class _Step:
    """What one forward's fold-wise modules read: the sample mask (None: every sample is real) and the dropout masks
    in call order (None: record the call sites instead)."""

    sample_mask: torch.Tensor | None
    dropout_masks: list[torch.Tensor] | None
    sites: list[tuple[float, tuple[int, ...]]] = field(default_factory=list)
    used: int = 0


def _now() -> _Step | None:
    return getattr(_NOW, "step", None)


@contextlib.contextmanager
def step(sample_mask: torch.Tensor | None = None, dropout_masks: Sequence[torch.Tensor] | None = ()):
    """One training forward: `sample_mask` (B,) marks the real samples, `dropout_masks` the masks of the dropout
    calls in the order the forward makes them (`dropout_masks=None` records the calls' (p, per-sample shape))."""
    before = _now()
    _NOW.step = _Step(sample_mask, None if dropout_masks is None else list(dropout_masks))
    try:
        yield _NOW.step
    finally:
        _NOW.step = before


class FoldDropout(nn.Module):
    """`nn.Dropout` whose training mask is handed in by the engine (`step`); outside a step it is `nn.Dropout`."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        now = _now()
        if not self.training or self.p == 0:
            return x
        if now is None:
            return F.dropout(x, self.p, True)
        if now.dropout_masks is None:  # recording the call sites
            now.sites.append((self.p, tuple(x.shape[1:])))
            return x
        mask = now.dropout_masks[now.used]
        now.used += 1
        return x * mask.to(x.dtype)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class MaskedBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics cover the real samples of a padded batch only (`step`'s sample mask);
    without a mask, or in eval mode, it is the BatchNorm it replaces."""

    @classmethod
    def of(cls, bn: nn.modules.batchnorm._BatchNorm) -> "MaskedBatchNorm":
        new = cls(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats, device="meta")
        for name, p in bn.named_parameters(recurse=False):
            setattr(new, name, p)
        for name, b in bn.named_buffers(recurse=False):
            new.register_buffer(name, b)
        new.train(bn.training)
        return new

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {x.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        now = _now()
        if not self.training or now is None or now.sample_mask is None:
            return super().forward(x)
        keep = (-1,) + (1,) * (x.dim() - 1)
        per_channel = (1, -1) + (1,) * (x.dim() - 2)
        dims = [0, *range(2, x.dim())]
        w = now.sample_mask.to(x.dtype).reshape(keep)
        n = now.sample_mask.sum() * x[0, 0].numel()
        mean = (x * w).sum(dims) / n
        centred = x - mean.reshape(per_channel)
        var = (centred * centred * w).sum(dims) / n
        y = centred * torch.rsqrt(var + self.eps).reshape(per_channel)
        if self.affine:
            y = y * self.weight.reshape(per_channel) + self.bias.reshape(per_channel)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                f = self.momentum if self.momentum is not None else 1.0 / self.num_batches_tracked
                self.running_mean.mul_(1 - f).add_(mean.detach() * f)
                self.running_var.mul_(1 - f).add_(var.detach() * (n / (n - 1)) * f)
        return y


class UnfoldConv2d(nn.Conv2d):
    """`nn.Conv2d` as unfold and one matrix product per fold: under vmap a convolution with stacked weights becomes a
    grouped convolution, whose backward on a CPU runs at a small share of the matrix-multiply rate; this form keeps
    each fold's product a GEMM. Same parameters; equal to the convolution up to float rounding."""

    @classmethod
    def of(cls, conv: nn.Conv2d) -> "UnfoldConv2d":
        new = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                  conv.groups, conv.bias is not None, conv.padding_mode, device="meta")
        new.weight, new.bias = conv.weight, conv.bias
        new.train(conv.training)
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (ph, pw), (sh, sw), (kh, kw) = self.padding, self.stride, self.kernel_size
        x = F.pad(x, (pw, pw, ph, ph))
        patches = x.unfold(2, (kh - 1) * self.dilation[0] + 1, sh).unfold(3, (kw - 1) * self.dilation[1] + 1, sw)
        patches = patches[..., ::self.dilation[0], ::self.dilation[1]]  # (B, C, H', W', kh, kw), a view
        out = torch.einsum("bchwij,ocij->bohw", patches, self.weight)
        return out if self.bias is None else out + self.bias[:, None, None]


def _unfoldable(conv: nn.Module) -> bool:
    return (type(conv) is nn.Conv2d and conv.groups == 1 and conv.padding_mode == "zeros"
            and not isinstance(conv.padding, str))


def foldwise(model: nn.Module, unfold_convs: bool = False, in_place: bool = False) -> nn.Module:
    """A copy of `model` with `FoldDropout` for each `nn.Dropout` and `MaskedBatchNorm` for each BatchNorm (and, with
    `unfold_convs`, `UnfoldConv2d` for each plain `nn.Conv2d`), sharing nothing with `model`; with `in_place`, `model`
    itself so changed (for a model nothing else holds: a copy of a small network costs more than its forward pass).
    Refuses other random modules (their draws could not follow a fold's seed under vmap)."""
    model = model if in_place else copy.deepcopy(model)
    swapped: dict[int, nn.Module] = {}  # a module held under two names (OFF-ApexNet's dropout) stays one module

    def swap(child: nn.Module, name: str) -> nn.Module:
        if type(child) is nn.Dropout:
            return FoldDropout(child.p)
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, MaskedBatchNorm):
            return MaskedBatchNorm.of(child)
        if unfold_convs and _unfoldable(child):
            return UnfoldConv2d.of(child)
        if isinstance(child, nn.modules.dropout._DropoutNd) and not isinstance(child, FoldDropout):
            raise HTNetInputError(None, "engine", f"{type(child).__name__} ({name}) cannot draw its masks from each "
                                                  f"fold's seed; use engine: loop")
        return child

    for parent in list(model.modules()):
        for name, child in list(parent._modules.items()):  # every name, shared modules included
            if child is not None:
                if id(child) not in swapped:
                    swapped[id(child)] = swap(child, name)
                parent._modules[name] = swapped[id(child)]
    return model


def dropout_sites(model: nn.Module, shape: tuple[int, ...]) -> list[tuple[float, tuple[int, ...]]]:
    """(p, per-sample shape) of every dropout call a training forward of a `foldwise` network makes, in order (one
    `forward_on_meta`: the model left as it was; none when it drops nothing)."""
    if not any(isinstance(m, FoldDropout) and m.p > 0 for m in model.modules()):
        return []  # the forward would record nothing: HTNet at its paper settings
    with torch.no_grad(), step(None, None) as now:
        forward_on_meta(model, shape, batch=2, train=True)
    return now.sites


class DropoutStreams:
    """Each fold's dropout masks from its own generator (seeded `seed + 1`, as the loop engine always seeded a fold's
    dropout), for the calls `sites` lists, padded to a chunk's batch length."""

    def __init__(self, sites: list[tuple[float, tuple[int, ...]]], seeds: Sequence[int], device: torch.device):
        self.sites = sites
        self.generators = [torch.Generator(device=device).manual_seed(s + 1) for s in seeds]
        self.device = device

    def draw(self, counts: Sequence[int], length: int) -> list[torch.Tensor]:
        """Masks (F, length, *shape) per call site: fold i's first counts[i] rows drawn from its generator, the rest
        zero (padding)."""
        if not self.sites:
            return []
        out = [torch.zeros(len(counts), length, *shape, device=self.device) for _, shape in self.sites]
        for i, (g, n) in enumerate(zip(self.generators, counts)):
            for (p, shape), masks in zip(self.sites, out):
                m = torch.empty(n, *shape, device=self.device).bernoulli_(1 - p, generator=g)
                masks[i, :n] = m.div_(1 - p)
        return out
