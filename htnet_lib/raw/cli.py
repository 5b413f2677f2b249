"""`python -m htnet_lib preprocess-raw`: one raw database -> a folder in the release's layout (§3.1, §4.1-4.2).

    python -m htnet_lib preprocess-raw --database casme2 --root /data/CASME2 --out runs/release-tvl1 \\
        --method tvl1 --workers 2

Run it once per database with the same `--out` to compose the composite release (SMIC + CASME II + SAMM); add
`--release-list <release CSV>` to keep exactly the release's samples (Table 1's counts). The skipped samples and why
are in `<out>/skipped.csv`; settings, counts and timings in `<out>/build_report.json`.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .._io import HTNetInputError
from .adapters import databases
from .flow import DEFAULT_FLOW_BORDER, DEFAULT_FLOW_SIZE, INTERPOLATIONS, METHODS


def _box(text: str) -> tuple[int, int, int, int]:
    try:
        parts = [int(round(float(v))) for v in text.split(",")]
    except ValueError:
        parts = []
    if len(parts) != 4 or parts[2] <= 0 or parts[3] <= 0:
        raise argparse.ArgumentTypeError(f"--face-box wants x,y,w,h (four numbers, w and h positive), got {text!r}")
    return parts[0], parts[1], parts[2], parts[3]


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `preprocess-raw` sub-command to an argparse subparsers object."""
    p = subparsers.add_parser("preprocess-raw", help="raw frames of a licensed database -> release-layout folder",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--database", required=True, choices=databases())
    p.add_argument("--root", required=True, type=Path, help="the database's folder (annotation + frames)")
    p.add_argument("--out", required=True, type=Path, help="the release-layout folder to write (created if needed)")
    p.add_argument("--method", choices=METHODS, default="tvl1",
                   help="optical flow: tvl1 (how the release's maps were made; default) or farneback (§4.2's text)")
    p.add_argument("--workers", type=int, default=1, help="processes, one sample each at a time (default 1)")
    p.add_argument("--annotation", type=Path, default=None, help="the coding sheet, if not found under --root")
    p.add_argument("--release-list", type=Path, default=None,
                   help="a release CSV: build only the samples it lists (Table 1's counts)")
    p.add_argument("--face-box", type=_box, default=None, metavar="X,Y,W,H",
                   help="use this face box for every sample instead of MTCNN detection")
    p.add_argument("--face-boxes", type=Path, default=None, metavar="JSON",
                   help='per-sample face boxes {"subject/sample": [x, y, w, h]} instead of detection')
    p.add_argument("--flow-size", type=int, default=DEFAULT_FLOW_SIZE, help="face side in px for the flow (224)")
    p.add_argument("--map-interpolation", choices=tuple(INTERPOLATIONS), default="area",
                   help="how the flow and strain are shrunk to 28x28 (area, the default: nearer the release's "
                        "pixel-to-pixel roughness)")
    p.add_argument("--flow-border", type=int, default=DEFAULT_FLOW_BORDER,
                   help="px of the flow cut from each side before the map: the flow methods' false border flow "
                        f"(default {DEFAULT_FLOW_BORDER}, one map pixel at 224; 0 keeps it)")
    p.add_argument("--limit", type=int, default=None, help="only the first N samples (a quick look)")
    p.add_argument("--overwrite", action="store_true",
                   help="recompute every sample (default: keep those already built with the same settings)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Build the folder; print the summary. Returns 0 if at least one sample was written, 1 otherwise."""
    from .build import build_from_raw
    from .synthetic import load_face_boxes

    if args.face_box is not None and args.face_boxes is not None:
        raise HTNetInputError(None, "face_boxes", "give --face-box or --face-boxes, not both")
    boxes: Any = args.face_box
    if args.face_boxes is not None:
        if not args.face_boxes.is_file():
            raise HTNetInputError(args.face_boxes, "face_boxes", "file not found")
        try:
            boxes = load_face_boxes(args.face_boxes)
        except (json.JSONDecodeError, TypeError, ValueError) as e:
            raise HTNetInputError(args.face_boxes, "face_boxes", f"not a JSON map of [x, y, w, h] boxes: {e}") from None
    report = build_from_raw(args.database, args.root, args.out, annotation=args.annotation,
                            release_list=args.release_list, method=args.method, workers=args.workers,
                            face_boxes=boxes, flow_size=args.flow_size, map_interpolation=args.map_interpolation,
                            flow_border=args.flow_border, progress=not args.no_progress, limit=args.limit,
                            resume=not args.overwrite)
    print(report.summary())
    if len(report.skipped):
        print(f"skipped samples and why: {Path(args.out) / 'skipped.csv'}")
    return 0 if len(report.samples) else 1


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (`python -m htnet_lib.raw.cli preprocess-raw ...`) until the project CLI wires it in."""
    parser = argparse.ArgumentParser(prog="htnet_lib.raw")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
