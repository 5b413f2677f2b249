"""The one registry of the release and its datasets (§4.1, Table 1).

Everything that knows a file name of the authors' release, a label name or a dataset reads it from here: `data`
(loading), `raw.build` and `raw.adapters` (writing a release from raw frames), `metrics` (the scopes UF1/UAR are
reported for), `paper_values` and every figure (dataset names and order).

**The layout** (github.com/wangzhifengharrison/HTNet, kept exactly, so a plain clone of their repository is a release):

- `combined_3_class2_for_optical_flow.csv`: one row per sample (`RELEASE_COLUMNS`);
- `datasets/STSNet_whole_norm_u_v_os/{sub}_{filename_o} .png`: the 28x28x3 flow maps (note the space before `.png`,
  `flow_name`);
- `datasets/combined_datasets_whole/{imagename}`: the 224x224 apex faces.

**The datasets**, in the paper's order (Table 2's columns): each has a key (the CSV's `dataset` value), a display name
and whether it belongs to the composite (the "Full" scope of Table 2). Adding a dataset is one entry in `DATASETS`
(or, from code, `register(Dataset(...))`):

    Dataset("mmew", "MMEW", composite=False)

after which a release folder whose CSV holds `mmew` rows loads, trains and is scored as its own scope in every table
and figure (their scopes come from the data: `scopes_of`). To build such a folder from raw frames,
`htnet_lib.raw.adapters` takes one `Adapter` record for its annotation format (`register_adapter`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from ._io import HTNetInputError

# ---------------------------------------------------------------------------------------------------- the layout
CSV_NAME = "combined_3_class2_for_optical_flow.csv"
FLOW_DIR = "datasets/STSNet_whole_norm_u_v_os"
FACE_DIR = "datasets/combined_datasets_whole"
PREDICTIONS_NAME = "authors_predictions.json"  # the authors' stored predictions, when a copy has them (not upstream)
RELEASE_COLUMNS: tuple[str, ...] = ("dataset", "sub", "filename_o", "label", "apex", "imagename", "sub_filename")
REQUIRED_COLUMNS: tuple[str, ...] = ("dataset", "sub", "filename_o", "label", "imagename")
MAP_SIZE = 28
FLOW_SHAPE = (MAP_SIZE, MAP_SIZE, 3)  # (strain, v, u) as cv2.imread returns them (see htnet_lib.data)
FACE_SHAPE = (224, 224, 3)
HORIZONTAL_FLOW_CHANNEL = 2  # u, in OpenCV's (strain, v, u) order: anti-symmetric under a left-right mirror (data.py)
LABELS: dict[int, str] = {0: "negative", 1: "positive", 2: "surprise"}  # the composite's three classes (§4.1)
CLASSES: tuple[str, ...] = tuple(LABELS.values())


def flow_name(sub: str, filename_o: str) -> str:
    """The release's flow-map file name (with the upstream space before `.png`)."""
    return f"{sub}_{filename_o} .png"


# -------------------------------------------------------------------------------------------------- the datasets
@dataclass(frozen=True)
class Dataset:
    """One database of the release: `key` as in the CSV, `name` as the paper prints it, composite membership."""

    key: str
    name: str
    composite: bool


DATASETS: tuple[Dataset, ...] = (  # the paper's order (Table 2)
    Dataset("smic", "SMIC-HS", composite=True),
    Dataset("casme2", "CASME II", composite=True),
    Dataset("samm", "SAMM", composite=True),
    Dataset("casme3", "CAS(ME)^3", composite=False),  # Table 3; only from raw frames (htnet_lib.raw)
)
FULL = "Full"  # the composite scope of Table 2

KEYS: tuple[str, ...] = tuple(d.key for d in DATASETS)
COMPOSITE: tuple[str, ...] = tuple(d.key for d in DATASETS if d.composite)
NAMES: dict[str, str] = {d.key: d.name for d in DATASETS}
_BY_NAME: dict[str, str] = {d.name: d.key for d in DATASETS}


def _derive() -> None:
    global KEYS, COMPOSITE, NAMES, _BY_NAME
    KEYS = tuple(d.key for d in DATASETS)
    COMPOSITE = tuple(d.key for d in DATASETS if d.composite)
    NAMES = {d.key: d.name for d in DATASETS}
    _BY_NAME = {d.name: d.key for d in DATASETS}


def register(entry: Dataset) -> Dataset:
    """Add a dataset to the registry from code (the same as an entry in `DATASETS`, placed last); a key or display
    name that exists is an error. Read the registry through this module's names (`release.KEYS`), not copies."""
    global DATASETS
    if entry.key in KEYS or entry.name in _BY_NAME or entry.name == FULL:
        raise HTNetInputError(None, "dataset", f"dataset {entry.key!r} ({entry.name!r}) exists already")
    DATASETS = (*DATASETS, entry)
    _derive()
    return entry


def unregister(key: str) -> None:
    """Remove a dataset added by `register` (tests, notebook experiments)."""
    global DATASETS
    DATASETS = tuple(d for d in DATASETS if d.key != key)
    _derive()


def dataset(key: str) -> Dataset:
    """The registry entry of `key`; an unknown key raises naming the known ones."""
    for d in DATASETS:
        if d.key == key:
            return d
    raise HTNetInputError(None, "dataset", f"unknown dataset {key!r} (known: {', '.join(KEYS)})")


def name_of(key: str) -> str:
    """Display name of a dataset key ('casme2' -> 'CASME II'); unknown keys come back unchanged."""
    return NAMES.get(key, key)


def key_of(name: str) -> str:
    """Dataset key of a display name ('CASME II' -> 'casme2'); raises for an unknown name."""
    if name in _BY_NAME:
        return _BY_NAME[name]
    raise HTNetInputError(None, "scope", f"unknown dataset name {name!r} (known: {', '.join(_BY_NAME)})")


def scopes(keys: Iterable[str] = COMPOSITE) -> list[str]:
    """The scopes UF1/UAR are reported for, in order: Full (when any composite dataset is present), then each dataset's
    display name. `keys` are the datasets present (default: the composite's)."""
    keys = set(keys)
    present = [d for d in DATASETS if d.key in keys]
    return ([FULL] if any(d.composite for d in present) else []) + [d.name for d in present]


def scopes_of(table) -> list[str]:
    """The scopes of a table, in report order: from its `dataset` column (predictions: `scopes` of the datasets it
    holds) or its `scope` column (scores: the names it holds, Full first, then the registry's order). So a dataset
    outside the composite gets its own rows wherever its predictions go."""
    if "dataset" in getattr(table, "columns", ()):
        return scopes(table["dataset"].astype(str).unique())
    names = list(dict.fromkeys(table["scope"].astype(str)))
    order = [FULL, *(d.name for d in DATASETS)]
    return [s for s in order if s in names] + [s for s in names if s not in order and s]
