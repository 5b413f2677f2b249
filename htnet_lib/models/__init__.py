"""Networks (§3, §4.3): a registry with one entry per network, and what is measured or done with any of them.

- `registry`: `register_model`, `ModelConfig` (every network's config extends it), `InputGeometry`, `build`;
- `htnet`: HTNet (§3.2-3.3), `arch: htnet` (the default); `ststnet`: the STSTNet baseline (Table 2), `arch: ststnet`;
  `offapexnet`: the OFF-ApexNet baseline (Table 2), `arch: offapexnet`;
- `costs`: parameters and FLOPs of any network, HTNet's per level; `io`: safetensors weights files of any network;
- `convert`: the authors' weights (vit-pytorch 0.35.8's NesT) to HTNet's names; `analyses`: notebook 02's
  measurements on HTNet.

Adding a network is one file that defines its config, its module and one `@register_model` (docs/extending.md).
"""
from . import htnet, offapexnet, ststnet  # noqa: F401  (each registers its network)
from .costs import count_flops, count_parameters, flops_per_sample, parameter_count
from .htnet import HTNet, HTNetConfig
from .io import load_weights, read_weights_metadata, save_weights
from .offapexnet import OFFApexNet, OFFApexNetConfig
from .registry import (DEFAULT_ARCH, NETWORKS, InputGeometry, ModelConfig, Network, build, build_on_meta, geometry,
                       make_config, model_keys, network, register_model)
from .ststnet import STSTNet, STSTNetConfig

__all__ = [
    "DEFAULT_ARCH", "NETWORKS", "InputGeometry", "ModelConfig", "Network", "build", "build_on_meta", "geometry",
    "make_config", "model_keys", "network", "register_model", "HTNet", "HTNetConfig", "STSTNet", "STSTNetConfig",
    "OFFApexNet", "OFFApexNetConfig",
    "count_flops", "count_parameters", "flops_per_sample", "parameter_count", "load_weights", "read_weights_metadata",
    "save_weights",
]
