"""The captioning family: the course's CaptioningRNN on COCO (or the embedded shapes set),
trained by the course's CaptioningSolver, with BLEU evaluations (cvlab.train.caption_eval).

Evaluation: greedy captions of a fixed subset of train and val images (the same every time)
are scored with corpus BLEU-1/BLEU-4 against all references of each image, and with the
course's unigram BLEU against one reference; every `bleu_every` epochs and at the end. The run
folder also gets samples.json (generated and reference captions of a few images per split,
for the gallery of `cvlab plot`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from cvlab.config.train import DatasetConfig, ModelConfig, TrainConfig
from cvlab.data.constants import AUTO, CAPTION_DATASETS
from cvlab.errors import UserError
from cvlab.families import Announce, Build, Family, Prepared

log = logging.getLogger(__name__)

SCHEDULE_FIELDS = ("optimizer.schedule", "optimizer.label_smoothing", "optimizer.warmup_frac",
                   "optimizer.warmup_start", "optimizer.final_factor", "optimizer.step_epochs")


class CaptioningFamily(Family):
    name = "captioning"
    words = "captioning models"
    datasets = CAPTION_DATASETS
    unused_fields = (*SCHEDULE_FIELDS, "device.amp", "device.channels_last", "device.compile",
                     "evaluate_test", "dataset.subtract_mean")
    eval_splits = ("val",)  # the captioning sets have no test split

    def preflight(self, cfg: TrainConfig, model: ModelConfig) -> None:
        from cvlab.train.device import resolve_device

        resolve_device(cfg.device.name)

    def prepare(self, cfg: TrainConfig, model: ModelConfig, build: Build,
                announce: Announce) -> Prepared:
        """The captions, the model (`build(model, word_to_idx, input_dim, seed, device)`), the
        CaptioningSolver and its task with train and val evaluators."""
        import numpy as np

        from cvlab.data.coco import load_coco_data
        from cvlab.train.caption_eval import Evaluator
        from cvlab.train.caption_solver import CaptioningSolver, CaptioningTask, Evaluation
        from cvlab.train.device import device_name, open_device

        device = open_device(cfg.device, announce)
        dataset, base_dir = resolve_dataset(cfg.dataset)
        data = load_coco_data(base_dir, max_train=cfg.dataset.max_train,
                              pca_features=cfg.dataset.pca_features,
                              rng=np.random.RandomState(cfg.seed))
        announce(f"dataset {dataset} from {base_dir}: {data['train_captions'].shape[0]} train / "
                 f"{data['val_captions'].shape[0]} val captions, {len(data['idx_to_word'])} "
                 "words")
        net = build(model, data["word_to_idx"], data["train_features"].shape[1], cfg.seed,
                    device)
        solver = CaptioningSolver(
            net, data, learning_rate=cfg.optimizer.learning_rate,
            lr_decay=cfg.optimizer.lr_decay, batch_size=cfg.batch_size, num_epochs=cfg.epochs,
            print_every=cfg.print_every, optimizer=cfg.optimizer,
            grad_clip=cfg.optimizer.grad_clip, rng=np.random.RandomState(cfg.seed),
        )
        evaluators = {
            "train": Evaluator(data, "train", cfg.train_eval_samples, base_dir, seed=cfg.seed),
            "val": Evaluator(data, "val", cfg.val_eval_samples, base_dir, seed=cfg.seed),
        }
        evaluation = Evaluation(bleu_every=model.bleu_every, max_length=model.max_length,
                                gallery_samples=model.gallery_samples)
        description = {"dataset": dataset, "source": str(base_dir),
                       "cell_type": model.cell_type}
        task = CaptioningTask(solver, evaluators, evaluation, description)
        return Prepared(task=task, dataset=dataset, dataset_source=str(base_dir),
                        device=device_name(device))


def resolve_dataset(dataset: DatasetConfig) -> tuple[str, Path]:
    """(name actually used, folder in COCO layout): auto is coco when found, else shapes."""
    from cvlab.data.coco import find_coco

    if dataset.name in (AUTO, "coco"):
        found = find_coco(dataset.root)
        if found is None and dataset.name == "coco" and dataset.download:
            from cvlab.data.coco import fetch_coco

            found = fetch_coco(dataset.root)
        if found is not None:
            return "coco", found
        if dataset.name == "coco":
            from cvlab.paths import dataset_root

            raise UserError(f"COCO captioning not found at {dataset_root('coco', dataset.root)}; "
                            "run `cvlab data fetch dataset=coco` (or add dataset.download=true), "
                            "set dataset.root=<folder>, or use dataset=shapes_captions")
        log.info("COCO captioning not found locally: using the embedded shapes_captions set")
    from cvlab.data.shapes_captions import ensure

    root = dataset.root if dataset.name == "shapes_captions" else None
    return "shapes_captions", ensure(dataset.shapes_train, dataset.shapes_val,
                                     dataset.shapes_seed, root)


CAPTIONING = CaptioningFamily()
