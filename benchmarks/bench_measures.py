"""Perturbation measures before and after the sequential tests and the coarse-to-fine search.

PAC-Bayes sigma and sharpness alpha (plain and magnitude-aware: the groups pacbayes,
pacbayes_mag, sharpness, sharpness_mag of ``rethink.measures.compute``) on trained conv nets:
the implementation before the change (kept verbatim as the reference in
tests/test_measures.py) against the current one, back to back in one process with the torch
threads fixed, on the same network, examples and seed.

Setup: small AlexNet and small Inception (``rethink.models.create``, seed 0) trained with plain
SGD (momentum 0.9, batch 128; lr 0.01 and 0.1, 15 and 5 epochs) on the digits training split
(1437 images of 8x8, true labels, the loader's per-image whitening), batch norm folded; the
settings ``compute`` uses in a study: every training example (max_examples=2048 keeps all 1437),
samples=8, sharpness_steps=5, seed 0. Training is not timed.

Also measured: how much work each search did (perturbed-network passes over the examples and
full-batch gradients), the seed-to-seed spread of the current values (the Monte-Carlo error
the two implementations are compared against) for the first model, and one comparison
(8 perturbed copies, all examples) evaluated with torch.func.vmap against a loop.

    python benchmarks/bench_measures.py [--threads 1] [--models alexnet_small,inception_small]
                                        [--spread-seeds 5] [--out benchmarks/RESULTS_measures.md]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

import _common  # noqa: E402, F401  (puts the checkout first on sys.path)
import test_measures as reference  # noqa: E402

import rethink  # noqa: E402
from rethink import measures as M  # noqa: E402

BEGIN, END = "<!-- perturbation:begin -->", "<!-- perturbation:end -->"
TRAIN = {"alexnet_small": (0.01, 15), "inception_small": (0.1, 5)}
GROUPS = [("pacbayes", "pacbayes_sigma", False), ("pacbayes_mag", "pacbayes_sigma", True),
          ("sharpness", "sharpness_alpha", False), ("sharpness_mag", "sharpness_alpha", True)]


def trained(name: str, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.nn.Module, float]:
    lr, epochs = TRAIN[name]
    net = rethink.models.create(name, (1, 8, 8), 10, seed=0)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        net.train()
        for idx in torch.randperm(len(x), generator=g).split(128):
            opt.zero_grad()
            F.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
    folded = M.fold_batchnorm(net.eval(), x[:1])
    with torch.no_grad():
        acc = float((folded(x).argmax(1) == y).double().mean())
    return folded, acc


class Work:
    """Counts perturbed-network example passes (examples x weight sets) and full-batch gradients."""

    def __init__(self):
        self.passes = 0
        self.grads = 0.0
        self._saved = []
        self._depth = 0  # > 0 inside the reference's mean_noisy_accuracy (whose loop calls accuracy)

    def _wrap(self, cls, name, count, nest=False):
        orig = getattr(cls, name)

        def wrapped(obj, *a, **k):
            count(obj, *a, **k)
            self._depth += nest
            try:
                return orig(obj, *a, **k)
            finally:
                self._depth -= nest

        self._saved.append((cls, name, orig))
        setattr(cls, name, wrapped)

    def __enter__(self):
        def new_correct(obj, stacked, x, y):
            self.passes += stacked[0].shape[0] * len(x) / obj.n

        def new_grad(obj, params, idx=None):
            self.grads += 1.0 if idx is None else len(idx) / obj.n

        def new_accuracy(obj, params, idx=None):
            self.passes += 1.0 if idx is None else len(idx) / obj.n

        def old_mean(obj, std, samples, seed):
            self.passes += samples

        def old_accuracy(obj, params):
            self.passes += 1.0 if self._depth == 0 else 0.0

        def old_grad(obj, params):
            self.grads += 1.0

        self._wrap(M._Perturber, "_correct", new_correct)
        self._wrap(M._Perturber, "accuracy", new_accuracy)
        self._wrap(M._Perturber, "loss_grad", new_grad)
        self._wrap(reference._RefPerturber, "mean_noisy_accuracy", old_mean, nest=True)
        self._wrap(reference._RefPerturber, "accuracy", old_accuracy)
        self._wrap(reference._RefPerturber, "loss_grad", old_grad)
        return self

    def __exit__(self, *exc):
        for cls, name, orig in reversed(self._saved):
            setattr(cls, name, orig)


def measure(fn, net, x, y, mag: bool, seed: int = 0):
    kw = {"samples": 8} if "pacbayes" in fn.__name__ else {"steps": 5}
    with Work() as work:
        c0, t0 = time.process_time(), time.perf_counter()
        value = fn(net, x, y, magnitude_aware=mag, seed=seed, **kw)
        cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    return value, cpu, work.passes, work.grads, wall


def vmap_vs_loop(net, x, y) -> tuple[float, float]:
    pert = M._Perturber(net, x, y, 1 << 30, 1024, seed=0)
    z = pert.normal(8, 0)
    stacked = [p.unsqueeze(0) + 0.01 * zi for p, zi in zip(pert.params, z)]
    out = []
    for batched in (True, False):
        pert.batched = batched
        pert._correct(stacked, x[:64], y[:64])  # warm-up
        t0 = time.process_time()
        pert._correct(stacked, x, y)
        out.append(time.process_time() - t0)
    return out[0], out[1]


def fmt(v: float) -> str:
    return "inf" if v == math.inf else f"{v:.4g}"


def run(models: list[str], spread_seeds: int) -> str:
    x, y = M.training_tensors("digits")
    lines = []
    totals = []
    spread_lines = []
    vmap_lines = []
    for name in models:
        net, acc = trained(name, x, y)
        print(f"{name}: train accuracy {acc:.4f}", file=sys.stderr)
        before = after = wall_before = wall_after = 0.0
        for group, fn_name, mag in GROUPS:
            old = measure(getattr(reference, f"reference_{fn_name}"), net, x, y, mag)
            new = measure(getattr(M, fn_name), net, x, y, mag)
            before, after = before + old[1], after + new[1]
            wall_before, wall_after = wall_before + old[4], wall_after + new[4]
            rel = "" if old[0] in (0.0, math.inf) else f"{new[0] / old[0] - 1:+.1%}"
            lines.append(f"| {name} | {group} | {fmt(old[0])} | {fmt(new[0])} | {rel} | {old[1]:.1f} | {new[1]:.1f} | "
                         f"{old[1] / new[1]:.1f}x | {old[2]:.1f} / {old[3]:.0f} | {new[2]:.1f} / {new[3]:.1f} |")
            print(lines[-1], file=sys.stderr, flush=True)
        totals.append(f"| {name} | {acc:.2%} | {before:.1f} | {after:.1f} | {before / after:.1f}x | "
                      f"{wall_before:.1f} | {wall_after:.1f} |")
        v, lp = vmap_vs_loop(net, x, y)
        vmap_lines.append(f"| {name} | {v:.2f} | {lp:.2f} | {v / lp:.2f} |")
        if name == models[0] and spread_seeds > 1:
            for group, fn_name, mag in GROUPS:
                vals = [measure(getattr(M, fn_name), net, x, y, mag, seed=s)[0] for s in range(spread_seeds)]
                finite = [v for v in vals if 0 < v < math.inf]
                rel_sd = statistics.stdev(finite) / statistics.mean(finite) if len(finite) > 1 else math.nan
                spread_lines.append(f"| {name} | {group} | {', '.join(fmt(v) for v in vals)} | "
                                    + ("n/a" if math.isnan(rel_sd) else f"{rel_sd:.1%}") + " |")
                print(spread_lines[-1], file=sys.stderr, flush=True)
    head = [
        "Digits training split (1437 images of 8x8, true labels), the settings `compute` uses in a study "
        "(every example, samples=8, sharpness_steps=5, seed 0). Before: the implementation of rethink 0.1.0 "
        "(commit 92ff1f5; kept as the reference in tests/test_measures.py); after: the current one. Both "
        "timed back to back in one process; training not timed.",
        "",
        f"Machine: {_common.machine('cpu')}; a shared machine, so only the ratios measured in this one run "
        "count. Command: `python benchmarks/bench_measures.py --threads "
        f"{torch.get_num_threads()} --models {','.join(models)} --spread-seeds {spread_seeds}`.",
        "",
        "### Seconds per run, all four perturbation groups",
        "",
        "CPU seconds of the process (one torch thread: the compute, less exposed than wall time to the "
        "other jobs on this shared machine); the speed-up is their ratio. Wall seconds for reference.",
        "",
        "| model | train acc. | before CPU s | after CPU s | speed-up | before wall s | after wall s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *totals,
        "",
        "### Per group",
        "",
        "passes: network passes over all the examples (perturbed or not; passes over part of them count as "
        "that fraction); grads: full-batch gradients of the sharpness ascent (on a subset: that fraction).",
        "",
        "| model | group | before value | after value | after / before - 1 | before CPU s | after CPU s | speed-up | "
        "before passes / grads | after passes / grads |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *lines,
    ]
    if spread_lines:
        head += [
            "",
            "### Monte-Carlo error: the current values over seeds 0 to " + str(spread_seeds - 1),
            "",
            "The seed draws the noise (PAC-Bayes), the ascent's start (sharpness) and the order in which the "
            "sequential tests visit the examples. rel. sd: standard deviation over the seeds / mean (finite, "
            "non-zero values).",
            "",
            "| model | group | values | rel. sd |",
            "| --- | --- | --- | --- |",
            *spread_lines,
        ]
    head += [
        "",
        "### Batched (torch.func.vmap) against a loop on this CPU",
        "",
        "CPU seconds for one comparison: 8 perturbed copies of the network on all 1437 examples. The CPU "
        "default is the loop; vmap is the default on CUDA.",
        "",
        "| model | vmap s | loop s | vmap / loop |",
        "| --- | --- | --- | --- |",
        *vmap_lines,
    ]
    return "\n".join(head) + "\n"


def replace_block(path: Path, body: str) -> None:
    text = path.read_text() if path.exists() else ""
    block = f"{BEGIN}\n{body}{END}"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text = (text.rstrip() + "\n\n" if text else "") + "## Perturbation measures: before and after\n\n" + block + "\n"
    path.write_text(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="torch threads (fixed for the whole run)")
    ap.add_argument("--models", default="alexnet_small,inception_small")
    ap.add_argument("--spread-seeds", type=int, default=5, help="seeds for the spread of the first model (0: skip)")
    ap.add_argument("--out", default=None, help="markdown file whose perturbation part is replaced")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in TRAIN]
    if unknown:
        ap.error(f"unknown model(s) {unknown}; choose from {list(TRAIN)}")
    body = run(models, args.spread_seeds)
    print(body)
    if args.out:
        replace_block(Path(args.out), body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
