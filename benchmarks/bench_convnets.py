"""Small AlexNet's training step (batch 128, 1x24x24 inputs, SGD with momentum) with
rethink.models (fused ReLU -> max-pool -> LRN, rethink.nn.ReLUMaxPoolLRN) against the same
network built from torch's modules (``SmallAlexNet(fused=False)``), as a ratio measured in one run.

    python benchmarks/bench_convnets.py [--threads 2] [--reps 20]

Not measured here yet: small Inception (its profile is dominated by convolutions; no fused
kernel for it) and a 1-epoch MLP run against a plain loop.
"""

from __future__ import annotations

import argparse
import time

import torch

from rethink import _build, models


def step_time(model, x, y, reps: int) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss = torch.nn.CrossEntropyLoss()
    times = []
    for i in range(reps + 3):
        t0 = time.perf_counter()
        opt.zero_grad()
        loss(model(x), y).backward()
        opt.step()
        if i >= 3:
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=20)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    x, y = torch.randn(128, 1, 24, 24), torch.randint(0, 10, (128,))
    print(f"cpu: {_build.cpu_model()}, torch {torch.__version__}, {args.threads} threads")
    for r in range(2):
        torch.manual_seed(0)
        ref = step_time(models.SmallAlexNet((1, 24, 24), 10, fused=False), x, y, args.reps)
        torch.manual_seed(0)
        fused = step_time(models.SmallAlexNet((1, 24, 24), 10, fused=True), x, y, args.reps)
        print(f"round {r}: small AlexNet step, torch modules {ref * 1e3:.1f} ms, rethink.models {fused * 1e3:.1f} ms, "
              f"speed-up {ref / fused:.2f}x")


if __name__ == "__main__":
    main()
