"""The demo family: the course's conv demo, two filters applied once to two images; nothing
trains, no data set is read.

The image files a run names (`model.images`) are checked before its folder is created: each
must exist and decode as an image (Pillow, as the demo reads them), so that a wrong path, an
unreadable file or a file that is not an image is one line and leaves nothing behind.
"""

from __future__ import annotations

from pathlib import Path

from cvlab.config.train import ModelConfig, TrainConfig
from cvlab.errors import UserError
from cvlab.families import Announce, Build, Family, Outcome, Prepared
from cvlab.validation import ConfigError

MAX_IMAGES = 8  # the figure of `cvlab plot` has one row per image


class DemoFamily(Family):
    name = "demo"
    words = "the conv demo"
    datasets = ()
    unused_fields = ()
    eval_splits = ()
    trains = False

    def check(self, cfg: TrainConfig) -> None:
        images = list(getattr(cfg.model, "images", None) or [])
        if len(images) > MAX_IMAGES:
            raise ConfigError("model.images", f"[{len(images)} files]",
                              f"at most {MAX_IMAGES} image files")

    def preflight(self, cfg: TrainConfig, model: ModelConfig) -> None:
        """Every file of `model.images` exists and decodes as an image."""
        for name in getattr(model, "images", None) or []:
            check_image_file(str(name))

    def prepare(self, cfg: TrainConfig, model: ModelConfig, build: Build,
                announce: Announce) -> Prepared:
        raise NotImplementedError("the conv demo does not train; see produce")

    def produce(self, model: ModelConfig, build: Build, run_dir: Path) -> Outcome:
        """`build(model, run_dir)` writes the filtered images; their metrics and files."""
        out = build(model, run_dir)
        return Outcome(metrics=out["metrics"], files=out["files"])


def check_image_file(name: str) -> None:
    """UserError (one line) unless `name` is a file Pillow can read and decode as an image."""
    from PIL import Image, UnidentifiedImageError

    file = Path(name).expanduser()
    if not file.is_file():
        raise UserError(f"model.images: {name} is not a file; pass paths of image files, "
                        "e.g. model.images=[a.jpg,b.png]")
    try:
        with Image.open(file) as image:
            image.load()
    except UnidentifiedImageError:
        raise UserError(f"model.images: {name} is not an image Pillow can read (PNG, JPEG, "
                        "...)") from None
    except OSError as err:  # unreadable (permissions), or a damaged image file
        raise UserError(f"model.images: cannot read {name} as an image "
                        f"({err.strerror or err})") from None
    except Image.DecompressionBombError as err:
        raise UserError(f"model.images: {name} is too large to read as an image "
                        f"({err})") from None


DEMO = DemoFamily()
