"""Run folders are named by `Params.fingerprint()`: a change to the config schema (a new key, the network registry, a
new section) must not rename the folders of existing params, or finished runs would be trained again and a study's
analysis would not find its runs. These values were recorded before the network registry was introduced."""
from pathlib import Path

import pytest

from htnet_lib import config

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name, expected", [("params/quick/loso.yaml", "11b0a4b71111"),
                                            ("params/cpu/loso.yaml", "11b0a4b71111"),
                                            ("params/honest/loso.yaml", "2388a85466af")])
def test_params_files_keep_their_fingerprints(name, expected):
    assert config.load_params(ROOT / name).fingerprint() == expected


@pytest.mark.parametrize("flat, expected", [
    ({}, "d2fbd2afc1d1"),  # every default
    ({"arch": "ststnet"}, "ae879882b39b"),
    # an STSTNet point of a study whose base sets HTNet's keys (the honest studies' STSTNet candidate)
    ({"arch": "ststnet", "dim": 16, "heads": 2, "block_repeats": [1, 1, 1], "epochs": 3}, "111b0239bb5c"),
])
def test_fingerprints_of_dicts(flat, expected):
    assert config.params_from_dict(flat).fingerprint() == expected


def test_run_settings_and_protocols_do_not_rename_a_run():
    base = config.params_from_dict({})
    assert base.replace(engine="loop", threads=2, runs_dir="elsewhere").fingerprint() == base.fingerprint()


def test_a_train_key_added_later_renames_only_the_runs_that_set_it():
    """`weight_decay` came after runs existed: at its default (0) a fingerprint is what it was; set, it is another run.
    The engines' Adam then decays the weights (coupled L2, as torch.optim.Adam and MEB)."""
    base = config.params_from_dict({})
    assert base.replace(weight_decay=0.0).fingerprint() == base.fingerprint() == "d2fbd2afc1d1"
    assert base.replace(weight_decay=1e-3).fingerprint() != base.fingerprint()
    with pytest.raises(config.HTNetInputError, match="weight_decay"):
        config.params_from_dict({"weight_decay": -1})
