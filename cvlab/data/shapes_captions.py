"""shapes_captions: an embedded, deterministic captioning set in the COCO on-disk layout.

Each 64x64 RGB image shows one to three coloured shapes on a noisy grey background:
shapes circle/square/triangle/diamond, colours red/green/blue/yellow/purple, sizes
small/large. Layouts: one shape; two shapes side by side (left of / right of) or stacked
(above / below); three shapes in a row. Every image has 2-3 reference captions from a
small grammar, for example
    a large red circle left of a small blue square
    a small blue square right of a large red circle
    a large red circle and a small blue square
(at most 15 words, so every caption fits the COCO format's 17 ids with <START>/<END>).

Split: a scene is its layout and its ordered objects (shape, colour, size); positions and
colours are jittered per image. Validation scenes are multi-shape combinations that never
occur in training (a fixed hash of the scene picks about 20% of all combinations for
validation), so val BLEU measures composition, not memorization.

Features (the "fixed, documented extractor"): a random two-layer conv net with fixed
weights (torch.Generator seeded with EXTRACTOR_SEED): conv 32x3x5x5 stride 2 pad 2 - relu
- (average-pooled to a 4x4 grid -> 512 values) - 2x2 max pool - conv 64x32x3x3 pad 1 -
relu - (average-pooled to a 4x4 grid -> 1024 values); input pixels scaled to [-0.5, 0.5].
The 1536 raw values are written as *_vgg16_fc7.h5 (the COCO "raw" slot); their PCA to 512
dimensions (fitted on the training images, scaled to unit mean variance) as
*_vgg16_fc7_pca.h5, mirroring COCO. The images are saved as PNG under images/<split>/ and
the *_urls.txt files list their paths relative to the dataset folder.

Generated once per (num_train, num_val, seed) under cvlab.paths.cache_home()/shapes_captions.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cvlab.data.coco import CAPTIONS_FILE, VOCAB_FILE, feature_file, url_file
from cvlab.data.constants import END, SPECIAL_TOKENS, START
from cvlab.data.fetching import set_aside
from cvlab.paths import cache_home

log = logging.getLogger(__name__)

VERSION = 1
IMAGE_SIZE = 64
CAPTION_LENGTH = 17  # ids per caption: <START> + at most 15 words + <END>, <NULL> padded
MAX_WORDS = CAPTION_LENGTH - 2
SHAPES = ("circle", "square", "triangle", "diamond")
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (50, 80, 230),
    "yellow": (230, 210, 40),
    "purple": (150, 60, 200),
}
SIZES = {"small": 5.0, "large": 10.0}  # radius in pixels
LAYOUTS = ("single", "horizontal", "vertical", "row")
LAYOUT_PROBS = (0.2, 0.3, 0.25, 0.25)
VAL_PERCENT = 20  # share of multi-shape scene combinations reserved for validation
EXTRACTOR_SEED = 231
PCA_DIM = 512
DONE_MARKER = "DONE"

Obj = tuple[str, str, str]  # (size, colour, shape)


@dataclass(frozen=True)
class Scene:
    layout: str
    objects: tuple[Obj, ...]

    @property
    def key(self) -> str:
        return self.layout + ":" + "|".join(" ".join(o) for o in self.objects)

    @property
    def is_val(self) -> bool:
        """Held-out combination (multi-shape scenes only; fixed by a hash of the key)."""
        return self.layout != "single" and zlib.crc32(self.key.encode()) % 100 < VAL_PERCENT


def captions_of(scene: Scene) -> list[str]:
    """The reference captions of a scene (objects in left-to-right / top-to-bottom order)."""
    words = [" ".join(o) for o in scene.objects]
    if scene.layout == "single":
        (a,) = words
        return [f"a {a}", f"there is a {a}", f"a {a} on a grey background"]
    if scene.layout == "horizontal":
        a, b = words
        return [f"a {a} left of a {b}", f"a {b} right of a {a}", f"a {a} and a {b}"]
    if scene.layout == "vertical":
        a, b = words
        return [f"a {a} above a {b}", f"a {b} below a {a}", f"a {a} and a {b}"]
    a, b, c = words
    return [f"a {a} , a {b} and a {c}", f"a {a} left of a {b} and a {c}"]


def vocabulary() -> list[str]:
    """idx_to_word: the special tokens (<NULL> = 0, <START>, <END>, <UNK>), then sorted words."""
    words: set[str] = {"a", "there", "is", "on", "grey", "background", "left", "right", "of",
                       "above", "below", "and", ","}
    words |= set(SHAPES) | set(COLOURS) | set(SIZES)
    return list(SPECIAL_TOKENS) + sorted(words)


def random_scene(rng: np.random.Generator) -> Scene:
    layout = LAYOUTS[rng.choice(len(LAYOUTS), p=LAYOUT_PROBS)]
    count = {"single": 1, "horizontal": 2, "vertical": 2, "row": 3}[layout]
    objects: list[Obj] = []
    while len(objects) < count:
        obj = (str(rng.choice(list(SIZES))), str(rng.choice(list(COLOURS))),
               str(rng.choice(SHAPES)))
        if obj not in objects:
            objects.append(obj)
    return Scene(layout, tuple(objects))


def _centres(layout: str, rng: np.random.Generator) -> list[tuple[float, float]]:
    """(x, y) centres per object, jittered, far enough apart for the largest shapes."""
    j = rng.uniform
    if layout == "single":
        return [(32 + j(-10, 10), 32 + j(-10, 10))]
    if layout == "horizontal":
        return [(16 + j(-3, 3), 32 + j(-12, 12)), (48 + j(-3, 3), 32 + j(-12, 12))]
    if layout == "vertical":
        return [(32 + j(-12, 12), 16 + j(-3, 3)), (32 + j(-12, 12), 48 + j(-3, 3))]
    return [(x + j(-1, 1), 32 + j(-14, 14)) for x in (11.0, 32.0, 53.0)]


def render(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """The scene as a (64, 64, 3) uint8 image with jittered positions, colours and noise."""
    size = IMAGE_SIZE
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    image = np.full((size, size, 3), rng.uniform(85, 115), dtype=np.float64)
    for (size_name, colour, shape), (cx, cy) in zip(scene.objects, _centres(scene.layout, rng)):
        r = SIZES[size_name] + rng.uniform(-0.7, 0.7)
        dx, dy = xx - cx, yy - cy
        if shape == "circle":
            mask = dx**2 + dy**2 <= r**2
        elif shape == "square":
            mask = (np.abs(dx) <= 0.85 * r) & (np.abs(dy) <= 0.85 * r)
        elif shape == "diamond":
            mask = np.abs(dx) + np.abs(dy) <= 1.15 * r
        else:  # triangle, pointing up
            mask = (dy <= r) & (dy >= -r) & (np.abs(dx) <= (dy + r) / 2)
        rgb = np.clip(np.array(COLOURS[colour]) + rng.normal(0, 12, 3), 0, 255)
        image[mask] = rgb
    image += rng.normal(0, 6, image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def extract_features(images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The fixed random conv net: (N, 64, 64, 3) uint8 -> (N, 1536) float32 raw features."""
    import torch
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(EXTRACTOR_SEED)
    w1 = torch.randn(32, 3, 5, 5, generator=gen) / np.sqrt(3 * 25)
    w2 = torch.randn(64, 32, 3, 3, generator=gen) / np.sqrt(32 * 9)
    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            x = torch.from_numpy(images[start:start + batch_size]).permute(0, 3, 1, 2)
            x = x.float() / 255.0 - 0.5
            a1 = F.relu(F.conv2d(x, w1, stride=2, padding=2))  # (B, 32, 32, 32)
            a2 = F.relu(F.conv2d(F.max_pool2d(a1, 2), w2, padding=1))  # (B, 64, 16, 16)
            grid1 = F.adaptive_avg_pool2d(a1, 4).flatten(1)
            grid2 = F.adaptive_avg_pool2d(a2, 4).flatten(1)
            out.append(torch.cat([grid1, grid2], dim=1).numpy())
    return np.concatenate(out).astype(np.float32)


def fit_pca(train: np.ndarray, dim: int = PCA_DIM) -> tuple[np.ndarray, np.ndarray, float]:
    """(mean, components (F, dim), scale) such that (x - mean) @ components / scale has unit
    mean variance per dimension on the training features.

    Components are the covariance's leading eigenvectors, each with its largest entry
    positive. With fewer images than features they come from the SVD of the centred
    features instead (faster), and components beyond the image count are zero columns.
    """
    train = train.astype(np.float64)
    mean = train.mean(axis=0)
    centred = train - mean
    if len(train) >= train.shape[1]:
        cov = centred.T @ centred / max(len(train) - 1, 1)
        values, vectors = np.linalg.eigh(cov)
        components = vectors[:, np.argsort(values)[::-1][:dim]]
    else:
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        components = np.zeros((train.shape[1], dim))
        keep = min(dim, vt.shape[0])
        components[:, :keep] = vt[:keep].T
    # Fix each component's sign so the result does not depend on the eigen solver.
    signs = np.sign(components[np.abs(components).argmax(axis=0), np.arange(components.shape[1])])
    components = components * np.where(signs == 0, 1, signs)
    projected = centred @ components
    scale = float(np.sqrt((projected**2).mean())) or 1.0
    return mean, components, scale


def _make_split(count: int, want_val: bool, rng: np.random.Generator
                ) -> tuple[list[np.ndarray], list[list[str]]]:
    images, captions = [], []
    while len(images) < count:
        scene = random_scene(rng)
        if scene.is_val != want_val:
            continue
        images.append(render(scene, rng))
        captions.append(captions_of(scene))
    return images, captions


def _encode(captions: list[list[str]], word_to_idx: dict[str, int]
            ) -> tuple[np.ndarray, np.ndarray]:
    rows, image_idxs = [], []
    for image, refs in enumerate(captions):
        for text in refs:
            words = text.split()
            assert len(words) <= MAX_WORDS, text
            ids = [word_to_idx[START], *(word_to_idx[w] for w in words), word_to_idx[END]]
            rows.append(ids + [word_to_idx["<NULL>"]] * (CAPTION_LENGTH - len(ids)))
            image_idxs.append(image)
    return np.asarray(rows, dtype=np.int32), np.asarray(image_idxs, dtype=np.int32)


def build(folder: Path, num_train: int = 4000, num_val: int = 500, seed: int = 0) -> Path:
    """Generate the set into `folder` (COCO layout plus images/); deterministic in its args."""
    import h5py
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    idx_to_word = vocabulary()
    word_to_idx = {w: i for i, w in enumerate(idx_to_word)}
    splits = {"train": _make_split(num_train, False, rng), "val": _make_split(num_val, True, rng)}

    arrays: dict[str, np.ndarray] = {}
    raw: dict[str, np.ndarray] = {}
    for split, (images, captions) in splits.items():
        arrays[f"{split}_captions"], arrays[f"{split}_image_idxs"] = _encode(captions, word_to_idx)
        stack = np.stack(images)
        raw[split] = extract_features(stack)
        image_dir = folder / "images" / split
        image_dir.mkdir(parents=True, exist_ok=True)
        names = []
        for i, image in enumerate(stack):
            name = f"images/{split}/{i:06d}.png"
            Image.fromarray(image).save(folder / name)
            names.append(name)
        (folder / url_file(split)).write_text("\n".join(names) + "\n")

    with h5py.File(folder / CAPTIONS_FILE, "w") as f:
        for key, value in arrays.items():
            f.create_dataset(key, data=value)
    mean, components, scale = fit_pca(raw["train"])
    for split in splits:
        with h5py.File(folder / feature_file(split, pca_features=False), "w") as f:
            f.create_dataset("features", data=raw[split])
        pca = ((raw[split] - mean) @ components / scale).astype(np.float32)
        with h5py.File(folder / feature_file(split, pca_features=True), "w") as f:
            f.create_dataset("features", data=pca)
    (folder / VOCAB_FILE).write_text(json.dumps({"idx_to_word": idx_to_word,
                                                  "word_to_idx": word_to_idx}))
    (folder / "README.txt").write_text((__doc__ or "").strip() + "\n\n" + json.dumps(
        {"version": VERSION, "num_train": num_train, "num_val": num_val, "seed": seed}) + "\n")
    return folder


def default_root() -> Path:
    return cache_home() / "shapes_captions"


def ensure(num_train: int = 4000, num_val: int = 500, seed: int = 0,
           root: str | Path | None = None) -> Path:
    """The generated set's folder (built on first use, reused after); safe to interrupt."""
    parent = Path(root).expanduser() if root else default_root()
    folder = parent / f"v{VERSION}-train{num_train}-val{num_val}-seed{seed}"
    if (folder / DONE_MARKER).is_file():
        return folder
    log.info("generating shapes_captions (%d train / %d val images) into %s",
             num_train, num_val, folder)
    staging = parent / f".{folder.name}.{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        build(staging, num_train, num_val, seed)
        (staging / DONE_MARKER).write_text("ok\n")
        if (folder / DONE_MARKER).is_file():  # another process finished first
            return folder
        if folder.exists() or folder.is_symlink():  # not one this code completed: keep it
            aside = set_aside(folder)
            log.info("%s was there without %s; it is kept, set aside as %s",
                     folder, DONE_MARKER, aside.name)
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def info(root: str | Path | None = None) -> list[dict[str, Any]]:
    """Rows for `cvlab data info`: the embedded set and the generated copies in the cache."""
    parent = Path(root).expanduser() if root else default_root()
    built = sorted(p.name for p in parent.glob(f"v{VERSION}-*") if (p / DONE_MARKER).is_file())
    return [{"dataset": "shapes_captions", "looked in": str(parent),
             "found": "embedded (generated on first use, a few seconds)",
             "cache": ", ".join(built) if built else "nothing generated yet"}]
