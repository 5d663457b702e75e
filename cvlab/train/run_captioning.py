"""`cvlab train` for captioning models: data, CaptioningRNN, solver, BLEU, run-folder records.

Run folder: metrics.csv (a row per iteration with loss and lr, a row per evaluated epoch
with BLEU and captions/s), checkpoint.pt (every epoch end; `resume=<run folder>` continues
from it), samples.json (generated and reference captions of a few train and val images,
for the gallery of `cvlab plot`), summary.json.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cvlab.config.train import TrainConfig
from cvlab.data.coco import decode_captions, find_coco, load_coco_data
from cvlab.errors import UserError
from cvlab.metrics.bleu import corpus_bleu, mean_course_bleu
from cvlab.models.captioning import CaptioningRNN
from cvlab.progress import ProgressReporter
from cvlab.runs import MetricsLogger, atomic_write_text, write_summary
from cvlab.train.caption_solver import CaptioningSolver, SolverSettings

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
SAMPLES = "samples.json"
CHECKPOINT_FORMAT = "cvlab-captioning-1"
COLUMNS = ("lr", "train_bleu1", "train_bleu4", "val_bleu1", "val_bleu4", "val_course_bleu",
           "captions_per_s", "elapsed_s")


def resolve_dataset(cfg: TrainConfig) -> tuple[str, Path]:
    """(name actually used, folder in COCO layout): auto is coco when found, else shapes."""
    ds = cfg.dataset
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


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device=cuda but no CUDA device is available; use device=cpu or auto")
    if name == "mps" and not torch.backends.mps.is_available():
        raise UserError("device=mps but MPS is not available; use device=cpu or auto")
    return torch.device(name)


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
        captions = data[f"{split}_captions"]
        words = data["idx_to_word"]
        groups: dict[int, list[str]] = {int(i): [] for i in images}
        for row, image in zip(captions, idxs):
            if int(image) in groups:
                groups[int(image)].append(decode_captions(row, words))
        self.references = [groups[int(i)] for i in images]
        # the course scores a sample against one sampled reference caption
        self.one_reference = [refs[rng.randint(len(refs))] for refs in self.references]

    def generate(self, model: CaptioningRNN, max_length: int, batch: int = 500) -> list[str]:
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
                "image_index": int(self.images[pos]),
                "url": url,
                "image": str(local) if local is not None and local.is_file() else None,
                "generated": generated[pos],
                "references": self.references[pos],
            })
        return rows


def _save_checkpoint(run_dir: Path, solver: CaptioningSolver, extra: dict[str, Any]) -> None:
    path = run_dir / CHECKPOINT
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save({"format": CHECKPOINT_FORMAT, **extra, **solver.state_dict()}, tmp)
    os.replace(tmp, path)


def _load_checkpoint(resume: str) -> tuple[Path, dict[str, Any]]:
    folder = Path(resume).expanduser()
    path = folder / CHECKPOINT if folder.is_dir() else folder
    if not path.is_file():
        raise UserError(f"no captioning checkpoint at {path}; resume= takes the folder of a "
                        f"captioning run (it writes {CHECKPOINT} at each epoch end)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise UserError(f"cannot read checkpoint {path}: {err}") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path} is not a cvlab captioning checkpoint")
    return path.parent, state


def run(cfg: TrainConfig, run_dir: Path) -> int:
    """Train the captioning model of `cfg` and record everything in `run_dir`."""
    run_dir = Path(run_dir)
    started = time.perf_counter()
    mc = cfg.model
    if cfg.device.threads:
        torch.set_num_threads(cfg.device.threads)
    device = pick_device(cfg.device.name)
    dataset, base_dir = resolve_dataset(cfg)
    data = load_coco_data(base_dir, max_train=cfg.dataset.max_train,
                          pca_features=cfg.dataset.pca_features,
                          rng=np.random.RandomState(cfg.seed))
    n_train, n_val = data["train_captions"].shape[0], data["val_captions"].shape[0]
    log.info("dataset %s from %s: %d train / %d val captions, %d words", dataset, base_dir,
             n_train, n_val, len(data["idx_to_word"]))
    write_summary(run_dir, status="running", dataset=dataset, source=str(base_dir))

    dtype = torch.float64 if mc.dtype == "float64" else torch.float32
    model = CaptioningRNN(data["word_to_idx"], input_dim=data["train_features"].shape[1],
                          wordvec_dim=mc.wordvec_dim, hidden_dim=mc.hidden_dim,
                          cell_type=mc.cell_type, dtype=dtype,
                          generator=torch.Generator().manual_seed(cfg.seed), device=device)
    opt = cfg.optimizer
    settings = SolverSettings(
        optimizer=opt.name, learning_rate=opt.learning_rate, lr_decay=opt.lr_decay,
        batch_size=cfg.batch_size, num_epochs=cfg.epochs, grad_clip=opt.grad_clip,
        momentum=opt.momentum, nesterov=opt.nesterov, beta1=opt.beta1, beta2=opt.beta2,
        epsilon=opt.epsilon, decay_rate=opt.decay_rate, weight_decay=opt.weight_decay)
    solver = CaptioningSolver(model, data, settings, rng=np.random.RandomState(cfg.seed))
    checkpoint_extra = {"model": asdict(mc), "word_to_idx": data["word_to_idx"],
                        "dataset": dataset}

    truncate = None
    if cfg.resume:
        old_dir, state = _load_checkpoint(cfg.resume)
        if state.get("word_to_idx") != data["word_to_idx"]:
            raise UserError(f"checkpoint in {old_dir} was trained on another vocabulary "
                            f"(dataset {state.get('dataset')}); resume with the same dataset")
        try:
            solver.load_state_dict(state)
        except (ValueError, KeyError) as err:
            raise UserError(f"checkpoint in {old_dir} does not fit this model ({err}); resume "
                            "with the run's own model settings") from None
        if (old_dir / "metrics.csv").is_file() and old_dir.resolve() != run_dir.resolve():
            shutil.copyfile(old_dir / "metrics.csv", run_dir / "metrics.csv")
        truncate = solver.iteration
        log.info("resumed from %s at epoch %d (iteration %d)", old_dir, solver.epoch,
                 solver.iteration)

    evaluators = {
        "train": Evaluator(data, "train", cfg.num_train_samples, base_dir, seed=cfg.seed),
        "val": Evaluator(data, "val", cfg.num_val_samples, base_dir, seed=cfg.seed),
    }
    metrics = MetricsLogger(run_dir, ["iteration", "epoch", "loss", *COLUMNS],
                            truncate_after_iteration=truncate)
    final: dict[str, Any] = {}

    def evaluate(epoch: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for split, evaluator in evaluators.items():
            generated = evaluator.generate(model, mc.max_length)
            scores = evaluator.scores(generated)
            result[f"{split}_bleu1"], result[f"{split}_bleu4"] = scores["bleu1"], scores["bleu4"]
            if split == "val":
                result["val_course_bleu"] = scores["course_bleu"]
            else:
                result["train_course_bleu"] = scores["course_bleu"]
            result[f"_{split}_generated"] = generated
        row = {k: v for k, v in result.items() if k in COLUMNS}
        metrics.log(iteration=solver.iteration, epoch=epoch,
                    captions_per_s=round(solver.captions_per_s, 2), **row)
        log.info("epoch %d: train BLEU-4 %.3f, val BLEU-1 %.3f BLEU-4 %.3f (course %.3f)",
                 epoch, result["train_bleu4"], result["val_bleu1"], result["val_bleu4"],
                 result["val_course_bleu"])
        return result

    total = solver.num_iterations - solver.iteration
    with ProgressReporter(total, f"{mc.cell_type} captioning", enabled=cfg.progress) as bar:

        def on_iteration(iteration: int, epoch: int, loss: float, lr: float) -> None:
            metrics.log(iteration=iteration, epoch=epoch, loss=loss, lr=lr)
            bar.advance(1, loss=loss, epoch=epoch)
            if iteration % cfg.print_every == 0:
                log.info("(Iteration %d / %d) loss: %f", iteration, solver.num_iterations, loss)

        def on_epoch_end(epoch: int) -> None:
            if mc.bleu_every and (epoch % mc.bleu_every == 0) and epoch < cfg.epochs:
                evaluate(epoch)
            if cfg.checkpoint:
                _save_checkpoint(run_dir, solver, checkpoint_extra)

        try:
            status = solver.train(on_iteration, on_epoch_end)
        except KeyboardInterrupt:
            if cfg.checkpoint and solver.epoch > 0:
                log.info("interrupted; the last epoch-end checkpoint is in %s", run_dir)
            metrics.close()
            raise

    final_loss = solver.loss_history[-1] if solver.loss_history else float("nan")
    if status == "diverged":
        metrics.close()
        log.warning("loss became %s at iteration %d: stopped (status diverged)", final_loss,
                    solver.iteration)
        write_summary(run_dir, status="diverged", dataset=dataset,
                      wall_time_s=round(time.perf_counter() - started, 3),
                      metrics={"final_loss": final_loss, "iterations": solver.iteration})
        return 0

    result = evaluate(solver.epoch)
    metrics.close()
    samples = {
        "dataset": dataset, "source": str(base_dir), "cell_type": mc.cell_type,
        "splits": {split: ev.samples(result[f"_{split}_generated"], mc.gallery_samples)
                   for split, ev in evaluators.items()},
    }
    import json

    atomic_write_text(run_dir / SAMPLES, json.dumps(samples, indent=2) + "\n")
    tail = solver.loss_history[-min(len(solver.loss_history), 10):]
    final = {
        "final_loss": final_loss,
        "final_loss_mean10": float(np.mean(tail)) if tail else float("nan"),
        "BLEU-1": result["val_bleu1"], "BLEU-4": result["val_bleu4"],
        "course_bleu": result["val_course_bleu"],
        "train_BLEU-1": result["train_bleu1"], "train_BLEU-4": result["train_bleu4"],
        "train_course_bleu": result["train_course_bleu"],
        "captions_per_s": round(solver.captions_per_s, 2),
        "iterations": solver.iteration, "epochs": solver.epoch,
        "train_captions": n_train, "val_images": int(len(evaluators["val"].images)),
        "device": str(device),
    }
    final = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
             for k, v in final.items()}
    write_summary(run_dir, status="completed", dataset=dataset,
                  wall_time_s=round(time.perf_counter() - started, 3), metrics=final)
    print(f"{mc.cell_type} on {dataset}: final loss {final_loss:.4f}, val BLEU-1 "
          f"{result['val_bleu1']:.3f} BLEU-4 {result['val_bleu4']:.3f} (course unigram "
          f"{result['val_course_bleu']:.3f}), {solver.captions_per_s:.0f} captions/s; "
          f"results in {run_dir}")
    return 0
