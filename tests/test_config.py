import pytest

from htnet_lib import config
from htnet_lib._io import HTNetInputError


def write(tmp_path, text):
    p = tmp_path / "p.yaml"
    p.write_text(text)
    return p


def test_defaults_are_the_papers():
    p = config.Params()
    assert (p.model.dim, p.model.heads, p.model.block_repeats) == (256, 3, (2, 2, 10))
    assert (p.train.epochs, p.train.batch_size, p.train.lr) == (800, 256, 5e-5)


def test_flat_yaml_round_trip(tmp_path):
    p = config.load_params(write(tmp_path, "dim: 64\nblock_repeats: [2, 2, 2]\nepochs: 5\nlr: 1.0e-4\nengine: loop\n"))
    assert p.model.dim == 64 and p.model.block_repeats == (2, 2, 2)
    assert p.train.epochs == 5 and p.train.lr == 1e-4 and p.run.engine == "loop"
    assert config.params_from_dict(p.to_flat()) == p
    assert p.fingerprint() != p.replace(seed=1).fingerprint()
    assert p.fingerprint() == p.replace(engine="batched").fingerprint()  # how it runs does not name the run


@pytest.mark.parametrize("text, field", [
    ("dims: 64\n", "dims"),
    ("epochs: 0\n", "epochs"),
    ("batch_size: -1\n", "batch_size"),
    ("lr: 5e-5\n", "lr"),
    ("epochs: ten\n", "epochs"),
    ("block_repeats: [2, 2]\n", "block_repeats"),
    ("regions: sideways\n", "regions"),
    ("patch_size: 5\n", "patch_size"),
])
def test_bad_params_name_file_and_key(tmp_path, text, field):
    path = write(tmp_path, text)
    with pytest.raises(HTNetInputError) as e:
        config.load_params(path)
    assert e.value.field == field and str(path) in str(e.value)


def test_not_yaml(tmp_path):
    with pytest.raises(HTNetInputError, match="not valid YAML"):
        config.load_params(write(tmp_path, "dim: [1, 2\n"))
    with pytest.raises(HTNetInputError, match="mapping"):
        config.load_params(write(tmp_path, "- 1\n- 2\n"))
