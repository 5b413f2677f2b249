"""Small generated raw databases, one per adapter layout, made from the release's real apex faces (tests, demo).

The licensed databases cannot ship with the project, so the raw-frames pipeline is exercised on look-alikes: each
sample is a real 224x224 apex face from the authors' release, pasted into a larger frame, and moved by a known smooth
displacement field (`fields.micro_expression_field`: Gaussian patches of motion at the brows or lip corners, the
movements of AU4, AU12, AU1+2, plus a sub-pixel head drift). The sequence runs onset -> apex -> offset with the motion's
intensity rising and falling as a half cosine each way; onset is the unmoved face, the apex the fully moved one. Each
frame gets Gaussian sensor noise and is stored in the database's own format (JPEG, or BMP for SMIC), so the flow and
the apex spotting face realistic noise. The ground truth (apex index, field, face box) is kept beside the data:

- `face_boxes.json`: {"subject/sample": [x, y, w, h]}, the box the face was pasted into (for `--face-boxes`, which
  skips face detection and keeps tests fast);
- `truth.csv`: one row per generated sample: dataset, subject, sample, emotion, label, onset, apex, offset, fault, ...

With `faults=True` a few broken samples are added, one per kind of bad input, each recorded in `truth.csv`'s `fault`
column: `missing_frame` (the apex frame file deleted), `onset_after_apex` (annotation swapped), `unreadable_frame`
(the onset frame overwritten with bytes that are not an image), `unknown_emotion` (a misspelt emotion),
`excluded_emotion` (an emotion the 3-class protocol leaves out). SMIC has no coding sheet, so its faults are an
unreadable frame, an unknown emotion folder and an empty clip folder.
"""
from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import pandas as pd

from .._io import atomic_path, atomic_write_json, atomic_write_text
from ..data import read_image
from ..release import CLASSES, FACE_DIR
from . import fields

KINDS = CLASSES  # negative, positive, surprise: the composite's classes, label = index
# the emotion words each database's own annotation uses for the three classes
EMOTION_WORDS = {
    "casme2": {"negative": ("disgust", "repression"), "positive": ("happiness",), "surprise": ("surprise",)},
    "samm": {"negative": ("Anger", "Contempt", "Disgust", "Fear", "Sadness"), "positive": ("Happiness",),
             "surprise": ("Surprise",)},
    "smic": {"negative": ("negative",), "positive": ("positive",), "surprise": ("surprise",)},
    "casme3": {"negative": ("disgust", "fear", "anger", "sad"), "positive": ("happy",), "surprise": ("surprise",)},
}
EXCLUDED_WORD = {"casme2": "others", "samm": "Other", "casme3": "others"}
LABEL_7 = {"happy": 1, "surprise": 2, "sad": 3, "disgust": 4, "fear": 5, "anger": 6, "others": 0}
SMIC_CODE = {"negative": "ne", "positive": "po", "surprise": "sur"}
NOT_AN_IMAGE = b"this is not an image\n"


@dataclass
class SyntheticDatabase:
    """Where a generated database lies and what is true of it."""

    database: str
    root: Path
    truth: pd.DataFrame
    face_boxes: dict[str, tuple[int, int, int, int]]
    fields: dict[str, fields.Bumps]


def intensity_profile(n: int, apex: int) -> np.ndarray:
    """Motion intensity per frame: 0 at onset, a half-cosine rise to 1 at `apex`, a half-cosine fall to 0 at the end."""
    t = np.arange(n, dtype=np.float64)
    rise = 0.5 - 0.5 * np.cos(np.pi * t / max(apex, 1))
    fall = 0.5 + 0.5 * np.cos(np.pi * (t - apex) / max(n - 1 - apex, 1))
    return np.where(t <= apex, rise, fall)


def release_faces(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The release's apex faces (real faces: the texture the flow has to track), sorted by name."""
    from ..data import resolve_data_dir

    root = resolve_data_dir(data_dir)
    faces = sorted((root / FACE_DIR).glob("*.jpg"))
    if not faces:
        raise FileNotFoundError(f"no apex faces under {root / FACE_DIR}")
    return faces


def render_sequence(face: np.ndarray, field: fields.Field, n_frames: int, apex: int, frame_size: tuple[int, int],
                    box: tuple[int, int, int, int], noise: float, rng: np.random.Generator,
                    background: int = 118) -> list[np.ndarray]:
    """BGR frames of one sequence: the face (already `box`-sized) moved by `field` scaled by the intensity profile."""
    w, h = frame_size
    x, y, bw, bh = box
    canvas = np.full((h, w, 3), background, np.uint8)
    frames = []
    for s in intensity_profile(n_frames, apex):
        moved = fields.warp(face, fields.Scaled(field, float(s))) if s > 0 else face
        frame = canvas.copy()
        frame[y:y + bh, x:x + bw] = moved
        if noise > 0:
            frame = np.clip(frame + rng.normal(0.0, noise, frame.shape), 0, 255).astype(np.uint8)
        frames.append(frame)
    return frames


def _write_image(path: Path, img: np.ndarray) -> None:
    ext = path.suffix.lower()
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if ext in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext, img, params)
    if not ok:
        raise ValueError(f"could not encode {path}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())


def _frame_name(database: str, subject: str, n: int) -> str:
    return {"casme2": f"img{n}.jpg", "samm": f"{subject}_{n:05d}.jpg", "smic": f"image{n:06d}.bmp",
            "casme3": f"{n}.jpg"}[database]


def make_raw_database(database: str, out_root: str | os.PathLike, data_dir: str | os.PathLike | None = None,
                      n_subjects: int = 2, per_subject: int = 3, frame_size: tuple[int, int] = (160, 128),
                      face_px: int = 96, n_frames: int = 9, amplitude: float | tuple[float, float] = 1.5,
                      noise: float = 1.0, head_motion: float = 0.0,
                      faults: bool = False, annotation_format: str = "xlsx", seed: int = 0,
                      faces: Sequence[str | os.PathLike] | None = None) -> SyntheticDatabase:
    """Write a small raw database in `database`'s own layout under `out_root` and return its ground truth.

    `frame_size` is (width, height) of the frames, `face_px` the side of the face pasted at a random place in them,
    `amplitude` the peak displacement in pixels of the face (a (low, high) pair draws one per sample), `n_frames` the
    frames from onset to offset, `head_motion` the largest head rotation / scaling added (see
    `fields.micro_expression_field`). Samples cycle
    through negative, positive and surprise. `annotation_format` is "xlsx" or "csv" for the coding sheets (CASME II,
    SAMM). Faces come from the release (`data_dir`, else $HTNET_DATA_DIR...) unless `faces` lists image files.
    """
    if database not in EMOTION_WORDS:  # the four built-in adapters' layouts
        raise ValueError(f"no synthetic layout for database {database!r} (known: {', '.join(EMOTION_WORDS)})")
    root = Path(out_root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    face_files = list(faces) if faces is not None else release_faces(data_dir)
    picks = rng.choice(len(face_files), size=min(len(face_files), n_subjects * per_subject + 8), replace=False)
    W, H = frame_size
    if face_px > min(W, H):
        raise ValueError(f"face_px {face_px} does not fit frames of {W}x{H}")

    records: list[dict[str, Any]] = []
    boxes: dict[str, tuple[int, int, int, int]] = {}
    field_by: dict[str, fields.Bumps] = {}
    k = 0

    def new_sample(subject_idx: int, j: int, kind: str, fault: str | None = None) -> None:
        nonlocal k
        face = read_image(face_files[int(picks[k % len(picks)])], "face_path", flags=cv2.IMREAD_COLOR)
        k += 1
        face = cv2.resize(face, (face_px, face_px), interpolation=cv2.INTER_AREA)
        # keep up to a quarter face of background around the face where the frame allows: a real frame shows the
        # whole head, and MTCNN's box reaches beyond the tight crop that the release's faces are
        mx = min(face_px // 4, (W - face_px) // 2)
        my = min(face_px // 4, (H - face_px) // 2)
        x = int(rng.integers(mx, W - face_px - mx + 1))
        y = int(rng.integers(my, H - face_px - my + 1))
        box = (x, y, face_px, face_px)
        amp = float(rng.uniform(*amplitude)) if isinstance(amplitude, (tuple, list)) else float(amplitude)
        field = fields.micro_expression_field(kind, face_px, amp, rng, head=head_motion)
        apex_idx = int(rng.integers(max(1, n_frames // 3), max(2, 2 * n_frames // 3) + 1))
        apex_idx = min(apex_idx, n_frames - 2) if n_frames > 2 else n_frames - 1
        first = int(rng.integers(1, 400))
        frames = render_sequence(face, field, n_frames, apex_idx, (W, H), box, noise, rng)
        words = EMOTION_WORDS[database][kind]
        emotion = words[j % len(words)]
        if fault == "unknown_emotion":
            emotion = {"smic": "happy"}.get(database, "hapiness")
        elif fault == "excluded_emotion":
            emotion = EXCLUDED_WORD[database]
        rec = _layout(database, root, subject_idx, j, kind, emotion, first, apex_idx, frames)
        if fault == "missing_frame":
            Path(rec["frames_dir"], _frame_name(database, rec["folder_subject"], rec["apex"])).unlink()
        elif fault == "unreadable_frame":
            onset_file = Path(rec["frames_dir"], _frame_name(database, rec["folder_subject"], rec["onset"]))
            onset_file.write_bytes(NOT_AN_IMAGE)
        elif fault == "empty_folder":
            for p in Path(rec["frames_dir"]).iterdir():
                p.unlink()
        reported = rec["sample"]
        if database == "casme3" and fault == "onset_after_apex":  # its sample name is built from the (wrong) onset
            reported = f"{rec['sample'].split('_')[0]}_{rec['apex']}"
        rec.update(fault=fault or "", reported_sample=reported, face_x=x, face_y=y, face_w=face_px, face_h=face_px,
                   apex_index=apex_idx, kind=kind, amplitude=amp)
        records.append(rec)
        key = f"{rec['subject']}/{rec['sample']}"
        boxes[key] = box
        field_by[key] = field

    for s in range(n_subjects):
        for j in range(per_subject):
            new_sample(s, j, KINDS[(s * per_subject + j) % 3])
    if faults:
        kinds = (["unreadable_frame", "unknown_emotion", "empty_folder"] if database == "smic" else
                 ["missing_frame", "onset_after_apex", "unreadable_frame", "unknown_emotion", "excluded_emotion"])
        for j, fault in enumerate(kinds):
            new_sample(n_subjects, j, KINDS[j % 3], fault)

    truth = pd.DataFrame(records)
    _write_annotation(database, root, truth, annotation_format)
    atomic_write_json(root / "face_boxes.json", {k: list(v) for k, v in boxes.items()})
    cols = ["dataset", "subject", "sample", "emotion", "label", "onset", "apex", "offset", "apex_index", "fault",
            "reported_sample",
            "kind", "amplitude", "face_x", "face_y", "face_w", "face_h", "frames_dir"]
    atomic_write_text(root / "truth.csv", truth[cols].to_csv(index=False))
    return SyntheticDatabase(database, root, truth, boxes, field_by)


def _layout(database: str, root: Path, s: int, j: int, kind: str, emotion: str, first: int, apex_idx: int,
            frames: list[np.ndarray]) -> dict[str, Any]:
    """Write one sequence's frames where `database` keeps them; the identifiers the adapter should report."""
    label = KINDS.index(kind)
    n = len(frames)
    if database == "casme2":
        subject, folder_subject = f"sub{s + 1:02d}", f"sub{s + 1:02d}"
        sample = f"EP{j + 1:02d}_{s + 1:02d}f"
        frames_dir = root / "CASME2_RAW_selected" / subject / sample
    elif database == "samm":
        subject = folder_subject = f"{s + 6:03d}"
        sample = f"{subject}_{j + 1}_{s + 1}"
        frames_dir = root / "SAMM" / subject / sample
    elif database == "smic":
        folder_subject = f"s{s + 1}"
        subject = f"s{s + 1:02d}"
        clip = f"{folder_subject}_{SMIC_CODE[kind]}_{j + 1:02d}"
        sample = f"{subject}_{SMIC_CODE[kind]}_{j + 1:02d}"
        frames_dir = root / "HS" / folder_subject / "micro" / emotion / clip
    else:  # casme3
        subject = folder_subject = f"spNO.{s + 1}"
        take = "abcdefghijklm"[j % 13]
        sample = f"{take}_{first}"
        frames_dir = root / subject / take / "color"
    frames_dir.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        _write_image(frames_dir / _frame_name(database, folder_subject, first + i), f)
    return {"dataset": database, "subject": subject, "folder_subject": folder_subject, "sample": sample,
            "emotion": emotion, "label": label, "onset": first, "apex": first + apex_idx, "offset": first + n - 1,
            "frames_dir": str(frames_dir)}


def _write_annotation(database: str, root: Path, truth: pd.DataFrame, fmt: str) -> None:
    rows_in = truth.to_dict("records")
    for r in rows_in:
        if r["fault"] == "onset_after_apex":  # the annotation, not the frames, is wrong
            r["onset"], r["apex"] = r["apex"], r["onset"]
    if database == "casme2":
        header = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion"]
        rows = [[int(r["subject"][3:]), r["sample"], r["onset"], r["apex"], r["offset"], "4", r["emotion"]]
                for r in rows_in]
        _write_sheet(root / f"CASME2-coding-20140508.{fmt}", [header] + rows, fmt)
    elif database == "samm":
        title = [["SAMM Micro-FACS Codes (synthetic look-alike for tests)"], [], ["Generated by htnet_lib.raw"]]
        title += [[] for _ in range(13 - len(title))]  # the real sheet's header is on its 14th row
        header = ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame", "Duration",
                  "Type", "Action Units", "Notes", "Estimated Emotion"]
        rows = [[int(r["subject"]), r["sample"], 1, r["onset"], r["apex"], r["offset"], r["offset"] - r["onset"] + 1,
                 "Micro - 1/2", "4", "", r["emotion"]] for r in rows_in]
        _write_sheet(root / f"SAMM_Micro_FACS_Codes_v2.{fmt}", title + [header] + rows, fmt)
    elif database == "casme3":
        header = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion", "label_for_7",
                  "label_for_3", "imagename_apex", "imagename_onset", "imagename_apex_offset"]
        rows = []
        for r in rows_in:
            take = r["sample"].split("_")[0]
            word = str(r["emotion"]).lower()
            known = word in LABEL_7 and word != "others"
            l3 = KINDS.index(r["kind"]) if known else ""
            rows.append([r["subject"], take, r["onset"], r["apex"], r["offset"], "4", "III", r["emotion"],
                         LABEL_7.get(word, ""), l3, f"{r['subject']}/{take}/color/{r['apex']}.jpg",
                         f"{r['subject']}/{take}/color/{r['onset']}.jpg",
                         f"{r['subject']}/{take}/color/{r['offset']}.jpg"])
        _write_sheet(root / "cas(me)3_part_A_edited.csv", [header] + rows, "csv")
    # SMIC: no annotation file; the folders are the annotation


def _write_sheet(path: Path, rows: list[list[Any]], fmt: str) -> None:
    """Rows (title rows may be shorter) as the only sheet of an .xlsx workbook (openpyxl, through pandas) or a CSV."""
    width = max(len(r) for r in rows)
    sheet = pd.DataFrame([list(r) + [None] * (width - len(r)) for r in rows], dtype=object)
    if fmt == "xlsx":
        buf = io.BytesIO()
        sheet.to_excel(buf, header=False, index=False, engine="openpyxl")
        with atomic_path(path) as tmp:
            tmp.write_bytes(buf.getvalue())
    elif fmt == "csv":
        atomic_write_text(path, sheet.to_csv(header=False, index=False, lineterminator="\n"))
    else:
        raise ValueError(f"annotation_format must be 'xlsx' or 'csv', got {fmt!r}")


def load_face_boxes(path: str | os.PathLike) -> dict[str, tuple[int, int, int, int]]:
    """A `face_boxes.json` ({"subject/sample": [x, y, w, h]}) as a dict of tuples."""
    data = json.loads(Path(path).read_text())
    return {k: tuple(int(v) for v in box) for k, box in data.items()}
