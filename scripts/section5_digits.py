"""Section 5 of Zhang et al. (2017) at small scale, on the embedded digits dataset, and the
complexity-measure study on a digits sweep.

Minimum-norm interpolation (``rethink.min_norm.min_norm_fit``) with a Gaussian (and a Laplacian)
kernel on raw pixels against random ReLU features of several widths: training error (0 when it
interpolates), test error and the norm of the solution. The paper's point: the minimum
norm solution generalizes well, yet its norm does not predict which one generalizes best.

    python scripts/section5_digits.py [--device cpu|cuda] [--out benchmarks/RESULTS_measures.md]
                                      [--study results/digits_measures]

Prints a markdown table (and writes it into the Section 5 part of ``--out`` when given).
With ``--study DIR``: trains (or resumes) a sweep of mlp1x512 on digits over label noise
and weight decay into DIR, runs ``rethink.study.study`` on it and adds the ranking and
the time per measure to ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import rethink  # noqa: E402
from rethink.min_norm import min_norm_fit  # noqa: E402

BEGIN, END = "<!-- section5:begin -->", "<!-- section5:end -->"
STUDY_BEGIN, STUDY_END = "<!-- study:begin -->", "<!-- study:end -->"
CORRUPTIONS = ["none", "labels:0.2", "labels:0.4", "labels:0.6", "labels:0.8", "random_labels"]
WEIGHT_DECAYS = [0.0, 5e-4]
SWEEP = dict(max_epochs=300, lr=0.05)


def study(device: str, out_dir: str) -> str:
    from _common import machine

    t0 = time.perf_counter()
    rethink.sweep(models=["mlp1x512"], corruptions=CORRUPTIONS, seeds=[0], out_dir=out_dir, dataset="digits",
                  weight_decay=WEIGHT_DECAYS, device=device, progress=False, **SWEEP)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    rep = rethink.study.study(out_dir, device=device)
    study_s = time.perf_counter() - t0
    md = open(rep.paths["md"]).read().split("\n", 1)[1].replace("## Time per measure group", "### Time per measure group")
    head = (
        f"Sweep: mlp1x512 on digits, corruptions {', '.join(CORRUPTIONS)} x weight decay "
        f"{', '.join(f'{w:g}' for w in WEIGHT_DECAYS)}, seed 0, lr {SWEEP['lr']}, at most "
        f"{SWEEP['max_epochs']} epochs ({len(rep.rows)} runs; training took {train_s:.0f} s here: 0 when the sweep was already complete). "
        f"`rethink.study.study` with default settings took {study_s:.1f} s for all runs "
        f"({study_s / max(len(rep.rows), 1):.2f} s per run).\n\n"
        f"Machine: {machine(device)}. Command: `python scripts/section5_digits.py --device {device} "
        f"--study {out_dir} --out benchmarks/RESULTS_measures.md`.\n"
    )
    return head + md


def _replace_block(path: Path, begin: str, end: str, title: str, body: str) -> None:
    text = path.read_text() if path.exists() else ""
    block = f"{begin}\n{body}{end}"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = (text.rstrip() + "\n\n" if text else "") + f"## {title}\n\n" + block + "\n"
    path.write_text(text)


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
        ("raw pixels", "laplacian", {}, 0.0),
        ("raw pixels", "linear", {}, 1e-2),
        ("random ReLU features, width 2048", "random_features", {"width": 2048}, 0.0),
        ("random ReLU features, width 4096", "random_features", {"width": 4096}, 0.0),
        ("random ReLU features, width 8192", "random_features", {"width": 8192}, 0.0),
        ("random ReLU features, width 8192", "random_features", {"width": 8192}, 1e-2),
    ]
    lines = [
        f"Digits: {n} training and {len(yte)} test images of {d} pixels (scaled to 0..1), 10 classes, "
        "one-hot targets; `rethink.min_norm.min_norm_fit` (at this size: Cholesky in float64, with "
        "iterative refinement). rbf gamma = 1 / (d * var(X)), laplacian gamma = 1 / sqrt(d * var(X)); random features: sqrt(2/width) relu(W x + b), W ~ N(0, 1/(d mean(X^2))), "
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
    ap.add_argument("--out", default=None, help="markdown file whose Section 5 (and study) parts are replaced")
    ap.add_argument("--study", default=None, metavar="DIR", help="also run the measures study on a sweep in DIR")
    args = ap.parse_args()
    table = experiment(args.device)
    print(table)
    if args.out:
        _replace_block(Path(args.out), BEGIN, END, "Section 5 on digits: minimum-norm interpolation", table)
    if args.study:
        text = study(args.device, args.study)
        print(text)
        if args.out:
            _replace_block(Path(args.out), STUDY_BEGIN, STUDY_END,
                           "Complexity measures against the generalization gap (digits sweep)", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
