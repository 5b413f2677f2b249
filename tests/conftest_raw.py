"""Fixtures shared by the raw-frames tests (tests/test_raw*.py import them from here).

The real data: the authors' release, from $HTNET_DATA_DIR, else ../shared/data/htnet-release beside the project (as
on the CI machine), else ./data/htnet-release. Missing: the tests skip with how to get it, unless HTNET_REQUIRE_DATA=1
(`make test`), where a missing release is a failure.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
CANDIDATES = [REPO.parent / "shared" / "data" / "htnet-release", REPO / "data" / "htnet-release"]
CSV = "combined_3_class2_for_optical_flow.csv"


def find_release() -> Path | None:
    """$HTNET_DATA_DIR when set (and then only it: an explicit setting that is wrong should be seen), else the first
    default location holding the release."""
    env = os.environ.get("HTNET_DATA_DIR")
    for p in [Path(env)] if env else CANDIDATES:
        if (p / CSV).is_file():
            return p
    return None


@pytest.fixture(scope="session")
def release_dir() -> Path:
    p = find_release()
    if p is None:
        where = os.environ.get("HTNET_DATA_DIR") or " or ".join(str(c) for c in CANDIDATES)
        msg = (f"the HTNet release was not found at {where}: set HTNET_DATA_DIR to a folder holding "
               f"{CSV} and datasets/ (or run `python -m htnet_lib fetch`)")
        if os.environ.get("HTNET_REQUIRE_DATA") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return p


@pytest.fixture(scope="session")
def real_faces(release_dir: Path) -> list[np.ndarray]:
    """Six of the release's real apex faces, grey, 112x112 (spread over the three databases by name order)."""
    files = sorted((release_dir / "datasets" / "combined_datasets_whole").glob("*.jpg"))
    picks = files[:: max(1, len(files) // 6)][:6]
    return [cv2.resize(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE), (112, 112), interpolation=cv2.INTER_AREA)
            for f in picks]


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
