"""Section 5 of Zhang et al. (2017) at full size on Fashion-MNIST: minimum-norm kernel interpolation.

Three experiments on 60,000 training and 10,000 test images (pixels / 255, flattened), with
``rethink.min_norm.min_norm_fit`` (float64 Cholesky when it fits in memory, else a float32
Cholesky preconditioning float64 conjugate gradients; relative residual <= tol):

1. true labels: test error of the interpolant with the rbf and the laplacian kernel on pixels;
2. random labels: the same two kernels, ONE factorization each, solved for the true labels
   and for labels corrupted with probability p (``rethink.Corruption("labels", p, seed)``,
   the paper's uniform redraw) for several p and seeds at once: training error, residual,
   norm ``sqrt(trace(alpha^T K alpha))`` and test error (clean test labels) per label set;
3. feature maps: the same kernels on random convolutional features
   (``rethink.features.RandomConvFeatures``), true labels, against raw pixels.

Each fit writes one JSON file under ``--out`` (numbers, settings, seconds, machine); a fit
whose file exists is skipped (resumable). ``--report`` writes docs/SECTION5.md from those
files only.

    python scripts/section5_fashion.py [--fits pixels_rbf,pixels_laplacian,conv_rbf,conv_laplacian]
                                       [--n 60000] [--out docs/results/section5] [--threads 2]
    python scripts/section5_fashion.py --report [--out docs/results/section5] [--md docs/SECTION5.md]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from rethink import datasets, paper  # noqa: E402
from rethink._build import describe_machine  # noqa: E402
from rethink.corruption import Corruption, corrupted_labels  # noqa: E402
from rethink.features import RandomConvFeatures  # noqa: E402
from rethink.min_norm import min_norm_fit  # noqa: E402
from rethink.plots import mean_spread  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = "/usr/share/datasets/fashion-mnist"
FITS = ("pixels_rbf", "pixels_laplacian", "conv_rbf", "conv_laplacian")
PROBS = (0.2, 0.4, 0.6, 0.8, 1.0)
SEEDS = (0, 1, 2)
CONV = dict(image_shape=(1, 28, 28), filters=64, size=5, pool=4, seed=0)
NUM_CLASSES = 10


def load(n: int):
    ds = datasets.load("fashion_mnist", root=DATA)
    xtr = ds.train.images[:n].reshape(min(n, len(ds.train.labels)), -1).to(torch.float64) / 255.0
    xte = ds.test.images.reshape(len(ds.test.labels), -1).to(torch.float64) / 255.0
    return xtr, ds.train.labels[: xtr.shape[0]], xte, ds.test.labels


def label_sets(labels: torch.Tensor, random: bool) -> list[dict]:
    """The label sets of one fit: the true labels, then (random=True) every p in PROBS x SEEDS."""
    sets = [{"corruption": "none", "p": 0.0, "seed": None, "labels": labels}]
    if random:
        for p in PROBS:
            for s in SEEDS:
                c = Corruption("random_labels", seed=s) if p == 1.0 else Corruption("labels", p=p, seed=s)
                sets.append({"corruption": str(c), "p": p, "seed": s,
                             "labels": corrupted_labels(labels, NUM_CLASSES, c)})
    return sets


def run_fit(name: str, n: int, out: Path, method: str, tol: float) -> Path:
    path = out / f"{name}.json"
    if path.exists():
        print(f"{path} exists: skipped", flush=True)
        return path
    features, kernel = name.split("_")
    t_start = time.perf_counter()
    load_avg_start = os.getloadavg()
    xtr, ytr, xte, yte = load(n)
    sets = label_sets(ytr, random=features == "pixels")
    Y = torch.cat([torch.nn.functional.one_hot(s["labels"], NUM_CLASSES).to(torch.float64) for s in sets], 1)
    fmap = RandomConvFeatures(**CONV) if features == "conv" else None
    t_load = time.perf_counter() - t_start

    def log(line: str) -> None:
        print(f"[{name} {time.perf_counter() - t_start:7.0f} s] {line}", flush=True)

    log(f"n={xtr.shape[0]}, {len(sets)} label sets ({Y.shape[1]} columns), kernel {kernel}, features {features}")
    t0 = time.perf_counter()
    pred = min_norm_fit(xtr, Y, kernel=kernel, features=fmap, method=method, tol=tol, log=log)
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    scores = pred.predict(xte).cpu()
    t_predict = time.perf_counter() - t0
    # training predictions of every label set, from the fitted values: f(x_i) = y_i + residual
    rows = []
    for j, s in enumerate(sets):
        cols = slice(NUM_CLASSES * j, NUM_CLASSES * (j + 1))
        y_onehot = Y[:, cols]
        rows.append({
            "corruption": s["corruption"], "p": s["p"], "seed": s["seed"],
            "fraction_changed": float((s["labels"] != ytr).double().mean()),
            "norm": float(pred.column_norms[cols].pow(2).sum().sqrt()),
            "relative_residual": float((pred.column_residuals[cols].pow(2) * y_onehot.pow(2).sum(0)).sum().sqrt()
                                       / y_onehot.norm()),
            "test_error": float((scores[:, cols].argmax(1) != yte).double().mean()),
        })
    # |f(x_i) - y_i| < 1/2 in every column puts the true class's score above 1/2 and every
    # other below it: training error 0 for every label set, with no second pass over the data
    train_err = [0.0] * len(sets) if pred.train_residual < 0.5 else _train_errors(pred, xtr, sets)
    for r, e in zip(rows, train_err):
        r["train_error"] = e
    result = {
        "experiment": name, "dataset": "fashion_mnist", "n_train": xtr.shape[0], "n_test": xte.shape[0],
        "preprocessing": "pixels / 255, flattened (784 values)",
        "features": "pixels" if fmap is None else {"map": "RandomConvFeatures", **CONV, "dim": fmap.dim},
        "kernel": kernel, "gamma": pred.gamma, "gamma_rule": _gamma_rule(kernel), "ridge": 0.0,
        "method": pred.method, "tol": tol, "converged": pred.converged,
        "duplicates_merged": 0 if pred.train_index is None else xtr.shape[0] - pred.train_index.shape[0],
        "train_residual_max": pred.train_residual, "relative_residual": pred.relative_residual,
        "label_sets": rows,
        "solver": {k: v for k, v in pred.solve_info.items()},
        "seconds": {"load": t_load, "fit": t_fit, "predict_test": t_predict,
                    "total": time.perf_counter() - t_start},
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "load_average": {"start": load_avg_start, "end": os.getloadavg()},
        "machine": describe_machine("cpu"),
        "command": "python " + " ".join(sys.argv),
    }
    out.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(path)
    log(f"wrote {path}")
    return path


def _gamma_rule(kernel: str) -> str:
    return "1 / (D var(phi(X)))" if kernel == "rbf" else "1 / sqrt(D var(phi(X)))"


def _train_errors(pred, xtr, sets) -> list[float]:
    """Training classification error of every label set, predicting the training points."""
    errs = [0] * len(sets)
    for s in range(0, xtr.shape[0], 4096):
        f = pred.predict(xtr[s : s + 4096]).cpu()
        for j, ls in enumerate(sets):
            errs[j] += int((f[:, NUM_CLASSES * j : NUM_CLASSES * (j + 1)].argmax(1) != ls["labels"][s : s + 4096]).sum())
    return [e / xtr.shape[0] for e in errs]


# --- the report: docs/SECTION5.md from the JSON files only ---------------------------------

_P = paper.SECTION5
PAPER_ROWS = [  # the paper's Section 5 numbers (rethink.paper.SECTION5), shown as named comparison rows only
    ("paper, MNIST, Gaussian kernel on pixels", f"{_P['mnist_gaussian_pixels_error']:g}%",
     f"about {_P['mnist_norm_pixels']:g}"),
    ("paper, MNIST, Gaussian kernel on Gabor wavelet features", f"{_P['mnist_gaussian_wavelets_error']:g}%",
     f"about {_P['mnist_norm_wavelets']:g}"),
    ("paper, CIFAR-10, Gaussian kernel on pixels", f"{_P['cifar10_gaussian_pixels_error']:g}%", "-"),
    ("paper, CIFAR-10, 32,000 random convolutional filters", f"{_P['cifar10_random_conv_features_error']:g}%", "-"),
]


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _se(err: float, m: int) -> float:
    """Binomial standard error of a test error measured on m points."""
    return math.sqrt(err * (1 - err) / m)


def _features_name(r: dict) -> str:
    f = r["features"]
    if f == "pixels":
        return "pixels (784)"
    return f"random conv features ({f['filters']} filters {f['size']}x{f['size']}, ReLU, {f['pool']}x{f['pool']} " \
           f"average pooling; {f['dim']})"


def _true(r: dict) -> dict:
    return next(s for s in r["label_sets"] if s["p"] == 0.0)


def report(out: Path) -> str:
    files = sorted(out.glob("*.json"), key=lambda p: (FITS.index(p.stem) if p.stem in FITS else len(FITS), p.stem))
    runs = {p.stem: json.loads(p.read_text()) for p in files}
    if not runs:
        raise SystemExit(f"no result files in {out}: run the experiments first")
    first = next(iter(runs.values()))
    lines = [
        "# Section 5 at full size: minimum-norm kernel interpolation on Fashion-MNIST",
        "",
        "Generated by `python scripts/section5_fashion.py --report` from the result files in "
        "`docs/results/section5/` (one per fit); every number below is read from them.",
        "",
        f"Data: Fashion-MNIST, the first {first['n_train']:,} training and {first['n_test']:,} test images, "
        f"{first['preprocessing']}; one-hot targets (10 columns per label set), ridge 0. "
        "`rethink.min_norm.min_norm_fit` solves K alpha = Y with every label set of a fit as columns of one Y, "
        "so ONE factorization per fit serves all label sets; its stopping rule is a relative residual "
        "||K alpha_c - y_c|| / ||y_c|| <= tol for every column, recomputed in float64 at the end. "
        "Bandwidths: rbf gamma = 1 / (D var(phi(X))), laplacian gamma = 1 / sqrt(D var(phi(X))) "
        "(D the input dimension, var over all training values). Test errors are on the clean test labels; "
        "'± se' is the binomial standard error of a test error on 10,000 points.",
        "",
        f"Machine: {first['machine']}.",
        "",
    ]
    lines += _table_true(runs) + _table_noise(runs) + _table_features(runs) + _table_solver(runs)
    missing = [name for name in FITS if name not in runs]
    if missing:
        lines += ["## Not run", "", f"No result file for: {', '.join(missing)}.", ""]
    return "\n".join(lines)


def _table_true(runs: dict) -> list[str]:
    lines = ["## 1. True labels", "",
             "| features | kernel | gamma | train error | relative residual | test error | norm sqrt(tr(a^T K a)) |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in runs.values():
        t = _true(r)
        lines.append(f"| {_features_name(r)} | {r['kernel']} | {r['gamma']:.4g} | {_pct(t['train_error'])} | "
                     f"{t['relative_residual']:.1e} | {_pct(t['test_error'])} ± {_pct(_se(t['test_error'], r['n_test']))} "
                     f"| {t['norm']:.1f} |")
    for name, err, norm in PAPER_ROWS:
        lines.append(f"| {name} | | | | | {err} | {norm} |")
    lines += ["", "The paper's rows are other datasets (MNIST, CIFAR-10), shown for reference only."]
    lines += ["", "Every interpolant fits its training labels exactly (train error 0, relative residual at most "
              f"{max(_true(r)['relative_residual'] for r in runs.values()):.1e})."
              if all(_true(r)["train_error"] == 0 for r in runs.values()) else
              "Not every interpolant reached train error 0: see the table.", ""]
    return lines


def _table_noise(runs: dict) -> list[str]:
    noisy = {k: r for k, r in runs.items() if len(r["label_sets"]) > 1}
    if not noisy:
        return []
    lines = ["## 2. Random labels: the norm against the fraction of random labels", "",
             "Labels replaced independently with probability p by a uniform random class "
             "(`rethink.Corruption(\"labels\", p, seed)`; p = 1 is `random_labels`), seeds "
             f"{', '.join(str(s) for s in SEEDS)}; mean ± sd over seeds.", ""]
    for r in noisy.values():
        lines += [f"### {_features_name(r)}, {r['kernel']} kernel", "",
                  "| p | labels changed | train error (max over seeds) | relative residual (max) | norm | "
                  "norm / norm at p = 0 | test error |",
                  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        base = _true(r)["norm"]
        steps = []
        for p in sorted({s["p"] for s in r["label_sets"]}):
            sets = [s for s in r["label_sets"] if s["p"] == p]
            nm, nsd, _ = mean_spread([s["norm"] for s in sets])
            em, esd, _ = mean_spread([s["test_error"] for s in sets])
            ch = mean_spread([s["fraction_changed"] for s in sets])[0]
            steps.append((p, nm, nsd))
            sd = (lambda x, f: f" ± {f(x)}") if len(sets) > 1 else (lambda x, f: " (one fit)")
            lines.append(f"| {p:g} | {_pct(ch)} | {_pct(max(s['train_error'] for s in sets))} | "
                         f"{max(s['relative_residual'] for s in sets):.1e} | {nm:.1f}{sd(nsd, '{:.1f}'.format)} | "
                         f"{nm / base:.2f} | {_pct(em)}{sd(esd, _pct)} |")
        rises = [b[1] - a[1] > 2 * (a[2] + b[2]) for a, b in zip(steps, steps[1:])]
        lines += ["", f"Every label set is interpolated (train error "
                  f"{'0' if all(s['train_error'] == 0 for s in r['label_sets']) else 'not always 0'}, relative "
                  f"residual at most {max(s['relative_residual'] for s in r['label_sets']):.1e}). The norm goes from "
                  f"{steps[0][1]:.1f} (true labels) to {steps[-1][1]:.1f} (random labels), "
                  f"{steps[-1][1] / steps[0][1]:.2f} times larger; "
                  + ("it rises at every step of p by more than twice the spread over seeds."
                     if all(rises) else
                     f"it rises by more than twice the spread over seeds at {sum(rises)} of {len(rises)} steps of p "
                     f"(not at p = {', '.join(f'{steps[i + 1][0]:g}' for i, ok in enumerate(rises) if not ok)})."),
                  ""]
    return lines


def _table_features(runs: dict) -> list[str]:
    lines = ["## 3. Does the norm rank feature maps by test error?", "",
             "True labels, the same kernel on raw pixels and on random convolutional features (one filter seed, 0).",
             "", "| kernel | features | norm | test error |", "| --- | --- | ---: | ---: |"]
    notes = []
    for kernel in ("rbf", "laplacian"):
        pair = [runs.get(f"pixels_{kernel}"), runs.get(f"conv_{kernel}")]
        if None in pair:
            continue
        for r in pair:
            t = _true(r)
            lines.append(f"| {kernel} | {_features_name(r)} | {t['norm']:.1f} | {_pct(t['test_error'])} ± "
                         f"{_pct(_se(t['test_error'], r['n_test']))} |")
        (pn, pe), (cn, ce) = ((_true(r)["norm"], _true(r)["test_error"]) for r in pair)
        se = math.hypot(_se(pe, pair[0]["n_test"]), _se(ce, pair[1]["n_test"]))
        gap = abs(pe - ce)
        better = "the convolutional features" if ce < pe else "the pixels"
        smaller = "the convolutional features" if cn < pn else "the pixels"
        same = (cn < pn) == (ce < pe)
        notes.append(
            f"{kernel}: {better} give the lower test error ({_pct(min(pe, ce))} vs {_pct(max(pe, ce))}, a difference "
            f"of {100 * gap:.2f} points, {gap / se:.1f} times the standard error {100 * se:.2f} points of a difference of "
            f"two independent test errors; the two share the test set, which makes this conservative); {smaller} give the smaller norm ({min(pn, cn):.1f} vs {max(pn, cn):.1f}), so the norm "
            + ("orders the two feature maps as the test error does." if same else
               "orders the two feature maps opposite to the test error."))
    if not notes:
        return []
    return lines + [""] + [f"- {n}" for n in notes] + [
        "", "Norms are RKHS norms of different kernels (both with k(x, x) = 1), compared as the paper compares "
        "pixels and wavelet features; the spread over filter seeds was not measured.", ""]


def _table_solver(runs: dict) -> list[str]:
    lines = ["## Solver: time and accuracy per fit", "",
             "| fit | method | columns | float32 kernel s | float32 Cholesky s | factorizations (shift of the one "
             "used) | PCG iterations | s per iteration | final residual check s | fit s | test prediction s | "
             "peak RSS GiB | load average (1 min) start / end |",
             "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in runs.items():
        s = r["solver"]
        its = s.get("iteration_s", [])
        lines.append(
            f"| {name} | {r['method']} | {10 * len(r['label_sets'])} | {s.get('form_s', 0):.0f} | "
            f"{s.get('factor_s', 0):.0f} | {s.get('factor_attempts', '-')} ({s.get('shift', 0):.1e}) | "
            f"{s.get('iterations', '-')} | "
            f"{(sum(its) / len(its)) if its else 0:.0f} | {s.get('check_s', 0):.0f} | {r['seconds']['fit']:.0f} | "
            f"{r['seconds']['predict_test']:.0f} | {r['peak_rss_gib']:.1f} | "
            f"{r['load_average']['start'][0]:.1f} / {r['load_average']['end'][0]:.1f} |")
    lines += ["", "The machine is shared with other jobs: the load average (2 cores) shows how much of it the fit had. "
              "Times include failed float32 factorizations, which are redone with a 10 times larger shift. The "
              "solver's first shift is u sqrt(n) (u = 2^-24) times K's mean diagonal; a shift of 0 marks a fit run "
              "with an earlier setting whose first factorization was unshifted. The shift changes only the "
              "preconditioner, not the system solved: the solution is the same to the residual shown.",
              "Residual history per fit (largest column, after each iteration):", ""]
    for name, r in runs.items():
        h = r["solver"].get("residual_history", [])
        lines.append(f"- {name}: " + (", ".join(f"{x:.1e}" for x in h) if h else "direct solve"))
    return lines + [""]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fits", default=",".join(FITS), help=f"comma-separated subset of {FITS}")
    ap.add_argument("--n", type=int, default=60000, help="training points (the first n)")
    ap.add_argument("--out", default=str(ROOT / "docs/results/section5"), help="folder of the result JSON files")
    ap.add_argument("--method", default="auto", choices=["auto", "cholesky", "pcg"])
    ap.add_argument("--tol", type=float, default=1e-9, help="largest relative residual per column")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--report", action="store_true", help="write --md from the JSON files in --out")
    ap.add_argument("--md", default=str(ROOT / "docs/SECTION5.md"))
    args = ap.parse_args()
    if args.report:
        text = report(Path(args.out))
        Path(args.md).write_text(text)
        print(text)
        return 0
    torch.set_num_threads(args.threads)
    for name in args.fits.split(","):
        if name not in FITS:
            ap.error(f"unknown fit {name!r}: expected one of {FITS}")
        run_fit(name, args.n, Path(args.out), args.method, args.tol)
    return 0


if __name__ == "__main__":
    sys.exit(main())
