"""The conv demo (`cvlab train experiment=conv_demo`): hand-made 3x3 filters on two images.

As in the course notebook: two RGB images, cropped to squares and resized to S x S, go
through `conv_forward_naive` (stride 1, pad 1) with two filters:
    filter 0: grayscale, 0.3 R + 0.6 G + 0.1 B on the centre tap, bias 0
    filter 1: horizontal-edge Sobel on the blue channel, bias 128
The run folder gets:
    conv_demo_inputs.npy   (2, 3, S, S) float64 input images, 0-255
    conv_demo_outputs.npy  (2, 2, S, S) float64 filter responses
    conv_demo_filters.npy  (2, 3, 3, 3) and conv_demo_bias.npy (2,)
    conv_demo/input_<k>.png, conv_demo/gray_<k>.png, conv_demo/edges_<k>.png
(each output scaled to 0-255 by its own min and max, as the course's imshow_no_ax does).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from cvlab.config.train import ModelConfig
from cvlab.families.demo import DEMO
from cvlab.images import read_image
from cvlab.models.registry import ModelSpec, register
from cvlab.records.files import atomic_write
from cvlab.validation import check

log = logging.getLogger(__name__)

GRAYSCALE = (0.3, 0.6, 0.1)
SOBEL_HORIZONTAL = ((1, 2, 1), (0, 0, 0), (-1, -2, -1))


def demo_filters() -> tuple[np.ndarray, np.ndarray]:
    """The two filters w (2, 3, 3, 3) and biases b (2,) of the course's demo."""
    w = np.zeros((2, 3, 3, 3))
    for channel, weight in enumerate(GRAYSCALE):
        w[0, channel, 1, 1] = weight
    w[1, 2] = SOBEL_HORIZONTAL
    b = np.array([0.0, 128.0])
    return w, b


def generated_scene(size: int = 256) -> np.ndarray:
    """A generated RGB test picture (H, W, 3) uint8: sky gradient, sun, hills, a striped house."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    image = np.zeros((size, size, 3))
    image[..., 0] = 90 + 80 * yy
    image[..., 1] = 150 + 60 * yy
    image[..., 2] = 235 - 40 * yy
    sun = (xx - 0.75) ** 2 + (yy - 0.22) ** 2 < 0.012
    image[sun] = (250, 220, 60)
    hill = yy > 0.62 + 0.08 * np.sin(6 * xx)
    image[hill] = np.stack([40 + 0 * yy, 120 + 50 * yy, 50 + 0 * yy], axis=-1)[hill]
    house = (xx > 0.18) & (xx < 0.45) & (yy > 0.45) & (yy < 0.8)
    stripes = (np.floor(yy * 24) % 2 == 0)
    image[house & stripes] = (180, 60, 50)
    image[house & ~stripes] = (230, 200, 170)
    roof = (yy <= 0.45) & (yy > 0.30) & (np.abs(xx - 0.315) < (yy - 0.30) * 1.0)
    image[roof] = (90, 40, 30)
    return np.clip(image, 0, 255).astype(np.uint8)


def builtin_images() -> list[tuple[str, np.ndarray]]:
    """Two (name, RGB uint8 image) pairs shipped with the project's dependencies or generated."""
    images: list[tuple[str, np.ndarray]] = []
    try:
        import matplotlib.cbook

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
            from PIL import Image

            images.append(("grace_hopper", np.asarray(Image.open(f).convert("RGB"))))
    except Exception:  # noqa: BLE001 - sample data is optional in matplotlib installs
        log.info("matplotlib's sample photo is not installed; using generated images only")
    images.append(("generated_scene", generated_scene()))
    if len(images) < 2:
        images.append(("generated_scene_flipped", generated_scene()[:, ::-1].copy()))
    return images


def square_resize(image: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to a square and resize to (size, size, 3), as the course prepares its images."""
    from PIL import Image

    H, W = image.shape[:2]
    side = min(H, W)
    top, left = (H - side) // 2, (W - side) // 2
    square = image[top:top + side, left:left + side]
    return np.asarray(Image.fromarray(square).resize((size, size), Image.BILINEAR))


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Scale an array to 0-255 by its own min and max (the course's imshow_no_ax)."""
    low, high = float(np.min(image)), float(np.max(image))
    scaled = 255.0 * (image - low) / (high - low) if high > low else np.zeros_like(image)
    return scaled.astype(np.uint8)


def apply_demo_filters(x: np.ndarray) -> np.ndarray:
    """Outputs (N, 2, H, W) of the two demo filters on images x (N, 3, H, W) (naive conv)."""
    from cvlab.layers import conv_forward_naive

    w, b = demo_filters()
    out, _ = conv_forward_naive(x, w, b, {"stride": 1, "pad": 1})
    return out


def run_conv_demo(cfg: ConvDemoConfig, run_dir: Path) -> dict[str, Any]:
    """Filter two images (cfg.images, or the built-in pair); save inputs, outputs, PNGs.

    Returns the summary's metrics and the files written (relative to run_dir)."""
    size = cfg.image_size
    if cfg.images:  # how many: checked with the config (ConvDemoConfig)
        named = [(Path(p).stem, read_image(p)) for p in cfg.images]
    else:
        named = builtin_images()[:2]
    x = np.stack([square_resize(image, size).transpose(2, 0, 1) for _, image in named])
    x = x.astype(np.float64)
    out = apply_demo_filters(x)
    w, b = demo_filters()
    arrays = {"conv_demo_inputs.npy": x, "conv_demo_outputs.npy": out,
              "conv_demo_filters.npy": w, "conv_demo_bias.npy": b}
    for name, array in arrays.items():
        atomic_write(run_dir / name, partial(np.save, arr=array, allow_pickle=False), binary=True)
    files = list(arrays)
    for k in range(len(named)):
        for name, image in (("input", x[k].transpose(1, 2, 0).astype(np.uint8)),
                            ("gray", to_uint8(out[k, 0])), ("edges", to_uint8(out[k, 1]))):
            path = run_dir / "conv_demo" / f"{name}_{k}.png"
            atomic_write(path, partial(write_png, image), binary=True)
            files.append(str(path.relative_to(run_dir)))
    log.info("conv demo: %d images filtered; arrays and PNGs in %s", len(named), run_dir)
    return {"metrics": {"images": [name for name, _ in named], "image_size": size,
                        "filters": ["grayscale", "horizontal_edges_blue"]},
            "files": files}


def write_png(image: np.ndarray, file: Any) -> None:
    """Write an (H, W) or (H, W, 3) uint8 image to `file` as PNG."""
    from PIL import Image

    Image.fromarray(image).save(file, format="PNG")


MAX_IMAGES = 8  # the figure of `cvlab plot` has one row per image


@dataclass
class ConvDemoConfig(ModelConfig):
    """`experiment=conv_demo`: the course's grayscale and edge filters on two images.

    `images`: image files (any format Pillow reads); empty = the two built-in images
    (matplotlib's sample photo when present, and a generated scene). Images are resized to
    `image_size` x `image_size` before filtering.
    """

    type: str = "conv_demo"
    images: list[str] = field(default_factory=list)
    image_size: int = 200

    def __post_init__(self) -> None:
        check(self.image_size >= 3, "image_size", self.image_size, "an integer >= 3")
        check(len(self.images) <= MAX_IMAGES, "images", f"[{len(self.images)} files]",
              f"at most {MAX_IMAGES} image files")

    def image_files(self) -> list[str]:
        return [str(name) for name in self.images]


SPEC = register(ModelSpec(name="conv_demo", family=DEMO, schema=ConvDemoConfig,
                          build=run_conv_demo))
