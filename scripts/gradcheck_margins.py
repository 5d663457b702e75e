"""Worst error of every gradient-check row over many seeds, against its tolerance.

Runs the registered checks (cvlab.checks) in this process for seeds FIRST..LAST-1 and prints,
per row, the worst judged error with its seed, the tolerance, the margin (tolerance / worst),
the worst course relative error (max over entries) and how many entries were left out at
kinks. Run it under each BLAS configuration to measure the margins in docs/gradcheck.md:

    python scripts/gradcheck_margins.py --seeds 0:100
    OPENBLAS_CORETYPE=Sandybridge MKL_ENABLE_INSTRUCTIONS=AVX2 python scripts/gradcheck_margins.py
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 python scripts/gradcheck_margins.py
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time

import numpy as np

from cvlab.checks import check_names, get_check


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0:100", help="FIRST:LAST (LAST excluded)")
    parser.add_argument("--checks", default="", help="comma-separated names (default: all)")
    parser.add_argument("--csv", default="", help="also write the table to this CSV file")
    args = parser.parse_args()
    first, last = (int(v) for v in args.seeds.split(":"))
    names = args.checks.split(",") if args.checks else check_names()
    worst: dict[tuple[str, str], dict] = {}
    start = time.perf_counter()
    for name in names:
        check = get_check(name)
        for seed in range(first, last):
            for row in check(np.random.RandomState(seed)):
                entry = worst.setdefault((name, row.what), {
                    "metric": row.metric, "margin": math.inf, "error": 0.0, "seed": seed,
                    "tolerance": row.tolerance, "rel_error": 0.0, "kinked": 0, "failed": 0})
                margin = row.tolerance / row.error if row.error > 0 else math.inf
                if margin < entry["margin"] or (margin == math.inf and row.error == 0
                                                and entry["error"] == 0):
                    entry.update(margin=margin, error=row.error, seed=seed,
                                 tolerance=row.tolerance)
                if not math.isnan(row.rel_error):
                    entry["rel_error"] = max(entry["rel_error"], row.rel_error)
                entry["kinked"] += row.kinked
                entry["failed"] += not row.passed
    columns = ["check", "row", "metric", "worst", "seed", "tolerance", "margin", "course_rel",
               "kinked", "failed"]
    table = []
    for (name, what), e in worst.items():
        table.append([name, what, e["metric"], f"{e['error']:.2e}", e["seed"],
                      f"{e['tolerance']:.1e}", f"{e['margin']:.3g}", f"{e['rel_error']:.2e}",
                      e["kinked"], e["failed"]])
    print(" ".join(f"{c:>10}" for c in columns))
    for line in table:
        print(f"{line[0]:>17} {line[1]:<40} " + " ".join(f"{v!s:>9}" for v in line[2:]))
    seconds = time.perf_counter() - start
    print(f"# {len(names)} checks x seeds {first}..{last - 1} in {seconds:.0f}s; "
          f"failed rows: {sum(e['failed'] for e in worst.values())}", file=sys.stderr)
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            writer.writerows(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
