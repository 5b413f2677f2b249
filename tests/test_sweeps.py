import pytest

from htnet_lib import sweeps
from htnet_lib._io import HTNetInputError
from htnet_lib.config import ModelConfig
from htnet_lib.reproduce import PARAMS_ROOT, LEVELS


def test_block_geometry_follows_the_authors_layout():
    assert sweeps.block_geometry(ModelConfig(num_hierarchies=3, block_repeats=(2, 2, 10))) == {"block_px": 7, "tokens_per_block": 1}
    assert sweeps.block_geometry(ModelConfig(num_hierarchies=2, block_repeats=(2, 10))) == {"block_px": 14, "tokens_per_block": 4}
    assert sweeps.block_geometry(ModelConfig(num_hierarchies=1, block_repeats=(10,))) == {"block_px": 28, "tokens_per_block": 16}


@pytest.mark.parametrize("level", LEVELS)
def test_shipped_sweep_files_are_valid(level):
    base, points = sweeps.load_sweeps(PARAMS_ROOT / level / "ablations.yaml")
    assert set(points) == set(sweeps.SWEEPS)
    assert all(len(v) >= 2 for v in points.values())


def test_bad_sweep_point_names_file_and_point(tmp_path):
    (tmp_path / "loso.yaml").write_text("dim: 16\n")
    f = tmp_path / "ablations.yaml"
    f.write_text("base: loso.yaml\nsweeps:\n  dim:\n    - {dim: 16}\n    - {dims: 32}\n")
    with pytest.raises(HTNetInputError) as e:
        sweeps.load_sweeps(f)
    assert e.value.field == "sweeps.dim[1].dims" and str(f) in str(e.value)
    f.write_text("base: loso.yaml\nsweeps:\n  width: [{dim: 16}]\n")
    with pytest.raises(HTNetInputError, match="unknown sweep"):
        sweeps.load_sweeps(f)


def test_run_sweep_smoke(data_dir, tmp_path):
    (tmp_path / "loso.yaml").write_text(
        f"dim: 8\nheads: 2\nblock_repeats: [1, 1, 1]\nepochs: 2\nfolds: [s01, '006']\nruns_dir: {tmp_path / 'runs'}\n"
        "progress: false\nengine: batched\n")
    f = tmp_path / "ablations.yaml"
    f.write_text("base: loso.yaml\nsweeps:\n  block_size:\n    - {num_hierarchies: 3, block_repeats: [1, 1, 1]}\n"
                 "    - {num_hierarchies: 2, block_repeats: [1, 1]}\n  depth:\n    - {block_repeats: [1, 1, 1]}\n")
    r = sweeps.run_sweep(f, progress=False)
    assert set(r["sweep"]) == {"block_size", "depth"}
    # the equal point of two sweeps is one run
    same = r[(r["block_px"] == 7)]["run"].unique()
    assert len(same) == 1
    assert r.loc[r["block_px"] == 14, "params"].iloc[0] < r.loc[r["block_px"] == 7, "params"].iloc[0]
