"""Section 5: rethink.min_norm.min_norm_fit at n = 60,000 on Fashion-MNIST, and its two methods side by side.

Three measurements, in one run on one device:

1. What the device's dense kernels reach: float32 / float64 matrix products and Cholesky
   factorizations (GFLOP/s), the ceiling of the two methods.
2. At a size where the float64 Cholesky path still fits (n = 20,000 by default), the same
   problem (rbf kernel on pixels / 255, true labels as 10 one-hot columns) solved by
   ``method="cholesky"`` (K in float64, Cholesky, refinement) and ``method="pcg"`` (float32
   Cholesky of K preconditioning float64 conjugate gradients): time per stage, relative
   residual, peak memory, and how far apart their coefficients and test predictions are.
3. n = 60,000 (the whole training set; a float64 K would take 28.8 GB) with ``method="pcg"``:
   time per stage (float32 kernel, float32 Cholesky, every PCG iteration, the final float64
   residual check), iterations, final relative residual, peak memory.

Peak memory is the largest resident set size sampled every 0.1 s during the call, minus
the resident size before it.

Usage: python benchmarks/bench_min_norm.py [--device cpu|cuda] [--quick] [--threads 2]
       [--out benchmarks/RESULTS_min_norm.md]
"""

from __future__ import annotations

import os
import sys
import threading
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine, parser, sync, timeit  # noqa: E402

from rethink import datasets  # noqa: E402
from rethink.min_norm import memory_estimate, min_norm_fit  # noqa: E402

DATA = "/usr/share/datasets/fashion-mnist"


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measured(fn, device: str):
    """(result, seconds, peak extra bytes) of fn(): resident set on CPU, allocator peak on CUDA."""
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        t0 = time.perf_counter()
        out = fn()
        sync(device)
        return out, time.perf_counter() - t0, torch.cuda.max_memory_allocated() - base
    base, peak, stop = rss(), [0], threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.1)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    t0 = time.perf_counter()
    try:
        out = fn()
    finally:
        seconds = time.perf_counter() - t0
        stop.set()
        th.join()
    return out, seconds, max(peak[0], rss()) - base


def dense_rates(device: str) -> list[str]:
    rows = ["## Dense kernels on this device (the ceiling of both methods)", "",
            "| operation | float32 | float64 |", "| --- | ---: | ---: |"]
    g = torch.Generator().manual_seed(0)
    m = 4096
    n = 8000 if torch.device(device).type == "cpu" else 16000
    rates = {}
    for dt in (torch.float32, torch.float64):
        A = torch.randn(m, m, generator=g, dtype=dt).to(device)
        rates[("gemm", dt)] = 2 * m**3 / timeit(lambda A=A: A @ A, device, repeat=3) / 1e9
        M = torch.randn(n, 256, generator=g, dtype=dt).to(device)
        S = torch.cdist(M, M).pow_(2).mul_(-1.0 / 512).exp_()  # an rbf kernel: positive definite
        S.diagonal().add_(1e-3)
        rates[("chol", dt)] = n**3 / 3 / timeit(lambda S=S: torch.linalg.cholesky(S), device, repeat=2) / 1e9
        del A, M, S
    rows.append(f"| matrix product {m} x {m} x {m} (GFLOP/s) | {rates['gemm', torch.float32]:.0f} | "
                f"{rates['gemm', torch.float64]:.0f} |")
    rows.append(f"| torch.linalg.cholesky {n} x {n} (GFLOP/s, n^3/3 flops) | {rates['chol', torch.float32]:.0f} | "
                f"{rates['chol', torch.float64]:.0f} |")
    return rows + [""]


def load(n: int, device: str):
    ds = datasets.load("fashion_mnist", root=DATA)
    X = (ds.train.images[:n].reshape(n, -1).to(torch.float64) / 255.0).to(device)
    Xt = (ds.test.images.reshape(-1, 784).to(torch.float64) / 255.0).to(device)
    return X, ds.train.labels[:n], Xt, ds.test.labels


def fmt_gib(b: float) -> str:
    return f"{b / 2**30:.2f} GiB"


def compare(n: int, device: str) -> list[str]:
    X, y, Xt, yt = load(n, device)
    runs = {}
    for method in ("cholesky", "pcg"):
        p, secs, peak = measured(lambda method=method: min_norm_fit(X, y, kernel="rbf", method=method), device)
        runs[method] = (p, secs, peak)
    a, b = runs["cholesky"][0], runs["pcg"][0]
    fa, fb = a.predict(Xt[:2000]), b.predict(Xt[:2000])
    rows = [f"## n = {n:,}: float64 Cholesky against float32-preconditioned CG (rbf, pixels, 10 one-hot columns)", "",
            "| method | total s | kernel s | factorization s | refinement / iterations | relative residual | "
            "test error | peak memory | memory_estimate |",
            "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |"]
    for method, (p, secs, peak) in runs.items():
        s = p.solve_info
        steps = (f"{s['refinements']} refinements, {s['refine_s']:.1f} s" if method == "cholesky" else
                 f"{s['iterations']} iterations, {sum(s['iteration_s']):.1f} s + check {s['check_s']:.1f} s")
        rows.append(f"| {method} | {secs:.1f} | {s['form_s']:.1f} | {s['factor_s']:.1f} | {steps} | "
                    f"{p.relative_residual:.1e} | {100 * p.error(Xt, yt):.2f}% | {fmt_gib(peak)} | "
                    f"{fmt_gib(memory_estimate(n, 784, 10, method))} |")
    rows += ["", f"pcg / cholesky time: {runs['pcg'][1] / runs['cholesky'][1]:.2f}x. "
             f"max |alpha_pcg - alpha_chol| / max |alpha_chol| = "
             f"{float((a.alpha - b.alpha).abs().max() / a.alpha.abs().max()):.1e}; "
             f"max |f_pcg - f_chol| on 2,000 test points = {float((fa - fb).abs().max()):.1e}; "
             f"norms {a.norm:.6f} (cholesky) and {b.norm:.6f} (pcg).", ""]
    return rows


def full(n: int, device: str) -> list[str]:
    X, y, Xt, yt = load(n, device)
    lines = []

    def log(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    p, secs, peak = measured(lambda: min_norm_fit(X, y, kernel="rbf", method="pcg", log=log), device)
    s = p.solve_info
    rows = [f"## n = {n:,} with method=\"pcg\" (rbf, pixels, 10 one-hot columns)", "",
            "| stage | seconds |", "| --- | ---: |",
            f"| float32 kernel formation (blocks computed in float64) | {s['form_s']:.1f} |",
            f"| float32 blocked Cholesky, in place ({s['factor_attempts']} attempt(s), shift {s['shift']:g}) | "
            f"{s['factor_s']:.1f} |"]
    for i, (t, r) in enumerate(zip(s["iteration_s"], s["residual_history"]), 1):
        rows.append(f"| PCG iteration {i} (max relative residual after it: {r:.1e}) | {t:.1f} |")
    rows += [f"| final residual check in float64 ({s['true_residual_checks']} check(s)) | {s['check_s']:.1f} |",
             f"| total min_norm_fit | {secs:.1f} |", "",
             f"Iterations: {s['iterations']}. Final relative residual ||K alpha - Y|| / ||Y|| (float64): "
             f"{p.relative_residual:.1e}; largest per column {float(p.column_residuals.max()):.1e}. "
             f"Train error {100 * p.train_error:.2f}%, test error {100 * p.error(Xt, yt):.2f}%, norm {p.norm:.2f}. "
             f"Peak memory during the fit: {fmt_gib(peak)} (memory_estimate: "
             f"{fmt_gib(memory_estimate(n, 784, 10, 'pcg'))}; a float64 K alone would be {fmt_gib(8 * n * n)}).", ""]
    return rows


def main() -> int:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="torch threads (CPU)")
    ap.add_argument("--n-compare", type=int, default=20000, help="size of the side-by-side run (0 skips it)")
    ap.add_argument("--n-full", type=int, default=60000,
                    help="size of the pcg-only run (0 skips it; scripts/section5_fashion.py times n = 60,000 too)")
    ap.add_argument("--out", default=None, help="write the markdown here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n_cmp, n_full = (3000, 6000) if args.quick else (args.n_compare, args.n_full)
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    head = ["# Section 5: `rethink.min_norm.min_norm_fit` benchmark", "",
            f"Command: `{' '.join(['python benchmarks/bench_min_norm.py', *sys.argv[1:]])}`", "",
            f"machine: {machine(args.device)}", ""]
    body = (dense_rates(args.device) + (compare(n_cmp, args.device) if n_cmp else [])
            + (full(n_full, args.device) if n_full else []))
    tail = [f"Whole run: {time.perf_counter() - t0:.0f} s; load average (1 min) {load0[0]:.1f} at the start and "
            f"{os.getloadavg()[0]:.1f} at the end (2 cores: above 2, other jobs shared the CPU).", ""]
    text = "\n".join(head + body + tail)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
