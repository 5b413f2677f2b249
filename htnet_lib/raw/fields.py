"""Known smooth displacement fields and exact warping: the ground truth for checking flow and strain (§3.1, eq. 3).

A field f maps a pixel x of the onset frame to its displacement, so a point at x in the onset sits at x + f(x) in the
apex frame: onset(x) = apex(x + f(x)). That is the quantity dense flow estimates (`cv2.calcOpticalFlowFarneback(onset,
apex)` returns it on the onset grid), so f is directly the true flow and its analytic Jacobian gives the true optical
strain of eq. 3. To render the apex frame we need, for every apex pixel y, the onset point x with x + f(x) = y; it is
found by the fixed-point iteration x <- y - f(x), which converges when f is a contraction (|grad f| < 1: true of every
field here, whose gradients are a few percent).

Coordinates are pixels of the image the field is applied to, x to the right (columns), y downwards (rows).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence

import cv2
import numpy as np


class Field(Protocol):
    def displacement(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def jacobian(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]: ...


@dataclass(frozen=True)
class Affine:
    """f(x) = A (x - c) + t: translation (A = 0), uniform scaling, shear... The strain is constant (eq. 3 of A).

    For A = diag(a, b): u = a (x - cx), v = b (y - cy), so the strain is sqrt(a^2 + b^2).
    """

    a11: float = 0.0
    a12: float = 0.0
    a21: float = 0.0
    a22: float = 0.0
    tx: float = 0.0
    ty: float = 0.0
    cx: float = 0.0
    cy: float = 0.0

    def displacement(self, x, y):
        dx, dy = x - self.cx, y - self.cy
        return self.a11 * dx + self.a12 * dy + self.tx, self.a21 * dx + self.a22 * dy + self.ty

    def jacobian(self, x, y):
        one = np.ones_like(np.asarray(x, dtype=np.float64))
        return self.a11 * one, self.a12 * one, self.a21 * one, self.a22 * one  # u_x, u_y, v_x, v_y


def translation(tx: float, ty: float) -> Affine:
    return Affine(tx=tx, ty=ty)


def scaling(a: float, b: float, cx: float, cy: float) -> Affine:
    """u = a (x - cx), v = b (y - cy): the smooth field whose strain is sqrt(a^2 + b^2) everywhere."""
    return Affine(a11=a, a22=b, cx=cx, cy=cy)


@dataclass(frozen=True)
class Bump:
    """A Gaussian patch of motion, (dx, dy) * exp(-|x - c|^2 / (2 sigma^2)): like one muscle's local action."""

    cx: float
    cy: float
    sigma: float
    dx: float
    dy: float


@dataclass(frozen=True)
class Bumps:
    """A sum of Gaussian motion patches (brows raised, lip corners pulled...) plus an optional affine head motion."""

    bumps: tuple[Bump, ...] = ()
    base: Affine = field(default_factory=Affine)

    def displacement(self, x, y):
        u, v = self.base.displacement(x, y)
        u, v = np.asarray(u, dtype=np.float64) + 0.0, np.asarray(v, dtype=np.float64) + 0.0
        for b in self.bumps:
            g = np.exp(-((x - b.cx) ** 2 + (y - b.cy) ** 2) / (2 * b.sigma ** 2))
            u = u + b.dx * g
            v = v + b.dy * g
        return u, v

    def jacobian(self, x, y):
        ux, uy, vx, vy = (np.asarray(j, dtype=np.float64) + 0.0 for j in self.base.jacobian(x, y))
        for b in self.bumps:
            g = np.exp(-((x - b.cx) ** 2 + (y - b.cy) ** 2) / (2 * b.sigma ** 2))
            gx = -(x - b.cx) / b.sigma ** 2 * g
            gy = -(y - b.cy) / b.sigma ** 2 * g
            ux, uy, vx, vy = ux + b.dx * gx, uy + b.dx * gy, vx + b.dy * gx, vy + b.dy * gy
        return ux, uy, vx, vy


@dataclass(frozen=True)
class Scaled:
    """s * field: the same motion at a fraction of its apex intensity (the frames between onset and apex)."""

    inner: Field
    s: float

    def displacement(self, x, y):
        u, v = self.inner.displacement(x, y)
        return self.s * u, self.s * v

    def jacobian(self, x, y):
        return tuple(self.s * j for j in self.inner.jacobian(x, y))


def grid(shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    h, w = shape[:2]
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    return x, y


def true_flow(f: Field, shape: Sequence[int]) -> np.ndarray:
    """The field on the onset grid: (H, W, 2) float32 (u, v), what a perfect flow method returns."""
    x, y = grid(shape)
    u, v = f.displacement(x, y)
    return np.dstack([u * np.ones_like(x), v * np.ones_like(x)]).astype(np.float32)


def true_strain(f: Field, shape: Sequence[int]) -> np.ndarray:
    """Analytic optical strain of the field, eq. 3 from its exact first derivatives, (H, W) float32."""
    x, y = grid(shape)
    ux, uy, vx, vy = f.jacobian(x, y)
    return np.sqrt(ux ** 2 + vy ** 2 + 0.5 * (uy + vx) ** 2).astype(np.float32) * np.ones(x.shape, np.float32)


def warp(image: np.ndarray, f: Field, iterations: int = 8) -> np.ndarray:
    """Render the apex frame: apex(x + f(x)) = image(x), by inverting the field with a fixed-point iteration.

    Borders are reflected, so the warped face has no black edges for the flow to chase.
    """
    x, y = grid(image.shape)
    sx, sy = x.copy(), y.copy()
    for _ in range(iterations):  # x_{k+1} = y - f(x_k); error shrinks by |grad f| (a few %) per step
        u, v = f.displacement(sx, sy)
        sx, sy = x - u, y - v
    return cv2.remap(image, sx.astype(np.float32), sy.astype(np.float32), interpolation=cv2.INTER_CUBIC,
                     borderMode=cv2.BORDER_REFLECT101)


def micro_expression_field(kind: str, size: float, amplitude: float = 1.0, rng: np.random.Generator | None = None,
                           head: float = 0.0) -> Bumps:
    """A plausible micro-expression motion on a face crop of `size` px, `amplitude` px at its peak.

    `kind` picks the action: "negative" (brows lowered and drawn together, AU4), "positive" (lip corners up and out,
    AU12), "surprise" (brows raised, AU1+2). Positions are fractions of the crop, as on the release's aligned faces.
    A small random head translation (under 0.3 px) is added, as real sequences have; `head` > 0 adds a random head
    rotation and scaling about the crop's centre of up to `head` (radians, relative scale), e.g. 0.004 moves the
    crop's corners by up to ~0.6 px at 224 px.
    """
    rng = rng or np.random.default_rng(0)
    s = float(size)
    a = amplitude
    sig = 0.09 * s
    if kind == "negative":
        bumps = (Bump(0.33 * s, 0.30 * s, sig, 0.45 * a, 0.6 * a), Bump(0.67 * s, 0.30 * s, sig, -0.45 * a, 0.6 * a))
    elif kind == "positive":
        bumps = (Bump(0.33 * s, 0.74 * s, sig, -0.6 * a, -0.5 * a), Bump(0.67 * s, 0.74 * s, sig, 0.6 * a, -0.5 * a))
    elif kind == "surprise":
        bumps = (Bump(0.33 * s, 0.27 * s, sig, 0.0, -a), Bump(0.67 * s, 0.27 * s, sig, 0.0, -a))
    else:
        raise ValueError(f"unknown kind {kind!r}")
    t = rng.uniform(-0.3, 0.3, size=2)
    if head > 0:
        th, sc = (float(v) for v in rng.uniform(-head, head, size=2))
        return Bumps(bumps, Affine(a11=sc, a12=-th, a21=th, a22=sc, tx=float(t[0]), ty=float(t[1]), cx=s / 2, cy=s / 2))
    return Bumps(bumps, Affine(tx=float(t[0]), ty=float(t[1])))
