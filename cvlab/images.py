"""Arrays as images: the first-layer conv filters of a model's weights, tiled into one picture
(what `cvlab plot` draws and the TensorBoard logger shows); image files a run names, read as
arrays."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from cvlab.errors import UserError
from cvlab.records.state import as_array


def read_image(name: str, option: str = "model.images") -> np.ndarray:
    """The image file `name` as RGB uint8 (H, W, 3), decoded by Pillow; UserError (one line
    naming `option`) for a missing, unreadable, damaged or oversized file."""
    from PIL import Image, UnidentifiedImageError

    file = Path(name).expanduser()
    if not file.is_file():
        raise UserError(f"{option}: {name} is not a file; pass paths of image files, "
                        "e.g. model.images=[a.jpg,b.png]")
    try:
        with Image.open(file) as image:
            return np.asarray(image.convert("RGB"))
    except UnidentifiedImageError:
        raise UserError(f"{option}: {name} is not an image Pillow can read (PNG, JPEG, "
                        "...)") from None
    except Image.DecompressionBombError as err:
        raise UserError(f"{option}: {name} is too large to read as an image "
                        f"({err})") from None
    except OSError as err:  # unreadable (permissions), or a damaged image file
        raise UserError(f"{option}: cannot read {name} as an image "
                        f"({err.strerror or err})") from None


def filter_grid(weights: np.ndarray, padding: int = 1, upper: float = 255.0) -> np.ndarray:
    """Tile first-layer filters into one image, each filter scaled to [0, upper] on its own.

    Inputs:
    - weights: (F, C, HH, WW) conv weights (C = 3 gives color tiles, C = 1 gray tiles)
    Returns a (G*HH + (G-1)*padding, G*WW + (G-1)*padding, C) array, G = ceil(sqrt(F)), with
    the gaps at 0 (as the course's visualize_grid).
    """
    num_filters, channels, height, width = weights.shape
    tiles = np.asarray(weights, dtype=float).transpose(0, 2, 3, 1)  # (F, HH, WW, C)
    grid_size = int(math.ceil(math.sqrt(num_filters)))
    grid_h = grid_size * height + padding * (grid_size - 1)
    grid_w = grid_size * width + padding * (grid_size - 1)
    grid = np.zeros((grid_h, grid_w, channels))
    for index in range(num_filters):
        row, col = divmod(index, grid_size)
        tile = tiles[index]
        low, high = tile.min(), tile.max()
        scaled = upper * (tile - low) / (high - low) if high > low else np.zeros_like(tile)
        y0, x0 = row * (height + padding), col * (width + padding)
        grid[y0:y0 + height, x0:x0 + width] = scaled
    return grid


def first_conv_weights(tree: Any) -> np.ndarray | None:
    """The first 4-D array (F, C, HH, WW) in a tree of weights (dicts in order, numpy arrays
    or torch tensors): a model's first-layer conv filters."""
    if isinstance(tree, dict):
        for value in tree.values():
            found = first_conv_weights(value)
            if found is not None:
                return found
        return None
    array = as_array(tree)
    if array is not None and array.ndim == 4:
        return np.asarray(array, dtype=float)
    return None
