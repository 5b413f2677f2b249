"""The registry of networks: one entry per network (`arch`), each its config, its builder and its input geometry.

A network is one file and one registration (`register_model`, in the style of timm's ``@register_model``):

    class OffApexNetConfig(ModelConfig):
        arch: Literal["offapexnet"] = "offapexnet"
        channels: Positive = 2
        hidden: Positive = 1024

        def geometry(self) -> InputGeometry:  # u and v of the (strain, v, u) maps, the whole map only
            return InputGeometry(self.image_size, self.channels, map_channels=(2, 1), regions=("whole",))

    @register_model(OffApexNetConfig)
    def offapexnet(cfg: OffApexNetConfig) -> nn.Module:
        return OffApexNet(cfg)

After that, `arch: offapexnet` in a params file selects it, and its config's keys are flat params keys validated by
its config class (`config.params_from_dict`); engines, sweeps, figures, weights files, cost counting and the model's
inputs (`regions.model_inputs`) read the network through its entry, never through HTNet's geometry:

- `ModelConfig.geometry()`: what the network reads (input side, channels, which channels of the release's maps, and
  whether it takes the four facial regions tiled or only the whole map);
- `ModelConfig.describe()`: a few columns that tell points of a sweep apart in tables (HTNet: block sizes in px);
- `ModelConfig.activation_bytes(batch)`: an estimate of training activations, when the generic one is too rough.

A network built by `build` carries its config as ``cfg`` (weights files store it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from pydantic import StrictStr
from torch import nn

from .._io import HTNetInputError
from ..schema import Positive, Section, check_field

DEFAULT_ARCH = "htnet"
REGIONS = ("official", "corrected", "whole")  # the `regions` settings of `regions.model_inputs`
MAP_CHANNELS = ("strain", "v", "u")  # the release's maps, in OpenCV's channel order (`htnet_lib.data`)


@dataclass(frozen=True)
class InputGeometry:
    """What a network reads: ``(channels, size, size)`` float inputs made from the release's 28x28 maps.

    `map_channels`: the maps' channels it reads, in order (0 strain, 1 v, 2 u: `MAP_CHANNELS`); `regions`: the
    `regions` settings it accepts (`official`/`corrected`: the four facial regions tiled, §3.1; `whole`: the map
    itself). The maps are resized to `size` when it is not 28 (`regions.to_tensor`)."""

    size: int
    channels: int
    map_channels: tuple[int, ...] = (0, 1, 2)
    regions: tuple[str, ...] = REGIONS

    def __post_init__(self) -> None:
        if len(self.map_channels) != self.channels or not set(self.map_channels) <= set(range(len(MAP_CHANNELS))):
            raise HTNetInputError(None, "channels", f"{self.channels} input channel(s) cannot be read from map "
                                                    f"channels {self.map_channels} (0 strain, 1 v, 2 u)")
        unknown = set(self.regions) - set(REGIONS)
        if unknown or not self.regions:
            raise HTNetInputError(None, "regions", f"accepted regions must be among {REGIONS}, got {self.regions}")

    @property
    def shape(self) -> tuple[int, int, int]:
        """One sample's ``(channels, size, size)``."""
        return (self.channels, self.size, self.size)

    def check(self, regions: str) -> None:
        """Raise naming the `regions` key unless the network takes inputs made that way."""
        if regions not in self.regions:
            raise HTNetInputError(None, "regions", f"this network reads {' or '.join(self.regions)} inputs, not "
                                                   f"{regions!r}")


class ModelConfig(Section):
    """The config every network's config extends: its `arch` (the registry key) and what any network here has, the
    number of classes and a square input of `channels` x `image_size` x `image_size`. A network adds its own keys;
    they are flat params keys (`config.params_from_dict`)."""

    arch: StrictStr  # each network's config declares its own: arch: Literal["mynet"] = "mynet"
    image_size: Positive = 28
    num_classes: Positive = 3
    channels: Positive = 3

    def geometry(self) -> InputGeometry:
        """The input the network reads (default: all three map channels, any regions setting, `image_size`)."""
        return InputGeometry(self.image_size, self.channels)

    def describe(self) -> dict[str, Any]:
        """Columns that tell this network's configurations apart in sweep tables (none by default)."""
        return {}

    def activation_bytes(self, batch_size: int) -> int | None:
        """Training activations of a batch, in bytes, when the network knows better than the generic estimate
        (`loso.engines.bytes_per_fold`); None: use the generic one."""
        return None


@dataclass(frozen=True)
class Network:
    """One registry entry: the network's `arch`, its config class and its builder."""

    arch: str
    config: type[ModelConfig]
    builder: Callable[[Any], nn.Module]
    summary: str = ""
    hashed_always: tuple[str, ...] = ()  # config keys every run folder's name hashes, set or not (`fingerprint_base`)

    def build(self, cfg: ModelConfig) -> nn.Module:
        if type(cfg) is not self.config:
            raise TypeError(f"{self.arch} needs a {self.config.__name__}, got {type(cfg).__name__}")
        net = self.builder(cfg)
        if getattr(net, "cfg", None) is not cfg:
            net.cfg = cfg  # every built network carries its config (weights files store it)
        return net

    def geometry(self, cfg: ModelConfig) -> InputGeometry:
        return cfg.geometry()


NETWORKS: dict[str, Network] = {}


def register_model(config: type[ModelConfig], summary: str = "",
                   hashed_always: tuple[str, ...] = ()) -> Callable[[Callable], Callable]:
    """Decorator: register the builder it wraps as the network `config.arch` (a `Literal` default of the config
    class). Registering an arch again replaces it. `hashed_always`: only for the first network (HTNet), whose keys
    every run folder's name hashed before there was a registry (`fingerprint_base`); a new network leaves it empty."""
    if not (isinstance(config, type) and issubclass(config, ModelConfig)):
        raise TypeError(f"register_model needs a ModelConfig subclass, got {config!r}")
    arch = config.model_fields["arch"].default
    if "arch" not in vars(config).get("__annotations__", {}) or not isinstance(arch, str):
        raise TypeError(f"{config.__name__} must declare its own arch, e.g. arch: Literal['mynet'] = 'mynet'")

    def add(builder: Callable) -> Callable:
        doc = (builder.__doc__ or config.__doc__ or "").strip().splitlines()
        NETWORKS[arch] = Network(arch, config, builder, summary or (doc[0] if doc else arch), tuple(hashed_always))
        return builder
    return add


def fingerprint_base() -> dict[str, Any]:
    """The model keys, at their defaults, that every run folder's name hashes whatever its network
    (`config.Params.fingerprint`): the params schema before the registry, the `arch` and the config keys of the entry
    registered with `hashed_always`. Any other key enters a name only when set off its default, so the folders of
    runs trained before the registry keep their names."""
    base = [n for n in NETWORKS.values() if n.hashed_always]
    if len(base) != 1:
        raise AssertionError(f"one network must be registered with hashed_always, found {len(base)}")
    return {"arch": base[0].arch, **{k: base[0].config.model_fields[k].default for k in base[0].hashed_always}}


def network(arch: str) -> Network:
    """The registry entry of `arch`; an unknown one raises naming the `arch` key and the known networks."""
    if arch not in NETWORKS:
        raise HTNetInputError(None, "arch", f"unknown network {arch!r} (known: {', '.join(NETWORKS)})")
    return NETWORKS[arch]


def network_name(cfg: ModelConfig) -> str:
    """The network's name in tables and figures: its config class's name without `Config` (HTNet, STSTNet, ...)."""
    return network(cfg.arch).config.__name__.removesuffix("Config")


def build(cfg: ModelConfig) -> nn.Module:
    """The network `cfg` describes (PyTorch default initialisation from the current RNG state)."""
    return network(cfg.arch).build(cfg)


def build_on_meta(cfg: ModelConfig) -> nn.Module:
    """The network on the meta device: its structure and sizes, no memory, no time."""
    with torch.device("meta"):
        return build(cfg)


def forward_on_meta(model: nn.Module, shape: tuple[int, ...], batch: int = 1, train: bool = True) -> torch.Tensor:
    """`model`'s forward (train or eval mode) on a zero batch of `batch` samples of `shape`, through `functional_call`
    on meta-device stand-ins for its parameters and buffers: no memory, no time. The model's own tensors and each
    module's mode are left as they were (the model may itself live on the meta device)."""
    state = {k: torch.empty_like(v, device="meta").requires_grad_(v.requires_grad)
             for k, v in [*model.named_parameters(), *model.named_buffers()]}
    modes = [(m, m.training) for m in model.modules()]
    model.train(train)
    try:
        return torch.func.functional_call(model, state, (torch.zeros(batch, *shape, device="meta"),))
    finally:
        for m, training in modes:
            m.training = training


def geometry(cfg: ModelConfig) -> InputGeometry:
    """What the network of `cfg` reads."""
    return network(cfg.arch).geometry(cfg)


def model_keys() -> dict[str, type[ModelConfig]]:
    """Every registered network's config keys, each with the first config class that declares it."""
    out: dict[str, type[ModelConfig]] = {}
    for net in NETWORKS.values():
        for key in net.config.model_fields:
            out.setdefault(key, net.config)
    return out


def default_of(key: str, cls: type[ModelConfig] | None = None) -> Any:
    """The default of a model key in `cls` when it has the key, else in the first network that declares it."""
    owner = cls if cls is not None and key in cls.model_fields else model_keys()[key]
    return owner.model_fields[key].get_default(call_default_factory=True)


def make_config(flat: Mapping[str, Any]) -> tuple[ModelConfig, dict[str, Any]]:
    """A network's config from flat model keys: the chosen `arch`'s keys validated by its config class, and the keys
    of other networks (a study's STSTNet point inherits HTNet's `dim` from its base) each validated alone and returned
    apart: they do not change the network. Errors name the key."""
    arch = flat.get("arch", DEFAULT_ARCH)
    if not isinstance(arch, str):
        raise HTNetInputError(None, "arch", f"expected a network name, got {arch!r}")
    cls = network(arch).config
    owners = model_keys()
    others = {}
    for key, value in flat.items():
        if key not in cls.model_fields:
            if key not in owners:
                raise HTNetInputError(None, key, f"not a key of any network (known: {', '.join(sorted(owners))})")
            others[key] = check_field(owners[key], key, value)
    return cls(**{k: v for k, v in flat.items() if k in cls.model_fields}), others


def check_input(x: torch.Tensor, channels: int, size: int) -> None:
    """Raise `HTNetInputError` (field 'input') unless ``x`` is a float batch ``(B, channels, size, size)``."""
    if not isinstance(x, torch.Tensor):
        raise HTNetInputError(None, "input", f"expected a torch.Tensor of shape (B, {channels}, {size}, {size}), got "
                                             f"{type(x).__name__}")
    if x.dim() != 4 or tuple(x.shape[1:]) != (channels, size, size):
        raise HTNetInputError(None, "input", f"expected shape (B, {channels}, {size}, {size}) (batch, channels, height, "
                                             f"width), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise HTNetInputError(None, "input", f"expected a floating-point tensor, got {x.dtype}")


def check_contract(cfg: ModelConfig, batch: int = 2) -> None:
    """What every network must meet (docs/extending.md, "A network"), checked on `cfg`'s network; raises
    `HTNetInputError` naming the `arch` and the broken term:

    1. its config is the registered class of its `arch`, and `build` returns a module carrying that config as `cfg`;
    2. on a float batch of its geometry, ``(B, *geometry(cfg).shape)``, it returns float logits ``(B, num_classes)``;
    3. on any other shape, or an integer tensor, it raises `HTNetInputError` naming the field 'input', the shape it
       expects and the one it got (`check_input` does it) before any layer runs."""
    arch = cfg.arch

    def broken(term: str) -> HTNetInputError:
        return HTNetInputError(None, "arch", f"network {arch!r} breaks the contract: {term}")

    if type(cfg) is not network(arch).config:
        raise broken(f"its config is a {type(cfg).__name__}, not the registered {network(arch).config.__name__}")
    net = build(cfg)
    if not isinstance(net, nn.Module) or getattr(net, "cfg", None) is not cfg:
        raise broken("build must return an nn.Module carrying its config as `cfg`")
    c, h, w = geometry(cfg).shape
    with torch.no_grad():
        out = net.eval()(torch.zeros(batch, c, h, w))
    if not (isinstance(out, torch.Tensor) and out.is_floating_point() and tuple(out.shape) == (batch, cfg.num_classes)):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise broken(f"on a (B, {c}, {h}, {w}) float batch it must return float logits (B, {cfg.num_classes}), "
                     f"returned {shape}")
    for wrong in [torch.zeros(batch, c + 1, h, w), torch.zeros(batch, c, h + 4, w + 4), torch.zeros(c, h, w),
                  torch.zeros(batch, h, w, c), torch.zeros(batch, c, h, w, dtype=torch.uint8)]:
        try:
            with torch.no_grad():
                net(wrong)
        except HTNetInputError as e:
            named = e.field == "input" and (("floating-point" in str(e)) if not wrong.is_floating_point() else
                                            f"(B, {c}, {h}, {w})" in str(e) and str(tuple(wrong.shape)) in str(e))
            if named:
                continue
            raise broken(f"on input {tuple(wrong.shape)} {wrong.dtype} it raised {e}, which does not name the "
                         f"field 'input', the shape expected and the one given") from None
        except Exception as e:  # noqa: BLE001 -- any other failure is the broken term itself
            raise broken(f"input {tuple(wrong.shape)} {wrong.dtype} must raise HTNetInputError (field 'input'; "
                         f"`check_input` in forward), raised {type(e).__name__}: {e}") from None
        raise broken(f"input {tuple(wrong.shape)} {wrong.dtype} was accepted: call `check_input` first in forward")
