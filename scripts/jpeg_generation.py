"""Write a copy of a CIFAR-10 image-folder tree with every image JPEG-encoded once more.

Used to estimate what the JPEG encoding of CI's CIFAR-10 copy costs in accuracy: compare a run on
the tree as it is with a run on the re-encoded copy (README, "PyTorch track"). To make the
second pass as lossy as a first one, each image is reflect-padded by `--shift` pixels before
encoding (so the 8x8 DCT blocks and the 2x2 chroma cells fall on a new grid) and cropped back
to 32x32 after decoding.

    python scripts/jpeg_generation.py SOURCE_TREE OUT_TREE --quality 75 --shift 4
    CVLAB_DATA=<parent of OUT_TREE> cvlab train experiment=challenge_cpu ...
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def reencode(image: Image.Image, quality: int, shift: int) -> Image.Image:
    """The image JPEG-encoded at `quality` on a grid moved by `shift` pixels (same size)."""
    pixels = np.asarray(image.convert("RGB"))
    height, width = pixels.shape[:2]
    if shift:
        pixels = np.pad(pixels, ((shift, shift), (shift, shift), (0, 0)), mode="reflect")
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    return Image.fromarray(decoded[shift:shift + height, shift:shift + width])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="tree with train/<class>/ and test/<class>/")
    parser.add_argument("out", type=Path, help="where the re-encoded tree is written")
    parser.add_argument("--quality", type=int, default=75)
    parser.add_argument("--shift", type=int, default=4)
    args = parser.parse_args(argv)
    files = sorted(args.source.glob("*/*/*.jpg"))
    if not files:
        print(f"error: no */<class>/*.jpg files under {args.source}", file=sys.stderr)
        return 2
    for path in files:
        target = args.out / path.relative_to(args.source)
        target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(path) as image:
            # PNG keeps the re-encoded pixels exactly; the loader reads any image file
            reencode(image, args.quality, args.shift).save(target.with_suffix(".png"))
    print(f"wrote {len(files)} images to {args.out} (quality {args.quality}, shift {args.shift})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
