"""BLEU of a captioner's greedy captions on a fixed subset of a split's images.

    evaluator = Evaluator(data, "val", max_images=500, base_dir=folder, seed=0)
    generated = evaluator.generate(model, max_length=30)
    evaluator.scores(generated)      # {"bleu1": ..., "bleu4": ..., "course_bleu": ...}

The images are the same at every evaluation. Scores: corpus BLEU-1/BLEU-4 against all
references of each image, and the course's unigram BLEU against one reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cvlab.data.coco import decode_captions
from cvlab.metrics.bleu import corpus_bleu, mean_course_bleu


class Evaluator:
    """BLEU of greedy captions on a fixed subset of a split's images (the same every epoch)."""

    def __init__(self, data: dict[str, Any], split: str, max_images: int | None,
                 base_dir: Path, seed: int = 0) -> None:
        self.data, self.split, self.base_dir = data, split, base_dir
        idxs = data[f"{split}_image_idxs"]
        rng = np.random.RandomState(seed)
        images = np.unique(idxs)
        if max_images is not None and len(images) > max_images:
            images = np.sort(rng.choice(images, max_images, replace=False))
        self.images = images
        words = data["idx_to_word"]
        groups: dict[int, list[str]] = {int(i): [] for i in images}
        for row, image in zip(data[f"{split}_captions"], idxs):
            if int(image) in groups:
                groups[int(image)].append(decode_captions(row, words))
        self.references = [groups[int(i)] for i in images]
        # the course scores a sample against one sampled reference caption
        self.one_reference = [refs[rng.randint(len(refs))] for refs in self.references]

    def generate(self, model: Any, max_length: int, batch: int = 500) -> list[str]:
        features = self.data[f"{self.split}_features"]
        out: list[str] = []
        for start in range(0, len(self.images), batch):
            ids = model.sample(features[self.images[start:start + batch]], max_length)
            out.extend(decode_captions(ids, self.data["idx_to_word"]))
        return out

    def scores(self, generated: list[str]) -> dict[str, float]:
        return {
            "bleu1": corpus_bleu(self.references, generated, max_order=1),
            "bleu4": corpus_bleu(self.references, generated, max_order=4),
            "course_bleu": mean_course_bleu(self.one_reference, generated),
        }

    def samples(self, generated: list[str], count: int) -> list[dict[str, Any]]:
        urls = self.data[f"{self.split}_urls"]
        rows = []
        for pos in range(min(count, len(self.images))):
            url = str(urls[self.images[pos]])
            local = None if "://" in url else self.base_dir / url
            rows.append({
                "image_index": int(self.images[pos]), "url": url,
                "image": str(local) if local is not None and local.is_file() else None,
                "generated": generated[pos], "references": self.references[pos],
            })
        return rows
