"""STSTNet: the shallow triple-stream CNN of Liong, Gan, See, Khor and Huang, "Shallow Triple Stream Three-dimensional
CNN (STSTNet) for Micro-expression Recognition" (FG 2019, arXiv:1902.03634). Table 2 of the HTNet paper lists it at
UF1 0.7353 on the 442-sample composite set. It reads the same 28x28 optical-strain / flow maps as HTNet.

Architecture (input ``(B, 3, 28, 28)``; default sizes in brackets)::

    three parallel streams over the whole input, with 3, 5 and 8 filters:
        3x3 conv (padding 2)  [3|5|8 x 30 x 30]
        ReLU
        BatchNorm2d           (eps 1e-5, momentum 0.1: PyTorch's defaults)
        3x3 max-pool, stride 3, padding 1   [3|5|8 x 10 x 10]
        dropout 0.5           (element-wise, in every stream)
    concatenate the streams   [16 x 10 x 10]
    2x2 average pool, stride 2               [16 x 5 x 5]
    flatten, linear 400 -> num_classes (logits; the softmax is in the loss)

1,683 parameters (448 conv, 32 BatchNorm, 1,203 linear) and 780,000 FLOPs per sample forward
(`models.costs.count_flops`).

Sources. The authors' original is a MATLAB network (``STSTNet.mat``, a binary file, with ``main.m``) in
github.com/christy1206/STSTNet; its README shows the layer table only as an image. The same repository holds the
authors' later PyTorch port, ``main.py`` (class ``STSTNet``, trained with Adam lr 5e-5, batch 256, 800 epochs, per-
subject weights in ``STSTNet_Weights/*.pth``, log ``STSTNet_python_logfile.txt``: UF1 0.7209, UAR 0.7250; it scores
each held-out subject with the predictions after the last epoch, i.e. loso's ``fixed@800``/``last``, not the epoch
picked with test labels that HTNet's code uses). Every other public PyTorch version found has exactly that layer
stack: tvaranka/meb ``meb/models/me_networks.py`` (``STSTNet``; MIT licence at its notebooks' commit ef4bb232,
Apache-2.0 since d095329) and TwelveGJ/STSTNet ``main.py`` (the same plus optional squeeze-excitation blocks). This module follows the authors' PyTorch port, the only readable code
from the authors:

* **BatchNorm after the ReLU** (``batch_norm=True``). ``batch_norm=False`` gives the plain conv-ReLU-pool stack often
  drawn for the paper (1,651 parameters).
* **dropout 0.5** after each stream's max-pool: the authors' code has it, so it is the default here (HTNet's default,
  0.0, is also its authors' value). ``dropout=0.0`` removes the dropout modules altogether.
* **padding 2** on the 3x3 convolutions (30x30 maps), as in the port. The paper's 'same' padding is ``padding=1``
  (28x28 maps); both give 10x10 after the max-pool and 400 features, so the parameter count is the same.
* Attribute names ``conv1..3``, ``bn1..3``, ``fc`` and the module creation order are the port's, so the state-dict
  keys match its files and, after the same ``torch.manual_seed``, the initial weights are the ones the port's
  constructor draws (PyTorch default initialisation). Loading the authors' ``.pth`` files has not been tried here.

The authors' inputs are the same kind of image as the HTNet release: ``cv2.imread`` of 28x28 PNGs from a folder named
``norm_u_v_os``, so (if the PNG's RGB is u, v, strain) channels in OpenCV's (strain, v, u) order with raw 0..255
values, as `htnet_lib.regions.model_inputs` gives them for the release (``preprocessing: official``).

Batched training. The batched engine trains it exactly as the loop does (`htnet_lib.loso.foldwise`): each fold's
dropout masks come from the fold's own generator, bit for bit those ``nn.Dropout`` draws when the fold trains alone,
and BatchNorm's batch statistics cover each fold's real samples only (the shorter folds' batches are padded), with
each fold's running statistics kept in its slice of the stacked buffers for eval. Under vmap a convolution with
stacked weights becomes a grouped convolution, whose backward is slow on a CPU; the batched engine computes it as
unfold and one matrix product per fold instead. Which engine is faster is measured (``make bench``, ``engine: auto``).

Params. ``arch: ststnet`` selects it (this file is its entry of the network registry); its keys are `STSTNetConfig`'s:
image_size, channels, num_classes, dropout, batch_norm, padding. In params `dropout` defaults to 0.0, as it always
has for ``arch: ststnet`` (run folders keep their names); the authors' port, and ``STSTNet()`` built directly, use 0.5.
"""
from __future__ import annotations

from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, StrictBool, model_validator
from torch import nn

from .._io import HTNetInputError
from ..schema import Float, Positive
from .registry import ModelConfig, check_input, register_model

__all__ = ["STSTNet", "STSTNetConfig", "STREAM_CHANNELS"]

STREAM_CHANNELS = (3, 5, 8)  # filters of the three streams


class STSTNetConfig(ModelConfig):
    """STSTNet's hyper-parameters, the params' model keys when ``arch: ststnet`` (see the module docstring)."""

    arch: Literal["ststnet"] = "ststnet"
    num_classes: Positive = 3
    channels: Positive = 3
    image_size: Positive = 28
    dropout: Annotated[Float, Field(ge=0.0, lt=1.0)] = 0.0  # params' default; the authors' port (and STSTNet()): 0.5
    batch_norm: StrictBool = True
    padding: Annotated[int, Field(ge=0)] = 2

    @model_validator(mode="after")
    def _feature_map(self) -> "STSTNetConfig":
        if self.pooled_size < 1:
            raise HTNetInputError(None, "image_size", f"{self.image_size} is too small: the feature map vanishes "
                                                      f"(conv {self.conv_size}, max-pool {self.maxpool_size})")
        return self

    @property
    def conv_size(self) -> int:
        """Side of each stream's convolution output (3x3 kernel, stride 1)."""
        return self.image_size + 2 * self.padding - 2

    @property
    def maxpool_size(self) -> int:
        """Side after the 3x3 / stride 3 / padding 1 max-pool."""
        return (self.conv_size + 2 - 3) // 3 + 1

    @property
    def pooled_size(self) -> int:
        """Side after the 2x2 / stride 2 average pool."""
        return self.maxpool_size // 2

    @property
    def num_features(self) -> int:
        """Inputs of the classifier: all streams' channels times the pooled map."""
        return sum(STREAM_CHANNELS) * self.pooled_size ** 2


class STSTNet(nn.Module):
    """STSTNet: three shallow conv streams (3, 5, 8 filters), concatenated, average-pooled, one linear layer.

    Input ``(B, channels, image_size, image_size)`` float, output logits ``(B, num_classes)``. ``dropout``,
    ``batch_norm`` and ``padding`` select the variants described in the module docstring; the defaults are the
    authors' PyTorch port. `STSTNet.from_config` builds one from an `STSTNetConfig`.
    """

    def __init__(self, num_classes: int = 3, channels: int = 3, image_size: int = 28, dropout: float = 0.5, *,
                 batch_norm: bool = True, padding: int = 2):
        super().__init__()
        self.cfg = STSTNetConfig(num_classes=num_classes, channels=channels, image_size=image_size, dropout=dropout,
                                 batch_norm=batch_norm, padding=padding)
        # creation order as in the authors' port (convolutions, norms, linear), so a seed gives their initial weights
        for i, c in enumerate(STREAM_CHANNELS, 1):
            setattr(self, f"conv{i}", nn.Conv2d(channels, c, kernel_size=3, padding=padding))
        for i, c in enumerate(STREAM_CHANNELS, 1):
            setattr(self, f"bn{i}", nn.BatchNorm2d(c) if batch_norm else nn.Identity())
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=3, padding=1)
        self.avgpool = nn.AvgPool2d(kernel_size=2, stride=2)
        # no dropout module at all when off: keeps vmap(randomness='error') usable in train mode
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(self.cfg.num_features, num_classes)

    @classmethod
    def from_config(cls, cfg: STSTNetConfig) -> "STSTNet":
        net = cls(cfg.num_classes, cfg.channels, cfg.image_size, cfg.dropout, batch_norm=cfg.batch_norm,
                  padding=cfg.padding)
        net.cfg = cfg
        return net

    def check_input(self, x: torch.Tensor) -> None:
        """Raise `HTNetInputError` (field 'input') unless ``x`` is a float batch ``(B, channels, image_size, image_size)``."""
        check_input(x, self.cfg.channels, self.cfg.image_size)

    def streams(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each stream's output after max-pool and dropout: ``[(B, 3, m, m), (B, 5, m, m), (B, 8, m, m)]``."""
        self.check_input(x)
        out = []
        for i in range(1, len(STREAM_CHANNELS) + 1):
            y = getattr(self, f"bn{i}")(F.relu(getattr(self, f"conv{i}")(x)))
            out.append(self.dropout(self.maxpool(y)))
        return out

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Image batch -> the classifier's input ``(B, 16 * s * s)`` (concatenated streams, average-pooled)."""
        return self.avgpool(torch.cat(self.streams(x), dim=1)).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x))


@register_model(STSTNetConfig)
def ststnet(cfg: STSTNetConfig) -> STSTNet:
    """STSTNet, the shallow triple-stream CNN of Liong et al. (FG 2019), Table 2's baseline."""
    return STSTNet.from_config(cfg)
