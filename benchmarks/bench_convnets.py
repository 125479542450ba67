"""Conv-net training steps and the per-run overhead of ``rethink.fit_random``, as ratios
measured in one run.

1. Small AlexNet's training step (batch 128, 1x24x24 inputs, SGD with momentum) with
   rethink.models (fused ReLU -> max-pool -> LRN, rethink.nn.ReLUMaxPoolLRN) against the
   same network built from torch's modules (``SmallAlexNet(fused=False)``).
2. Small Inception's training step (same batch and inputs), contiguous against channels_last
   memory (what the trainer uses for it on a CPU). It has no fused kernel (no ``fused``
   flag: its step is convolutions and batch norm).
3. A 1-epoch MLP 1x512 run on 10,000 Fashion-MNIST training images,
   ``fit_random("mlp1x512", "fashion_mnist", "none", train_size=10000, max_epochs=1)``,
   without and with ``out_dir`` (a temporary folder, so the result files are written),
   against a plain PyTorch loop doing the same work: the same model from
   ``rethink.models.create``, the same number of SGD steps (batch 128, lr 0.01, momentum
   0.9, a new shuffle per epoch) and one evaluation pass (loss and accuracy) over the
   10,000 training and the 10,000 test images, on float tensors made beforehand (the
   loader's per-image-whitened 1x28x28 views; the run has no crop). The runs alternate,
   ``--runs`` times each; each ratio is taken within one round and the median is printed,
   and so is the ratio of the fastest runs of each kind (load from other processes only
   slows a run down).
   The first ``fit_random`` call of the process also reads the dataset files (printed
   apart: ``cold``, after torch's one-time import of torch._dynamo, which the first
   optimizer of any process pays); later calls of the same process reuse the decompressed
   files (rethink.datasets keeps them while they are unchanged).

    python benchmarks/bench_convnets.py [--threads 2] [--reps 20] [--inception-reps 5] [--runs 5]
        [--skip alexnet,inception,mlp]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rethink  # noqa: E402
from rethink import _build, datasets, models  # noqa: E402
from rethink.loader import RandomizedLoader  # noqa: E402

MLP_RUN = dict(model="mlp1x512", dataset="fashion_mnist", corruption="none", train_size=10000, max_epochs=1,
               progress=False)


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


def mlp_data():
    """The run's training subset and test split as float tensors, as the run's loaders make them."""
    spec = rethink.train.make_spec(**{k: v for k, v in MLP_RUN.items() if k != "progress"})[0]
    spec = spec.resolved()
    ds = datasets.load(spec.dataset)
    from rethink.spec import subset_indices

    subset = subset_indices(len(ds.train), spec.train_size, spec.subset_seed, spec.train_pool)
    kw = dict(crop=spec.crop, normalize=spec.normalize)
    xtr, ytr = RandomizedLoader(ds, "none", "train", 1024, False, subset=subset, **kw).materialize()
    xte, yte = RandomizedLoader(ds, "none", "test", 1024, False, **kw).materialize()
    return spec, (xtr, ytr), (xte, yte)


def plain_run(spec, train, test, num_classes: int) -> float:
    """The same work as the run, as a plain PyTorch loop; seconds."""
    t0 = time.perf_counter()
    (xtr, ytr), (xte, yte) = train, test
    net = models.create(spec.model, tuple(xtr.shape[1:]), num_classes, seed=spec.seed)
    opt = torch.optim.SGD(net.parameters(), lr=spec.lr, momentum=spec.momentum)
    n, bs = xtr.shape[0], spec.batch_size
    for _ in range(spec.max_epochs):
        net.train()
        perm = torch.randperm(n)
        for k in range(0, n, bs):
            i = perm[k:k + bs]
            loss = F.cross_entropy(net(xtr.index_select(0, i)), ytr.index_select(0, i))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            for x, y in ((xtr, ytr), (xte, yte)):
                acc = torch.zeros(3, dtype=torch.float64)
                for k in range(0, x.shape[0], 1024):
                    out = net(x[k:k + 1024])
                    acc[0] += F.cross_entropy(out, y[k:k + 1024], reduction="sum").double()
                    acc[1] += (out.argmax(1) == y[k:k + 1024]).sum()
                    acc[2] += out.shape[0]
                acc.tolist()
    return time.perf_counter() - t0


def fit_time(out_dir: bool) -> float:
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        r = rethink.fit_random(**MLP_RUN, out_dir=d if out_dir else None)
        if out_dir and not Path(r.path).is_file():
            raise RuntimeError(f"the result file {r.path} was not written")
    return time.perf_counter() - t0


def bench_mlp(runs: int) -> None:
    # torch imports torch._dynamo when the process makes its first optimizer (~1 s here): a
    # cost of any PyTorch program, paid before the first run so that "cold" is rethink's own
    torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.1)
    cold = fit_time(False)  # the first call of the process: reads the dataset files as well
    spec, train, test = mlp_data()
    num_classes = int(train[1].max()) + 1
    plain_run(spec, train, test, num_classes)  # warm-up
    rows = []
    for r in range(runs):
        p = plain_run(spec, train, test, num_classes)
        f = fit_time(False)
        fo = fit_time(True)
        rows.append((p, f, fo))
        print(f"round {r}: plain loop {p * 1e3:.0f} ms, fit_random {f * 1e3:.0f} ms ({f / p:.2f}x), "
              f"with out_dir {fo * 1e3:.0f} ms ({fo / p:.2f}x)")
    med = [statistics.median(v) for v in zip(*rows)]
    ratio = statistics.median(f / p for p, f, _ in rows)
    ratio_out = statistics.median(fo / p for p, _, fo in rows)
    print(f"MLP 1x512, 1 epoch, {spec.train_size} Fashion-MNIST images: median plain loop {med[0] * 1e3:.0f} ms, "
          f"fit_random {med[1] * 1e3:.0f} ms, with out_dir {med[2] * 1e3:.0f} ms; median ratio {ratio:.2f}x, "
          f"with out_dir {ratio_out:.2f}x; cold first call {cold * 1e3:.0f} ms ({cold / med[0]:.2f}x the median "
          f"plain loop)")
    # another process on the machine only ever slows a run down: the fastest of each kind is
    # the least disturbed
    best = [min(v) for v in zip(*rows)]
    print(f"fastest of {runs}: plain loop {best[0] * 1e3:.0f} ms, fit_random {best[1] * 1e3:.0f} ms "
          f"({best[1] / best[0]:.2f}x), with out_dir {best[2] * 1e3:.0f} ms ({best[2] / best[0]:.2f}x)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=20, help="timed steps per small AlexNet measurement")
    p.add_argument("--inception-reps", type=int, default=5, help="timed steps of small Inception")
    p.add_argument("--runs", type=int, default=5, help="rounds of the MLP run comparison")
    p.add_argument("--skip", default="", help="comma-separated parts to leave out: alexnet, inception, mlp")
    args = p.parse_args()
    skip = {s for s in args.skip.split(",") if s}
    if skip - {"alexnet", "inception", "mlp"}:
        p.error(f"unknown parts in --skip: {sorted(skip - {'alexnet', 'inception', 'mlp'})}")
    torch.set_num_threads(args.threads)
    x, y = torch.randn(128, 1, 24, 24), torch.randint(0, 10, (128,))
    print(f"cpu: {_build.cpu_model()}, torch {torch.__version__}, {args.threads} threads")
    if "alexnet" not in skip:
        for r in range(2):
            torch.manual_seed(0)
            ref = step_time(models.SmallAlexNet((1, 24, 24), 10, fused=False), x, y, args.reps)
            torch.manual_seed(0)
            fused = step_time(models.SmallAlexNet((1, 24, 24), 10, fused=True), x, y, args.reps)
            print(f"round {r}: small AlexNet step, torch modules {ref * 1e3:.1f} ms, rethink.models "
                  f"{fused * 1e3:.1f} ms, speed-up {ref / fused:.2f}x")
    if "inception" not in skip:
        for r in range(2):
            net = models.create("inception_small", (1, 24, 24), 10, seed=0)
            t = step_time(net, x, y, args.inception_reps)
            cl = models.create("inception_small", (1, 24, 24), 10, seed=0).to(memory_format=torch.channels_last)
            t_cl = step_time(cl, x.to(memory_format=torch.channels_last), y, args.inception_reps)
            print(f"round {r}: small Inception step: contiguous {t * 1e3:.1f} ms, channels_last (what the trainer "
                  f"uses on a CPU) {t_cl * 1e3:.1f} ms, speed-up {t / t_cl:.2f}x (no fused kernel: torch's "
                  f"convolutions and batch norm)")
    if "mlp" not in skip:
        bench_mlp(args.runs)


if __name__ == "__main__":
    main()
