"""Adapters (§4.1, Table 1): each database's own layout -> the common table; bad rows reported by sample, never fatal.

Each adapter reads a small database generated in its layout (`synthetic.make_raw_database`, real faces) holding
good samples and one sample per kind of bad input; the CAS(ME)^3 adapter also reads the real annotation CSV that
ships with the release.
"""
from __future__ import annotations

import pandas as pd
import pytest

from htnet_lib._io import HTNetInputError
from htnet_lib.raw import _xlsx
from htnet_lib.raw.adapters import (EMOTIONS, EXCLUDED, compare_with_release, load_database, read_table,
                                    restrict_to_release)

# where each fault must surface at the adapter stage (None: only when the frames are read, in build)
FAULT_STAGE = {"missing_frame": "frames", "onset_after_apex": "annotation", "unknown_emotion": "annotation",
               "excluded_emotion": "protocol", "empty_folder": "frames", "unreadable_frame": None}
FAULT_WORDS = {"missing_frame": "missing", "onset_after_apex": "after apex", "unknown_emotion": "unknown emotion",
               "excluded_emotion": "not one of the three classes", "empty_folder": "no frames"}


@pytest.mark.parametrize("database,fmt", [("casme2", "xlsx"), ("casme2", "csv"), ("samm", "xlsx"), ("samm", "csv"),
                                          ("smic", "xlsx"), ("casme3", "csv")])
def test_adapter_reads_its_layout(synthetic_db, database, fmt):
    db = synthetic_db(database, annotation_format=fmt)
    table = load_database(database, db.root)
    truth = db.truth
    good = truth[truth["fault"].isin(["", "unreadable_frame"])]
    got = table.samples.set_index(["subject", "sample"]).sort_index()
    want = good.set_index(["subject", "sample"]).sort_index()
    assert list(got.index) == list(want.index)
    assert (got["label"] == want["label"]).all()
    assert (got["onset"] == want["onset"]).all() and (got["offset"] == want["offset"]).all()
    if database == "smic":  # no apex index: spotted later
        assert got["apex"].isna().all()
    else:
        assert (got["apex"].astype(int) == want["apex"]).all()
    assert set(table.samples["dataset"]) == {database}
    for _, r in got.reset_index().iterrows():
        assert r["frames_dir"] in r["onset_path"]
        assert r["imagename"].startswith(f"{r['subject']}_")


@pytest.mark.parametrize("database", ["casme2", "samm", "smic", "casme3"])
def test_bad_rows_are_skipped_naming_the_sample(synthetic_db, database):
    db = synthetic_db(database)
    table = load_database(database, db.root)
    faults = db.truth[db.truth["fault"] != ""]
    for _, f in faults.iterrows():
        stage = FAULT_STAGE[f["fault"]]
        hit = table.skipped[(table.skipped["subject"] == f["subject"])
                            & (table.skipped["sample"] == f["reported_sample"])]
        if stage is None:
            assert hit.empty and f["sample"] in set(table.samples["sample"])
            continue
        assert len(hit) == 1, f"{f['fault']} not reported: {table.skipped.to_dict('records')}"
        r = hit.iloc[0]
        assert r["stage"] == stage
        assert f"{f['subject']}/{f['reported_sample']}" in r["reason"]  # the message names the sample
        assert FAULT_WORDS[f["fault"]] in r["reason"]
    # everything else still came through
    assert len(table.samples) == (db.truth["fault"].isin(["", "unreadable_frame"])).sum()


def test_samm_header_below_title_rows(synthetic_db):
    db = synthetic_db("samm")
    df = read_table(db.root / "SAMM_Micro_FACS_Codes_v2.xlsx")
    assert df.attrs["header_row"] == 13  # the 14th row, as in the real sheet
    assert "Estimated Emotion" in df.columns


def test_xlsx_round_trip(tmp_path):
    rows = [["Subject", "Filename", "OnsetFrame", "Note"], [1, "EP02_01f", 46, "naïve <&>"], [],
            [26, "EP_x", 3.5, None]]
    _xlsx.write_xlsx(tmp_path / "t.xlsx", rows)
    back = _xlsx.read_xlsx(tmp_path / "t.xlsx")
    assert back[0] == rows[0]
    assert back[1] == [1, "EP02_01f", 46, "naïve <&>"]
    assert back[2] == [None] * 4
    assert back[3] == [26, "EP_x", 3.5, None]


def test_not_a_workbook_names_the_file(tmp_path):
    p = tmp_path / "CASME2-coding-20140508.xlsx"
    p.write_text("not a zip")
    with pytest.raises(HTNetInputError, match="CASME2-coding-20140508.xlsx"):
        load_database("casme2", tmp_path)


def test_missing_column_names_the_column(tmp_path):
    (tmp_path / "CASME2-coding-20140508.csv").write_text("Subject,Filename,OnsetFrame,ApexFrame\n1,EP01,1,2\n")
    with pytest.raises(HTNetInputError, match="OffsetFrame"):
        load_database("casme2", tmp_path)


def test_unknown_database_and_root():
    with pytest.raises(HTNetInputError, match="database"):
        load_database("casme9", ".")
    with pytest.raises(HTNetInputError, match="root"):
        load_database("casme2", "/nonexistent/raw/root")


def test_casme3_mapping_reproduces_label_for_3_on_the_real_csv(release_dir):
    """Our emotion -> class map gives the edited CSV's own label_for_3 on all 687 rows."""
    df = pd.read_csv(release_dir / "cas(me)3_part_A_edited.csv")
    mapped = df["emotion"].str.lower().map(EMOTIONS["casme3"])
    assert mapped.notna().all()
    assert (mapped == df["label_for_3"]).all()
    assert df.groupby("label_for_3").size().to_dict() == {0: 449, 1: 54, 2: 184}


def test_casme3_real_annotation_reports_its_onset_after_apex_row(release_dir, tmp_path):
    """The real CSV, without its (licensed) frames: every row is accounted for; the one row whose onset (112) is after
    its apex (83) is reported as such, the rest as missing frame folders."""
    table = load_database("casme3", tmp_path, annotation=release_dir / "cas(me)3_part_A_edited.csv")
    assert table.samples.empty
    assert len(table.skipped) == 687
    bad = table.skipped[table.skipped["stage"] == "annotation"]
    assert bad[["subject", "sample"]].values.tolist() == [["spNO.149", "d_112"]]
    assert "onset frame 112 is after apex frame 83" in bad.iloc[0]["reason"]
    assert set(table.skipped["stage"]) == {"annotation", "frames"}


def test_composite_protocol_maps_match_table1_counts():
    """SAMM's negative = anger, contempt, disgust, fear, sadness: with the sheet's counts (57, 12, 9, 8, 6) that is
    Table 1's 92; CASME II keeps disgust and repression only; 'others' is never a class."""
    samm = {"anger": 57, "contempt": 12, "disgust": 9, "fear": 8, "sadness": 6, "happiness": 26, "surprise": 15}
    per = {0: 0, 1: 0, 2: 0}
    for emo, n in samm.items():
        per[EMOTIONS["samm"][emo]] += n
    assert per == {0: 92, 1: 26, 2: 15}
    assert set(EMOTIONS["casme2"]) == {"disgust", "repression", "happiness", "surprise"}
    for ds in EXCLUDED:
        assert not set(EXCLUDED[ds]) & set(EMOTIONS[ds])


def test_compare_and_restrict_to_release_list(synthetic_db, tmp_path):
    db = synthetic_db("casme2")
    table = load_database("casme2", db.root)
    first, second = table.samples.iloc[0], table.samples.iloc[1]
    rel = pd.DataFrame({"dataset": ["casme2", "casme2", "casme2", "samm"],
                        "sub": [first["subject"], second["subject"], "sub99", "006"],
                        "filename_o": [first["sample"], second["sample"], "EP99", "006_1_2"],
                        "label": [first["label"], (second["label"] + 1) % 3, 0, 0]})
    rel.to_csv(tmp_path / "rel.csv", index=False)
    diff = compare_with_release(table, tmp_path / "rel.csv")
    status = dict(zip(diff["sample"], diff["status"]))
    assert status[second["sample"]] == "label_differs"
    assert status["EP99"] == "only_release"
    assert sum(s == "only_here" for s in status.values()) == len(table.samples) - 2
    kept = restrict_to_release(table, tmp_path / "rel.csv")
    assert list(kept.samples["sample"]) == [first["sample"], second["sample"]]
    assert (kept.skipped["reason"].str.contains("not in the release's list")).sum() == len(table.samples) - 2
