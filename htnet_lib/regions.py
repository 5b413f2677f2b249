"""The four facial regions (§3.1, §4.2): MTCNN landmarks on the apex face place four 14x14 crops of the flow map,
assembled into the 28x28x3 model input (left-eye, right-eye over left-lip, right-lip areas); and the model's inputs
(`model_inputs`).

Two variants of the regions, one parameter (`variant`, the params' `regions` key; `whole` skips the regions and feeds
the whole 28x28 map, the input ablation the paper did not run):

- `official`: exactly what the authors' code does. The 224x224 face is read with OpenCV (BGR) and resized to 28x28
  (INTER_AREA), and that BGR array goes to MTCNN, which expects RGB; when nothing is detected, fixed landmarks
  (`OFFICIAL_FALLBACK`) are used; every coordinate is clamped to [7, 21] and truncated to int; the crop is
  `flow[a-7:a+7, b-7:b+7]` with (a, b) = the landmark's (x, y), i.e. rows indexed by x (x and y swapped); the input is
  [landmark 0 | landmark 1] over [landmark 3 | landmark 4] (the two eyes over the two mouth corners; the nose, landmark
  2, is unused). The flow map keeps OpenCV's channel order (strain, v, u) and raw 0..255 values.
- `corrected`: MTCNN on the full 224x224 RGB face padded by 25% on each side (every face in the release is then
  found), landmarks scaled to the 28x28 map, rounded, clamped to [7, 21] so the crop stays inside, and cropped at
  (row = y, col = x). Same assembly and channel order, so only the placement differs.

Landmarks are computed once per variant and cached in a CSV named by the data's fingerprint (`cache_dir()`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from einops import rearrange


from ._io import HTNetInputError, atomic_path, cache_dir, progress as progress_bar, torch_threads
from .data import fingerprint, load_face, read_image
from .models.registry import InputGeometry
from .release import MAP_SIZE

Variant = Literal["official", "corrected"]
VARIANTS: tuple[str, ...] = ("official", "corrected")
# The authors' fixed landmarks (x, y) on the 28x28 face, used when MTCNN finds no face.
OFFICIAL_FALLBACK = np.array([[9.528073, 11.062551], [21.396168, 10.919773], [15.380184, 17.380562],
                              [10.255435, 22.121233], [20.583706, 22.25584]])
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "left_mouth", "right_mouth")  # MTCNN's order, as seen in the image
REGION_LANDMARKS = ((0, 1), (3, 4))  # rows of the assembled input: eyes over mouth corners
QUADRANT_LANDMARKS = [k for row in REGION_LANDMARKS for k in row]  # the landmark behind each quadrant TL, TR, BL, BR
HALF = 7  # half the 14x14 region edge
PAD_FRACTION = 0.25


def _mtcnn(device: str | None = None):
    from facenet_pytorch import MTCNN  # imported lazily: it loads three networks

    return MTCNN(margin=0, image_size=MAP_SIZE, select_largest=True, post_process=False, device=device or "cpu")


def detect_official(face_bgr_224: np.ndarray, mtcnn) -> tuple[np.ndarray | None, np.ndarray]:
    """The authors' detection: MTCNN on the BGR face resized to 28x28. Returns (raw landmarks or None, 28x28 input)."""
    small = cv2.resize(face_bgr_224, (MAP_SIZE, MAP_SIZE), interpolation=cv2.INTER_AREA)
    _, _, points = mtcnn.detect(small, landmarks=True)
    return (None if points is None else np.asarray(points[0], dtype=np.float64)), small


def detect_corrected(face_rgb_224: np.ndarray, mtcnn) -> np.ndarray | None:
    """MTCNN on the RGB face padded by 25% per side; landmarks (x, y) in 28x28 map coordinates, or None."""
    h, w = face_rgb_224.shape[:2]
    pad = int(round(PAD_FRACTION * h))
    padded = cv2.copyMakeBorder(face_rgb_224, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    _, _, points = mtcnn.detect(padded, landmarks=True)
    if points is None:
        return None
    pts = np.asarray(points[0], dtype=np.float64) - pad
    return pts * np.array([MAP_SIZE / w, MAP_SIZE / h])


def detect_landmarks(samples: pd.DataFrame, variant: Variant = "official", device: str | None = None,
                     progress: bool = True) -> pd.DataFrame:
    """Five MTCNN landmarks per sample on the 28x28 map's scale (no cache). One call per image (facenet-pytorch #224).

    Returns subject, sample, detected, x0, y0, ..., x4, y4 (raw detector output; the fallback where not detected).
    """
    if variant not in VARIANTS:
        raise HTNetInputError(None, "regions", f"unknown variant {variant!r} (use one of {VARIANTS})")
    mtcnn = _mtcnn(device)
    with torch_threads(1):
        rows = _detect_rows(samples, variant, mtcnn, progress)
    return pd.DataFrame(rows)


def face_landmarks(face_bgr_224: np.ndarray, variant: Variant, mtcnn) -> tuple[np.ndarray, bool]:
    """One apex face's five landmarks (x, y) on the 28x28 map's scale under `variant`, and whether MTCNN found the face
    (else the authors' fixed fallback landmarks)."""
    if variant == "official":
        pts, _ = detect_official(face_bgr_224, mtcnn)
    else:
        pts = detect_corrected(cv2.cvtColor(face_bgr_224, cv2.COLOR_BGR2RGB), mtcnn)
    return (OFFICIAL_FALLBACK, False) if pts is None else (pts, True)


def _detect_rows(samples: pd.DataFrame, variant: Variant, mtcnn, progress: bool) -> list[dict]:
    rows = []
    for subject, sample, path in progress_bar(list(zip(samples["subject"], samples["sample"], samples["face_path"])),
                                              desc=f"MTCNN landmarks ({variant})", disable=not progress):
        bgr = read_image(path, "face_path", flags=cv2.IMREAD_COLOR) if variant == "official" else \
            cv2.cvtColor(load_face(path), cv2.COLOR_RGB2BGR)
        pts, detected = face_landmarks(bgr, variant, mtcnn)
        row = {"subject": subject, "sample": sample, "detected": detected}
        for i, (x, y) in enumerate(pts):
            row[f"x{i}"], row[f"y{i}"] = float(x), float(y)
        rows.append(row)
    return rows


def landmarks(samples: pd.DataFrame, variant: Variant = "official", device: str | None = None,
              progress: bool = True, cache: bool = True) -> pd.DataFrame:
    """`detect_landmarks`, cached per variant and data fingerprint; rows follow `samples`.

    Only samples missing from the cache are detected; the cache keeps every row it ever held.
    """
    path = cache_path_for(variant, samples.attrs.get("data_dir"))
    keys = ["subject", "sample"]
    cached = pd.read_csv(path, dtype={"subject": str, "sample": str}) if cache and path.is_file() else None
    if cached is not None:
        have = samples[keys].merge(cached[keys], on=keys, how="left", indicator=True)["_merge"].eq("both").to_numpy()
        todo = samples[~have]
    else:
        todo = samples
    if len(todo):
        fresh = detect_landmarks(todo, variant, device, progress)
        cached = fresh if cached is None else pd.concat([cached, fresh], ignore_index=True)
        if cache:
            with atomic_path(path) as tmp:
                cached.to_csv(tmp, index=False)
    return samples[keys].reset_index(drop=True).merge(cached, on=keys, how="left", validate="1:1")


def landmark_array(table: pd.DataFrame) -> np.ndarray:
    """(N, 5, 2) landmark (x, y) array from a landmarks table."""
    cols = [c for i in range(5) for c in (f"x{i}", f"y{i}")]
    missing = [c for c in cols if c not in table.columns]
    if missing:
        raise HTNetInputError(None, missing[0], "landmarks table lacks this column")
    return rearrange(table[cols].to_numpy(np.float64), "n (k c) -> n k c", k=5, c=2)


def crop_centres(points: np.ndarray, variant: Variant) -> np.ndarray:
    """(N, 5, 2) integer (row, col) crop centres in [7, 21], following each variant's rule."""
    if variant == "official":
        # The authors clamp then truncate (astype(int)), and index rows with x: (row, col) = (x, y).
        clamped = np.clip(points, HALF, MAP_SIZE - HALF).astype(np.int64)
        return clamped
    if variant == "corrected":
        rc = np.rint(points[..., ::-1])  # (row, col) = (y, x)
        return np.clip(rc, HALF, MAP_SIZE - HALF).astype(np.int64)
    raise HTNetInputError(None, "regions", f"unknown variant {variant!r} (use one of {VARIANTS})")


def assemble(maps: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Four 14x14 crops per map, [lm0 | lm1] over [lm3 | lm4], into (N, 28, 28, C) (§3.1's four facial areas)."""
    if maps.ndim != 4 or maps.shape[1:3] != (MAP_SIZE, MAP_SIZE):
        raise HTNetInputError(None, "maps", f"expected (N, 28, 28, C) flow maps, got {maps.shape}")
    if centres.shape != (len(maps), 5, 2):
        raise HTNetInputError(None, "centres", f"expected ({len(maps)}, 5, 2) crop centres, got {centres.shape}")
    out = np.empty_like(maps)
    for n, (m, c) in enumerate(zip(maps, centres)):
        for i, row in enumerate(REGION_LANDMARKS):
            for j, k in enumerate(row):
                r, col = c[k]
                out[n, i * 14:(i + 1) * 14, j * 14:(j + 1) * 14] = m[r - HALF:r + HALF, col - HALF:col + HALF]
    return out


def region_inputs(samples: pd.DataFrame, maps: np.ndarray, variant: Variant = "official",
                  device: str | None = None, progress: bool = True) -> np.ndarray:
    """The model's inputs: (N, 28, 28, 3) uint8, the four regions of each flow map placed by `variant`'s landmarks."""
    pts = landmark_array(landmarks(samples, variant, device, progress))
    return assemble(maps, crop_centres(pts, variant))


def detection_counts(samples: pd.DataFrame, device: str | None = None, progress: bool = True) -> pd.DataFrame:
    """Faces with MTCNN landmarks per dataset and variant (the rest use the fallback), for the preprocess notebook."""
    rows = {}
    for v in VARIANTS:
        lm = landmarks(samples, v, device, progress)
        rows[v] = lm.assign(dataset=samples["dataset"].astype(str).to_numpy()).groupby("dataset")["detected"].sum()
        rows[v]["all"] = int(lm["detected"].sum())
    return pd.DataFrame(rows).astype(int)


def region_differences(samples: pd.DataFrame, progress: bool = False) -> pd.DataFrame:
    """Per dataset: samples, faces detected by each variant, samples whose four crops differ between the variants,
    and the mean and largest distance (px on the 28x28 map) between the two variants' crop centres.

    Landmarks come from `regions.landmarks` (cached). Identical centres give identical inputs, so `crops_differ`
    counts the samples whose model input changes with the variant.
    """
    ds = samples["dataset"].astype(str).to_numpy()
    lm = {v: landmarks(samples, v, progress=progress) for v in VARIANTS}
    centres = {v: crop_centres(landmark_array(lm[v]), v)[:, QUADRANT_LANDMARKS] for v in lm}
    dist = np.sqrt(((centres["official"] - centres["corrected"]) ** 2).sum(-1))  # (N, 4)
    frame = pd.DataFrame({"dataset": ds, "official_detected": lm["official"]["detected"].to_numpy(bool),
                          "corrected_detected": lm["corrected"]["detected"].to_numpy(bool),
                          "crops_differ": (dist > 0).any(axis=1), "mean_shift_px": dist.mean(axis=1),
                          "max_shift_px": dist.max(axis=1)})
    order = [d for d in pd.unique(ds)]
    if hasattr(samples["dataset"], "cat"):
        order = [d for d in samples["dataset"].cat.categories if d in set(ds)]
    rows = {}
    for name, g in [(d, frame[frame["dataset"] == d]) for d in order] + [("all", frame)]:
        rows[name] = {"samples": len(g), "official_detected": int(g["official_detected"].sum()),
                      "corrected_detected": int(g["corrected_detected"].sum()),
                      "crops_differ": int(g["crops_differ"].sum()),
                      "mean_shift_px": round(float(g["mean_shift_px"].mean()), 2),
                      "max_shift_px": round(float(g["max_shift_px"].max()), 2)}
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "dataset"
    return out


def cache_path_for(variant: Variant, data_dir: str | os.PathLike | None) -> Path:
    """The landmark cache file for one variant and one release (named by its fingerprint)."""
    return cache_dir() / f"landmarks-{variant}-{fingerprint(data_dir)}.csv"


def model_inputs(samples: pd.DataFrame, maps: np.ndarray, train, geometry: InputGeometry | int = MAP_SIZE,
                 progress: bool = True) -> torch.Tensor:
    """The inputs of a network (N, channels, size, size) float32 from the flow maps (N, 28, 28, 3), as `train` (a
    `config.TrainConfig`) asks and the network reads (`geometry`: its registry entry's `InputGeometry`,
    `models.geometry(cfg)`; an int is a side, with all three map channels):

    - `regions`: `official` / `corrected` tile the four facial regions (§3.1, `region_inputs`); `whole` keeps the map
      (a network that reads only one of these says so in its geometry, and the others raise naming `regions`);
    - `preprocessing`: `official` keeps what the authors feed their model, OpenCV channel order (strain, v, u) and raw
      0..255 values; `scaled` maps values to [-1, 1] with a fixed affine map (no statistics, so nothing can leak);
    - a side other than 28 (Table 4's block sizes: a p-pixel bottom block needs a 4p input): the assembled 28x28
      input is resized to size x size, bilinearly (antialiased when shrinking). The paper does not say how its 28x28
      maps became 20..40 px; this is our choice. Each 14x14 region then spans 2p x 2p pixels, one middle-level block;
    - the map channels the network reads (`geometry.map_channels`), in its order.
    """
    g = _geometry(geometry)
    g.check(train.regions)
    if train.regions == "whole":
        x = np.asarray(maps)
        if x.ndim != 4 or x.shape[1:3] != (MAP_SIZE, MAP_SIZE):
            raise HTNetInputError(None, "maps", f"expected (N, 28, 28, C) flow maps, got {x.shape}")
    else:
        x = region_inputs(samples, maps, train.regions, progress=progress)
    return to_tensor(x, train, g)


def _geometry(geometry: InputGeometry | int) -> InputGeometry:
    return geometry if isinstance(geometry, InputGeometry) else InputGeometry(int(geometry), 3)


def to_tensor(x: np.ndarray, train, geometry: InputGeometry | int = MAP_SIZE) -> torch.Tensor:
    """Assembled inputs (N, 28, 28, 3) uint8 -> the network's (N, channels, size, size) float32 tensor: the channel
    choice, resize and preprocessing of `model_inputs`."""
    g = _geometry(geometry)
    t = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float().contiguous()
    if g.map_channels != (0, 1, 2):
        t = t[:, list(g.map_channels)].contiguous()
    if g.size != MAP_SIZE:
        t = F.interpolate(t, size=(g.size, g.size), mode="bilinear", align_corners=False,
                          antialias=g.size < MAP_SIZE).clamp_(0, 255)
    if train.preprocessing == "scaled":
        t = t / 127.5 - 1.0
    return t
