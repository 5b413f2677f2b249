"""Throughput of the raw-frames pipeline: samples per second at 640x480.

`throughput(method, n_samples, size=(640, 480), workers=2)` generates `n_samples` synthetic raw samples (CASME II
layout: the release's faces at 240 px pasted into 640x480 frames, onset + apex + offset), then times `build_release`
on them: read frames, MTCNN face detection on the onset frame (unless `detect=False`), crop, flow at 224 px, strain,
28x28 map, apex face, atomic writes, in `workers` processes. The time includes starting the worker processes and
loading MTCNN in each, as a user's run does; `steady_samples_per_s` = workers / median time of one sample, which
leaves those start-up costs out (what a long run approaches).

From the command line:

    python -m htnet_lib.raw.bench --method tvl1 --n 32 --workers 2

Measured on the 2-core development machine (32 samples, 640x480, MTCNN on, 2 workers, flow at 224 px), end to end
including ~5-10 s of worker start-up:

    method      samples/s (quiet machine)   samples/s (other jobs running, load 3-6)
    Farneback   2.4                         1.4-1.8
    TV-L1       1.1-1.2                     0.6

One sample on one core: TV-L1 at 224 px ~0.75-0.9 s, Farneback ~0.02-0.04 s, MTCNN on a 640x480 frame ~0.1 s (on one
torch thread: with two it took 1.7 s here, which is why detection runs single-threaded), reading, cropping and
writing the rest. A full composite (442 samples) takes about 3 min with Farneback and 6-7 min with TV-L1 on 2 cores.
These were measured before the flow border cut (`flow.DEFAULT_FLOW_BORDER`), which flows 240 px instead of 224: one
TV-L1 map then took 0.76 s instead of 0.61 s here (median of 5, a loaded machine), about a quarter more.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from .adapters import load_database
from .build import build_release
from .flow import DEFAULT_FLOW_SIZE
from .synthetic import make_raw_database


def throughput(method: str, n_samples: int, size: tuple[int, int] = (640, 480), workers: int = 2,
               detect: bool = True, data_dir: str | os.PathLike | None = None, flow_size: int = DEFAULT_FLOW_SIZE,
               work_dir: str | os.PathLike | None = None, seed: int = 0) -> dict[str, Any]:
    """Samples per second of raw frames (`size` = width, height) -> release layout, with `workers` processes."""
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        tmp = Path(tmp)
        face_px = min(240, size[0], size[1])
        db = make_raw_database("casme2", tmp / "raw", data_dir, n_subjects=max(1, -(-n_samples // 8)),
                               per_subject=min(8, n_samples), frame_size=size, face_px=face_px, n_frames=3,
                               amplitude=2.0, noise=1.0, seed=seed)
        table = load_database("casme2", db.root)
        table.samples = table.samples.head(n_samples)
        t0 = time.perf_counter()
        report = build_release(table, tmp / "out", method=method, workers=workers,
                               face_boxes=None if detect else db.face_boxes, flow_size=flow_size, progress=False)
        seconds = time.perf_counter() - t0
    done = len(report.samples)
    per_sample = report.timings.get("median_sample_s", float("nan"))
    return {
        "method": method, "n_samples": n_samples, "written": done, "skipped": int(len(report.skipped)),
        "size": list(size), "workers": workers, "detect_faces": detect, "flow_size": flow_size,
        "seconds": round(seconds, 3), "samples_per_s": round(done / seconds, 3) if seconds > 0 else None,
        "median_sample_s": round(per_sample, 4),
        "steady_samples_per_s": round(workers / per_sample, 3) if per_sample and per_sample > 0 else None,
        "cpu_count": os.cpu_count(), "machine": platform.processor() or platform.machine(),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", choices=("farneback", "tvl1"), default="tvl1")
    p.add_argument("--n", type=int, default=24, help="samples to time")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--no-detect", action="store_true", help="use the known face boxes instead of MTCNN")
    a = p.parse_args(argv)
    print(json.dumps(throughput(a.method, a.n, (a.width, a.height), a.workers, detect=not a.no_detect), indent=2))


if __name__ == "__main__":
    main()
