"""Write N synthetic run folders in the real layout, then (optionally) time `cvlab runs` on them.

    python scripts/make_runs.py outputs_10k --count 10000             # write the folders
    python scripts/make_runs.py outputs_10k --count 10000 --time 3    # ... and time cvlab runs

The folders are those `cvlab train` leaves (config.yaml and summary.json; no weights): sweeps of
`--sweep-size` jobs in <root>/train/multirun/<date>/<time>/<job>/ and, one in ten, single runs
in <root>/train/<date>/<time>/. config.yaml is a checked TrainConfig dumped to YAML as a run
writes it; summary.json is written by cvlab.records.summary.write_summary. Seeds, weight
scales, normalizations, tags and metrics vary (seeded). With --time, `cvlab runs` runs
--time times with an empty config cache (cold: every config.yaml parsed) and --time times
with the cache it left (warm); each wall time, the medians and the load average are printed.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from cvlab.config.typed import train_config
from cvlab.records.summary import write_summary

NORMALIZATIONS = ("batchnorm", "layernorm", "none")
WEIGHT_SCALES = (1e-3, 1e-2, 1e-1)


def base_config() -> dict:
    """A checked `cvlab train model=bn_fc dataset=synthetic` config, as plain data."""
    config = train_config({"model": {"type": "fc_net", "normalization": "batchnorm"},
                           "dataset": {"name": "synthetic"}})
    return dataclasses.asdict(config)


def write_run(folder: Path, base: dict, number: int, chance: random.Random) -> None:
    """One run folder: config.yaml (a variation of `base`) and summary.json."""
    config = copy.deepcopy(base)
    config["seed"] = number % 5
    config["model"]["weight_scale"] = WEIGHT_SCALES[number % 3]
    config["model"]["normalization"] = NORMALIZATIONS[(number // 3) % 3]
    config["tags"] = ["synthetic", "baseline" if number % 4 == 0 else "study"]
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    status = "failed" if number % 50 == 49 else "completed"
    accuracy = round(0.2 + 0.1 * chance.random(), 4)
    settings = _settings(config)
    write_summary(folder, status=status, command="train", family="numpy", model_type="fc_net",
                  dataset="synthetic", tags=config["tags"], settings=settings,
                  overrides=[f"seed={config['seed']}"], wall_time_s=round(chance.uniform(5, 9), 3),
                  metrics={"best_val_acc": accuracy, "final_val_acc": accuracy - 0.01,
                           "best_train_acc": accuracy + 0.1, "final_loss": 2.0 - accuracy,
                           "final_loss_mean": 2.0 - accuracy, "iterations": 200,
                           "epochs": config["epochs"]})


def _settings(config: dict) -> dict:
    """The settings a run records (cvlab.run.train.settings_of), from the plain config."""
    model = config["model"]
    settings = {"experiment": None, "baseline": False, "seed": config["seed"],
                "epochs": config["epochs"], "batch_size": config["batch_size"],
                "optimizer": config["optimizer"]["name"],
                "learning_rate": config["optimizer"]["learning_rate"],
                "lr_decay": config["optimizer"]["lr_decay"]}
    for name, value in model.items():
        settings["model_type" if name == "type" else name] = \
            "x".join(map(str, value)) if isinstance(value, list) else value
    return settings


def make_runs(root: Path, count: int, sweep_size: int, seed: int) -> None:
    """`count` run folders under root/train: sweeps of sweep_size jobs, every tenth folder
    of them a single run instead."""
    base, chance = base_config(), random.Random(seed)
    start = datetime.datetime(2026, 1, 1, 8, 0, 0)
    number = launch = 0
    while number < count:
        when = start + datetime.timedelta(minutes=7 * launch)
        day, clock = when.strftime("%Y-%m-%d"), when.strftime("%H-%M-%S-%f")
        if launch % 10 == 9:
            write_run(root / "train" / day / clock, base, number, chance)
            number += 1
        else:
            sweep = root / "train" / "multirun" / day / clock
            for job in range(min(sweep_size, count - number)):
                write_run(sweep / str(job), base, number, chance)
                number += 1
        launch += 1


def time_runs(root: Path, repeats: int) -> None:
    """Wall time of `cvlab runs outputs_root=root` (cold cache, then warm), with the load."""
    cvlab = str(Path(sys.executable).with_name("cvlab"))
    cache = Path(tempfile.mkdtemp(prefix="cvlab-runs-cache-"))
    env = dict(os.environ, CVLAB_CACHE=str(cache))
    command = [cvlab, "runs", f"outputs_root={root}"]
    for label in ("cold", "warm"):
        times = []
        for _ in range(repeats):
            if label == "cold":
                shutil.rmtree(cache / "runs", ignore_errors=True)
            began = time.perf_counter()
            done = subprocess.run(command, env=env, capture_output=True, text=True)
            times.append(time.perf_counter() - began)
            if done.returncode != 0:
                raise SystemExit(f"{' '.join(command)} failed: {done.stderr}")
        print(f"{label}: {', '.join(f'{t:.2f}' for t in times)} s; median "
              f"{statistics.median(times):.2f} s; last line: {done.stdout.splitlines()[-1]}")
    print(f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}; "
          f"{os.cpu_count()} CPUs; command: CVLAB_CACHE={cache} {' '.join(command)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="the outputs root to write (must not exist)")
    parser.add_argument("--count", type=int, default=10_000, help="run folders to write")
    parser.add_argument("--sweep-size", type=int, default=10, help="jobs per sweep")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time", type=int, default=0, metavar="N",
                        help="then time `cvlab runs` N times cold and N times warm")
    args = parser.parse_args()
    if args.root.exists():
        parser.error(f"{args.root} exists; pass a new folder")
    began = time.perf_counter()
    make_runs(args.root, args.count, args.sweep_size, args.seed)
    print(f"wrote {args.count} run folders under {args.root} in "
          f"{time.perf_counter() - began:.1f} s")
    if args.time:
        time_runs(args.root.resolve(), args.time)


if __name__ == "__main__":
    main()
