"""Image figures: the CNN's first-layer filters as a grid, and the conv-demo images."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from cvlab.images import filter_grid
from cvlab.plot.style import figure, pyplot, save

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".npy")
CONV_DEMO_FILTERS = ("grayscale", "edges (Sobel, blue)")  # as cvlab.models.conv_demo


def plot_filters(weights: np.ndarray, out_path: Path, title: str) -> Path:
    """The filter grid as a PNG (3-channel filters in color, others per channel in gray)."""
    if weights.shape[1] != 3:
        weights = weights.reshape(-1, 1, *weights.shape[2:])
    grid = filter_grid(weights)
    fig, (ax,) = figure(1, panel=(5.0, 5.2))
    if grid.shape[2] == 3:
        ax.imshow(grid.astype(np.uint8))
    else:
        ax.imshow(grid[:, :, 0], cmap="gray")
    ax.axis("off")
    ax.set_title(f"{title}\n{weights.shape[0]} first-layer filters "
                 f"{weights.shape[2]}x{weights.shape[3]}", fontsize=10)
    return save(fig, out_path)


def to_display(image: np.ndarray) -> tuple[np.ndarray, str | None]:
    """An array as something imshow draws faithfully: (H, W[, 3]) uint8-range, colormap."""
    image = np.asarray(image, dtype=float)
    if image.ndim == 3 and image.shape[0] in (1, 3) and image.shape[-1] not in (1, 3):
        image = image.transpose(1, 2, 0)  # C, H, W -> H, W, C
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    low, high = float(np.nanmin(image)), float(np.nanmax(image))
    if image.ndim == 2:
        return image, "gray"
    if low < 0 or high > 255 or high <= 1.0:  # not in pixel range: rescale for display
        image = 255 * (image - low) / (high - low) if high > low else np.zeros_like(image)
    return image.clip(0, 255).astype(np.uint8), None


def plot_image_grid(images: list[tuple[str, np.ndarray]], out_path: Path, title: str,
                    columns: int = 3) -> Path:
    """Named images in a grid of `columns` (gray for 2-D arrays), titles over each."""
    rows = max(1, math.ceil(len(images) / columns))
    fig, axes = figure(columns, rows, panel=(3.2, 3.7))
    for ax in axes:
        ax.axis("off")
    for ax, (name, image) in zip(axes, images):
        shown, cmap = to_display(image)
        ax.imshow(shown, cmap=cmap)
        ax.set_title(name, fontsize=9)
    fig.suptitle(title)
    return save(fig, out_path)


def read_image(path: Path) -> np.ndarray | None:
    """A PNG/JPEG (via matplotlib's PIL reader) or a .npy array; None when unreadable."""
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False)
        plt = pyplot()
        image = plt.imread(path)
        if image.dtype != np.uint8 and image.max() <= 1.0:
            image = (image * 255).astype(np.uint8)
        return image[..., :3] if image.ndim == 3 else image
    except (OSError, ValueError):
        return None


def plot_conv_demo(run_dir: Path, out_path: Path) -> list[Path]:
    """The course's conv-demo figure: per image, the input and each filter's response.

    Reads conv_demo_inputs.npy (N, 3, H, W) and conv_demo_outputs.npy (N, F, H, W) when the
    run saved them (each response scaled by its own min and max, as the course shows them);
    otherwise every image saved in the run folder, in one grid. [] when there is none.
    """
    run_dir = Path(run_dir)
    inputs_path = run_dir / "conv_demo_inputs.npy"
    outputs_path = run_dir / "conv_demo_outputs.npy"
    if inputs_path.is_file() and outputs_path.is_file():
        inputs = np.load(inputs_path, allow_pickle=False)
        outputs = np.load(outputs_path, allow_pickle=False)
        names = list(CONV_DEMO_FILTERS[: outputs.shape[1]])
        names += [f"filter {k}" for k in range(len(names), outputs.shape[1])]
        images = []
        for k in range(inputs.shape[0]):
            images.append((f"image {k}: original", inputs[k]))
            images += [(f"image {k}: {name}", outputs[k, f]) for f, name in enumerate(names)]
        title = "conv demo: conv_forward_naive with hand-made 3x3 filters"
        return [plot_image_grid(images, out_path, title, columns=1 + outputs.shape[1])]
    images = []
    for path in sorted(run_dir.rglob("*")):
        inside = path.parts[len(run_dir.parts):]
        if path.suffix.lower() not in IMAGE_SUFFIXES or "plots" in inside or \
                path.name.startswith("."):
            continue
        image = read_image(path)
        if image is not None and image.ndim in (2, 3):
            images.append((path.stem.replace("_", " "), image))
    if not images:
        return []
    return [plot_image_grid(images, out_path, "conv demo images")]
