"""Optical flow from onset to apex, optical strain (eq. 3), and the release's 28x28x3 map (§3.1, §4.2).

HTNet's input is a three-channel map: horizontal flow u, vertical flow v and optical strain, computed between the onset
frame and the apex frame of a micro-expression and resized to 28x28 (§3.1; §4.2 names OpenCV's Farneback). The
authors' release (`datasets/STSNet_whole_norm_u_v_os/`) was not made here: it comes from STSTNet's data (Liong et al.,
2019), which used TV-L1 flow. Both are offered, `method="farneback"` and `method="tvl1"`
(`cv2.optflow.DualTVL1OpticalFlow_create`, from opencv-contrib-python-headless); `release_statistics.compare_methods`
shows which one reproduces the release's value statistics (answer in that module's docstring).

Conventions (checked against the release; see `htnet_lib.data`):

- input frames are uint8 grey or BGR images, or float images in 0..1 (scaled by 255); anything else is refused;
- flow is measured on the onset grid, in pixels of the working resolution: onset(x) ~ apex(x + (u, v)(x)); u is
  positive to the right, v positive downwards (image rows);
- optical strain, eq. 3: eps = sqrt(u_x^2 + v_y^2 + 1/2 (u_y + v_x)^2), from central differences of the flow
  (`np.gradient`); it is dimensionless, so it does not change when the map is resized;
- the map is stacked so that `cv2.imread` returns (strain, v, u), i.e. the PNG's RGB order is (u, v, strain) as the
  folder name says; the stack is resized to 28x28 (pixel averaging, `INTER_AREA`, by default: `stats` shows it
  matches the release's map texture better than bilinear sampling) and then each channel is min-max normalised to
  0..255 on its own. Normalising after resizing is what makes every release map reach exactly 0 and 255 in every channel
  (true of all 442 maps); normalising first and then interpolating would not.
"""
from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
from skimage.util import img_as_ubyte

from .._io import HTNetInputError
from ..release import MAP_SIZE

Method = Literal["farneback", "tvl1"]
METHODS: tuple[str, ...] = ("farneback", "tvl1")
DEFAULT_FLOW_SIZE = 224  # the working resolution of the face crop for the flow: that of the release's apex faces
# how the full-resolution (strain, v, u) stack is shrunk to 28x28; "area" (pixel averaging) is the default because it
# reproduces the release's pixel-to-pixel roughness and strain histogram (see `stats`); "linear" samples, and aliases
INTERPOLATIONS = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR}

# Farneback: OpenCV's documented example values (pyramid scale 0.5, 3 levels, 15 px window, 3 iterations, poly_n 5,
# poly_sigma 1.2). Micro-expression displacements are a few pixels at 224 px, well inside a 3-level pyramid.
FARNEBACK_PARAMS = dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)


def _gray(img: np.ndarray, name: str) -> np.ndarray:
    """8-bit single-channel image (both flow methods work on grey levels); `name` is the caller's argument.

    uint8 is taken as it is; a float image must hold 0..1 and is scaled by 255 and rounded (`skimage.util.img_as_ubyte`,
    so x / 255 gives back x exactly). Anything else (float outside 0..1 or not finite, other integer types) raises
    `HTNetInputError` naming the argument, rather than being cut to uint8: a 0..1 image cut that way is almost all 0,
    and its flow near zero.
    """
    img = np.asarray(img)
    if np.issubdtype(img.dtype, np.floating):
        finite = img.size > 0 and bool(np.isfinite(img).all())
        if not (finite and img.min() >= 0.0 and img.max() <= 1.0):
            span = f"values in [{img.min():.4g}, {img.max():.4g}]" if finite else "values that are not finite"
            raise HTNetInputError(None, name, f"float image with {span}: give uint8 (0..255) or float in 0..1")
        img = img_as_ubyte(img)
    elif img.dtype != np.uint8:
        raise HTNetInputError(None, name, f"image of dtype {img.dtype}: give uint8 (0..255) or float in 0..1")
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    return img


def farneback(onset: np.ndarray, apex: np.ndarray, **params) -> np.ndarray:
    """Dense Farneback flow onset -> apex (§4.2), shape (H, W, 2) float32 holding (u, v) in pixels.

    `onset`, `apex`: uint8 (grey or BGR) or float in 0..1 (see `_gray`)."""
    p = {**FARNEBACK_PARAMS, **params}
    return cv2.calcOpticalFlowFarneback(_gray(onset, "onset"), _gray(apex, "apex"), None, p["pyr_scale"], p["levels"],
                                        p["winsize"], p["iterations"], p["poly_n"], p["poly_sigma"], p["flags"])


def tvl1(onset: np.ndarray, apex: np.ndarray, **params) -> np.ndarray:
    """Dense TV-L1 flow onset -> apex (Zach et al. 2007; the method of STSTNet's data), (H, W, 2) float32 (u, v).

    OpenCV's defaults (tau 0.25, lambda 0.15, theta 0.3, 5 scales, 5 warps, median filtering 5); any of them can be
    overridden by keyword, e.g. `lambda_=0.1`.
    """
    algo = cv2.optflow.DualTVL1OpticalFlow_create(**params)
    return algo.calc(_gray(onset, "onset"), _gray(apex, "apex"), None)


def optical_flow(onset: np.ndarray, apex: np.ndarray, method: Method = "tvl1") -> np.ndarray:
    """Flow onset -> apex with the named method, (H, W, 2) float32."""
    if method == "farneback":
        return farneback(onset, apex)
    if method == "tvl1":
        return tvl1(onset, apex)
    raise ValueError(f"unknown flow method {method!r}; choose one of {METHODS}")


def optical_strain(flow: np.ndarray) -> np.ndarray:
    """Optical strain magnitude, eq. 3: sqrt(u_x^2 + v_y^2 + 1/2 (u_y + v_x)^2), float32 (H, W).

    The strain tensor's diagonal terms are u_x and v_y and its two shear terms are each 1/2 (u_y + v_x); their
    Frobenius norm is this expression. Derivatives are central differences (one-sided at the border).
    """
    u = flow[..., 0].astype(np.float64)
    v = flow[..., 1].astype(np.float64)
    u_y, u_x = np.gradient(u)  # np.gradient returns d/d(row) first, then d/d(column)
    v_y, v_x = np.gradient(v)
    return np.sqrt(u_x ** 2 + v_y ** 2 + 0.5 * (u_y + v_x) ** 2).astype(np.float32)


def normalise_channels(stack: np.ndarray) -> np.ndarray:
    """Per-map, per-channel min-max normalisation to uint8 0..255, as in the release (a flat channel becomes 0)."""
    out = np.zeros(stack.shape, dtype=np.uint8)
    for c in range(stack.shape[-1]):
        ch = stack[..., c].astype(np.float64)
        lo, hi = float(ch.min()), float(ch.max())
        if hi > lo:
            # round, not truncate: the extremes land exactly on 0 and 255 either way; rounding centres the rest
            out[..., c] = np.round(255.0 * (ch - lo) / (hi - lo)).astype(np.uint8)
    return out


def flow_map(flow: np.ndarray, strain: np.ndarray | None = None, size: int = MAP_SIZE,
             interpolation: int = cv2.INTER_AREA) -> np.ndarray:
    """The release's 28x28x3 uint8 map from a flow field: channels (strain, v, u) so cv2.imwrite/imread keep them."""
    if strain is None:
        strain = optical_strain(flow)
    stack = np.dstack([strain, flow[..., 1], flow[..., 0]]).astype(np.float32)
    if stack.shape[:2] != (size, size):
        stack = cv2.resize(stack, (size, size), interpolation=interpolation)
    return normalise_channels(stack)


def prepare_pair(onset_face: np.ndarray, apex_face: np.ndarray, flow_size: int = DEFAULT_FLOW_SIZE
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Grey onset and apex face crops resized to the working resolution (area interpolation when shrinking); uint8 or
    float in 0..1 (see `_gray`)."""
    out = []
    for img, name in ((onset_face, "onset_face"), (apex_face, "apex_face")):
        g = _gray(img, name)
        if g.shape != (flow_size, flow_size):
            interp = cv2.INTER_AREA if g.shape[0] > flow_size else cv2.INTER_LINEAR
            g = cv2.resize(g, (flow_size, flow_size), interpolation=interp)
        out.append(g)
    return out[0], out[1]


def face_pair_to_map(onset_face: np.ndarray, apex_face: np.ndarray, method: Method = "tvl1",
                     flow_size: int = DEFAULT_FLOW_SIZE, size: int = MAP_SIZE,
                     interpolation: int = cv2.INTER_AREA) -> np.ndarray:
    """Onset and apex face crops -> the 28x28x3 map (strain, v, u) of the release (§3.1, eq. 3)."""
    a, b = prepare_pair(onset_face, apex_face, flow_size)
    flow = optical_flow(a, b, method)
    return flow_map(flow, optical_strain(flow), size=size, interpolation=interpolation)


def encode_png(img: np.ndarray) -> bytes:
    """PNG bytes (lossless, so the written map is exactly the computed one)."""
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def end_point_error(flow: np.ndarray, truth: np.ndarray, margin: int = 0) -> float:
    """Mean end-point error |flow - truth| in pixels, ignoring `margin` pixels at each border."""
    if margin:
        flow = flow[margin:-margin, margin:-margin]
        truth = truth[margin:-margin, margin:-margin]
    return float(np.sqrt(((flow - truth) ** 2).sum(-1)).mean())
