"""Shared benchmark helpers: timing with warm-up and device sync, machine description,
and a command line every benchmark script accepts (``--device``, ``--quick``)."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

import torch

# Benchmarks run from a checkout: make the in-place build importable without installing it.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="device to benchmark on")
    p.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    return p


def sync(device: str | torch.device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timeit(fn: Callable[[], object], device: str | torch.device, repeat: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds, after ``warmup`` calls, synchronizing the device."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def machine(device: str | torch.device) -> str:
    """One line naming the machine the figures came from."""
    from rethink._build import describe_machine

    return describe_machine(device)
