#!/usr/bin/env bash
# Captioning measurements for the README: shapes_captions BLEU (LSTM and RNN, caption_train),
# the course overfit check (rnn and lstm, CPU) and training speed in captions/s on CPU.
# Usage (repository root, cvlab importable): scripts/caption_measure.sh [out_dir]
# On a machine without cvlab's dependencies, wheels in .whl/ and .capwhl/ are installed first.
set -u
OUT=${1:-${OUT:-caption_measure}}; mkdir -p "$OUT"
if ls .whl/*.whl .capwhl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
    .whl/*.whl .capwhl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1 CVLAB_CACHE=${CVLAB_CACHE:-/tmp/cvlab-cache}
PY=${PY:-python3}
CV="$PY -m cvlab.cli"
R=/tmp/caption_runs; rm -rf $R; mkdir -p $R
GPU=cpu; $PY -c "import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)" && GPU=cuda
{
echo "cores: $(nproc); accelerator: $GPU $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null)"
for cell in lstm rnn; do
  echo "=== caption_train $cell on shapes_captions ($GPU)"
  $CV train experiment=caption_train model=caption_$cell dataset=shapes_captions device=$GPU \
     progress=false print_every=100000 hydra.run.dir=$R/train_$cell 2>&1 | grep -v "^(Iteration"
done
for cell in rnn lstm; do
  echo "=== caption_overfit $cell (cpu)"
  $CV train experiment=caption_overfit model=caption_$cell device=cpu progress=false \
     print_every=25 hydra.run.dir=$R/overfit_$cell 2>&1 | tail -5
done
for cell in lstm rnn; do
  for th in $(nproc) 1; do
    echo "=== speed $cell cpu threads=$th (1 epoch of caption_train)"
    $CV train experiment=caption_train model=caption_$cell dataset=shapes_captions device=cpu \
       device.threads=$th epochs=1 num_train_samples=100 num_val_samples=100 progress=false \
       print_every=100000 hydra.run.dir=$R/speed_${cell}_t$th 2>&1 | tail -1
  done
done
for d in $R/*; do
  $PY -c "
from pathlib import Path
from cvlab.plot.captioning import plot_captioning_run
plot_captioning_run(Path('$d'), Path('$d/plots'))" || echo "plot failed for $d"
  rm -f "$d/checkpoint.pt"
done
} 2>&1 | tee "$OUT/log.txt"
tar -czf "$OUT/runs.tgz" -C $R .
