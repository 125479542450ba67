"""Theorem 1: rethink.interpolate against the dense O(n^2) construction and a lower bound.

Three measurements, each a ratio taken in one run on one device:

1. ``interpolate`` vs the dense construction (project, sort, form the n x n lower-
   triangular matrix A_ij = relu(z_i - b_j), ``torch.linalg.solve_triangular``) at
   n = 2k, 5k, 10k, 20k (d = 3072, float32 X, scalar targets). Up to n = 10,000
   ``interpolate`` projects onto up to 16 candidate directions (4 passes over X) to keep
   ``to_sequential()`` accurate; beyond, onto one.
2. ``interpolate`` at n = 200,000, d = 3072 (float32 X) against the lower bound of one
   pass over X plus a sort: ``X @ a`` (float32) then ``torch.sort``. Target: <= 1.5x on CPU.
   On CPU also measured with one thread (less sensitive to other load on a shared machine).
3. Evaluating 100,000 queries against n = 50,000 (d = 256): segment evaluation
   (``net(Xq)``) vs the literal ``to_sequential()`` network. On CPU the literal network is
   timed on the first 5,000 queries (it is O(n d) per query) and compared per query.

Usage: python benchmarks/bench_interpolate.py [--device cpu|cuda] [--quick]
"""

from __future__ import annotations

import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine, parser, sync, timeit  # noqa: E402

import rethink  # noqa: E402
from rethink.expressivity import BREAKPOINT_T  # noqa: E402


def dense_construction(X: torch.Tensor, y: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """The textbook O(n^2) construction: w from the dense triangular system."""
    z, order = torch.sort(X.double() @ a)
    b = torch.empty_like(z)
    b[0] = z[0] - (z[-1] - z[0])
    b[1:] = z[:-1] + BREAKPOINT_T * (z[1:] - z[:-1])
    A = (z[:, None] - b[None, :]).clamp_min_(0)
    return torch.linalg.solve_triangular(A, y[order, None], upper=False)


def fmt(s: float) -> str:
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def bench_dense(dev: str, g: torch.Generator, quick: bool) -> None:
    d = 3072
    sizes = [1000, 2000] if quick else [2000, 5000, 10000, 20000]
    print("## interpolate vs dense triangular solve (d = 3072, float32 X, scalar targets)\n")
    print("| n | interpolate | dense solve | dense / interpolate | max abs w difference / max abs w |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for n in sizes:
        print(row_dense(dev, g, n, d))
    print()


def row_dense(dev: str, g: torch.Generator, n: int, d: int) -> str:
    X = torch.randn(n, d, generator=g).to(dev)
    y = torch.randn(n, generator=g, dtype=torch.float64).to(dev)
    net = rethink.interpolate(X, y)
    t_fast = timeit(lambda: rethink.interpolate(X, y), dev, repeat=3)
    reps = 1 if n >= 10000 else 3
    t_dense = timeit(lambda: dense_construction(X, y, net.a), dev, repeat=reps, warmup=1 if n < 20000 else 0)
    w_dense = dense_construction(X, y, net.a).squeeze(1)
    rel = float((w_dense - net.w).abs().max() / net.w.abs().max())
    return f"| {n:,} | {fmt(t_fast)} | {fmt(t_dense)} | {t_dense / t_fast:.1f}x | {rel:.1e} |"


def bench_large(dev: str, g: torch.Generator, quick: bool) -> None:
    n, d = (20_000 if quick else 200_000), 3072
    print(
        f"## n = {n:,}, d = 3072, float32 X ({n * d * 4 / 1e9:.1f} GB) vs the bound `X @ a` + `torch.sort`\n"
    )
    X = torch.randn(n, d, generator=g).to(dev)
    a32 = torch.randn(d, generator=g).to(dev)
    A1 = torch.randn(1, d, generator=g, dtype=torch.float64).to(dev)
    y = torch.randn(n, generator=g, dtype=torch.float64).to(dev)
    labels = torch.randint(0, 10, (n,), generator=g).to(dev)
    rows = []
    threads = [torch.get_num_threads(), 1] if dev == "cpu" and torch.get_num_threads() > 1 else [None]
    for th in threads:
        old = torch.get_num_threads()
        if th is not None:
            torch.set_num_threads(th)
        t_bound = timeit(lambda: torch.sort(X @ a32), dev, repeat=5)
        t_proj = timeit(lambda: torch.ops.rethink.interp_project(X, A1), dev, repeat=3)
        t_scalar = timeit(lambda: rethink.interpolate(X, y), dev, repeat=3)
        t_labels = timeit(lambda: rethink.interpolate(X, labels), dev, repeat=3)
        torch.set_num_threads(old)
        tag = "" if th is None else f" ({th} thread{'s' if th > 1 else ''})"
        rows += [
            f"| bound: `X @ a` (float32) + `torch.sort`{tag} | {fmt(t_bound)} | 1.00x |",
            f"| its float64 projection alone (`interp_project`, 1 direction){tag} | {fmt(t_proj)} "
            f"| {t_proj / t_bound:.2f}x |",
            f"| `interpolate`, scalar targets{tag} | {fmt(t_scalar)} | {t_scalar / t_bound:.2f}x |",
            f"| `interpolate`, 10 class labels{tag} | {fmt(t_labels)} | {t_labels / t_bound:.2f}x |",
        ]
    print("| what | time | / bound |")
    print("| --- | ---: | ---: |")
    print("\n".join(rows))
    net = rethink.interpolate(X, labels)
    ok = bool(torch.equal(net.predict(X), labels))
    print(f"\nnet.predict(X) == labels for all {n:,} points: {ok}\n")


def bench_eval(dev: str, g: torch.Generator, quick: bool) -> None:
    n, d, q = (5_000, 256, 10_000) if quick else (50_000, 256, 100_000)
    print(
        f"## evaluating {q:,} queries against n = {n:,} (d = {d}): segment evaluation vs `to_sequential()`\n"
    )
    X = torch.randn(n, d, generator=g).to(dev)
    Y = torch.randn(n, generator=g, dtype=torch.float64).to(dev)
    Xq = torch.randn(q, d, generator=g).to(dev)
    net = rethink.interpolate(X, Y)
    seq = net.to_sequential()
    q_lit = q if dev == "cuda" else min(q, 5_000)
    chunk = 5_000 if dev == "cuda" else 1_000
    Xq64 = Xq[:q_lit].double()

    def literal():
        with torch.no_grad():
            return torch.cat([seq(Xq64[i : i + chunk]) for i in range(0, q_lit, chunk)])

    t_seg = timeit(lambda: net(Xq), dev, repeat=5)
    t_lit = timeit(literal, dev, repeat=1, warmup=1 if dev == "cuda" else 0)
    diff = float((literal().squeeze(1) - net(Xq[:q_lit])).abs().max())
    per_seg, per_lit = t_seg / q, t_lit / q_lit
    print("| method | queries timed | time | per query | literal / segment |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print(f"| segment evaluation `net(Xq)` | {q:,} | {fmt(t_seg)} | {per_seg * 1e6:.2f} us | 1.0x |")
    print(
        f"| `to_sequential()` network (float64) | {q_lit:,} | {fmt(t_lit)} | {per_lit * 1e6:.1f} us "
        f"| {per_lit / per_seg:.0f}x |"
    )
    print(
        f"\nmax abs(literal - segment) over the timed queries: {diff:.1e} (max abs Y = {float(Y.abs().max()):.2f})"
    )


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    dev = args.device
    g = torch.Generator().manual_seed(0)
    print(f"# rethink.interpolate benchmark ({'quick' if args.quick else 'full'}, device {dev})\n")
    print(f"machine: {machine(dev)}\n")
    bench_dense(dev, g, args.quick)
    bench_large(dev, g, args.quick)
    bench_eval(dev, g, args.quick)
    sync(dev)


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"\ntotal benchmark time: {time.perf_counter() - t0:.0f} s")
