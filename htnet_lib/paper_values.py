"""The numbers the HTNet paper reports: the project's one source of truth (notebooks and tests read them from here).

Paper: Z. Wang, K. Zhang, W. Luo, R. Sankaranarayana, "HTNet for micro-expression recognition",
Neurocomputing 602 (2024) 128196; arXiv 2307.14637.

Rule: a number is here only if it was read in a named source. The comment above each table and the `PROVENANCE`
entry for it say which source, and whether the paper's own text was read.

The paper's full text could not be read. The stored copies of arXiv 2307.14637 that could be reached
(https://api-inference.pages.dev/papers/2307.14637.md, https://arxiv.org/abs/2307.14637v1, https://hyper.ai/en/papers/2307.14637)
give only the title, authors and abstract. The authors' README (github.com/wangzhifengharrison/HTNet, README.md) shows its
results table and figures as images (images/datasets.png, state_of_art.png, effects_trasformer.png), with no numbers in the
text. So:
  * Table 1 holds counts taken from the authors' released label file. The authors' README says this file is the paper's
    composite dataset, but the paper's Table 1 itself was not read.
  * Table 2 holds only HTNet's own row, read in two independent secondary sources that quote the paper. They agree.
  * Tables 3, 4, 5 and Figures 5, 6, 7 are empty: no source giving their numbers was found. `MISSING` lists what is absent.
    Their accessors return empty frames with the right columns, so callers can treat "no paper value" uniformly.
  * `TRAINING` holds the settings hard-coded in the authors' released training script. §4.2 of the paper was not read.
Dataset names are exactly DATASETS: 'Full' (the composite), 'SMIC-HS', 'CASME II', 'SAMM'.
"""
from __future__ import annotations

from types import MappingProxyType

import pandas as pd

DATASETS: tuple[str, ...] = ("Full", "SMIC-HS", "CASME II", "SAMM")
CLASSES: tuple[str, ...] = ("negative", "positive", "surprise")

# ---------------------------------------------------------------------------------------------------------------------
# Sources (ids used below)
# ---------------------------------------------------------------------------------------------------------------------
SOURCES = MappingProxyType({
    "paper": "Wang et al., HTNet for micro-expression recognition, Neurocomputing 602:128196 (2024), arXiv 2307.14637 "
             "(full text NOT read: only title/abstract reachable)",
    "authors_labels": "github.com/wangzhifengharrison/HTNet, combined_3_class2_for_optical_flow.csv (commit 1ea5293f); "
                      "same 442 (subject, label) pairs as the truth lists in confusion_matrix.py there",
    "authors_code": "github.com/wangzhifengharrison/HTNet, main_HTNet.py (commit 1ea5293f), function main()",
    "hyphtnet_readme": "github.com/Arksuzuran/HypHTNet, README.md, section 'Experiment' (table 'UF1/UAR': row HTNet, "
                       "columns Full, SMIC, CASME II, SAMM)",
    "workplace_notes": "this project's shared field notes (NOTES.md, 'The authors' model'): facts checked by the "
                       "workplace, including the paper's Table 5 figure of 149.57M parameters for (2, 2, 2)",
    "dface_note": "GitHub paper note on D-FACE ('From Pixels to Semantics', ICLR 2026, openreview.net/forum?id=yJFVKlratr), "
                  "table 'CDE (Composite Dataset, 3-class, MEGC2019)', row 'HTNet (2024)'; located with the code index's "
                  "find_string (file id 61740927222; an English and a Chinese copy carry the same table)",
})

# ---------------------------------------------------------------------------------------------------------------------
# Table 1: subjects and samples per emotion class (composite MEGC2019 3-class protocol)
# Source: authors_labels. The counts are of the authors' released label file (dataset, sub, label columns). They are the
# same in the truth lists of the authors' confusion_matrix.py. The paper's printed Table 1 was not read.
# ---------------------------------------------------------------------------------------------------------------------
TABLE1 = MappingProxyType({
    #             subjects negative positive surprise samples
    "SMIC-HS":  (16, 70, 51, 43, 164),
    "CASME II": (24, 88, 32, 25, 145),
    "SAMM":     (28, 92, 26, 15, 133),
    "Full":     (68, 250, 109, 83, 442),
})

# ---------------------------------------------------------------------------------------------------------------------
# Table 2: UF1 / UAR under LOSO on the composite (Full) and its three parts, HTNet's row only.
# Each reading is (source, method, dataset, metric, value), exactly as printed there. Sources are hyphtnet_readme (all
# eight numbers, "SMIC" column = SMIC-HS) and dface_note (Full UF1 and UAR; per-dataset UF1 only). Where both give a
# number they agree; tests check that. The compared methods of the paper's Table 2 (handcrafted and deep baselines)
# were not found in any source that attributes them to this paper, so they are left out.
# ---------------------------------------------------------------------------------------------------------------------
TABLE2_READINGS: tuple[tuple[str, str, str, str, float], ...] = (
    ("hyphtnet_readme", "HTNet", "Full", "UF1", 0.8603),
    ("hyphtnet_readme", "HTNet", "Full", "UAR", 0.8475),
    ("hyphtnet_readme", "HTNet", "SMIC-HS", "UF1", 0.8049),
    ("hyphtnet_readme", "HTNet", "SMIC-HS", "UAR", 0.7905),
    ("hyphtnet_readme", "HTNet", "CASME II", "UF1", 0.9532),
    ("hyphtnet_readme", "HTNet", "CASME II", "UAR", 0.9516),
    ("hyphtnet_readme", "HTNet", "SAMM", "UF1", 0.8131),
    ("hyphtnet_readme", "HTNet", "SAMM", "UAR", 0.8124),
    ("dface_note", "HTNet", "Full", "UF1", 0.8603),
    ("dface_note", "HTNet", "Full", "UAR", 0.8475),
    ("dface_note", "HTNet", "CASME II", "UF1", 0.9532),
    ("dface_note", "HTNet", "SMIC-HS", "UF1", 0.8049),
    ("dface_note", "HTNet", "SAMM", "UF1", 0.8131),
)

# ---------------------------------------------------------------------------------------------------------------------
# Table 3 (CAS(ME)^3), Table 4 (block size), Table 5 (depth: block_repeats, parameters, training time),
# Fig. 5 (hidden dimension), Fig. 6 (number of heads), Fig. 7 (confusion matrices): no readable source found.
# Rows, when a source is found, go in as tuples in the column order of the accessor below, with the source in the comment.
# ---------------------------------------------------------------------------------------------------------------------
TABLE3: tuple[tuple[str, float, float], ...] = ()                                    # (method, UF1, UAR)
TABLE4: tuple[tuple[str, str, float, float], ...] = ()                               # (block_size, dataset, UF1, UAR)
TABLE5: tuple[tuple[tuple[int, ...], float, float, str, float, float], ...] = ()     # (block_repeats, params_M, train_time_s, dataset, UF1, UAR)
FIG5: tuple[tuple[int, str, float, float], ...] = ()                                 # (hidden_dim, dataset, UF1, UAR)
FIG6: tuple[tuple[int, str, float, float], ...] = ()                                 # (heads, dataset, UF1, UAR)
FIG7: MappingProxyType = MappingProxyType({})                                        # dataset -> 3x3 rows (true) x cols (pred)

# Table 5's parameter column, the one figure of it known here. Source: workplace_notes. It is not a parameter count:
# the code's (2, 2, 2) model has 38,968,838 parameters, whose float32 size is 148.66 MB; torchsummary 1.5.1 on the
# authors' Model.py prints "Estimated Total Size (MB): 149.57" (148.58 parameters + 0.98 forward/backward + 0.01 input),
# the number the table shows as "149.57M" parameters.
TABLE5_REPORTED_PARAMS_M = MappingProxyType({(2, 2, 2): 149.57})

# A Table 4/5 row may be marked as the configuration of Table 2's HTNet row. Add its key here only if the paper says so.
# tests then require its numbers to equal Table 2's. Keys: ("table4", block_size) or ("table5", block_repeats).
SAME_AS_TABLE2: frozenset = frozenset()

# ---------------------------------------------------------------------------------------------------------------------
# Training and model settings. Source: authors_code (main_HTNet.py, main() and the HTNet(...) call in it). §4.2 of the
# paper was not read, so these are the released code's settings, not checked against the paper's text.
# ---------------------------------------------------------------------------------------------------------------------
TRAINING = MappingProxyType({
    "optimizer": "Adam",             # torch.optim.Adam(model.parameters(), lr=learning_rate), default betas/eps
    "lr": 5.0e-5,                    # learning_rate = 0.00005
    "epochs": 800,                   # epochs = 800
    "batch_size": 256,               # batch_size = 256
    "loss": "CrossEntropyLoss",      # nn.CrossEntropyLoss()
    "shuffle": False,                # DataLoader(dataset_train, batch_size=batch_size): no shuffle
    "protocol": "LOSO",              # one fold per subject folder
    "image_size": 28,                # HTNet(image_size=28, ...): 2x2 mosaic of four 14x14 regions
    "region_size": 14,               # crops of +-7 px around MTCNN landmarks on the 28x28 flow map
    "patch_size": 7,
    "dim": 256,                      # finest level; doubles per level in Model.py
    "heads": 3,                      # finest level; doubles per level in Model.py
    "num_hierarchies": 3,
    "block_repeats": (2, 2, 10),     # inline comment in the code: "#(2, 2, 8),------"
    "num_classes": 3,
})

# ---------------------------------------------------------------------------------------------------------------------
# Provenance per table, and what is missing
# ---------------------------------------------------------------------------------------------------------------------
PROVENANCE = MappingProxyType({
    "TABLE1": {"sources": ("authors_labels",), "paper_text_read": False},
    "TABLE2": {"sources": ("hyphtnet_readme", "dface_note"), "paper_text_read": False},
    "TABLE3": {"sources": (), "paper_text_read": False},
    "TABLE4": {"sources": (), "paper_text_read": False},
    "TABLE5": {"sources": (), "paper_text_read": False},
    "FIG5": {"sources": (), "paper_text_read": False},
    "FIG6": {"sources": (), "paper_text_read": False},
    "FIG7": {"sources": (), "paper_text_read": False},
    "TRAINING": {"sources": ("authors_code",), "paper_text_read": False},
})

MISSING = MappingProxyType({
    "Table 2": "rows of the compared methods (only HTNet's row was found)",
    "Table 3": "CAS(ME)^3 results: all of it",
    "Table 4": "block-size ablation: all of it",
    "Table 5": "depth ablation rows (training time, UF1/UAR); only the (2, 2, 2) 'parameters' figure is known "
               "(TABLE5_REPORTED_PARAMS_M)",
    "Fig. 5": "hidden-dimension ablation: all of it (may be a plot without printed values)",
    "Fig. 6": "number-of-heads ablation: all of it (README shows it as an image only)",
    "Fig. 7": "confusion matrices: all of it",
    "§4.2": "the paper's statement of training settings and hardware (TRAINING comes from the authors' code)",
})


# ---------------------------------------------------------------------------------------------------------------------
# Accessors: tidy DataFrames, a fresh copy on every call
# ---------------------------------------------------------------------------------------------------------------------
def _metric_frame(rows, columns) -> pd.DataFrame:
    df = pd.DataFrame(list(rows), columns=list(columns))
    for c in ("UF1", "UAR"):
        if c in df:
            df[c] = df[c].astype(float)
    return df


def table1() -> pd.DataFrame:
    """Table 1 counts, indexed by dataset in DATASETS order (Full last): subjects, negative, positive, surprise, samples."""
    order = [d for d in DATASETS if d != "Full"] + ["Full"]
    df = pd.DataFrame([TABLE1[d] for d in order], index=pd.Index(order, name="dataset"),
                      columns=["subjects", *CLASSES, "samples"])
    return df.astype(int)


def table2_readings() -> pd.DataFrame:
    """Every Table 2 number as read, one row per (source, method, dataset, metric): columns source, method, dataset,
    metric, value."""
    return pd.DataFrame(list(TABLE2_READINGS), columns=["source", "method", "dataset", "metric", "value"])


def table2() -> pd.DataFrame:
    """Table 2 (UF1 / UAR under LOSO): columns method, dataset, UF1, UAR. One row per (method, dataset) with both metrics.

    Readings are merged across sources (they must agree; `check_consistency` raises if not).
    """
    check_consistency()
    r = table2_readings().drop_duplicates(["method", "dataset", "metric"])
    wide = r.pivot(index=["method", "dataset"], columns="metric", values="value").reset_index()
    wide = wide.dropna(subset=["UF1", "UAR"])
    wide["dataset"] = pd.Categorical(wide["dataset"], categories=list(DATASETS), ordered=True)
    wide = wide.sort_values(["method", "dataset"]).reset_index(drop=True)
    wide["dataset"] = wide["dataset"].astype(str)
    wide.columns.name = None
    return _metric_frame(wide[["method", "dataset", "UF1", "UAR"]].itertuples(index=False),
                         ["method", "dataset", "UF1", "UAR"])


def htnet_table2() -> pd.DataFrame:
    """HTNet's Table 2 row, indexed by dataset ('Full', 'SMIC-HS', 'CASME II', 'SAMM'): columns UF1, UAR."""
    t = table2()
    t = t[t["method"] == "HTNet"].set_index("dataset")[["UF1", "UAR"]]
    return t.reindex(list(DATASETS))


def table3() -> pd.DataFrame:
    """Table 3 (CAS(ME)^3): columns method, UF1, UAR. Empty: not found (see MISSING)."""
    return _metric_frame(TABLE3, ["method", "UF1", "UAR"])


def table4() -> pd.DataFrame:
    """Table 4 (block size): columns block_size, dataset, UF1, UAR. Empty: not found (see MISSING)."""
    return _metric_frame(TABLE4, ["block_size", "dataset", "UF1", "UAR"])


def table5() -> pd.DataFrame:
    """Table 5 (depth): columns block_repeats, params_M, train_time_s, dataset, UF1, UAR. Empty: not found (see MISSING)."""
    return _metric_frame(TABLE5, ["block_repeats", "params_M", "train_time_s", "dataset", "UF1", "UAR"])


def fig5() -> pd.DataFrame:
    """Fig. 5 (hidden dimension): columns hidden_dim, dataset, UF1, UAR. Empty: not found (see MISSING)."""
    return _metric_frame(FIG5, ["hidden_dim", "dataset", "UF1", "UAR"])


def fig6() -> pd.DataFrame:
    """Fig. 6 (number of heads): columns heads, dataset, UF1, UAR. Empty: not found (see MISSING)."""
    return _metric_frame(FIG6, ["heads", "dataset", "UF1", "UAR"])


def fig7() -> dict[str, pd.DataFrame]:
    """Fig. 7 confusion matrices, dataset -> 3x3 frame (rows true class, columns predicted). Empty: not found."""
    return {d: pd.DataFrame(m, index=list(CLASSES), columns=list(CLASSES)) for d, m in FIG7.items()}


def missing() -> pd.DataFrame:
    """What the paper reports that is not recorded here: columns item, what."""
    return pd.DataFrame(list(MISSING.items()), columns=["item", "what"])


def check_consistency() -> None:
    """Raise ValueError if two sources give different numbers for the same Table 2 cell, or a name is unknown."""
    seen: dict[tuple[str, str, str], tuple[str, float]] = {}
    for src, method, dataset, metric, value in TABLE2_READINGS:
        if src not in SOURCES:
            raise ValueError(f"Table 2 reading cites unknown source {src!r}")
        if dataset not in DATASETS:
            raise ValueError(f"Table 2 reading has unknown dataset {dataset!r}; use one of {DATASETS}")
        if metric not in ("UF1", "UAR"):
            raise ValueError(f"Table 2 reading has unknown metric {metric!r}")
        key = (method, dataset, metric)
        if key in seen and seen[key][1] != value:
            raise ValueError(f"sources disagree on {key}: {seen[key][0]} says {seen[key][1]}, {src} says {value}")
        seen.setdefault(key, (src, value))
