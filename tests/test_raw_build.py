"""Raw database -> release-layout folder: files, names, CSV, skipped report, parallel runs, CLI, bench, detection."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import pandas as pd
import pytest

from htnet_lib import release
from htnet_lib._io import HTNetInputError
from htnet_lib.raw import build as B
from htnet_lib.raw import cli
from htnet_lib.raw.adapters import load_database

FAST = dict(method="farneback", flow_size=64, progress=False)


@pytest.fixture(scope="module")
def built(synthetic_db, tmp_path_factory):
    """CASME II look-alike with every kind of bad sample, built with its known face boxes."""
    db = synthetic_db("casme2")
    out = tmp_path_factory.mktemp("release_casme2")
    report = B.build_release(load_database("casme2", db.root), out, face_boxes=db.face_boxes, **FAST)
    return db, out, report


def test_release_layout_files_and_csv(built):
    db, out, report = built
    csv = pd.read_csv(out / B.CSV_NAME, dtype=str, keep_default_na=False)
    assert tuple(csv.columns) == release.RELEASE_COLUMNS
    good = db.truth[db.truth["fault"] == ""]
    assert sorted(csv["filename_o"]) == sorted(good["sample"])
    for _, r in csv.iterrows():
        m = cv2.imread(str(out / B.FLOW_DIR / f"{r['sub']}_{r['filename_o']} .png"))  # the release's space
        assert m is not None and m.shape == (28, 28, 3)
        assert (m.reshape(-1, 3).min(0) == 0).all() and (m.reshape(-1, 3).max(0) == 255).all()
        face = cv2.imread(str(out / B.FACE_DIR / r["imagename"]))
        assert face.shape == (224, 224, 3)
        t = good[good["sample"] == r["filename_o"]].iloc[0]
        assert int(r["apex"]) == t["apex"] and int(r["label"]) == t["label"]
        assert r["sub_filename"] == ""


def test_every_bad_sample_is_in_the_report_and_the_rest_is_built(built):
    db, out, report = built
    skipped = pd.read_csv(out / "skipped.csv", dtype=str, keep_default_na=False)
    faults = db.truth[db.truth["fault"] != ""]
    assert len(skipped) == len(faults)
    for _, f in faults.iterrows():
        row = skipped[skipped["filename_o"] == f["reported_sample"]]
        assert len(row) == 1, f["fault"]
        assert f"{f['subject']}/{f['reported_sample']}" in row.iloc[0]["reason"]
    unreadable = skipped[skipped["stage"] == "frames"]["reason"].str.contains("unreadable").sum()
    assert unreadable == 1  # found when the frame was read, in the worker
    info = json.loads((out / "build_report.json").read_text())["datasets"]["casme2"]
    assert info["written"] == len(db.truth[db.truth["fault"] == ""]) and info["skipped"] == len(faults)


def test_output_reads_with_the_release_loader(built):
    data = pytest.importorskip("htnet_lib.data")
    db, out, report = built
    samples = data.load_samples(out)
    maps = data.load_flow_maps(samples)
    assert maps.shape == (len(samples), 28, 28, 3)


def test_smic_apex_spotted_and_composite_folder(synthetic_db, tmp_path):
    smic = synthetic_db("smic", n_frames=11, amplitude=2.5)
    samm = synthetic_db("samm")
    B.build_release(load_database("smic", smic.root), tmp_path, face_boxes=smic.face_boxes, **FAST)
    B.build_release(load_database("samm", samm.root), tmp_path, face_boxes=samm.face_boxes, **FAST)
    csv = pd.read_csv(tmp_path / B.CSV_NAME, dtype=str, keep_default_na=False)
    assert list(dict.fromkeys(csv["dataset"])) == ["smic", "samm"]  # the release's order: smic first
    got = csv[csv["dataset"] == "smic"].set_index("filename_o")["apex"].astype(int)
    truth = smic.truth[smic.truth["fault"] == ""].set_index("sample")["apex"]
    err = (got - truth.reindex(got.index)).abs()
    assert err.median() <= 2 and err.max() <= 4, err.to_dict()
    skipped = pd.read_csv(tmp_path / "skipped.csv")
    assert set(skipped["dataset"]) == {"smic", "samm"}
    assert (csv["imagename"][csv["dataset"] == "smic"].str.match(r"s\d\d_s\d+_(ne|po|sur)_\d\d\.jpg")).all()


def test_rebuild_keeps_finished_work_and_recomputes_on_new_settings(synthetic_db, tmp_path):
    db = synthetic_db("casme3")
    table = load_database("casme3", db.root)
    r1 = B.build_release(table, tmp_path, face_boxes=db.face_boxes, **FAST)
    first = pd.read_csv(tmp_path / B.CSV_NAME)
    maps = {p.name: p.read_bytes() for p in (tmp_path / B.FLOW_DIR).glob("*.png")}
    r2 = B.build_release(table, tmp_path, face_boxes=db.face_boxes, **FAST)
    again = pd.read_csv(tmp_path / B.CSV_NAME)
    assert len(first) == len(again) == len(table.samples) - 1  # one sample has an unreadable frame
    assert first.equals(again) and len(r2.skipped) == len(r1.skipped)
    assert r2.timings["reused"] == len(first) and r2.timings["computed"] == 1  # only the broken one is retried
    (tmp_path / B.FLOW_DIR / next(iter(maps))).unlink()  # a lost file is remade
    r3 = B.build_release(table, tmp_path, face_boxes=db.face_boxes, **FAST)
    assert r3.timings["computed"] == 2 and maps == {p.name: p.read_bytes()
                                                    for p in (tmp_path / B.FLOW_DIR).glob("*.png")}
    r4 = B.build_release(table, tmp_path, face_boxes=db.face_boxes, **{**FAST, "flow_size": 48})
    assert r4.timings["reused"] == 0
    assert not list(tmp_path.rglob("*.tmp"))  # atomic writes leave nothing behind


def test_two_workers_give_the_same_maps(synthetic_db, tmp_path):
    db = synthetic_db("casme2")
    table = load_database("casme2", db.root)
    r1 = B.build_release(table, tmp_path / "w1", face_boxes=db.face_boxes, workers=1, **FAST)
    r2 = B.build_release(table, tmp_path / "w2", face_boxes=db.face_boxes, workers=2, **FAST)
    assert sorted(r1.samples["filename_o"]) == sorted(r2.samples["filename_o"])
    assert len(r1.skipped) == len(r2.skipped)
    for p in sorted((tmp_path / "w1" / B.FLOW_DIR).glob("*.png")):
        assert p.read_bytes() == (tmp_path / "w2" / B.FLOW_DIR / p.name).read_bytes()


def test_square_box_stays_inside_the_frame():
    assert B.square_box((10, 20, 40, 60), (100, 200)) == (0, 20, 60, 60)
    assert B.square_box((150, 50, 80, 80), (120, 200), scale=1.5) == (80, 0, 120, 120)
    assert B.square_box((50, 50, 100, 100), (300, 300), scale=0.5, shift=0.1) == (75, 85, 50, 50)


def test_bad_settings_are_named(synthetic_db, tmp_path):
    db = synthetic_db("casme2")
    table = load_database("casme2", db.root)
    with pytest.raises(HTNetInputError, match="method"):
        B.build_release(table, tmp_path, method="lucas-kanade", progress=False)
    with pytest.raises(HTNetInputError, match="workers"):
        B.build_release(table, tmp_path, workers=0, progress=False)


def test_cli_preprocess_raw(synthetic_db, tmp_path, capsys):
    db = synthetic_db("samm")
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["preprocess-raw", "--database", "samm", "--root", str(db.root), "--out",
                              str(tmp_path), "--method", "farneback", "--flow-size", "64",
                              "--face-boxes", str(db.root / "face_boxes.json"), "--no-progress"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "samples written" in out and "skipped.csv" in out
    assert "apex unreliable (no motion found) for 0" in out  # SAMM has apex indices: none spotted, none flagged
    with pytest.raises(SystemExit):
        parser.parse_args(["preprocess-raw", "--database", "samm", "--root", ".", "--out", ".",
                           "--face-box", "1,2,3"])


def test_mtcnn_finds_the_pasted_face(release_dir, tmp_path):
    """Face detection on the onset frame (no box given): the box covers the face that was pasted there."""
    from htnet_lib.raw.synthetic import make_raw_database

    db = make_raw_database("casme2", tmp_path / "raw", release_dir, n_subjects=1, per_subject=1,
                           frame_size=(320, 240), face_px=140, n_frames=3, seed=5)
    frame = cv2.imread(str(load_database("casme2", db.root).samples.iloc[0]["onset_path"]))
    box = B.detect_face_box(frame)
    assert box is not None
    x, y, w, h = B.square_box(box, frame.shape, B.RELEASE_BOX_SCALE, B.RELEASE_BOX_SHIFT)
    tx, ty, tw, th = next(iter(db.face_boxes.values()))
    ix = max(0, min(x + w, tx + tw) - max(x, tx))
    iy = max(0, min(y + h, ty + th) - max(y, ty))
    iou = ix * iy / (w * h + tw * th - ix * iy)
    # reframed as the release's crops are, the box should be the crop that was pasted (median IoU 0.83 on 29 faces)
    assert iou > 0.6, (box, (x, y, w, h), (tx, ty, tw, th))


def test_throughput_reports_samples_per_second(release_dir):
    from htnet_lib.raw.bench import throughput

    r = throughput("farneback", 2, size=(320, 240), workers=1, detect=False, data_dir=release_dir, flow_size=64)
    assert r["written"] == 2 and r["samples_per_s"] > 0 and r["size"] == [320, 240]


def test_static_sequence_apex_is_flagged(release_dir, tmp_path):
    """A SMIC clip whose frames are all the onset frame: its apex is the middle frame, flagged as unreliable in the
    report, flags.csv, build_report.json and the summary line; a rebuild that keeps the sample keeps the flag."""
    from htnet_lib.raw.synthetic import make_raw_database

    db = make_raw_database("smic", tmp_path / "raw", release_dir, n_subjects=1, per_subject=2, frame_size=(128, 112),
                           face_px=80, n_frames=7, seed=4)
    still = db.truth.iloc[0]
    frames = sorted(Path(still["frames_dir"]).iterdir())
    for f in frames[1:]:
        f.write_bytes(frames[0].read_bytes())
    table = load_database("smic", db.root)
    report = B.build_release(table, tmp_path / "out", face_boxes=db.face_boxes, **FAST)
    key = [still["subject"], still["sample"]]
    assert report.apex_unreliable[["sub", "filename_o"]].values.tolist() == [key]
    assert "apex unreliable (no motion found) for 1 (see flags.csv)" in report.summary()
    flags = pd.read_csv(tmp_path / "out" / B.FLAGS_NAME, dtype=str)
    assert flags[["sub", "filename_o", "flag"]].values.tolist() == [key + [B.APEX_NO_MOTION]]
    assert "no motion found in 7 frames" in flags["detail"].iloc[0]
    info = json.loads((tmp_path / "out" / "build_report.json").read_text())["datasets"]["smic"]
    assert info["apex_unreliable"] == ["/".join(key)]
    csv = pd.read_csv(tmp_path / "out" / B.CSV_NAME, dtype=str).set_index("filename_o")
    assert int(csv.loc[still["sample"], "apex"]) == still["onset"] + 3  # the middle of 7 frames
    again = B.build_release(table, tmp_path / "out", face_boxes=db.face_boxes, **FAST)
    assert again.timings["reused"] == 2 and len(again.apex_unreliable) == 1
    assert pd.read_csv(tmp_path / "out" / B.FLAGS_NAME, dtype=str).equals(flags)
