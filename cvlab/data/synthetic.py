"""The embedded synthetic set: CIFAR-10-shaped images of rendered shapes and textures.

Ten classes = five shape types x two fill textures (solid, striped). Every image has a
background colour with a gradient, a little clutter (thin line segments and a small blob behind
the shape), a shape of random colour, size, rotation and (roughly centred) position, and pixel
noise. The shape is lighter than its background in every channel in half of the images and
darker in the other half.

The variation is chosen so that the set behaves like CIFAR-10 for the course's models: the
fully connected nets learn a good part of it from 1,000 images in 10 epochs (the shape sits
near the centre at a similar size, as CIFAR-10's objects do), a linear classifier cannot (no
single template fits a shape that is light on dark as often as dark on light: it stays near
chance), and a small CNN does far better than both.

Generation is vectorized numpy, deterministic from a seed (same seed, same bytes), and
rendered in fixed-size chunks so memory stays small.
"""

from __future__ import annotations

import numpy as np

SHAPES = ("circle", "square", "triangle", "ring", "cross")
TEXTURES = ("solid", "striped")
CLASS_NAMES = [f"{texture}_{shape}" for texture in TEXTURES for shape in SHAPES]
NUM_CLASSES = len(CLASS_NAMES)
VERSION = 3  # bump when the rendering changes (invalidates caches)
SIZE = 32
_CHUNK = 2500  # images rendered at once (fixed: part of the definition of the bytes)
_NUM_LINES = 2
_NUM_BLOBS = 1


def balanced_labels(num_images: int, rng: np.random.Generator) -> np.ndarray:
    """Labels 0..9 in equal numbers (up to one when not divisible), in random order."""
    return rng.permutation(np.arange(num_images) % NUM_CLASSES).astype(np.int64)


def generate(num_images: int, seed: int, stream: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Render `num_images` images; returns X uint8 (N, 3, 32, 32) and y int64 (N,).

    `stream` separates independent sets drawn from one seed (0 = train, 1 = test).
    """
    rng = np.random.default_rng([seed, stream, VERSION])
    labels = balanced_labels(num_images, rng)
    params = _draw_params(labels, rng)
    X = np.empty((num_images, 3, SIZE, SIZE), dtype=np.uint8)
    for chunk, start in enumerate(range(0, num_images, _CHUNK)):
        stop = min(start + _CHUNK, num_images)
        chunk_rng = np.random.default_rng([seed, stream, VERSION, chunk + 1])
        part = {key: value[start:stop] for key, value in params.items()}
        X[start:stop] = _render(part, chunk_rng)
    return X, labels


def generate_splits(
    num_train: int, num_test: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X_train, y_train, X_test, y_test) of the synthetic set for one seed."""
    X_train, y_train = generate(num_train, seed, stream=0)
    X_test, y_test = generate(num_test, seed, stream=1)
    return X_train, y_train, X_test, y_test


def _draw_params(labels: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-image random parameters (drawn for all images at once, in a fixed order)."""
    N = len(labels)
    u = rng.uniform
    # Two colours per image, the light one 100..155 above the dark one in every channel; the
    # shape takes the light one (on the dark ground) or the dark one (on the light ground).
    dark = u(0, 100, (N, 3))
    light = dark + u(100, 155, (N, 3))
    light_shape = (rng.random(N) < 0.5)[:, None]
    background = np.where(light_shape, dark, light)
    foreground = np.where(light_shape, light, dark)
    bright = foreground.mean(axis=1, keepdims=True) > 127
    stripe_colour = np.where(bright, foreground * 0.35, foreground + (255 - foreground) * 0.65)
    return {
        "shape": labels % len(SHAPES),
        "striped": labels // len(SHAPES),
        "background": background,
        "gradient": u(-45, 45, N),
        "gradient_angle": u(0, 2 * np.pi, N),
        "foreground": foreground,
        "stripe_colour": stripe_colour,
        "stripe_period": u(3.0, 5.0, N),
        "stripe_angle": u(0, np.pi, N),
        "centre": u(12, 20, (N, 2)),
        "radius": u(7.5, 11.5, N),
        "angle": u(0, 2 * np.pi, N),
        "line_ends": u(-2, SIZE + 2, (N, _NUM_LINES, 4)),
        "line_colour": u(0, 255, (N, _NUM_LINES, 3)),
        "blob_centre": u(0, SIZE, (N, _NUM_BLOBS, 2)),
        "blob_radius": u(1.2, 2.6, (N, _NUM_BLOBS)),
        "blob_colour": u(0, 255, (N, _NUM_BLOBS, 3)),
    }


def _grid() -> tuple[np.ndarray, np.ndarray]:
    coords = np.arange(SIZE, dtype=np.float32) + 0.5
    return coords[None, :, None], coords[None, None, :]  # yy (1, H, 1), xx (1, 1, W)


def _col(values: np.ndarray) -> np.ndarray:
    """(B,) -> (B, 1, 1) float32 for broadcasting against (B, H, W)."""
    return values.astype(np.float32)[:, None, None]


def _paint(images: np.ndarray, mask: np.ndarray, colour: np.ndarray) -> None:
    """images (B, 3, H, W) int16: set colour (B, 3) where mask (B, H, W) holds."""
    np.copyto(images, np.rint(colour).astype(np.int16)[:, :, None, None], where=mask[:, None])


def _render(p: dict[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Render one chunk of images from their parameters; returns uint8 (B, 3, H, W)."""
    B = len(p["shape"])
    yy, xx = _grid()
    # Background: a colour plus a linear gradient along a random direction (whole pixels).
    ramp = (_col(np.cos(p["gradient_angle"])) * (xx - 16) + _col(np.sin(p["gradient_angle"]))
            * (yy - 16)) * _col(p["gradient"] / 16)
    images = np.empty((B, 3, SIZE, SIZE), dtype=np.int16)
    images[:] = np.rint(p["background"]).astype(np.int16)[:, :, None, None]
    images += np.rint(ramp).astype(np.int16)[:, None]
    # Clutter behind the shape: thin line segments and small blobs.
    for k in range(_NUM_LINES):
        _paint(images, _segment_mask(p["line_ends"][:, k]), p["line_colour"][:, k])
    for k in range(_NUM_BLOBS):
        centre = p["blob_centre"][:, k]
        dist2 = (yy - _col(centre[:, 0])) ** 2 + (xx - _col(centre[:, 1])) ** 2
        _paint(images, dist2 <= _col(p["blob_radius"][:, k] ** 2), p["blob_colour"][:, k])
    # The shape, in its own rotated frame (u, v) scaled by its radius.
    dy = yy - _col(p["centre"][:, 0])
    dx = xx - _col(p["centre"][:, 1])
    cos, sin, radius = _col(np.cos(p["angle"])), _col(np.sin(p["angle"])), _col(p["radius"])
    u = (dx * cos + dy * sin) / radius
    v = (dy * cos - dx * sin) / radius
    mask = np.zeros((B, SIZE, SIZE), dtype=bool)
    for index, shape in enumerate(SHAPES):
        rows = np.flatnonzero(p["shape"] == index)
        if len(rows):
            mask[rows] = _shape_mask(shape, u[rows], v[rows])
    _paint(images, mask, p["foreground"])
    # Texture: striped shapes get stripes of a second colour at a random angle and period.
    rows = np.flatnonzero(p["striped"])
    along = (dx[rows] * _col(np.cos(p["stripe_angle"][rows]))
             + dy[rows] * _col(np.sin(p["stripe_angle"][rows])))
    stripes = np.zeros_like(mask)
    stripes[rows] = (np.floor(along / _col(p["stripe_period"][rows])) % 2 == 1) & mask[rows]
    _paint(images, stripes, p["stripe_colour"])
    # Pixel noise (the same on the three channels), then back to bytes.
    images += rng.integers(-10, 11, size=(B, 1, SIZE, SIZE), dtype=np.int8)
    np.clip(images, 0, 255, out=images)
    return images.astype(np.uint8)


def _segment_mask(ends: np.ndarray) -> np.ndarray:
    """Pixels on the segments (y0, x0) - (y1, x1), ends (B, 4): sampled every half pixel."""
    B = len(ends)
    t = np.linspace(0.0, 1.0, 2 * int(np.ceil(np.sqrt(2) * (SIZE + 4))) + 1)
    y = ends[:, 0:1] + (ends[:, 2:3] - ends[:, 0:1]) * t
    x = ends[:, 1:2] + (ends[:, 3:4] - ends[:, 1:2]) * t
    yi, xi = np.floor(y).astype(np.int64), np.floor(x).astype(np.int64)
    inside = (yi >= 0) & (yi < SIZE) & (xi >= 0) & (xi < SIZE)
    rows = np.broadcast_to(np.arange(B)[:, None], yi.shape)
    mask = np.zeros((B, SIZE, SIZE), dtype=bool)
    mask[rows[inside], yi[inside], xi[inside]] = True
    return mask


def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean mask (B, H, W) of a unit-radius shape in local coordinates u, v."""
    if shape == "circle":
        return u * u + v * v <= 1.0
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.8
    if shape == "triangle":  # equilateral, apex at v = -1, base at v = 0.5
        return (v <= 0.5) & (np.abs(u) * np.sqrt(3.0) <= v + 1.0)
    if shape == "ring":
        r2 = u * u + v * v
        return (r2 <= 1.0) & (r2 >= 0.36)
    if shape == "cross":
        au, av = np.abs(u), np.abs(v)
        return ((au <= 0.3) & (av <= 1.0)) | ((av <= 0.3) & (au <= 1.0))
    raise ValueError(f"unknown shape {shape!r}")
