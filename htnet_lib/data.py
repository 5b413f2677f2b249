"""The authors' preprocessed composite release (§4.1, Table 1): samples table, flow maps, faces, fingerprint, fetch.

The release (github.com/wangzhifengharrison/HTNet) holds, in its upstream layout:

- `combined_3_class2_for_optical_flow.csv`: one row per sample (dataset, sub, filename_o, label, imagename, ...);
- `datasets/STSNet_whole_norm_u_v_os/{sub}_{filename_o} .png` (note the space before `.png`): 28x28x3 8-bit maps;
- `datasets/combined_datasets_whole/{imagename}`: 224x224 apex-frame faces.

Flow-map channels, as `cv2.imread` returns them (BGR order): 0 = optical strain, 1 = vertical flow v, 2 = horizontal
flow u. So the PNG's RGB order is (u, v, strain), as the folder name says. We established which flow channel is
horizontal from the faces' left-right symmetry: over the 442 maps, the median correlation of a channel (minus its
median) with its own left-right mirror image is -0.25 for channel 2 (anti-symmetric: horizontal motion of the two
face halves points in opposite directions) and +0.67 for channel 1 (symmetric: vertical motion). `flow_channel_symmetry`
recomputes this; a test pins it.

The data directory is one setting: an explicit argument, else `$HTNET_DATA_DIR`, else `data/htnet-release` under the
project folder (`_io.project_root`: the checkout you are in, or the working directory; where `python -m htnet_lib
fetch` puts it).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd


from . import release
from ._io import HTNetInputError, atomic_write_json, project_root, progress as progress_bar, sha256_file
from .release import CSV_NAME, FACE_DIR, FLOW_DIR, LABELS, flow_name

ENV_VAR = "HTNET_DATA_DIR"
DEFAULT_SUBDIR = Path("data") / "htnet-release"


def default_dir() -> Path:
    """Where the release is looked for without a setting, and fetched to: data/htnet-release in the project folder."""
    return project_root() / DEFAULT_SUBDIR

UPSTREAM_REPO = "wangzhifengharrison/HTNet"
UPSTREAM_COMMIT = "91cf4bda0a2db50d638d46c04c5d7cf3b602d446"
UPSTREAM_ZIP = f"https://codeload.github.com/{UPSTREAM_REPO}/zip/{UPSTREAM_COMMIT}"
MANIFEST = Path(__file__).with_name("release_manifest.json")


FETCH_HELP = (
    "The HTNet release was not found at {where}. Either set {env} to a folder holding the authors' release "
    "({csv} and datasets/), for example a clone of https://github.com/{repo}, or run `python -m htnet_lib fetch` "
    "(needs internet) to download and verify it into {default}."
)


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The release folder: `data_dir`, else $HTNET_DATA_DIR, else ./data/htnet-release. Raises with how to get it."""
    chosen = data_dir or os.environ.get(ENV_VAR) or default_dir()
    path = Path(chosen).expanduser()
    if not (path / CSV_NAME).is_file():
        raise HTNetInputError(path / CSV_NAME, None, FETCH_HELP.format(
            where=path, env=ENV_VAR, csv=CSV_NAME, repo=UPSTREAM_REPO, default=default_dir()))
    return path.resolve()


def load_samples(data_dir: str | os.PathLike | None = None, check_files: bool = True) -> pd.DataFrame:
    """The samples table (§4.1): one row per sample, in the CSV's order.

    Columns: dataset, subject, sample, label (0 negative, 1 positive, 2 surprise), emotion, flow_path, face_path.
    Raises `HTNetInputError` naming the file and field for a missing column, an unknown dataset, a label outside
    0..2, a duplicate sample or (with `check_files`) a missing image.
    """
    root = resolve_data_dir(data_dir)
    csv = root / CSV_NAME
    try:
        raw = pd.read_csv(csv, dtype=str, keep_default_na=False)  # str: SAMM subjects are "006", not 6
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
        raise HTNetInputError(csv, None, f"not a readable CSV: {e}") from None
    for col in release.REQUIRED_COLUMNS:
        if col not in raw.columns:
            raise HTNetInputError(csv, col, f"required column missing (columns present: {list(raw.columns)})")
    if raw.empty:
        raise HTNetInputError(csv, None, "no samples")
    for col in release.REQUIRED_COLUMNS:
        empty = raw.index[raw[col].str.strip() == ""]
        if len(empty):
            raise HTNetInputError(csv, col, f"empty value on data row {empty[0] + 1}")
    bad_ds = raw.loc[~raw["dataset"].isin(release.KEYS), "dataset"]
    if len(bad_ds):
        raise HTNetInputError(csv, "dataset", f"unknown dataset {bad_ds.iloc[0]!r} on data row {bad_ds.index[0] + 1} "
                                               f"(known: {', '.join(release.KEYS)})")
    labels = pd.to_numeric(raw["label"], errors="coerce")
    bad = raw.index[~labels.isin(list(LABELS))]
    if len(bad):
        raise HTNetInputError(csv, "label", f"label {raw['label'][bad[0]]!r} on data row {bad[0] + 1} is not 0, 1 or 2")
    dup = raw.duplicated(["sub", "filename_o"], keep="first")
    if dup.any():
        r = raw[dup].iloc[0]
        raise HTNetInputError(csv, "filename_o", f"duplicate sample {r['sub']}/{r['filename_o']}")
    samples = pd.DataFrame({
        "dataset": pd.Categorical(raw["dataset"], categories=release.KEYS),
        "subject": raw["sub"].astype(str),
        "sample": raw["filename_o"].astype(str),
        "label": labels.astype(np.int64),
        "emotion": labels.map(LABELS),
        "flow_path": [str(root / FLOW_DIR / flow_name(s, f)) for s, f in zip(raw["sub"], raw["filename_o"])],
        "face_path": [str(root / FACE_DIR / n) for n in raw["imagename"]],
    })
    if check_files:
        for col in ("flow_path", "face_path"):
            missing = [p for p in samples[col] if not os.path.isfile(p)]
            if missing:
                raise HTNetInputError(missing[0], col, f"file missing ({len(missing)} of {len(samples)} missing)")
    samples.attrs["data_dir"] = str(root)
    return samples


def unlisted_maps(samples: pd.DataFrame) -> list[str]:
    """Flow maps in the release's folder that no CSV row lists (sorted file names): a CSV that lost rows, e.g. every
    row of one subject, while its images stayed."""
    root = Path(samples.attrs.get("data_dir") or resolve_data_dir())
    listed = {Path(p).name for p in samples["flow_path"]}
    folder = root / FLOW_DIR
    return sorted(p.name for p in folder.iterdir() if p.is_file() and p.name not in listed) if folder.is_dir() else []


def check_complete(samples: pd.DataFrame) -> None:
    """Raise, naming the CSV and the subjects it lacks, when the release holds flow maps its CSV does not list."""
    extra = unlisted_maps(samples)
    if extra:
        root = Path(samples.attrs.get("data_dir") or resolve_data_dir())
        subjects = sorted({n.split("_", 1)[0] for n in extra})
        raise HTNetInputError(root / CSV_NAME, "sub", f"the CSV lists no row for {len(extra)} flow map(s) of the "
                                                      f"release (e.g. {extra[0]!r}; subject(s) {subjects[:8]}): "
                                                      f"rows are missing. Restore the CSV, or train on the listed "
                                                      f"samples only with allow_incomplete: true")


MAX_PIXELS = 50_000_000  # the largest image read (8K video frames are 33 megapixels): larger is refused undecoded


def read_image(path: str | os.PathLike, field: str, expected: tuple[int, int, int] | None = None,
               flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray:
    """The one reader of every image the project reads (release maps and faces, frames, raw frames): the image as
    OpenCV decodes it with `flags` (default: as stored), or `HTNetInputError` naming the file and `field`
    when it is missing, is not the format its extension says (a JPEG named .png), holds more than `MAX_PIXELS`
    pixels (a decompression bomb), does not decode completely (a truncated JPEG or PNG), or differs from `expected`
    (shape, 8 bits)."""
    if not os.path.isfile(path):  # before OpenCV, which would print its own warning
        raise HTNetInputError(path, field, "image missing")
    raw = Path(path).read_bytes()
    _check_decodes(raw, path, field)
    # IMREAD_UNCHANGED: IMREAD_COLOR would silently expand a one-channel (grayscale) image to three equal channels
    img = cv2.imdecode(np.frombuffer(raw, np.uint8), flags)
    if img is None:
        raise HTNetInputError(path, field, "image unreadable (not an image, or corrupt)")
    if expected is None:
        return img
    if img.dtype != np.uint8:
        raise HTNetInputError(path, field, f"image is {img.dtype}, expected 8-bit")
    channels = 1 if img.ndim == 2 else img.shape[2]
    if channels != expected[2]:
        raise HTNetInputError(path, field, f"image has {channels} channel(s), expected {expected[2]}"
                                           + (" (a grayscale image cannot hold strain, v and u)" if channels == 1 else ""))
    if img.shape != expected:
        raise HTNetInputError(path, field, f"image shape {img.shape}, expected {expected}")
    return img


def _check_decodes(raw: bytes, path: str | os.PathLike, field: str) -> None:
    """Raise naming the file unless Pillow decodes `raw` to its end, in the format its extension names.

    OpenCV decodes a truncated JPEG partly, returns it and only prints libjpeg's warning, and reads a JPEG named .png,
    so the damage would be used. Pillow refuses: `load()` raises on data that ends early (LOAD_TRUNCATED_IMAGES is
    forced off here), and `verify()` reads a PNG's chunks to IEND with their CRCs. A format Pillow does not know is
    left to OpenCV, which still refuses what it cannot read."""
    import warnings

    from PIL import Image, ImageFile, UnidentifiedImageError

    same = {"MPO": "JPEG"}  # a camera's multi-picture JPEG is a JPEG
    lenient, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the limit is MAX_PIXELS, said below
            with Image.open(io.BytesIO(raw)) as im:
                fmt, (w, h) = same.get(im.format, im.format), im.size
                if w * h <= MAX_PIXELS:
                    im.verify()
            if w * h <= MAX_PIXELS:
                with Image.open(io.BytesIO(raw)) as im:
                    im.load()
    except UnidentifiedImageError:
        return
    except Image.DecompressionBombError:
        w = h = None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise HTNetInputError(path, field, f"image does not decode completely (truncated or corrupt: {e})") from None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = lenient
    if w is None or w * h > MAX_PIXELS:
        size = f"{w}x{h} pixels" if w else "too many pixels"
        raise HTNetInputError(path, field, f"image of {size}, more than the {MAX_PIXELS:,} this project reads "
                                           f"(a decompression bomb, or a frame to scale down first)")
    suffix = Path(path).suffix.lower()
    named = Image.registered_extensions().get(suffix)
    if named and same.get(named, named) != fmt:
        raise HTNetInputError(path, field, f"a {fmt} image named {suffix}, which means {named}: renamed or damaged; "
                                           f"save it as {named} or give it its own extension")


def load_flow_maps(samples: pd.DataFrame, progress: bool = False) -> np.ndarray:
    """(N, 28, 28, 3) uint8 flow maps in OpenCV order (strain, v, u), raw 0..255, as the authors' code reads them."""
    paths = samples["flow_path"].tolist()
    it = progress_bar(paths, desc="flow maps", disable=not progress)
    return np.stack([_flow_map(p) for p in it])


_MAPS: dict[tuple, np.ndarray] = {}  # `_stat_key` -> a checked flow map, for `load_flow_maps` in this process


def _flow_map(path: str) -> np.ndarray:
    """One flow map, read and checked again only when its file changed (each `run_many` reads the maps, and a
    sweep or a test session runs many)."""
    try:
        key = _stat_key(Path(path))
    except OSError:
        return read_image(path, "flow_path", release.FLOW_SHAPE)  # its missing-file error
    if key not in _MAPS:
        if len(_MAPS) >= 200_000:  # 2.3 KB each: a bound for very large databases
            _MAPS.clear()
        _MAPS[key] = read_image(path, "flow_path", release.FLOW_SHAPE)
    return _MAPS[key]


def load_face(path: str) -> np.ndarray:
    """One 224x224 apex face as an RGB uint8 array."""
    return cv2.cvtColor(read_image(path, "face_path", release.FACE_SHAPE), cv2.COLOR_BGR2RGB)


def class_counts(samples: pd.DataFrame) -> pd.DataFrame:
    """Table 1: subjects and samples per class, per dataset and in all."""
    per = samples.pivot_table(index="dataset", columns="emotion", values="sample", aggfunc="count", observed=False)
    per = per.reindex(columns=list(LABELS.values())).fillna(0).astype(int)
    per.insert(0, "subjects", samples.groupby("dataset", observed=False)["subject"].nunique())
    per = per[per["subjects"] > 0]
    per["total"] = per[list(LABELS.values())].sum(axis=1)
    per.loc["all"] = [samples["subject"].nunique(), *per[list(LABELS.values())].sum(), len(samples)]
    per.index = [release.name_of(i) for i in per.index]
    return per


def flow_channel_symmetry(maps: np.ndarray) -> dict[int, float]:
    """Median correlation of each channel (minus its per-map median) with its left-right mirror image.

    Horizontal flow on a face is anti-symmetric under a mirror (negative), vertical flow symmetric (positive).
    """
    out = {}
    x = maps.astype(np.float64)
    for c in range(x.shape[-1]):
        ch = x[..., c] - np.median(x[..., c].reshape(len(x), -1), axis=1)[:, None, None]
        a = ch.reshape(len(x), -1)
        b = ch[:, :, ::-1].reshape(len(x), -1)
        keep = a.std(axis=1) > 0
        a, b = a[keep] - a[keep].mean(1, keepdims=True), b[keep] - b[keep].mean(1, keepdims=True)
        corr = (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))
        out[c] = float(np.median(corr))
    return out


# ---------------------------------------------------------------- fingerprint, manifest, fetch

def _release_files(root: Path) -> list[str]:
    """Relative paths of the files that make up the release's data (CSV, flow maps, faces), sorted."""
    files = [CSV_NAME]
    for sub in (FLOW_DIR, FACE_DIR):
        d = root / sub
        if d.is_dir():
            files += sorted(f"{sub}/{p.name}" for p in d.iterdir() if p.is_file())
    return files


def file_hashes(root: str | os.PathLike) -> dict[str, str]:
    """sha256 of every release file, by relative path."""
    root = Path(root)
    return {rel: sha256_file(root / rel) for rel in _release_files(root)}


_SEEN: dict[tuple, str] = {}  # (path, device, inode, size, mtime) -> sha256, for `fingerprint` in this process


def _stat_key(path: Path) -> tuple:
    """What tells a file's new bytes from its old ones without reading them: path, device, inode, size, mtime."""
    st = path.stat()
    return str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _sha256_seen(path: Path) -> str:
    key = _stat_key(path)
    if key not in _SEEN:
        _SEEN[key] = sha256_file(path)
    return _SEEN[key]


def fingerprint(data_dir: str | os.PathLike | None = None) -> str:
    """A short hash of the release's CSV, flow maps and faces: names results and caches derived from this data.

    A file's hash is read again only when its size, time of change or inode moved (every run of a sweep asks for
    the fingerprint; `verify_release` always reads every byte)."""
    root = resolve_data_dir(data_dir)
    hashes = {rel: _sha256_seen(root / rel) for rel in _release_files(root)}
    return hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()[:16]


def write_manifest(data_dir: str | os.PathLike, path: Path = MANIFEST) -> Path:
    """Record the checksums `verify_release` and `fetch` compare against (run once on a trusted copy)."""
    root = resolve_data_dir(data_dir)
    return atomic_write_json(path, {"upstream": UPSTREAM_REPO, "commit": UPSTREAM_COMMIT, "sha256": file_hashes(root)})


def verify_release(data_dir: str | os.PathLike | None = None) -> dict[str, int]:
    """Compare a release folder with the recorded checksums; raises naming the first file that differs (and, for a CSV
    that lost rows while their images stayed, the subjects it lacks)."""
    root = resolve_data_dir(data_dir)
    check_complete(load_samples(root, check_files=False))
    expected: dict[str, str] = json.loads(MANIFEST.read_text())["sha256"]
    for rel, digest in expected.items():
        p = root / rel
        if not p.is_file():
            raise HTNetInputError(p, None, "missing from the release (compared with htnet_lib/release_manifest.json)")
        if sha256_file(p) != digest:
            raise HTNetInputError(p, None, "checksum differs from the authors' release")
    n_flow = sum(r.startswith(FLOW_DIR) for r in expected)
    n_face = sum(r.startswith(FACE_DIR) for r in expected)
    return {"flow_maps": n_flow, "faces": n_face, "files": len(expected)}


def fetch(dest: str | os.PathLike | None = None, url: str = UPSTREAM_ZIP, timeout: float = 60.0) -> Path:
    """Download the authors' release (a zip of the upstream commit), keep the data files, verify them, move into `dest`.

    Nothing is left half-written: files go to a temporary folder beside `dest`, which is renamed only after every
    checksum matches. Offline, raises with where to put the data by hand.
    """
    dest = Path(dest if dest is not None else default_dir()).expanduser().resolve()
    if (dest / CSV_NAME).is_file():
        verify_release(dest)
        return dest
    expected: dict[str, str] = json.loads(MANIFEST.read_text())["sha256"]
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            buf = io.BytesIO()
            with progress_bar(total=total, unit="B", unit_scale=True, desc="download release") as bar:
                for chunk in iter(lambda: resp.read(1 << 20), b""):
                    buf.write(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError) as e:
        raise HTNetInputError(url, None, f"download failed ({e}). " + FETCH_HELP.format(
            where=dest, env=ENV_VAR, csv=CSV_NAME, repo=UPSTREAM_REPO, default=dest)) from None
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        with zipfile.ZipFile(buf) as zf:
            by_rel = {}
            for name in zf.namelist():
                rel = name.split("/", 1)[1] if "/" in name else name  # drop the archive's top folder
                if rel in expected:
                    by_rel[rel] = name
            missing = sorted(set(expected) - set(by_rel))
            if missing:
                raise HTNetInputError(url, None, f"archive lacks {len(missing)} release files, e.g. {missing[0]}")
            for rel, name in progress_bar(by_rel.items(), desc="verify"):
                data = zf.read(name)
                if hashlib.sha256(data).hexdigest() != expected[rel]:
                    raise HTNetInputError(f"{url}:{rel}", None, "checksum differs from the recorded release")
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                (tmp / rel).write_bytes(data)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return dest

