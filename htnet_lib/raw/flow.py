"""Optical flow from onset to apex, optical strain (eq. 3), and the release's 28x28x3 map (§3.1, §4.2).

HTNet's input is a three-channel map: horizontal flow u, vertical flow v and optical strain, computed between the onset
frame and the apex frame of a micro-expression and resized to 28x28 (§3.1; §4.2 names OpenCV's Farneback). The
authors' release (`datasets/STSNet_whole_norm_u_v_os/`) was not made here: it comes from STSTNet's data (Liong et al.,
2019), which used TV-L1 flow. Both are offered, `method="farneback"` and `method="tvl1"`
(`cv2.optflow.DualTVL1OpticalFlow_create`, from opencv-contrib-python-headless); `stats.method_comparison` shows which
one reproduces the release's value statistics (answer in that module's docstring).

Conventions (checked against the release; see `htnet_lib.data`):

- input frames are uint8 grey or BGR images, or float images in 0..1 (scaled by 255); anything else is refused;
- flow is measured on the onset grid, in pixels of the working resolution: onset(x) ~ apex(x + (u, v)(x)); u is
  positive to the right, v positive downwards (image rows);
- optical strain, eq. 3: eps = sqrt(u_x^2 + v_y^2 + 1/2 (u_y + v_x)^2), from central differences of the flow
  (`np.gradient`); it is dimensionless, so it does not change when the map is resized;
- the map is stacked so that `cv2.imread` returns (strain, v, u), i.e. the PNG's RGB order is (u, v, strain) as the
  folder name says; the stack is resized to 28x28 (pixel averaging, `INTER_AREA`, by default: closer to the
  release's pixel-to-pixel roughness than bilinear sampling, see `stats`) and then each channel is min-max normalised to
  0..255 on its own. Normalising after resizing is what makes every release map reach exactly 0 and 255 in every channel
  (true of all 442 maps); normalising first and then interpolating would not.

The border. Both methods get the flow wrong on the outermost pixels of the crop, where content enters and leaves the
view and the solver sees one side only. TV-L1's error is narrow and strong: between two noisy copies of a release face
(192 px, no motion) its strain is 0.039 on the edge, 0.025 at 3 px, 0.011 at 8 px, against 0.004 inside; Farneback's
is wider and weaker (0.089 on the edge, 0.036 at 9 px, 0.020 inside, on a 1.4 px translation). Averaged into the 28x28
map, it puts the strain maximum on the outer ring: 44 of 48 synthetic TV-L1 maps (`stats.border_comparison`; the
release: 30 of 442). So `face_pair_to_map` resizes the crops to flow_size + 2 `border`, computes flow and strain
there, and cuts `border` px from each side before resizing (`DEFAULT_FLOW_BORDER` = 8, one map pixel at 224 px, by
which TV-L1's error has fallen to a quarter of its edge value): then 1 of 48 TV-L1 maps (Farneback: 25 -> 4). The
strain is computed before the cut, so central differences reach the new edge. Cutting costs field of view: the map
shows the middle 224/240 of the crop, a 7 % zoom against the apex face (0.3 map pixel at the eyes' landmarks).
Flowing a margin of context around the crop and cutting that instead would keep the field of view, but not where the
crop's edge is itself an edge of motion: on the synthetic frames (a face pasted on a still background), 37 of 48 maps
kept their maximum on the ring that way.
"""
from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from .._io import HTNetInputError
from ..release import FACE_SHAPE, MAP_SIZE

Method = Literal["farneback", "tvl1"]
METHODS: tuple[str, ...] = ("farneback", "tvl1")
DEFAULT_FLOW_SIZE = FACE_SHAPE[0]  # the working resolution of the face crop for the flow: the release's apex faces
# how the full-resolution (strain, v, u) stack is shrunk to 28x28; "area" (pixel averaging) is the default because it
# comes closer to the release's pixel-to-pixel roughness (see `stats`); "linear" samples, and aliases
INTERPOLATIONS = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR}
# px of the working resolution cut from each side of the flow before the map is made: one 28x28 map pixel at 224 px,
# wider than TV-L1's false border flow (module docstring)
DEFAULT_FLOW_BORDER = 8

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
        from skimage.util import img_as_ubyte  # here: only float input needs scikit-image

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
             interpolation: int = cv2.INTER_AREA, border: int = 0) -> np.ndarray:
    """The release's 28x28x3 uint8 map from a flow field: channels (strain, v, u) so cv2.imwrite/imread keep them.

    `border` pixels are cut from each side of the flow and strain before resizing (see the module docstring); the
    strain is computed on the whole field first, so the cut leaves central differences everywhere.
    """
    if strain is None:
        strain = optical_strain(flow)
    stack = np.dstack([strain, flow[..., 1], flow[..., 0]]).astype(np.float32)
    if border:
        if not 0 < 2 * border < min(stack.shape[:2]):
            raise HTNetInputError(None, "border", f"{border} px leaves nothing of a {stack.shape[:2]} flow field")
        stack = stack[border:-border, border:-border]
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
                     interpolation: int = cv2.INTER_AREA, border: int = DEFAULT_FLOW_BORDER) -> np.ndarray:
    """Onset and apex face crops -> the 28x28x3 map (strain, v, u) of the release (§3.1, eq. 3).

    The crops are resized to `flow_size` + 2 `border`, and after the flow and strain the `border` is cut again, so the
    map shows the middle `flow_size` of them: give crops with that margin of context around the face (the builder
    does, `build.context_crop`) and the map covers the face exactly; a tight face crop loses its outer
    border / (flow_size + 2 border) on each side (8 / 240 = 3 % by default).
    """
    if border < 0:
        raise HTNetInputError(None, "border", f"must be >= 0, got {border}")
    a, b = prepare_pair(onset_face, apex_face, flow_size + 2 * border)
    flow = optical_flow(a, b, method)
    return flow_map(flow, optical_strain(flow), size=size, interpolation=interpolation, border=border)


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
