"""Every number the HTNet paper prints, with where it is printed: the project's one source of the paper's values.

Paper: Z. Wang, K. Zhang, W. Luo, R. Sankaranarayana, "HTNet for micro-expression recognition", Neurocomputing 602
(2024) 128196; arXiv 2307.14637. The rows below are its tables and statements, read from its full text. A CSV transcription of Tables 1-5
(`$HTNET_PAPER_DIR/table*.csv`), whose every cell equals the text's tables, is the check: tests/test_paper_values.py
compares every value here with it whenever that folder is given. The package needs neither.

What is here (the constant holds the numbers as printed; the accessor returns a fresh tidy DataFrame on every call):

| constant | accessor | paper |
| --- | --- | --- |
| `TABLE1` | `table1()`, `table1_databases()` | Table 1, §4.1 (original resolutions: §4.1 text) |
| `TABLE2` | `table2()`, `htnet_table2()` | Table 2, §4.3 (handcrafted vs deep: §4.3.1) |
| `TABLE3` | `table3()` | Table 3, §4.3 |
| `TABLE4` | `table4()` | Table 4, §4.4.1 |
| `TABLE5` | `table5()` | Table 5, §4.4.4 |
| `FIG5`, `FIG6` | `fig5()`, `fig6()` | Figs. 5-6, §4.4.2-4.4.3: plots whose values are not printed; only what the text says |
| `FIG7`, `FIG7_FACTS` | `fig7()` | Fig. 7, §5: the per-class accuracies the text states (the matrices are not printed) |
| `SETTINGS` | `settings()` | §3.4, §4.2, §4.4, beside the authors' released training script |
| `UNSTATED` | `missing()` | what the paper does not say |

Dataset names are the registry's (`htnet_lib.release`): 'Full' (the composite of SMIC-HS, CASME II and SAMM, Table 2's
"Full"), 'SMIC-HS' (printed "SMIC"), 'CASME II', 'SAMM', 'CAS(ME)^3' (printed "CASME III"; Part A). HTNet's rows are
printed "HTNet(Ours)" and stored as `HTNET` ('HTNet').

Findings about the printed values (each checked by a test):
- Table 2's HTNet row, Table 4's 7x7 column and Table 5's (2, 2, 8) column are the same eight numbers: §4.4 names 7x7,
  dimension 256, 3 heads and (2, 2, 8) as the initial setting of every ablation.
- Table 5's "#Params(millions)" column is not a parameter count: all six values are torchsummary's "Estimated Total Size
  (MB)" of the authors' model for one 3x28x28 input (see `TABLE5_SIZE_COLUMN`). It is kept as printed, as
  `size_mb_as_printed`.
- Three bold/underline marks disagree with the numbers they mark (`EMPHASIS_ERRATA`).
- Fig. 7's per-class accuracies on Full (0.94 / 0.81 / 0.80) and on SMIC-HS (0.76 / 0.72) are consistent with Table 2's
  UAR; every HTNet (UF1, UAR) pair of Tables 2, 4 and 5 is attainable by one pooled confusion matrix with Table 1's class
  counts, but eight pairs of earlier methods in Table 2 are not (`TABLE2_UNATTAINABLE`).
"""
from __future__ import annotations

from types import MappingProxyType

import pandas as pd

from . import release

PAPER = ("Z. Wang, K. Zhang, W. Luo, R. Sankaranarayana, HTNet for micro-expression recognition, "
         "Neurocomputing 602 (2024) 128196; arXiv 2307.14637")
AUTHORS_SCRIPT = "github.com/wangzhifengharrison/HTNet, main_HTNet.py (commit 1ea5293f), function main()"

HTNET = "HTNet"  # printed "HTNet(Ours)"
CLASSES: tuple[str, ...] = release.CLASSES  # negative, positive, surprise (§4.1)
FULL = release.FULL
DATASETS: tuple[str, ...] = tuple(release.scopes())  # the scopes of Tables 2, 4 and 5: Full, SMIC-HS, CASME II, SAMM
CASME3 = release.name_of("casme3")

# Where each constant's values are printed. Every accessor's `source` column carries the same string.
SOURCES = MappingProxyType({
    "TABLE1": "Table 1, §4.1",
    "TABLE2": "Table 2, §4.3",
    "TABLE3": "Table 3, §4.3",
    "TABLE4": "Table 4, §4.4.1",
    "TABLE5": "Table 5, §4.4.4",
    "FIG5": "Fig. 5, §4.4.2 (text only)",
    "FIG6": "Fig. 6, §4.4.3 (text only)",
    "FIG7": "Fig. 7, §5 (text only)",
    "SETTINGS": f"paper §3.4, §4.2, §4.4; authors' script: {AUTHORS_SCRIPT}",
})

# ------------------------------------------------------------------------------------------------ Table 1 (§4.1)
# One row per database, in the registry's order (the paper prints SAMM, CASME II, SMIC, CASME III). Subjects, samples,
# frame rate, cropped resolution, class counts and which indices are annotated are Table 1's; the original frame sizes
# are from the §4.1 paragraph on each database. The paper prints no column for the composite.
#   key      subjects samples fps  cropped original(w, h)  negative positive surprise  onset offset apex
TABLE1: tuple[tuple, ...] = (
    ("smic",    16,  164, 100, 28, (640, 480),    70,  51,  43, True, True, False),  # apex: D&C-RoIs (§4.2)
    ("casme2",  24,  145, 200, 28, (640, 480),    88,  32,  25, True, True, True),
    ("samm",    28,  133, 200, 28, (2040, 1088),  92,  26,  15, True, True, True),
    ("casme3", 100,  943,  30, 28, (1280, 720),  508,  64, 201, True, True, True),  # Part A; classes sum to 773
)

# ------------------------------------------------------------------------------------------------ Table 2 (§4.3)
# UF1 / UAR under LOSO, rows as printed. Values per row: Full, SMIC-HS, CASME II, SAMM, each (UF1, UAR).
TABLE2_SCOPES: tuple[str, ...] = (FULL, *map(release.name_of, ("smic", "casme2", "samm")))
TABLE2: tuple[tuple, ...] = (
    ("LBP-TOP",        0.5882, 0.5785, 0.2000, 0.5280, 0.7026, 0.7429, 0.3954, 0.4102),
    ("Bi-WOOF",        0.6296, 0.6227, 0.5727, 0.5829, 0.7805, 0.8026, 0.5211, 0.5139),
    ("AlexNet",        0.6933, 0.7154, 0.6201, 0.6373, 0.7994, 0.8312, 0.6104, 0.6642),
    ("GoogLeNet",      0.5573, 0.6049, 0.5123, 0.5511, 0.5989, 0.6414, 0.5124, 0.5992),
    ("VGG16",          0.6425, 0.6516, 0.5800, 0.5964, 0.8166, 0.8202, 0.4870, 0.4793),
    ("OFF-ApexNet",    0.7196, 0.7096, 0.6817, 0.6695, 0.8764, 0.8681, 0.5409, 0.5392),
    ("STSTNet",        0.7353, 0.7605, 0.6801, 0.7013, 0.8382, 0.8686, 0.6588, 0.6810),
    ("CapsuleNet",     0.6520, 0.6506, 0.5820, 0.5877, 0.7068, 0.7018, 0.6209, 0.5989),
    ("Dual-Inception", 0.7322, 0.7278, 0.6645, 0.6726, 0.8621, 0.8560, 0.5868, 0.5663),
    ("EMR",            0.7885, 0.7824, 0.7461, 0.7530, 0.8293, 0.8209, 0.7754, 0.7152),
    ("RCN",            0.7432, 0.7190, 0.6326, 0.6441, 0.8512, 0.8123, 0.7601, 0.6715),
    ("FeatRef",        0.7838, 0.7832, 0.7011, 0.7083, 0.8915, 0.8873, 0.7372, 0.7155),
    (HTNET,            0.8603, 0.8475, 0.8049, 0.7905, 0.9532, 0.9516, 0.8131, 0.8124),
)
HANDCRAFTED = frozenset({"LBP-TOP", "Bi-WOOF"})  # §4.3.1 (both with an SVM); every other method is deep learning
REFS = MappingProxyType({  # the paper's reference number of each earlier method, as printed beside it in Tables 2-3
    "LBP-TOP": 17, "Bi-WOOF": 5, "AlexNet": 11, "GoogLeNet": 10, "VGG16": 9, "OFF-ApexNet": 2, "STSTNet": 12,
    "CapsuleNet": 38, "Dual-Inception": 39, "EMR": 4, "RCN": 13, "FeatRef": 14,
})
# Cells whose printed UF1 and UAR cannot both come from one pooled 3x3 confusion matrix with Table 1's class counts
# (to the printed precision; eq. 8-9 pool all LOSO folds). All are earlier methods' numbers; the paper does not say how
# it obtained them (they may use other sample sets or other averaging). Checked by an exhaustive search in the tests.
TABLE2_UNATTAINABLE: tuple[tuple[str, str], ...] = (
    ("LBP-TOP", "SMIC-HS"), ("VGG16", "CASME II"), ("OFF-ApexNet", "CASME II"), ("STSTNet", "CASME II"),
    ("STSTNet", "SAMM"), ("CapsuleNet", "SAMM"), ("RCN", "CASME II"), ("RCN", "SAMM"),
)

# ------------------------------------------------------------------------------------------------ Table 3 (§4.3)
# CAS(ME)^3 Part A, LOSO: (method, UF1, UAR) as printed.
TABLE3: tuple[tuple[str, float, float], ...] = (
    ("AlexNet", 0.257, 0.2634),
    ("STSTNet", 0.3795, 0.3792),
    ("RCN", 0.3928, 0.3893),
    ("FeatRef", 0.3493, 0.3413),
    (HTNET, 0.5767, 0.5415),
)

# ------------------------------------------------------------------------------------------------ Table 4 (§4.4.1)
# Block size per level in px (bottom; middle = 2x; top = 4x), then UF1 / UAR for the scopes in TABLE45_SCOPES (the
# order of the printed rows). In the authors' layout the top-level block is the whole input, so every row but 7x7
# implies an input side other than 28 px; how the 28x28 maps were resized for them is not stated.
TABLE45_SCOPES: tuple[str, ...] = (FULL, *map(release.name_of, ("smic", "samm", "casme2")))
TABLE4: tuple[tuple, ...] = (
    (5, 10, 20,  0.837, 0.8213, 0.7556, 0.7469, 0.8237, 0.8033, 0.9422, 0.9308),
    (6, 12, 24,  0.8271, 0.8037, 0.7394, 0.7214, 0.7903, 0.775, 0.9482, 0.9317),
    (7, 14, 28,  0.8603, 0.8475, 0.8049, 0.7905, 0.8131, 0.8124, 0.9532, 0.9516),
    (8, 16, 32,  0.85, 0.846, 0.7833, 0.7792, 0.7909, 0.79, 0.964, 0.962),
    (9, 18, 36,  0.8511, 0.8445, 0.7753, 0.7708, 0.8168, 0.8088, 0.9722, 0.9658),
    (10, 20, 40, 0.8546, 0.8383, 0.8008, 0.7892, 0.8068, 0.7812, 0.957, 0.945),
)

# ------------------------------------------------------------------------------------------------ Table 5 (§4.4.4)
# Transformer layers per level (bottom, middle, top), UF1 / UAR for TABLE45_SCOPES, the value printed under
# "#Params(millions)" (a size in MB, see TABLE5_SIZE_COLUMN), training time in seconds (hardware not named).
TABLE5: tuple[tuple, ...] = (
    ((2, 2, 2),  0.8105, 0.7848, 0.748, 0.7363, 0.7984, 0.75, 0.8845, 0.8588,     149.57, 3767),
    ((2, 2, 4),  0.8297, 0.8029, 0.7247, 0.7065, 0.8137, 0.7849, 0.9647, 0.9554,  245.88, 4836),
    ((2, 2, 6),  0.8316, 0.8183, 0.744, 0.734, 0.7732, 0.7742, 0.9722, 0.9658,    342.20, 5906),
    ((2, 2, 8),  0.8603, 0.8475, 0.8049, 0.7905, 0.8131, 0.8124, 0.9532, 0.9516,  438.51, 6942),
    ((2, 2, 10), 0.8464, 0.8376, 0.76, 0.756, 0.8571, 0.8453, 0.9492, 0.9346,     534.82, 8085),
    ((2, 2, 12), 0.8499, 0.8207, 0.7561, 0.7345, 0.8682, 0.8419, 0.95, 0.9412,    631.13, 9147),
)
TABLE5_SIZE_COLUMN = MappingProxyType({
    "printed_as": "#Params(millions)",
    "is": "torchsummary 1.5.1's 'Estimated Total Size (MB)' (MB = 2**20 bytes) of the authors' model (vit-pytorch "
          "0.35.8 NesT) for one 3x28x28 float32 input: the input, twice every submodule's output (forward and "
          "backward) and the `weight`/`bias` tensors of the submodules (positional embeddings and LayerNorm gains "
          "are not seen). Recomputed exactly for all six rows by the tests.",
    "parameters": "the code's exact counts are 38,968,838 (2, 2, 2) to 164,736,518 (2, 2, 12), "
                  "25,153,536 more per two top-level layers",
})

# ------------------------------------------------------------------------------------- Figs. 5-7 (§4.4.2, §4.4.3, §5)
# Figs. 5 and 6 are plots; the text gives no plotted value and not the x values tried, only the best setting.
FIG5 = MappingProxyType({
    "swept": "dim",  # hidden dimension of the first level (ModelConfig.dim)
    "best": 256, "scope": FULL, "metric": "UF1", "value_approx": 0.86,  # "around 0.86"
    "values_printed": False, "x_values_printed": False,
    "annotation": "paper: best at 256 (Full UF1 ≈ 0.86; values not printed)",
})
FIG6 = MappingProxyType({
    "swept": "heads",  # heads of the first level (ModelConfig.heads)
    "best": 3, "scope": None, "metric": None, "value_approx": None,  # said of panel (a), whose scope is not named
    "values_printed": False, "x_values_printed": False,
    "annotation": "paper: best at 3 heads (values not printed)",
})
# Fig. 7: the per-class accuracies (recall) the text states. relation '=' means equal at the printed two decimals.
#   scope     class     relation value  panel
FIG7: tuple[tuple, ...] = (
    (FULL,       "negative", "=", 0.94, "(a)"),
    (FULL,       "positive", "=", 0.81, "(a)"),
    (FULL,       "surprise", "=", 0.80, "(a)"),
    ("SMIC-HS",  "positive", "=", 0.76, None),  # printed as 76%
    ("SMIC-HS",  "surprise", "=", 0.72, None),  # printed as 72%
    ("CASME II", "negative", ">", 0.90, None),  # "each" class above 90%
    ("CASME II", "positive", ">", 0.90, None),
    ("CASME II", "surprise", ">", 0.90, None),
    (CASME3,     "positive", "≈", 0.15, "(e)"),  # the lowest of the three
)
FIG7_FACTS: tuple[tuple[str, str], ...] = (  # what §5 says without a number, in this project's words
    (FULL, "negative has the highest accuracy; few samples of the other classes are predicted negative"),
    ("SMIC-HS", "surprise and negative are confused with each other"),
    ("SAMM", "surprise and negative are confused with each other"),
    ("CASME II", "few misclassifications"),
    (CASME3, "negative has the highest accuracy, positive the lowest; most positive samples are predicted negative"),
)

# Bold (best) and underline (second best) marks that disagree with the printed numbers:
# (table, scope, metric, mark, marked column, column the numbers make best / second best).
EMPHASIS_ERRATA: tuple[tuple[str, str, str, str, str, str], ...] = (
    ("Table 2", FULL, "UF1", "second best", "FeatRef", "EMR"),
    ("Table 4", FULL, "UAR", "best", "8x8", "7x7"),
    ("Table 4", "CASME II", "UF1", "best", "8x8", "9x9"),
)

# ----------------------------------------------------------------------------- settings (§3.4, §4.2, §4.4; the code)
# (setting, the paper's value or None, where the paper gives it, the authors' released script's value or None).
# The paper's model settings are §4.4's initial setting of the ablations (the configuration of Table 2's HTNet row).
# The script builds (2, 2, 10) with "(2, 2, 8)" left in a comment; Table 5 reports that configuration at 0.8464 / 0.8376.
SETTINGS: tuple[tuple, ...] = (
    ("block_px", 7, "§4.4, Table 4", 7),  # script: 28 px input, 7 px patches, 3 levels
    ("dim", 256, "§4.4", 256),
    ("heads", 3, "§4.4", 3),
    ("block_repeats", (2, 2, 8), "§4.4", (2, 2, 10)),
    ("num_hierarchies", 3, "§3.3, Table 4", 3),
    ("image_size", 28, "§4.2", 28),  # 28x28x3 flow maps
    ("region_size", 14, "§4.2", 14),  # four 14x14x3 regions
    ("patch_size", None, "not stated apart from the block size", 7),
    ("num_classes", 3, "§4.1", 3),
    ("lr", 5.0e-5, "§4.2", 5.0e-5),
    ("epochs", 800, "§4.2 (at most)", 800),
    ("batch_size", None, "not stated", 256),
    ("optimizer", None, "not stated", "Adam"),
    ("shuffle", None, "not stated", False),
    ("loss", "cross-entropy weighted per sample (weights not given)", "§3.4, eq. 7", "CrossEntropyLoss (unweighted)"),
    ("protocol", "LOSO", "§4.2", "LOSO"),
    ("software", "PyTorch, Python 3.9, Ubuntu 22.04", "§4.2", None),
    ("hardware", None, "not stated", None),
)
PAPER_SETTINGS = MappingProxyType({s: p for s, p, _, _ in SETTINGS if p is not None})
CODE_SETTINGS = MappingProxyType({s: c for s, _, _, c in SETTINGS if c is not None})

# What the paper does not say (precisely), for notebooks to show beside our numbers.
UNSTATED = MappingProxyType({
    "Table 1": "the composite column (table1()'s Full row is the sum of the three databases); CAS(ME)^3 Part A's 943 "
               "samples hold 773 of the three classes, and what the other 170 are and which count Table 3 used is not said",
    "Table 2": "how the earlier methods' numbers were obtained (re-run or quoted; TABLE2_UNATTAINABLE)",
    "Table 4": "how the input was sized for blocks other than 7x7 (the top block is 4x the bottom: 20..40 px)",
    "Table 5": "the hardware behind the training times and what a time covers; '#Params(millions)' is a size in MB "
               "(TABLE5_SIZE_COLUMN)",
    "Fig. 5": "the plotted values and the dimensions tried (only: 256 best, Full UF1 around 0.86)",
    "Fig. 6": "the plotted values and the head counts tried (only: 3 best, in panel (a))",
    "Fig. 7": "the confusion matrices' cells; SAMM's per-class accuracies; CAS(ME)^3's other two accuracies; "
              "which panel is SMIC-HS, CASME II or SAMM",
    "§4.2": "batch size, optimizer, shuffling, loss weights, hardware (settings(): the authors' script's values)",
})


# ------------------------------------------------------------------------------------------------------ accessors
def _family(method: str) -> str:
    return "handcrafted" if method in HANDCRAFTED else "deep"


def _scores(rows, n_keys: int, scopes: tuple[str, ...], keys: list[str], source: str) -> pd.DataFrame:
    """Long frame from rows (key..., UF1, UAR per scope in `scopes`, extra...): columns keys + dataset, UF1, UAR, source;
    row order: rows, then scopes in DATASETS order (CAS(ME)^3 last)."""
    order = {s: i for i, s in enumerate((*DATASETS, CASME3))}
    out = []
    for row in rows:
        head = row[:n_keys]
        pairs = sorted(zip(scopes, row[n_keys::2], row[n_keys + 1::2]), key=lambda p: order[p[0]])
        out += [(*head, scope, float(uf1), float(uar)) for scope, uf1, uar in pairs]
    df = pd.DataFrame(out, columns=[*keys, "dataset", "UF1", "UAR"])
    df["source"] = source
    return df


def table1() -> pd.DataFrame:
    """The composite's counts (Table 1), indexed by dataset SMIC-HS, CASME II, SAMM, Full: columns subjects, negative,
    positive, surprise, samples (int). The Full row is the sum of the three (the paper prints no composite column);
    compare with `data.class_counts` (whose 'all' is Full and 'total' is samples)."""
    t = table1_databases()
    t = t[t["composite"]][["subjects", *CLASSES, "samples"]]
    t.loc[FULL] = t.sum()
    return t.astype(int)


def table1_databases() -> pd.DataFrame:
    """Table 1 for all four databases, indexed by dataset (SMIC-HS, CASME II, SAMM, CAS(ME)^3): columns subjects,
    samples, frame_rate_fps, cropped_px, original_width_px, original_height_px (§4.1 text), negative, positive,
    surprise, onset_annotated, offset_annotated, apex_annotated, composite (from `release`)."""
    rows = [(release.name_of(k), s, n, fps, px, w, h, *cls, on, off, apex, release.dataset(k).composite)
            for k, s, n, fps, px, (w, h), *cls, on, off, apex in TABLE1]
    cols = ["dataset", "subjects", "samples", "frame_rate_fps", "cropped_px", "original_width_px",
            "original_height_px", *CLASSES, "onset_annotated", "offset_annotated", "apex_annotated", "composite"]
    return pd.DataFrame(rows, columns=cols).set_index("dataset")


def table2() -> pd.DataFrame:
    """Table 2, 13 methods x 4 scopes: columns method, family ('handcrafted' | 'deep'), ours (HTNet's rows), dataset
    (Full, SMIC-HS, CASME II, SAMM), UF1, UAR, source. Methods in printed order."""
    df = _scores(TABLE2, 1, TABLE2_SCOPES, ["method"], SOURCES["TABLE2"])
    df.insert(1, "family", df["method"].map(_family))
    df.insert(2, "ours", df["method"] == HTNET)
    return df


def htnet_table2() -> pd.DataFrame:
    """HTNet's Table 2 row, indexed by dataset (Full, SMIC-HS, CASME II, SAMM): columns UF1, UAR."""
    t = table2()
    return t[t["ours"]].set_index("dataset")[["UF1", "UAR"]]


def table3() -> pd.DataFrame:
    """Table 3 (CAS(ME)^3 Part A): columns method, family, ours, dataset, UF1, UAR, source."""
    df = _scores(TABLE3, 1, (CASME3,), ["method"], SOURCES["TABLE3"])
    df.insert(1, "family", df["method"].map(_family))
    df.insert(2, "ours", df["method"] == HTNET)
    return df


def table4() -> pd.DataFrame:
    """Table 4, 6 block sizes x 4 scopes: columns block_size ('7x7', as printed for the bottom level), block_px
    (bottom level; `sweeps.block_geometry`'s name), middle_px, top_px, initial_setting (7x7, §4.4), dataset, UF1, UAR,
    source."""
    df = _scores(TABLE4, 3, TABLE45_SCOPES, ["block_px", "middle_px", "top_px"], SOURCES["TABLE4"])
    df.insert(0, "block_size", [f"{p}x{p}" for p in df["block_px"]])
    df.insert(4, "initial_setting", df["block_px"] == PAPER_SETTINGS["block_px"])
    return df


def table5() -> pd.DataFrame:
    """Table 5, 6 depths x 4 scopes: columns block_repeats (tuple; str() of it is `sweeps`' label form),
    initial_setting ((2, 2, 8), §4.4), authors_script ((2, 2, 10)), dataset, UF1, UAR, size_mb_as_printed (printed as
    "#Params(millions)"; not a parameter count: TABLE5_SIZE_COLUMN), train_time_s, source. The last two are per depth
    (repeated over the scopes)."""
    df = _scores([r[:-2] for r in TABLE5], 1, TABLE45_SCOPES, ["block_repeats"], SOURCES["TABLE5"])
    cost = {r[0]: r[-2:] for r in TABLE5}
    df.insert(1, "initial_setting", df["block_repeats"].map(PAPER_SETTINGS["block_repeats"].__eq__))
    df.insert(2, "authors_script", df["block_repeats"].map(CODE_SETTINGS["block_repeats"].__eq__))
    df.insert(6, "size_mb_as_printed", [float(cost[b][0]) for b in df["block_repeats"]])
    df.insert(7, "train_time_s", [int(cost[b][1]) for b in df["block_repeats"]])
    return df


def _stated_best(fig: MappingProxyType, source: str) -> pd.DataFrame:
    value = {m: (fig["value_approx"] if m == fig["metric"] else None) for m in ("UF1", "UAR")}
    return pd.DataFrame([{fig["swept"]: fig["best"], "dataset": fig["scope"], **value, "approx": True,
                          "annotation": fig["annotation"], "source": source}]).astype({"UF1": float, "UAR": float})


def fig5() -> pd.DataFrame:
    """Fig. 5's one stated point: columns dim (256, the best), dataset (Full), UF1 (0.86, approximate), UAR (NaN),
    approx, annotation, source. The plotted values are not printed."""
    return _stated_best(FIG5, SOURCES["FIG5"])


def fig6() -> pd.DataFrame:
    """Fig. 6's one stated point: columns heads (3, the best), dataset (None), UF1, UAR (NaN: not stated), approx,
    annotation, source. The plotted values are not printed."""
    return _stated_best(FIG6, SOURCES["FIG6"])


def fig7() -> pd.DataFrame:
    """Fig. 7's stated per-class accuracies: columns dataset, emotion, relation ('=' at two decimals, '>' or '≈'),
    accuracy, panel (None where the text names none), source."""
    df = pd.DataFrame(list(FIG7), columns=["dataset", "emotion", "relation", "accuracy", "panel"])
    df["source"] = SOURCES["FIG7"]
    return df


def settings() -> pd.DataFrame:
    """The paper's settings beside the authors' released script's: columns setting, paper, paper_source,
    authors_script (None where one does not say)."""
    return pd.DataFrame(list(SETTINGS), columns=["setting", "paper", "paper_source", "authors_script"])


def missing() -> pd.DataFrame:
    """What the paper does not state: columns item, what."""
    return pd.DataFrame(list(UNSTATED.items()), columns=["item", "what"])


def reported_for(cfg) -> tuple[pd.DataFrame, str]:
    """The paper's reported UF1/UAR for a network's configuration (`models.ModelConfig`), indexed by scope (Full,
    SMIC-HS, CASME II, SAMM), and where it is printed:

    - the initial setting of §4.4 (7x7 bottom block, dim 256, 3 heads, (2, 2, 8)): Table 2's HTNet row (equal to
      Table 4's 7x7 column and Table 5's (2, 2, 8) column);
    - another bottom block size p with an input of 4p (Table 4's geometry), the rest initial: Table 4's row;
    - another depth (2, 2, k), the rest initial (the authors' script's (2, 2, 10) among them): Table 5's row;
    - anything else (a smaller model, another width): Table 2's HTNet row, labelled as the paper's configuration
      rather than this one.
    """
    if cfg.arch != "htnet":  # another network (STSTNet, a baseline): the paper's HTNet, named as such
        return htnet_table2(), "Table 2, §4.3 (the paper's configuration, not this one)"
    initial = dict(num_hierarchies=3, dim=PAPER_SETTINGS["dim"], heads=PAPER_SETTINGS["heads"], mlp_mult=4, channels=3,
                   num_classes=3)
    same = all(getattr(cfg, k) == v for k, v in initial.items()) and cfg.image_size == 4 * cfg.patch_size
    p, depth = cfg.patch_size, tuple(cfg.block_repeats)
    if same and p == PAPER_SETTINGS["block_px"] and depth == PAPER_SETTINGS["block_repeats"]:
        return htnet_table2(), "Table 2, §4.3 (= Table 4 7x7, Table 5 (2, 2, 8))"
    if same and depth == PAPER_SETTINGS["block_repeats"] and p in set(table4()["block_px"]):
        t = table4()
        return t[t["block_px"] == p].set_index("dataset")[["UF1", "UAR"]], f"Table 4 ({p}x{p}), §4.4.1"
    if same and p == PAPER_SETTINGS["block_px"] and depth in set(table5()["block_repeats"]):
        t = table5()
        return t[t["block_repeats"] == depth].set_index("dataset")[["UF1", "UAR"]], f"Table 5 {depth}, §4.4.4"
    return htnet_table2(), "Table 2, §4.3 (the paper's configuration, not this one)"
