"""OFF-ApexNet: the two-stream CNN of Gan, Liong, Yau, Huang and Tan, "OFF-ApexNet on micro-expression recognition
system" (Signal Processing: Image Communication 74 (2019) 129-139; arXiv:1805.08699, which lists Liong first). Table 2
of the HTNet paper lists it at UF1 0.7196 / UAR 0.7096 on the 442-sample composite set (copied from the STSTNet
paper's Table III). It reads the horizontal (u) and vertical (v) optical flow between the onset and the apex frame,
28x28 each, one stream per flow component, and no optical strain.

Architecture (input ``(B, 2, 28, 28)``: channel 0 is u, channel 1 is v; default sizes in brackets)::

    two streams with the same layer stack and their own weights; the u stream reads channel 0, the v stream channel 1:
        5x5 conv 1 -> 6, padding 2 ('same')    [6 x 28 x 28]
        ReLU
        2x2 max-pool, stride 2                  [6 x 14 x 14]
        5x5 conv 6 -> 16, padding 2 ('same')   [16 x 14 x 14]
        ReLU
        2x2 max-pool, stride 2                  [16 x 7 x 7]
        flatten                                 [784]
    concatenate the streams (u first)           [1,568]
    linear 1,568 -> 1,024, ReLU, dropout
    linear 1,024 -> 1,024, ReLU, dropout
    linear 1,024 -> num_classes (logits; the softmax is in the loss)

2,664,475 parameters (5,144 in the two streams: 2 x (156 + 2,416); 1,606,656 + 1,049,600 in the hidden linear layers;
3,075 in the output layer) and 7,666,560 FLOPs per sample forward, 22,529,280 forward + backward
(`models.costs.count_flops`). Depth 5 along each path (two convolutions, three linear layers), as Table V below says.

Sources. No code from the authors was found (docs/baselines-sources.md, section 3), and the paper's own layer table
and training text could not be retrieved from the sources stored here (only its abstract: u and v between the onset
and the apex frame fed to "a pre-designed CNN"; 74.60 % accuracy, F-measure 71.04 % on the composite). What could be
read:

* the STSTNet paper (Liong, Gan, See, Khor, arXiv:1902.03634v1, the PDF in github.com/christy1206/STSTNet at
  ``1afb56e``), same first two authors, which "reproduced" OFF-ApexNet for its Table III (section IV; that row's
  accuracy and F1, 0.7460 and 0.7104, are the OFF-ApexNet abstract's):
  section I describes it as apex frame, horizontal and vertical optical flow images from the onset and apex frames,
  then "features fusion and enhancement using OFF-ApexNet architecture"; Table V lists it at depth 5, 2.77 M
  parameters, input 28 x 28 x 2;
* ECNU-Cross-Innovation-Lab/PRICAI2021-Off-TANet ``models/off_apexnet.py`` (commit ``5ae73be``; a third-party
  PyTorch version, its README says 2.66 M parameters): two streams, one per flow channel, each 5x5 conv 1 -> 6 and
  5x5 conv 6 -> 16 with padding 2 and 2x2 max-pools, concatenated (1,568), then 1,024 -> 1,024 -> 3 linear layers
  with ReLU and dropout 0.5 after each hidden one. This module has that layer stack (depth 5, as Table V says;
  2,664,475 parameters, 4 % below Table V's 2.77 M, a difference the sources read here do not explain), except
  that it puts a ReLU after each convolution, which that file omits (its streams have no nonlinearity but the
  max-pools);
* tvaranka/meb ``meb/models/me_networks.py`` class ``OffApexNet`` (unchanged in structure from ``ef4bb232``, the
  commit of MEB's notebooks, to ``f731b0a``, the snapshot read here; MIT licence at ``ef4bb232``, Apache-2.0 since
  ``d095329``). MEB's version differs from the two-stream design: **one stream over both channels** (3x3 conv 2 -> 6,
  padding 1, ReLU, 2x2 max-pool, 3x3 conv 6 -> 16, padding 1, ReLU, 2x2 max-pool: 784 features), **one hidden layer**
  (784 -> 1,024 -> classes), dropout 0.5 on the flattened features before the first linear layer and before the
  output layer; 807,909 parameters. ``OFFApexNet(streams=1, kernel_size=3, fc_layers=1, feature_dropout=True)`` is
  that network, layer for layer (`MEB_VARIANT` holds these keys); it is what produced MEB's fixed-epoch composite
  number, 0.7032 (`htnet_lib.published`, key ``offapexnet-meb``), so that number is reproduced with it.

The channel order is u then v, as MEB feeds it (``data[:, :2]`` of its (u, v, strain) maps in the Table 3 notebook;
its ``experiments/benchmarks/Optical flow networks.ipynb`` comments "Only use u and v optical flows, skip the strain as
in original publication") and as the paper names them (horizontal, then vertical). The release's maps are in
OpenCV's (strain, v, u) order, so `OFFApexNetConfig.geometry` reads map channels (2, 1).

Training settings (params/honest/offapexnet.yaml has them with their sources): MEB trains it with Adam lr 1e-4,
weight decay 1e-3, batch 32, shuffled, 3000 epochs (``Table 3. Early stopping.ipynb`` at ``ef4bb232``). The paper's
own optimiser, learning rate, batch and epochs could not be read here.

Batched training. The batched engine trains it exactly as the loop does, dropout included: each fold's masks come
from the fold's own generator (`htnet_lib.loso.foldwise`), and the dropout module MEB applies twice is one module
drawing twice, as in the loop. Which engine is faster on a machine is measured (``make bench``, ``engine: auto``).

Params. ``arch: offapexnet`` selects it (this file is its entry of the network registry); its keys are
`OFFApexNetConfig`'s: image_size, channels (2: u and v), streams (2: one per flow component; 1: one stream over both,
MEB's), num_classes, filters, kernel_size, pool_size, fc_width, fc_layers, dropout, feature_dropout (dropout on the
flattened convolution features too, MEB's). In params ``dropout`` defaults to 0.0, so that ``arch: offapexnet`` alone is
trainable by the batched engine; the published value, 0.5 (MEB and the PyTorch version above; the paper's value was not
read here), is the default of ``OFFApexNet()`` built directly and is what params/honest/offapexnet.yaml sets.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from .._io import HTNetInputError
from ..schema import Float, Ints, Positive
from .registry import InputGeometry, ModelConfig, check_input, register_model

__all__ = ["FLOW_CHANNELS", "MEB_VARIANT", "OFFApexNet", "OFFApexNetConfig"]

FLOW_CHANNELS = (2, 1)  # u and v: the release maps' channels (strain, v, u) the two streams read, in this order
# MEB's OffApexNet (meb/models/me_networks.py, tvaranka/meb f731b0a): one stream over (u, v), 3x3 convolutions, one
# hidden layer, dropout on the flattened features and before the output layer. 807,909 parameters.
MEB_VARIANT: dict[str, Any] = {"streams": 1, "kernel_size": 3, "fc_layers": 1, "feature_dropout": True}


class OFFApexNetConfig(ModelConfig):
    """OFF-ApexNet's hyper-parameters, the params' model keys when ``arch: offapexnet`` (see the module docstring).

    `filters`: the output channels of each stream's convolutions, one 'same'-padded `kernel_size` convolution, ReLU
    and `pool_size` max-pool per entry; `fc_layers` hidden linear layers of `fc_width` units (ReLU, dropout), then the
    output layer. `channels` must be 2 (u and v); `streams` 2 gives each its own stream (the paper's design), 1 one
    stream over both (MEB's). `feature_dropout` also drops the flattened stream features before the first linear
    layer (MEB's)."""

    arch: Literal["offapexnet"] = "offapexnet"
    num_classes: Positive = 3
    channels: Positive = 2
    streams: Literal[1, 2] = 2
    image_size: Positive = 28
    filters: Ints = (6, 16)
    kernel_size: Positive = 5
    pool_size: Positive = 2
    fc_width: Positive = 1024
    fc_layers: Annotated[int, Field(ge=0)] = 2
    dropout: Annotated[Float, Field(ge=0.0, lt=1.0)] = 0.0  # params' default; published (and OFFApexNet()): 0.5
    feature_dropout: bool = False

    @model_validator(mode="after")
    def _shapes(self) -> "OFFApexNetConfig":
        if self.channels != len(FLOW_CHANNELS):
            raise HTNetInputError(None, "channels", f"OFF-ApexNet has one stream per flow component (u, v): channels "
                                                    f"must be 2, got {self.channels}")
        if not self.filters or any(f <= 0 for f in self.filters):
            raise HTNetInputError(None, "filters", f"expected one or more positive filter counts, got "
                                                   f"{list(self.filters)}")
        if self.kernel_size % 2 == 0:
            raise HTNetInputError(None, "kernel_size", f"'same' padding needs an odd kernel, got {self.kernel_size}")
        if self.pooled_size < 1:
            raise HTNetInputError(None, "image_size", f"{self.image_size} is too small: the feature map vanishes after "
                                                      f"{len(self.filters)} {self.pool_size}x{self.pool_size} "
                                                      f"max-pools")
        return self

    @property
    def conv_padding(self) -> int:
        """'Same' padding of the convolutions (2 for 5x5)."""
        return self.kernel_size // 2

    @property
    def pooled_size(self) -> int:
        """Side of each stream's last feature map (7 for 28x28 and two 2x2 pools)."""
        side = self.image_size
        for _ in self.filters:
            side //= self.pool_size
        return side

    @property
    def stream_in(self) -> int:
        """Input channels of each stream: 1 (u or v) with two streams, 2 (u and v) with one."""
        return self.channels // self.streams

    @property
    def stream_features(self) -> int:
        """Features of one stream after flattening (16 x 7 x 7 = 784)."""
        return self.filters[-1] * self.pooled_size ** 2

    @property
    def num_features(self) -> int:
        """Inputs of the first linear layer: every stream's features (1,568 for two streams, 784 for one)."""
        return self.streams * self.stream_features

    def geometry(self) -> InputGeometry:
        """u then v of the release's (strain, v, u) maps, the whole map only (no facial regions)."""
        return InputGeometry(self.image_size, self.channels, map_channels=FLOW_CHANNELS, regions=("whole",))

    def describe(self) -> dict[str, Any]:
        """The streams, each stream's convolutions and the hidden linear layers, e.g. input 'u | v', conv '6-16@5x5',
        fc '2x1024' (names that are not params keys, so they never clash with a sweep's swept columns)."""
        return {"input": "u | v" if self.streams == 2 else "u+v",
                "conv": f"{'-'.join(map(str, self.filters))}@{self.kernel_size}x{self.kernel_size}",
                "fc": f"{self.fc_layers}x{self.fc_width}" + (" +feature dropout" if self.feature_dropout else "")}


class OFFApexNet(nn.Module):
    """OFF-ApexNet: a u stream and a v stream (conv-ReLU-max-pool twice each), concatenated, two hidden linear layers;
    or, with ``streams=1``, one stream over (u, v) (MEB's variant, `MEB_VARIANT`).

    Input ``(B, 2, image_size, image_size)`` float (u, v), output logits ``(B, num_classes)``. The defaults are the
    published layer sizes with dropout 0.5 (module docstring). `OFFApexNet.from_config` builds one from an
    `OFFApexNetConfig`.

    >>> from htnet_lib.models.costs import count_parameters
    >>> count_parameters(OFFApexNet()), count_parameters(OFFApexNet(**MEB_VARIANT))
    (2664475, 807909)
    """

    def __init__(self, num_classes: int = 3, channels: int = 2, image_size: int = 28, dropout: float = 0.5, *,
                 filters: tuple[int, ...] = (6, 16), kernel_size: int = 5, pool_size: int = 2, fc_width: int = 1024,
                 fc_layers: int = 2, streams: int = 2, feature_dropout: bool = False):
        super().__init__()
        self.cfg = OFFApexNetConfig(num_classes=num_classes, channels=channels, image_size=image_size,
                                    dropout=dropout, filters=filters, kernel_size=kernel_size, pool_size=pool_size,
                                    fc_width=fc_width, fc_layers=fc_layers, streams=streams,
                                    feature_dropout=feature_dropout)
        cfg = self.cfg
        # two streams: streams[0] reads u, streams[1] reads v; one stream: streams[0] reads both
        self.streams = nn.ModuleList(self._stream(cfg) for _ in range(cfg.streams))
        widths = [cfg.num_features] + [cfg.fc_width] * cfg.fc_layers
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        # no dropout module at all when off: keeps the batched engine (vmap, randomness='error') usable
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.feature_dropout = self.dropout if feature_dropout else nn.Identity()
        self.head = nn.Linear(widths[-1], num_classes)

    @staticmethod
    def _stream(cfg: OFFApexNetConfig) -> nn.Sequential:
        layers: list[nn.Module] = []
        c_in = cfg.stream_in
        for c_out in cfg.filters:
            layers += [nn.Conv2d(c_in, c_out, cfg.kernel_size, padding=cfg.conv_padding), nn.ReLU(),
                       nn.MaxPool2d(cfg.pool_size, cfg.pool_size)]
            c_in = c_out
        return nn.Sequential(*layers, nn.Flatten())

    @classmethod
    def from_config(cls, cfg: OFFApexNetConfig) -> "OFFApexNet":
        net = cls(cfg.num_classes, cfg.channels, cfg.image_size, cfg.dropout, filters=tuple(cfg.filters),
                  kernel_size=cfg.kernel_size, pool_size=cfg.pool_size, fc_width=cfg.fc_width,
                  fc_layers=cfg.fc_layers, streams=cfg.streams, feature_dropout=cfg.feature_dropout)
        net.cfg = cfg
        return net

    def check_input(self, x: torch.Tensor) -> None:
        """Raise `HTNetInputError` (field 'input') unless ``x`` is a float batch ``(B, 2, image_size, image_size)``."""
        check_input(x, self.cfg.channels, self.cfg.image_size)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Image batch -> the concatenated stream features ``(B, streams * filters[-1] * s * s)``, u stream first."""
        self.check_input(x)
        k = self.cfg.stream_in
        return torch.cat([stream(x[:, i * k:(i + 1) * k]) for i, stream in enumerate(self.streams)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.feature_dropout(self.forward_features(x))
        for layer in self.hidden:
            h = self.dropout(F.relu(layer(h)))
        return self.head(h)


@register_model(OFFApexNetConfig)
def offapexnet(cfg: OFFApexNetConfig) -> OFFApexNet:
    """OFF-ApexNet, the two-stream optical-flow CNN of Gan, Liong et al. (2019), Table 2's baseline."""
    return OFFApexNet.from_config(cfg)
