"""Shared fixtures. The real release comes from $HTNET_DATA_DIR (the Makefile points it at ../shared when present).

Without it, data tests are skipped with the reason; with HTNET_REQUIRE_DATA=1 (as `make test` sets) they fail instead,
so CI can never pass by skipping them.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from htnet_lib import data
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
    (root / data.CSV_NAME).write_bytes((data_dir / data.CSV_NAME).read_bytes())
    for sub in (data.FLOW_DIR, data.FACE_DIR):
        (root / sub).mkdir()
        for p in (data_dir / sub).iterdir():
            (root / sub / p.name).symlink_to(p)
    return root
