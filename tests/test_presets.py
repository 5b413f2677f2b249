"""`python -m htnet_lib models`: every registered network with its keys and defaults, and the named presets, each a
params file (or a study point) of the project."""
from __future__ import annotations

import pytest

from htnet_lib import presets
from htnet_lib._io import HTNetInputError
from htnet_lib.__main__ import main
from htnet_lib.config import load_params
from htnet_lib.models import registry
from htnet_lib.reproduce import params_root


def test_each_preset_is_its_params_file():
    assert presets.preset("htnet-paper").model == load_params(params_root() / "paper" / "loso.yaml").model
    assert presets.preset("ststnet-authors").model.arch == "ststnet"
    assert presets.preset("ststnet-authors").train.epochs == 800
    assert presets.preset("offapexnet-meb").model.streams == 1
    with pytest.raises(HTNetInputError, match="unknown preset 'nope'") as e:
        presets.preset("nope")
    assert e.value.field == "preset"


def test_models_lists_every_network_with_its_keys_and_every_preset(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for arch, net in registry.NETWORKS.items():
        assert f"{arch}: {net.summary}" in out
        assert all(f"  {k} = " in out for k in net.config.model_fields if k != "arch")
    assert all(f"  {name} (" in out for name in presets.PRESETS)
    assert "htnet-quick (htnet)" in out and "dim=16" in out
