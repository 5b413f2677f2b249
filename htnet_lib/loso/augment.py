"""What the honest recipe adds to a training step (notebook 07): a class-balanced or label-smoothed loss, and
left-right mirrors and small shifts of the inputs. The defaults (`loss: ce`, no smoothing, no augmentation) leave the
authors' training untouched.

Both engines call the same functions with a leading fold axis, and every random draw comes from (the fold's seed, the
epoch, the batch), so a fold trains exactly the same alone (loop) or inside a chunk of folds (batched).

**The mirror.** Flipping a face left-right swaps its left and right regions and mirrors each, and reverses horizontal
motion. The inputs hold (strain, v, u) in OpenCV's order, each channel min-max normalised per map, so the flow's zero
is unknown but a sign flip of u is exact in normalised units: u -> -u maps 255 (u - min) / (max - min) to
255 - that (with `preprocessing: scaled`, x / 127.5 - 1, it is x -> -x). Which channel is horizontal was settled from
the release (`data.flow_channel_symmetry`: channel 2 is anti-symmetric under a mirror, channel 1 symmetric); a test
checks that the mirror maps the release's statistics onto themselves. The mirrored assembled input is the input of
the mirrored face for the corrected regions (landmarks mirror too); for the authors' official crops, placed at
transposed positions, it is only approximately so.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .._io import HTNetInputError
from ..config import TrainConfig
from ..release import HORIZONTAL_FLOW_CHANNEL


def class_weights(y_train: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Weights N / (C n_c) of a fold's training labels (1 for every class present equally often; absent classes 0)."""
    counts = torch.bincount(y_train, minlength=num_classes).float()
    return torch.where(counts > 0, len(y_train) / (num_classes * counts.clamp(min=1)), torch.zeros_like(counts))


def fold_loss(logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor | None,
              smoothing: float) -> torch.Tensor:
    """Per-fold mean loss (F,) of logits (F, B, C) against labels (F, B) over the real samples (mask 1): cross-entropy
    with per-fold class `weights` (F, C) and label smoothing as PyTorch's `cross_entropy` defines them (the weighted
    mean divides by the summed weights of the batch's labels)."""
    num_classes = logits.shape[-1]
    logp = F.log_softmax(logits.float(), dim=-1)
    w = torch.ones(logits.shape[0], num_classes, device=logits.device) if weights is None else weights
    wy = w.gather(1, y) * mask
    nll = -logp.gather(2, y[..., None])[..., 0]
    loss = (1 - smoothing) * nll * wy
    if smoothing:
        loss = loss + smoothing / num_classes * (-(logp * w[:, None, :]).sum(-1)) * mask
    return loss.sum(1) / wy.sum(1)


def horizontal_channel(map_channels: Sequence[int], train: TrainConfig) -> int:
    """Where the release's horizontal flow u sits among a network's input channels (`InputGeometry.map_channels`);
    a mirror needs it, so `mirror: true` for a network that does not read u raises naming `mirror`."""
    if HORIZONTAL_FLOW_CHANNEL in map_channels:
        return list(map_channels).index(HORIZONTAL_FLOW_CHANNEL)
    if train.mirror:
        raise HTNetInputError(None, "mirror", "a mirror reverses the horizontal flow, which this network does not read")
    return HORIZONTAL_FLOW_CHANNEL


def simple_ce(train: TrainConfig) -> bool:
    """The authors' plain cross-entropy (then `F.cross_entropy` runs as they ran it)."""
    return train.loss == "ce" and train.label_smoothing == 0


def mirror(x: torch.Tensor, scaled: bool, horizontal: int = HORIZONTAL_FLOW_CHANNEL) -> torch.Tensor:
    """Left-right mirror of inputs (..., C, H, W): flip the columns and reverse the horizontal flow (input channel
    `horizontal`: the release's u, wherever the network's geometry puts it)."""
    out = x.flip(-1).clone()
    u = out[..., horizontal, :, :]
    out[..., horizontal, :, :] = -u if scaled else 255.0 - u
    return out


def _shifted(x: torch.Tensor, dy: int, dx: int, s: int) -> torch.Tensor:
    """x (..., H, W) translated by (dy, dx) pixels, edges repeated."""
    h, w = x.shape[-2:]
    flat = x.reshape(-1, *x.shape[-3:])
    padded = F.pad(flat, (s, s, s, s), mode="replicate")
    return padded[..., s - dy:s - dy + h, s - dx:s - dx + w].reshape(x.shape)


def augment(x: torch.Tensor, seeds: Sequence[int], lengths: Sequence[int], epoch: int, batch: int,
            train: TrainConfig, horizontal: int = HORIZONTAL_FLOW_CHANNEL) -> torch.Tensor:
    """Augment a batch of inputs (F, B, C, H, W) of F folds (B >= each fold's real `lengths`): mirror each sample with
    probability 1/2 and shift it by up to `shift_px` pixels, from draws of (fold seed, epoch, batch). `horizontal`:
    the input channel that holds the horizontal flow (`horizontal_channel`)."""
    if not train.mirror and not train.shift_px:
        return x
    n_f, n_b = x.shape[:2]
    flips = np.zeros((n_f, n_b), dtype=bool)
    moves = np.zeros((n_f, n_b, 2), dtype=np.int64)
    for i, (seed, n) in enumerate(zip(seeds, lengths)):
        if train.mirror:
            flips[i, :n] = np.random.default_rng([seed, epoch, batch, 1]).random(n) < 0.5
        if train.shift_px:
            moves[i, :n] = np.random.default_rng([seed, epoch, batch, 2]).integers(-train.shift_px, train.shift_px + 1,
                                                                                  size=(n, 2))
    scaled = train.preprocessing == "scaled"
    if flips.any():
        sel = torch.as_tensor(flips, device=x.device)[..., None, None, None]
        x = torch.where(sel, mirror(x, scaled, horizontal), x)
    if moves.any():
        s = train.shift_px
        out = x.clone()
        for dy, dx in {tuple(m) for m in moves.reshape(-1, 2).tolist()} - {(0, 0)}:
            sel = torch.as_tensor((moves[..., 0] == dy) & (moves[..., 1] == dx), device=x.device)[..., None, None, None]
            out = torch.where(sel, _shifted(x, dy, dx, s), out)
        x = out
    return x
