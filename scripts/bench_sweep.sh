#!/usr/bin/env bash
# Wall time of the full weight-scale sweep (40 runs) with the parallel launcher (joblib) and
# one job at a time (basic), alternated REPEATS times; prints the medians and their ratio.
# Usage: scripts/bench_sweep.sh [REPEATS] [extra overrides...]   (CVLAB_DATA picks CIFAR-10)
set -euo pipefail
repeats=${1:-3}
shift || true
cvlab=${CVLAB:-$(dirname "$0")/../.venv/bin/cvlab}
out=$(mktemp -d)
for i in $(seq "$repeats"); do
    for launcher in joblib basic; do
        start=$(python3 -c "import time; print(time.time())")
        "$cvlab" train model=bn_fc sweep=weight_scale launcher=$launcher progress=false \
            outputs_root="$out/$launcher" "$@" > "$out/$launcher-$i.log" 2>&1
        python3 -c "import time, sys; print(sys.argv[1], round(time.time() - float(sys.argv[2]), 2))" "$launcher" "$start" | tee -a "$out/times.txt"
    done
done
python3 - "$out/times.txt" <<'PY'
import statistics, sys
times = {}
for line in open(sys.argv[1]):
    launcher, seconds = line.split()
    times.setdefault(launcher, []).append(float(seconds))
joblib, basic = statistics.median(times["joblib"]), statistics.median(times["basic"])
print(f"median wall: joblib {joblib:.1f} s, basic {basic:.1f} s; parallel speed-up {basic / joblib:.2f}x")
PY
