"""`cvlab train` for the captioning models: COCO (or the embedded shapes set), the
CaptioningRNN and the course's CaptioningSolver, with BLEU evaluation, as one Task.

Evaluation: greedy captions of a fixed subset of train and val images (the same every time)
are scored with corpus BLEU-1/BLEU-4 against all references of each image, and with the
course's unigram BLEU against one reference; every `bleu_every` epochs and at the end. The run
folder also gets samples.json (generated and reference captions of a few images per split,
for the gallery of `cvlab plot`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from cvlab.data.coco import decode_captions, find_coco, load_coco_data
from cvlab.errors import UserError
from cvlab.metrics.bleu import corpus_bleu, mean_course_bleu
from cvlab.models.registry import ModelSpec
from cvlab.records.files import atomic_write_text, to_json
from cvlab.train.caption_solver import CaptioningSolver, CaptioningSolverTask
from cvlab.train.core import LoopResult
from cvlab.train.device import device_name, resolve_device, set_torch_threads
from cvlab.train.run import Prepared

log = logging.getLogger(__name__)

SAMPLES = "samples.json"
SPLITS = ("train", "val")


def resolve_dataset(dataset_cfg: Any) -> tuple[str, Path]:
    """(name actually used, folder in COCO layout): auto is coco when found, else shapes."""
    ds = dataset_cfg
    name = ds.name
    if name not in ("auto", "coco", "shapes_captions"):
        raise UserError(f"dataset={name} holds no captions; captioning models train on "
                        "dataset=coco or dataset=shapes_captions (auto picks coco when found)")
    if name in ("auto", "coco"):
        found = find_coco(ds.root)
        if found is None and name == "coco" and ds.download:
            from cvlab.data.coco import fetch_coco

            found = fetch_coco(ds.root)
        if found is not None:
            return "coco", found
        if name == "coco":
            from cvlab.paths import dataset_root

            raise UserError(f"COCO captioning not found at {dataset_root('coco', ds.root)}; "
                            "run `cvlab data fetch dataset=coco` (or add dataset.download=true), "
                            "set dataset.root=<folder>, or use dataset=shapes_captions")
        log.info("COCO captioning not found locally: using the embedded shapes_captions set")
    from cvlab.data.shapes_captions import ensure

    root = ds.root if name == "shapes_captions" else None
    return "shapes_captions", ensure(ds.shapes_train, ds.shapes_val, ds.shapes_seed, root)


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


class CaptionRunTask(CaptioningSolverTask):
    """The CaptioningSolver's task plus BLEU evaluations, samples and the run's records."""

    metric_columns = ("train_bleu1", "train_bleu4", "train_course_bleu", "val_bleu1", "val_bleu4",
                      "val_course_bleu",
                      "captions_per_s")

    def __init__(self, solver: CaptioningSolver, model_cfg: Any,
                 evaluators: dict[str, Evaluator], dataset: str, base_dir: Path) -> None:
        super().__init__(solver)
        self.model_cfg, self.evaluators = model_cfg, evaluators
        self.dataset, self.base_dir = dataset, base_dir
        self.generated: dict[str, list[str]] = {}

    def should_evaluate(self, epoch_end: bool) -> bool:
        every = self.model_cfg.bleu_every
        return epoch_end and every > 0 and self.solver.epoch % every == 0

    def evaluate(self) -> dict[str, float]:
        metrics: dict[str, float] = {}
        for split, evaluator in self.evaluators.items():
            self.generated[split] = evaluator.generate(self.solver.model,
                                                       self.model_cfg.max_length)
            scores = evaluator.scores(self.generated[split])
            metrics.update({f"{split}_{name}": value for name, value in scores.items()})
        metrics["captions_per_s"] = round(self.solver.captions_per_s, 2)
        return metrics

    def describe(self, metrics: dict[str, float]) -> str:
        return (f"epoch {self.solver.epoch}: train BLEU-4 {metrics['train_bleu4']:.3f}, val "
                f"BLEU-1 {metrics['val_bleu1']:.3f} BLEU-4 {metrics['val_bleu4']:.3f} (course "
                f"{metrics['val_course_bleu']:.3f})")

    def final_metrics(self, result: LoopResult) -> dict[str, Any]:
        last = result.last_metrics
        s = self.solver
        return {
            **{f"{split}_{name}": last.get(f"{split}_{name}") for split in SPLITS
               for name in ("bleu1", "bleu4", "course_bleu")},
            "captions_per_s": round(s.captions_per_s, 2), "iterations": s.iteration,
            "epochs": s.epoch, "train_time_s": round(s.train_time_s, 3),
            "train_captions": int(s.data["train_captions"].shape[0]),
            "val_images": int(len(self.evaluators["val"].images)),
        }

    def evaluate_split(self, split: str) -> dict[str, float]:
        """BLEU of the `split` subset (val: the held-out images; the sets have no test split)."""
        if split not in self.evaluators:
            raise UserError(f"split={split}: the captioning sets have no {split} split; their "
                            "val BLEU is the held-out score (split=val)")
        evaluator = self.evaluators[split]
        self.generated[split] = evaluator.generate(self.solver.model, self.model_cfg.max_length)
        scores = evaluator.scores(self.generated[split])
        return {f"{split}_{name}": value for name, value in scores.items()}

    def weights(self) -> dict[str, dict[str, Any]]:
        return {"model": dict(self.solver.model.params)}

    def scale_learning_rate(self, factor: float) -> None:
        for group in self.solver.optim.param_groups:
            group["lr"] *= factor

    def samples(self) -> dict[str, list[dict[str, Any]]]:
        """Generated and reference captions of `gallery_samples` images per split (of the
        last evaluation)."""
        count = self.model_cfg.gallery_samples
        return {split: evaluator.samples(self.generated[split], count)
                for split, evaluator in self.evaluators.items() if split in self.generated}

    def load_weights(self, tree: dict[str, Any]) -> None:
        self.solver.model.load_state_dict(tree)

    def write_extras(self, run_dir: Path) -> list[str]:
        if not self.generated:
            return []
        samples = {"dataset": self.dataset, "source": str(self.base_dir),
                   "cell_type": self.model_cfg.cell_type, "splits": self.samples()}
        atomic_write_text(run_dir / SAMPLES, to_json(samples))
        return [SAMPLES]


def prepare(cfg: Any, spec: ModelSpec, model_cfg: Any, announce: Any) -> Prepared:
    """The captioning run of `cfg`: its data, the model (`spec.build`) and its task."""
    set_torch_threads(cfg.device.threads)
    device, line = resolve_device(cfg.device.name)
    announce(line)
    dataset, base_dir = resolve_dataset(cfg.dataset)
    data = load_coco_data(base_dir, max_train=cfg.dataset.max_train,
                          pca_features=cfg.dataset.pca_features,
                          rng=np.random.RandomState(cfg.seed))
    announce(f"dataset {dataset} from {base_dir}: {data['train_captions'].shape[0]} train / "
             f"{data['val_captions'].shape[0]} val captions, {len(data['idx_to_word'])} words")
    model = spec.build(model_cfg, data["word_to_idx"], data["train_features"].shape[1],
                       cfg.seed, device)
    solver = CaptioningSolver(
        model, data, learning_rate=cfg.optimizer.learning_rate, lr_decay=cfg.optimizer.lr_decay,
        batch_size=cfg.batch_size, num_epochs=cfg.epochs, print_every=cfg.print_every,
        optimizer=cfg.optimizer, grad_clip=cfg.optimizer.grad_clip,
        rng=np.random.RandomState(cfg.seed),
    )
    evaluators = {
        "train": Evaluator(data, "train", cfg.train_eval_samples, base_dir, seed=cfg.seed),
        "val": Evaluator(data, "val", cfg.val_eval_samples, base_dir, seed=cfg.seed),
    }
    task = CaptionRunTask(solver, model_cfg, evaluators, dataset, base_dir)
    return Prepared(task=task, dataset=dataset, dataset_source=str(base_dir),
                    device=device_name(device))
