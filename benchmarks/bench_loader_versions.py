"""The fused loader's CPU kernel against an earlier build of it, on the same workload.

    python benchmarks/bench_loader_versions.py --other /path/to/old/checkout [--threads 1] [--rounds 3]

Each round times one epoch-worth of batches in a fresh process per build, alternating the
builds (old, new, old, new, ...), so both see the same machine load; the table gives the
median images/s per build and their ratio. The other checkout must hold a built extension
(``python setup.py build_ext --inplace`` there, against the same torch). Workloads: random
pixels with crop_flip and per-image whitening (the CIFAR-style path), and true labels with
no augmentation (the plain gather-normalize path), 3x32x32 and 1x28x28, float32, batch 256.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
import rethink
shape, corruption, augment, n = json.loads(sys.argv[2])
d = rethink.datasets.synthetic(n, 16, tuple(shape), seed=0)
loader = rethink.RandomizedLoader(d, rethink.Corruption.parse(corruption, seed=0), batch_size=256, augment=augment,
                                  normalize="per_image", device="cpu", seed=0, **({"cache": False} if "cache" in
                                  rethink.RandomizedLoader.__init__.__code__.co_varnames else {}))
it = iter(loader)
next(it)  # warm-up
t0 = time.perf_counter()
count = 0
for x, y in it:
    count += x.shape[0]
print(count / (time.perf_counter() - t0))
"""

WORKLOADS = [((3, 32, 32), "random_pixels", "crop_flip", 20_000), ((3, 32, 32), "none", None, 20_000),
             ((1, 28, 28), "random_pixels", "crop_flip", 20_000), ((1, 28, 28), "none", None, 20_000)]


def run(checkout: Path, threads: int, workload) -> float:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    out = subprocess.run([sys.executable, "-c", CHILD, str(threads), json.dumps(workload)], cwd=checkout, env=env,
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return float(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--other", type=Path, required=True, help="checkout of the earlier version, built in place")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import torch

    from rethink._build import describe_machine

    torch.set_num_threads(args.threads)
    print(f"# bench_loader_versions: {describe_machine('cpu')}")
    print(f"other build: {args.other}; this build: {ROOT}; {args.rounds} rounds, alternating\n")
    print("| workload | earlier images/s | this images/s | this / earlier |")
    print("| --- | ---: | ---: | ---: |")
    for w in WORKLOADS:
        old, new = [], []
        for _ in range(args.rounds):
            old.append(run(args.other, args.threads, w))
            new.append(run(ROOT, args.threads, w))
        mo, mn = statistics.median(old), statistics.median(new)
        shape, corruption, augment, n = w
        name = f"{'x'.join(map(str, shape))}, {corruption}, {augment or 'no augmentation'}"
        print(f"| {name} | {mo:,.0f} | {mn:,.0f} | {mn / mo:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
