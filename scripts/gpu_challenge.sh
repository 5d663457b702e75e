#!/usr/bin/env bash
# Run the challenge on a CUDA machine that has torch but not cvlab's other dependencies.
# Expects (carried, git-ignored): .whl/ (hydra-core, omegaconf, antlr4, hydra-joblib-launcher wheels)
# and .gpu/cifar10-jpeg.tar.xz. Writes env.txt, runs.txt (one line per run) and runs_full.log to
# ${OUT:-gpu_out}.  Usage: scripts/gpu_challenge.sh "<overrides of run 1>" "<overrides of run 2>" ...
# Each run is experiment=challenge unless its overrides name another experiment.
set -u
OUT=${OUT:-gpu_out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
mkdir -p /tmp/cvdata /tmp/cvroot && tar -xJf .gpu/cifar10-jpeg.tar.xz -C /tmp/cvdata && ln -sfn /tmp/cvdata /tmp/cvroot/cifar10
export CVLAB_DATA=/tmp/cvroot CVLAB_CACHE=/tmp/cvcache
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"; } 2>&1 | tee "$OUT/env.txt"
set -f  # overrides like model.widths=[a,b,c] are not globs
i=0
for overrides in "$@"; do
  i=$((i+1))
  case "$overrides" in *experiment=*) experiment="" ;; *) experiment="experiment=challenge" ;; esac
  # shellcheck disable=SC2086
  timeout 240 python3 -m cvlab.cli train $experiment device=cuda evaluate_test=true \
      progress=false checkpoint=false outputs_root=/tmp/runs/$i $overrides > /tmp/run$i.log 2>&1
  rc=$?
  { echo "=== run $i: $overrides (rc=$rc)"; cat /tmp/run$i.log; cat /tmp/runs/$i/train/*/*/summary.json; } >> "$OUT/runs_full.log" 2>/dev/null
  python3 - "$i" "$overrides" "$rc" <<'PY' | tee -a "$OUT/runs.txt"
import glob, json, sys
i, overrides, rc = sys.argv[1:]
files = glob.glob(f"/tmp/runs/{i}/train/*/*/summary.json")
m = json.load(open(files[0])).get("metrics", {}) if files else {}
print(f"run {i} rc={rc} [{overrides}] val={m.get('final_val_acc')} test={m.get('test_acc')} "
      f"train_s={m.get('train_time_s')} img/s={m.get('images_per_s')}")
PY
done
