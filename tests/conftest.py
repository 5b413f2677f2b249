"""Shared fixtures. The real release comes from $HTNET_DATA_DIR (the Makefile points it at ../shared when present).

Without it, data tests are skipped with the reason; with HTNET_REQUIRE_DATA=1 (as `make test` sets) they fail instead,
so CI can never pass by skipping them.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from htnet_lib import data, release
from htnet_lib._io import HTNetInputError


@pytest.fixture(scope="session")
def data_dir() -> Path:
    try:
        return data.resolve_data_dir()
    except HTNetInputError as e:
        if os.environ.get("HTNET_REQUIRE_DATA") == "1":
            pytest.fail(f"HTNET_REQUIRE_DATA=1 but the release is missing: {e}")
        pytest.skip(f"real data not available: {e}")


@pytest.fixture(scope="session")
def samples(data_dir):
    return data.load_samples(data_dir)


@pytest.fixture(scope="session")
def flow_maps(samples):
    return data.load_flow_maps(samples)


@pytest.fixture()
def release_copy(data_dir, tmp_path) -> Path:
    """A writable copy of the release's CSV with symlinked image folders, for corrupting in tests."""
    root = tmp_path / "release"
    (root / "datasets").mkdir(parents=True)
    (root / release.CSV_NAME).write_bytes((data_dir / release.CSV_NAME).read_bytes())
    for sub in (release.FLOW_DIR, release.FACE_DIR):
        (root / sub).mkdir()
        for p in (data_dir / sub).iterdir():
            (root / sub / p.name).symlink_to(p)
    return root


@pytest.fixture(scope="session")
def release_dir(data_dir) -> Path:
    """The raw-frames tests' name for the release folder."""
    return data_dir


@pytest.fixture(scope="session")
def real_faces(release_dir: Path) -> list[np.ndarray]:
    """Six of the release's real apex faces, grey, 112x112 (spread over the three databases by name order)."""
    from htnet_lib.raw.stats import release_faces

    return release_faces(release_dir)


@pytest.fixture(scope="session")
def synthetic_db(release_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """Factory: a small generated raw database per (database, options), made once per session."""
    from htnet_lib.raw.synthetic import make_raw_database

    cache: dict = {}

    def make(database: str, **kw):
        key = (database, tuple(sorted(kw.items())))
        if key not in cache:
            opts = dict(n_subjects=2, per_subject=3, frame_size=(128, 112), face_px=80, n_frames=7, amplitude=1.5,
                        noise=1.0, faults=True, seed=3)
            opts.update(kw)
            root = tmp_path_factory.mktemp(f"raw_{database}")
            cache[key] = make_raw_database(database, root, release_dir, **opts)
        return cache[key]

    return make
