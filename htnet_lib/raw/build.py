"""Raw database -> a folder in the release's layout, so everything downstream reads it unchanged (§3.1, §4.1-4.2).

`build_release(table, out, ...)` writes, for each usable sample of an adapter's table:

- `datasets/STSNet_whole_norm_u_v_os/{sub}_{filename_o} .png` (the space is the release's): the 28x28x3 map of optical
  flow onset -> apex and its strain (`flow.face_pair_to_map`);
- `datasets/combined_datasets_whole/{imagename}`: the 224x224 apex face crop (JPEG), from which `htnet_lib.regions`
  takes MTCNN landmarks;
- `combined_3_class2_for_optical_flow.csv`: the release's columns (dataset, sub, filename_o, label, apex, imagename,
  sub_filename). `apex` holds the apex frame number used (the release leaves it blank; ours records what D&C-RoIs
  spotted for SMIC), `sub_filename` is blank as in the release;
- `skipped.csv`: every annotated sample not in the CSV, with the stage (annotation, frames, face, flow, protocol), the
  field and the error message naming the sample;
- `flags.csv`: samples written but with a caveat (dataset, sub, filename_o, flag, detail). One flag so far,
  `apex_no_motion`: the apex was spotted (no apex index) but no motion was found in the sequence, so the middle frame
  was used (`apex.spot_apex_detail`); `BuildReport.apex_unreliable` lists them, `build_report.json` names them per
  dataset (`apex_unreliable`) and the summary line counts them;
- `build_report.json`: settings, counts, timings, versions.

Building several databases into one folder composes them (rows of other datasets are kept), which is how the
composite release of SMIC + CASME II + SAMM is made: run the command once per database.

Per sample (parallel over samples in worker processes, `workers`; a progress bar counts them):

1. read the onset frame; find the face on it with MTCNN (facenet-pytorch, CPU) unless a box is given
   (`face_boxes`: one (x, y, w, h) for all samples, or a dict by "subject/sample"). A detected box is reframed as the
   release's crops are (`RELEASE_BOX_SCALE`, `RELEASE_BOX_SHIFT`: measured, see there); a given box is the crop
   itself, made square. `box_scale` enlarges either. The *same* box crops onset, apex and frames between, so the
   face's motion between them is kept, not cancelled by a re-detection;
2. without an apex index (SMIC): D&C-RoIs on the crops from onset to offset (`apex.spot_apex_detail`; flagged when
   the crops show no motion);
3. the apex crop, resized to 224x224, is the apex face; onset and apex crops, grey and resized to `flow_size` +
   2 `flow_border`, give the flow (Farneback or TV-L1) and the strain (eq. 3); `flow_border` px are cut from each side
   (the methods' false flow on the crop's edge, see `flow`) and the rest is shrunk to the 28x28 map.

Every file is written atomically (temporary file, then rename), so an interrupted build leaves no half-written image;
run again, it keeps the samples already done with the same settings (`resume`) and computes the rest. A sample that
fails at any step is reported, never fatal: the rest are processed.
"""
from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import cv2
import numpy as np
import pandas as pd

from .. import release
from .._io import (HTNetInputError, atomic_path, atomic_write_json, atomic_write_text, git_revision,
                   progress as progress_bar, torch_threads)
from ..data import read_image
from ..release import CSV_NAME, FACE_DIR, FLOW_DIR, RELEASE_COLUMNS, flow_name
from . import apex as apex_mod
from . import flow as flow_mod
from .adapters import SKIPPED_COLUMNS, RawTable, SampleError, frame_paths

FACE_SIZE = release.FACE_SHAPE[0]
FLAGS_NAME = "flags.csv"
FLAG_COLUMNS = ["dataset", "sub", "filename_o", "flag", "detail"]
APEX_NO_MOTION = "apex_no_motion"  # the flag of a spotted apex with no motion found (`apex.spot_apex_detail`)

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class BuildSettings:
    """Everything that changes the output images; recorded in `build_report.json`."""

    method: str = "tvl1"
    flow_size: int = flow_mod.DEFAULT_FLOW_SIZE
    face_size: int = FACE_SIZE
    map_size: int = flow_mod.MAP_SIZE
    box_scale: float = 1.0
    jpeg_quality: int = 95
    map_interpolation: str = "area"
    flow_border: int = flow_mod.DEFAULT_FLOW_BORDER  # px cut from each side of the flow (flow.face_pair_to_map)

    def __post_init__(self) -> None:
        if self.method not in flow_mod.METHODS:
            raise HTNetInputError(None, "method", f"unknown flow method {self.method!r}; choose {flow_mod.METHODS}")
        if self.map_interpolation not in flow_mod.INTERPOLATIONS:
            raise HTNetInputError(None, "map_interpolation", f"unknown interpolation {self.map_interpolation!r}; "
                                                             f"choose {tuple(flow_mod.INTERPOLATIONS)}")
        for name in ("flow_size", "face_size", "map_size", "jpeg_quality"):
            if getattr(self, name) <= 0:
                raise HTNetInputError(None, name, f"must be positive, got {getattr(self, name)}")
        if self.box_scale <= 0:
            raise HTNetInputError(None, "box_scale", f"must be positive, got {self.box_scale}")
        if not 0 <= self.flow_border < self.flow_size // 2:
            raise HTNetInputError(None, "flow_border", f"must be 0 or more and under half of flow_size "
                                                       f"({self.flow_size}), got {self.flow_border}")


@dataclass
class BuildReport:
    """What `build_release` did: the rows it wrote, their flags (`flags.csv`), those it skipped and why, how long."""

    out: Path
    samples: pd.DataFrame
    skipped: pd.DataFrame
    seconds: float
    settings: BuildSettings
    workers: int
    timings: dict[str, float] = field(default_factory=dict)
    flags: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=FLAG_COLUMNS))

    @property
    def apex_unreliable(self) -> pd.DataFrame:
        """The written samples whose spotted apex is unreliable: no motion found in the sequence."""
        return self.flags[self.flags["flag"] == APEX_NO_MOTION]

    @property
    def samples_per_second(self) -> float:
        n = len(self.samples) + int((self.skipped["stage"] != "protocol").sum() if len(self.skipped) else 0)
        return n / self.seconds if self.seconds > 0 else float("nan")

    def summary(self) -> str:
        by_stage = self.skipped.groupby("stage").size().to_dict() if len(self.skipped) else {}
        reused = self.timings.get("reused", 0)
        return (f"{len(self.samples)} samples written to {self.out} in {self.seconds:.1f} s "
                f"({self.settings.method}, {self.workers} worker(s){f'; {reused} kept from before' if reused else ''});"
                f" skipped {len(self.skipped)} {by_stage}; apex unreliable (no motion found) for "
                f"{len(self.apex_unreliable)}{f' (see {FLAGS_NAME})' if len(self.apex_unreliable) else ''}")


# ---------------------------------------------------------------- faces

_DETECTOR: Any = None


def _detector() -> Any:
    """One MTCNN per process (weights ship with facenet-pytorch; CPU)."""
    global _DETECTOR
    if _DETECTOR is None:
        from facenet_pytorch import MTCNN

        _DETECTOR = MTCNN(keep_all=False, select_largest=True, post_process=False, device="cpu")
    return _DETECTOR


def detect_face_box(frame_bgr: np.ndarray) -> Box | None:
    """MTCNN's face box (x, y, w, h) on one BGR frame, or None. One image per call (facenet-pytorch #224)."""
    rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
    detector = _detector()
    # one thread: 640x480 frame, 2 cores: 1.7 s with 2 threads, 0.1 s with 1 (see _io.torch_threads)
    with torch_threads(1):
        boxes, _ = detector.detect(rgb)
    if boxes is None or len(boxes) == 0:
        return None
    x1, y1, x2, y2 = (float(v) for v in boxes[0])
    return int(round(x1)), int(round(y1)), int(round(x2 - x1)), int(round(y2 - y1))


# MTCNN's box against the release's own crops: on the 224x224 apex faces pasted into a 448x448 grey frame (30 faces,
# every 15th), the box's longer side is 1.19x the crop's side (quartiles 1.12-1.26) and its centre 0.086 crop sides
# higher (it reaches further up the forehead). Cropping 1/1.19 = 0.84 of the box, moved down by 0.072 box sides,
# frames the face as the release does.
RELEASE_BOX_SCALE = 0.84
RELEASE_BOX_SHIFT = 0.072


def square_box(box: Sequence[float], shape: Sequence[int], scale: float = 1.0, shift: float = 0.0) -> Box:
    """A square box around `box`'s centre, side = scale x its longer side, its centre moved down by `shift` x that
    longer side; then moved (not cut) to lie inside the frame."""
    h, w = shape[:2]
    x, y, bw, bh = (float(v) for v in box)
    longer = max(bw, bh)
    side = int(round(min(longer * scale, w, h)))
    cx, cy = x + bw / 2.0, y + bh / 2.0 + shift * longer
    x0 = int(round(min(max(cx - side / 2.0, 0), w - side)))
    y0 = int(round(min(max(cy - side / 2.0, 0), h - side)))
    return x0, y0, side, side


def crop(frame: np.ndarray, box: Box) -> np.ndarray:
    x, y, w, h = box
    return frame[y:y + h, x:x + w]


def spotting_crop(frame: np.ndarray, box: Box, size: int = flow_mod.DEFAULT_FLOW_SIZE) -> np.ndarray:
    """The grey crop that apex spotting and its no-motion flag read (`apex.spot_apex_detail`): `box` of the frame,
    resized to size x size (`predict` checks a frame pair for motion on the same crops)."""
    grey = cv2.cvtColor(crop(frame, box), cv2.COLOR_BGR2GRAY)
    return cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA)


# ---------------------------------------------------------------- one sample

def _read(path: str, ident: tuple[str, str, str], name: str) -> np.ndarray:
    try:
        return read_image(path, name, flags=cv2.IMREAD_COLOR)
    except HTNetInputError as e:
        raise SampleError(*ident, path, name, f"{name} frame: {e.problem}", stage="frames") from None


def _write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def process_sample(task: Mapping[str, Any]) -> dict[str, Any]:
    """Make one sample's map and apex face (steps 1-3 of the module docstring); never raises.

    Returns {"ok": True, "row": {...release CSV row...}, "seconds": ...} or {"ok": False, "skip": {...}}.
    """
    t0 = time.perf_counter()
    row = task["row"]
    s = BuildSettings(**task["settings"])
    ident = (row["dataset"], row["subject"], row["sample"])
    flags: list[dict[str, str]] = []  # FLAG_COLUMNS rows: written, but with a caveat
    try:
        onset = _read(row["onset_path"], ident, "onset")
        box = task.get("box")
        if box is None:
            found = detect_face_box(onset)
            if found is None:
                raise SampleError(*ident, row["onset_path"], "face", "no face found on the onset frame", stage="face")
            # a detected box is larger and higher than the release's crops: frame it as they are
            box = square_box(found, onset.shape, RELEASE_BOX_SCALE * s.box_scale, RELEASE_BOX_SHIFT)
        else:
            box = square_box(box, onset.shape, s.box_scale)  # a given box is the crop itself
        apex_num = row["apex"]
        if apex_num is None:
            seq = frame_paths(row)
            if len(seq) < 2:
                raise SampleError(*ident, row["frames_dir"], "frames_dir",
                                  f"{len(seq)} frame(s) from onset to offset: too few to spot the apex", stage="frames")
            crops = []
            for n, p in seq:
                img = onset if str(p) == str(row["onset_path"]) else _read(str(p), ident, f"frame {n}")
                if img.shape != onset.shape:
                    raise SampleError(*ident, p, f"frame {n}", f"frame size {img.shape[:2]} differs from the onset's "
                                                                f"{onset.shape[:2]}", stage="frames")
                crops.append(spotting_crop(img, box, s.flow_size))
            spot = apex_mod.spot_apex_detail(crops)
            apex_num, found_path = seq[spot.index]
            apex_path = str(found_path)
            if not spot.reliable:
                flags.append({"dataset": row["dataset"], "sub": row["subject"], "filename_o": row["sample"],
                              "flag": APEX_NO_MOTION,
                              "detail": f"no motion found in {len(seq)} frames (largest feature difference "
                                        f"{spot.max_difference:.2g}); the middle frame {apex_num} is used"})
        else:
            apex_path = row["apex_path"]
        apex_img = _read(apex_path, ident, "apex")
        if apex_img.shape != onset.shape:
            raise SampleError(*ident, apex_path, "apex", f"apex frame size {apex_img.shape[:2]} differs from the "
                                                         f"onset's {onset.shape[:2]}", stage="frames")
        on_face, ap_face = crop(onset, box), crop(apex_img, box)
        face = cv2.resize(ap_face, (s.face_size, s.face_size),
                          interpolation=cv2.INTER_AREA if ap_face.shape[0] > s.face_size else cv2.INTER_CUBIC)
        try:
            fmap = flow_mod.face_pair_to_map(on_face, ap_face, s.method, s.flow_size, s.map_size,
                                             flow_mod.INTERPOLATIONS[s.map_interpolation], border=s.flow_border)
        except cv2.error as e:
            raise SampleError(*ident, row["frames_dir"], "flow", f"optical flow failed: {e}", stage="flow") from None
        ok, jpg = cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_QUALITY, s.jpeg_quality])
        if not ok:
            raise SampleError(*ident, task["face_path"], "imagename", "JPEG encoding failed", stage="flow")
        _write_bytes(Path(task["face_path"]), jpg.tobytes())
        _write_bytes(Path(task["map_path"]), flow_mod.encode_png(fmap))
        out_row = {"dataset": row["dataset"], "sub": row["subject"], "filename_o": row["sample"],
                   "label": int(row["label"]), "apex": int(apex_num), "imagename": row["imagename"],
                   "sub_filename": ""}
        return {"ok": True, "row": out_row, "box": list(box), "flags": flags, "seconds": time.perf_counter() - t0}
    except SampleError as e:
        skip = {"dataset": e.dataset, "subject": e.subject, "sample": e.sample, "stage": e.stage, "field": e.field,
                "reason": str(e)}
    except Exception as e:  # noqa: BLE001 - one broken sample must not stop the others; the report says what broke
        err = SampleError(*ident, row.get("frames_dir"), None, f"{type(e).__name__}: {e}", stage="internal")
        skip = {"dataset": err.dataset, "subject": err.subject, "sample": err.sample, "stage": err.stage,
                "field": err.field, "reason": str(err)}
    return {"ok": False, "skip": skip, "seconds": time.perf_counter() - t0}


def _init_worker() -> None:
    # one thread per worker process: the parallelism is over samples, and oversubscribed threads only contend
    cv2.setNumThreads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


def _mp_context(need_detector: bool) -> Any:
    """Start method for the worker processes: forkserver where there is one (Linux, macOS), else spawn.

    Not fork: once this process has run OpenCV (its OpenMP pool is then started) a forked child hangs in its first
    torch call (checked here: synthetic frames made with cv2, then MTCNN in a forked worker, never returns). A
    forkserver is a fresh interpreter that has run nothing; it imports this module and, when faces are to be detected,
    facenet-pytorch once, and every worker is forked from it with those imports done (2 workers ready to detect in
    ~10 s instead of ~20 s with spawn on 2 cores; the server stays up, so later builds start at once).
    """
    import multiprocessing as mp

    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload([__name__] + (["facenet_pytorch"] if need_detector else []))
        return ctx
    return mp.get_context("spawn")


# ---------------------------------------------------------------- the folder

def _box_for(face_boxes: Box | Mapping[str, Sequence[int]] | None, subject: str, sample: str) -> list[int] | None:
    if face_boxes is None:
        return None
    if isinstance(face_boxes, Mapping):
        b = face_boxes.get(f"{subject}/{sample}")
        return list(b) if b is not None else None
    return list(face_boxes)


def _merge_csv(path: Path, new: pd.DataFrame, datasets: Iterable[str], columns: Sequence[str]) -> pd.DataFrame:
    """Rows already in `path` for other datasets, plus `new`; in the release's dataset order, then subject, sample."""
    columns = list(columns)  # a tuple would index one (multi-level) column
    keep = pd.DataFrame(columns=columns)
    if path.is_file():
        old = pd.read_csv(path, dtype=str, keep_default_na=False)
        keep = old[~old["dataset"].isin(list(datasets))][columns]
    merged = pd.concat([keep.astype(str), new[columns].astype(str)], ignore_index=True)
    order = {d: i for i, d in enumerate(release.KEYS)}
    key = merged["dataset"].map(lambda d: order.get(d, len(order)))
    merged = merged.assign(_k=key).sort_values(["_k", merged.columns[1], merged.columns[2]], kind="stable")
    return merged.drop(columns="_k").reset_index(drop=True)


def build_release(tables: RawTable | Sequence[RawTable], out: str | os.PathLike, method: str = "tvl1",
                  workers: int = 1, face_boxes: Box | Mapping[str, Sequence[int]] | None = None,
                  flow_size: int = flow_mod.DEFAULT_FLOW_SIZE, box_scale: float = 1.0,
                  map_interpolation: str = "area", flow_border: int = flow_mod.DEFAULT_FLOW_BORDER,
                  progress: bool = True, limit: int | None = None, resume: bool = True) -> BuildReport:
    """Turn adapter tables into a release-layout folder at `out` (see the module docstring); returns the report.

    `workers` > 1 runs samples in that many processes; 1 runs them here. `face_boxes` skips face detection (fixed box
    for all, or per "subject/sample"; a sample missing from the dict is detected). `limit` keeps the first N samples
    of each table (a quick look). With `resume`, a sample already in the folder's CSV, with both its files present
    and built with the same settings (`build_report.json`), is kept as it is rather than recomputed.
    """
    t_start = time.perf_counter()
    tables = [tables] if isinstance(tables, RawTable) else list(tables)
    settings = BuildSettings(method=method, flow_size=flow_size, box_scale=box_scale,
                             map_interpolation=map_interpolation, flow_border=flow_border)
    if workers < 1:
        raise HTNetInputError(None, "workers", f"must be at least 1, got {workers}")
    out = Path(out)
    (out / FLOW_DIR).mkdir(parents=True, exist_ok=True)
    (out / FACE_DIR).mkdir(parents=True, exist_ok=True)

    tasks, skipped = [], []
    for t in tables:
        skipped.extend(t.skipped.to_dict("records"))
        rows = t.samples if limit is None else t.samples.head(limit)
        for r in rows.to_dict("records"):
            r["apex"] = None if pd.isna(r["apex"]) else int(r["apex"])
            tasks.append({"row": r, "settings": asdict(settings),
                          "box": _box_for(face_boxes, r["subject"], r["sample"]),
                          "map_path": str(out / FLOW_DIR / flow_name(r["subject"], r["sample"])),
                          "face_path": str(out / FACE_DIR / r["imagename"])})

    results: list[dict[str, Any]] = []
    if resume:
        done = _finished_rows(out, settings)
        old_flags = _read_flags(out)
        todo = []
        for task in tasks:
            r = task["row"]
            key = (r["dataset"], r["subject"], r["sample"])
            old = done.get(key)
            if old is not None and Path(task["map_path"]).is_file() and Path(task["face_path"]).is_file():
                results.append({"ok": True, "row": old, "flags": old_flags.get(key, []), "seconds": 0.0,
                                "reused": True})
            else:
                todo.append(task)
        tasks = todo
    desc = f"{'+'.join(t.database for t in tables)} -> release layout ({method})"
    if workers == 1 or len(tasks) <= 1:
        with progress_bar(total=len(tasks), desc=desc, unit="sample", disable=not progress) as bar:
            for task in tasks:
                results.append(process_sample(task))
                bar.update(1)
    else:
        ctx = _mp_context(need_detector=any(t["box"] is None for t in tasks))
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker) as pool:
            futures = [pool.submit(process_sample, task) for task in tasks]
            with progress_bar(total=len(tasks), desc=desc, unit="sample", disable=not progress) as bar:
                for fut in as_completed(futures):
                    results.append(fut.result())
                    bar.update(1)

    rows = [r["row"] for r in results if r["ok"]]
    skipped += [r["skip"] for r in results if not r["ok"]]
    datasets = [t.database for t in tables]
    new = pd.DataFrame(rows, columns=RELEASE_COLUMNS)
    merged = _merge_csv(out / CSV_NAME, new, datasets, RELEASE_COLUMNS)
    atomic_write_text(out / CSV_NAME, merged.to_csv(index=False))
    skipped_df = pd.DataFrame(skipped, columns=SKIPPED_COLUMNS).rename(columns={"subject": "sub",
                                                                                 "sample": "filename_o"})
    skip_cols = ["dataset", "sub", "filename_o", "stage", "field", "reason"]
    merged_skips = _merge_csv(out / "skipped.csv", skipped_df, datasets, skip_cols)
    atomic_write_text(out / "skipped.csv", merged_skips.to_csv(index=False))
    flags = pd.DataFrame([f for r in results if r["ok"] for f in r["flags"]], columns=FLAG_COLUMNS)
    atomic_write_text(out / FLAGS_NAME, _merge_csv(out / FLAGS_NAME, flags, datasets, FLAG_COLUMNS).to_csv(index=False))

    seconds = time.perf_counter() - t_start
    per_sample = [r["seconds"] for r in results if not r.get("reused")]
    timings = {"total_s": seconds, "computed": len(per_sample), "reused": len(results) - len(per_sample),
               "mean_sample_s": float(np.mean(per_sample)) if per_sample else 0.0,
               "median_sample_s": float(np.median(per_sample)) if per_sample else 0.0}
    report = BuildReport(out, new, skipped_df, seconds, settings, workers, timings, flags)
    _write_report(out, tables, report)
    return report


def _read_flags(out: Path) -> dict[tuple[str, str, str], list[dict[str, str]]]:
    """The flags of `out`'s samples (`flags.csv`), by (dataset, sub, filename_o): kept with a sample that is kept."""
    path = out / FLAGS_NAME
    if not path.is_file():
        return {}
    by: dict[tuple[str, str, str], list[dict[str, str]]] = {}
    for f in pd.read_csv(path, dtype=str, keep_default_na=False).to_dict("records"):
        by.setdefault((f["dataset"], f["sub"], f["filename_o"]), []).append(f)
    return by


def _finished_rows(out: Path, settings: BuildSettings) -> dict[tuple[str, str, str], dict[str, Any]]:
    """CSV rows of `out` whose dataset was built with `settings`, by (dataset, sub, filename_o)."""
    report, csv = out / "build_report.json", out / CSV_NAME
    if not (report.is_file() and csv.is_file()):
        return {}
    try:
        per = json.loads(report.read_text()).get("datasets", {})
    except json.JSONDecodeError:
        return {}
    same = {ds for ds, info in per.items() if info.get("settings") == asdict(settings)}
    rows = pd.read_csv(csv, dtype=str, keep_default_na=False)
    out_rows = {}
    for r in rows[rows["dataset"].isin(same)].to_dict("records"):
        r["label"] = int(r["label"])
        r["apex"] = int(r["apex"]) if r["apex"] else ""
        out_rows[r["dataset"], r["sub"], r["filename_o"]] = r
    return out_rows


def _write_report(out: Path, tables: Sequence[RawTable], report: BuildReport) -> None:
    path = out / "build_report.json"
    old: dict[str, Any] = {}
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError:
            old = {}
    per = old.get("datasets", {})
    for t in tables:
        mine = report.samples[report.samples["dataset"] == t.database]
        skips = report.skipped[report.skipped["dataset"] == t.database]
        no_motion = report.apex_unreliable[report.apex_unreliable["dataset"] == t.database]
        per[t.database] = {
            "root": str(t.root), "annotation": str(t.annotation) if t.annotation else None,
            "written": int(len(mine)),
            "per_class": {str(k): int(v) for k, v in mine["label"].value_counts().sort_index().items()},
            "subjects": int(mine["sub"].nunique()),
            "skipped": int(len(skips)),
            "skipped_by_stage": {str(k): int(v) for k, v in skips.groupby("stage").size().items()},
            "apex_unreliable": [f"{a}/{b}" for a, b in zip(no_motion["sub"], no_motion["filename_o"])],
            "settings": asdict(report.settings), "workers": report.workers, "timings": report.timings,
        }
    atomic_write_json(path, {"datasets": per, "opencv": cv2.__version__, "git": git_revision()})


def build_from_raw(database: str, root: str | os.PathLike, out: str | os.PathLike,
                   annotation: str | os.PathLike | None = None, release_list: str | os.PathLike | None = None,
                   **kwargs: Any) -> BuildReport:
    """Adapter + `build_release` in one call: what `python -m htnet_lib preprocess-raw` runs.

    `release_list`: a release CSV; only its samples are built (Table 1's counts; the rest are reported as skipped).
    """
    from .adapters import load_database, restrict_to_release

    table = load_database(database, root, annotation)
    if release_list is not None:
        table = restrict_to_release(table, release_list)
    return build_release(table, out, **kwargs)
