"""Section 5 of Zhang et al. (2017) at small scale, on the embedded digits dataset.

Minimum-norm interpolation (``rethink.kernels.min_norm_fit``) with a Gaussian kernel on raw
pixels against random ReLU features of several widths: training error (0 when it
interpolates), test error and the norm of the solution. The paper's point: the minimum
norm solution generalizes well, yet its norm does not predict which one generalizes best.

    python scripts/section5_digits.py [--device cpu|cuda] [--out benchmarks/RESULTS_measures.md]

Prints a markdown table (and writes it into the Section 5 part of ``--out`` when given).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import rethink  # noqa: E402
from rethink.kernels import min_norm_fit  # noqa: E402

BEGIN, END = "<!-- section5:begin -->", "<!-- section5:end -->"


def experiment(device: str) -> str:
    from _common import machine

    ds = rethink.datasets.load("digits")
    xtr = ds.train.images.double().reshape(len(ds.train.labels), -1) / 255.0
    xte = ds.test.images.double().reshape(len(ds.test.labels), -1) / 255.0
    ytr, yte = ds.train.labels, ds.test.labels
    n, d = xtr.shape
    configs = [
        ("raw pixels", "rbf", {}, 0.0),
        ("raw pixels", "rbf", {}, 1e-2),
        ("raw pixels", "linear", {}, 1e-2),
        ("random ReLU features, width 2048", "random_features", {"width": 2048}, 0.0),
        ("random ReLU features, width 4096", "random_features", {"width": 4096}, 0.0),
        ("random ReLU features, width 8192", "random_features", {"width": 8192}, 0.0),
        ("random ReLU features, width 8192", "random_features", {"width": 8192}, 1e-2),
    ]
    lines = [
        f"Digits: {n} training and {len(yte)} test images of {d} pixels (scaled to 0..1), 10 classes, "
        "one-hot targets; `rethink.kernels.min_norm_fit` (Cholesky in float64). "
        "rbf gamma = 1 / (d * var(X)); random features: sqrt(2/width) relu(W x + b), W ~ N(0, 1/(d mean(X^2))), "
        "b ~ N(0, 1), seed 0. The linear kernel on 64 raw pixels has rank 64 < n and cannot "
        "interpolate, so it is shown with a ridge only.",
        "",
        f"Machine: {machine(device)}. Command: `python scripts/section5_digits.py --device {device}`.",
        "",
        "| features | kernel | ridge | train error | test error | norm sqrt(a^T K a) | fit s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for feats, kernel, kw, ridge in configs:
        t0 = time.perf_counter()
        p = min_norm_fit(xtr, ytr, kernel=kernel, ridge=ridge, device=device, **kw)
        test_err = p.error(xte, yte)
        secs = time.perf_counter() - t0
        lines.append(f"| {feats} | {kernel} | {ridge:g} | {p.train_error:.2%} | {test_err:.2%} | {p.norm:.1f} | {secs:.2f} |")
        print(lines[-1], file=sys.stderr)
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--out", default=None, help="markdown file whose Section 5 part is replaced")
    args = ap.parse_args()
    table = experiment(args.device)
    print(table)
    if args.out:
        path = Path(args.out)
        text = path.read_text() if path.exists() else ""
        block = f"{BEGIN}\n{table}{END}"
        if BEGIN in text and END in text:
            text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END):]
        else:
            text = (text + "\n\n" if text else "") + "## Section 5 on digits: minimum-norm interpolation\n\n" + block + "\n"
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
