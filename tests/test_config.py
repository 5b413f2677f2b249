import pytest

from htnet_lib import config
from htnet_lib._io import HTNetInputError


def write(tmp_path, text):
    p = tmp_path / "p.yaml"
    p.write_text(text)
    return p


def test_defaults_are_the_papers():
    """§4.4's initial settings (block 7x7, dim 256, 3 heads, (2, 2, 8)) and §4.2's lr and epochs; the authors'
    released script builds (2, 2, 10)."""
    p = config.Params()
    assert (p.model.dim, p.model.heads, p.model.block_repeats) == (256, 3, (2, 2, 8))
    assert p.model.block_px == (7, 14, 28)  # Table 4's 7x7 row: bottom, middle, top
    assert (p.train.epochs, p.train.batch_size, p.train.lr) == (800, 256, 5e-5)
    assert config.AUTHORS_SCRIPT.block_repeats == (2, 2, 10)


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
    ("lr: fast\n", "lr"),  # 5e-5, text to YAML 1.1, is read as the number it writes (test_faults)
    ("epochs: ten\n", "epochs"),
    ("block_repeats: [2, 2]\n", "block_repeats"),
    ("regions: sideways\n", "regions"),
    ("patch_size: 5\n", "patch_size"),
    ("lr: .nan\n", "lr"),
    ("lr: .inf\n", "lr"),
    ("dropout: .nan\n", "dropout"),
    ("epochs: true\n", "epochs"),
    ("fixed_epochs: [1, 2.5]\n", "fixed_epochs"),
    ("folds: s01\n", "folds"),
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


def test_non_finite_numbers_are_refused_with_the_reason(tmp_path):
    with pytest.raises(HTNetInputError, match="finite number") as e:
        config.load_params(write(tmp_path, "lr: .inf\n"))
    assert e.value.field == "lr"


def test_set_errors_name_set_not_the_file(tmp_path):
    path = write(tmp_path, "epochs: 30\nfixed_epochs: [15, 30]\n")
    with pytest.raises(HTNetInputError) as e:
        config.load_params(path, config.parse_set(["lr=.nan"]))
    assert e.value.field == "lr" and str(e.value).startswith("--set (over ")
    with pytest.raises(HTNetInputError) as e:  # an override that makes a file value invalid is the override's fault
        config.load_params(path, config.parse_set(["epochs=10"]))
    assert e.value.field == "fixed_epochs" and "--set" in str(e.value)
    with pytest.raises(HTNetInputError, match="KEY=VALUE") as e:
        config.parse_set(["epochs"])
    assert e.value.source == "--set"
    bad_file = write(tmp_path, "epochs: 0\n")
    with pytest.raises(HTNetInputError) as e:  # a bad file is still the file's fault, whatever --set says
        config.load_params(bad_file, config.parse_set(["lr=1.0e-4"]))
    assert e.value.source == str(bad_file)


def test_session_run_settings_apply_to_every_params_file(tmp_path, monkeypatch):
    """`reproduce --set` hands run settings to the notebooks through $HTNET_SET; only run keys are accepted."""
    path = write(tmp_path, "epochs: 3\n")
    monkeypatch.setenv(config.SESSION_ENV, '{"executor": "ray", "workers": 4}')
    p = config.load_params(path)
    assert (p.run.executor, p.run.workers, p.train.epochs) == ("ray", 4, 3)
    assert p.fingerprint() == config.params_from_dict({"epochs": 3}).fingerprint()  # run settings name no run
    monkeypatch.setenv(config.SESSION_ENV, '{"epochs": 5}')
    with pytest.raises(HTNetInputError, match="run settings only") as e:
        config.load_params(path)
    assert e.value.field == "epochs" and e.value.source == "--set"


def test_reproduce_levels_resolve_and_an_unknown_one_is_named(tmp_path):
    """Every documented level (docs/honest.md's `--params honest --only 07` included) is a folder of params; an unknown
    name is one error naming the folder it looked for."""
    from htnet_lib import reproduce

    for level in reproduce.LEVELS:
        assert (reproduce.params_dir(level) / "loso.yaml").is_file()
    assert reproduce.params_dir(str(tmp_path)) == tmp_path.resolve()
    with pytest.raises(HTNetInputError, match="params folder not found"):
        reproduce.params_dir("nope")
