"""Run one evaluation on two torch devices and compare what each sample got.

    python scripts/check_device.py --model smollm2-135m --tasks mmlu_anatomy --limit 20 --devices cpu,cuda

Each device is a separate `workbench eval` process (WORKBENCH_DEVICE) writing its own store; the script
then pairs the samples and prints, per task, the largest log-likelihood difference, how many predictions
agree, how many generations are identical, and each run's score. Exit 1 when the devices disagree beyond
--tolerance on a log-likelihood or on a prediction whose choices are not tied within it.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import workbench  # noqa: F401  (environment before torch)
from workbench.store import RunStore


def evaluate(device: str, args: argparse.Namespace, root: Path) -> tuple[str, float]:
    store = root / device.replace(":", "_")
    cmd = [sys.executable, "-m", "workbench.cli", "eval", "--model", args.model, "--tasks", args.tasks,
           "--limit", str(args.limit), "--store", str(store), "--no-progress", *args.extra]
    env = dict(os.environ, WORKBENCH_DEVICE=device)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"check_device: eval on {device} failed:\n{done.stderr[-3000:]}")
    (run,) = RunStore(store).list()
    return run.run_id, wall


def compare(store_a: Path, id_a: str, store_b: Path, id_b: str, tol: float) -> tuple[dict, bool]:
    a, b = RunStore(store_a).load(id_a), RunStore(store_b).load(id_b)
    sa, sb = a.samples, b.samples
    keys = ["task", "doc_id"]
    m = sa.merge(sb, on=keys, suffixes=("_a", "_b"))
    report, ok = {"devices": [a.manifest["model"].get("extra", {}).get("device"),
                              b.manifest["model"].get("extra", {}).get("device")]}, True
    for task, rows in m.groupby("task"):
        row: dict = {"n": len(rows)}
        if "loglikelihoods_a" in rows:
            diffs, flips = [], 0
            for la, lb in zip(rows["loglikelihoods_a"], rows["loglikelihoods_b"]):
                if la is None or lb is None or len(la) == 0:
                    continue
                la, lb = [float(x) for x in la], [float(x) for x in lb]
                diffs.append(max(abs(x - y) for x, y in zip(la, lb)))
                best_a = max(range(len(la)), key=lambda i: la[i])
                best_b = max(range(len(lb)), key=lambda i: lb[i])
                second = sorted(la, reverse=True)[1] if len(la) > 1 else -math.inf
                if best_a != best_b and la[best_a] - second > tol:
                    flips += 1
            if diffs:
                row["max_abs_loglik_diff"] = max(diffs)
                row["prediction_flips_beyond_ties"] = flips
                ok &= max(diffs) <= tol and flips == 0
        if "generation_a" in rows and rows["generation_a"].notna().any():
            same = int((rows["generation_a"].fillna("") == rows["generation_b"].fillna("")).sum())
            row["identical_generations"] = f"{same}/{len(rows)}"
        for side, run in (("a", a), ("b", b)):
            metrics = run.metrics.get("tasks", {}).get(task) or {}
            primary = next((k for k in ("acc", "exact_match") if k in metrics), None)
            if primary:
                row[f"{primary}_{side}"] = metrics[primary]["value"]
        report[task] = row
    return report, ok


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--tasks", required=True)
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--devices", default="cpu,cuda", help="two torch devices, comma-separated")
    p.add_argument("--tolerance", type=float, default=1e-2, help="largest log-likelihood difference accepted")
    p.add_argument("--out", help="write the comparison as JSON here")
    p.add_argument("extra", nargs="*", help="more `workbench eval` arguments (after --)")
    args = p.parse_args()
    dev_a, dev_b = args.devices.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        id_a, wall_a = evaluate(dev_a, args, root)
        id_b, wall_b = evaluate(dev_b, args, root)
        report, ok = compare(root / dev_a.replace(":", "_"), id_a, root / dev_b.replace(":", "_"), id_b,
                             args.tolerance)
    report["wall_s"] = {dev_a: round(wall_a, 1), dev_b: round(wall_b, 1)}
    text = json.dumps(report, indent=2, default=str)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
