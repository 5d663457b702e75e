#!/usr/bin/env bash
# Run the challenge on a CUDA machine that has torch but not cvlab's other dependencies.
# Expects (carried, git-ignored): .whl/ (hydra-core, omegaconf, antlr4, hydra-joblib-launcher wheels)
# and .gpu/cifar10-jpeg.tar.xz. Writes logs and summaries to ${OUT:-gpu_out}.
# Usage: scripts/gpu_challenge.sh "<overrides of run 1>" "<overrides of run 2>" ...
set -u
OUT=${OUT:-gpu_out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
mkdir -p /tmp/cvdata && tar -xJf .gpu/cifar10-jpeg.tar.xz -C /tmp/cvdata
# the archive holds train/ and test/ (or one folder above them): make $CVLAB_DATA/cifar10 point at them
if [ -d /tmp/cvdata/train ]; then mkdir -p /tmp/cvroot && ln -sfn /tmp/cvdata /tmp/cvroot/cifar10;
else d=$(dirname "$(find /tmp/cvdata -maxdepth 3 -type d -name train | head -1)"); mkdir -p /tmp/cvroot && ln -sfn "$d" /tmp/cvroot/cifar10; fi
export CVLAB_DATA=/tmp/cvroot CVLAB_CACHE=/tmp/cvcache
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"; } 2>&1 | tee "$OUT/env.txt"
i=0
for overrides in "$@"; do
  i=$((i+1))
  echo "=== run $i: $overrides" | tee -a "$OUT/runs.txt"
  # shellcheck disable=SC2086
  timeout 240 python3 -m cvlab.cli train experiment=challenge device=cuda evaluate_test=true \
      progress=false checkpoint=false outputs_root=/tmp/runs/$i $overrides > "$OUT/run$i.log" 2>&1
  echo "rc=$?" >> "$OUT/run$i.log"
  grep -E "epoch|test accuracy|completed|diverged|Error|error|rc=" "$OUT/run$i.log" | tail -15 | tee -a "$OUT/runs.txt"
  cat /tmp/runs/$i/train/*/*/summary.json >> "$OUT/runs.txt" 2>/dev/null
done
