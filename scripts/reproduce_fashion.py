"""Run the paper's protocol on Fashion-MNIST at full scale (60,000 training images), resumably.

    python scripts/reproduce_fashion.py                 # every stage, in priority order
    python scripts/reproduce_fashion.py --stages main   # one stage
    python scripts/reproduce_fashion.py --workers 2     # two worker processes, one torch thread each

Stages (each a ``rethink.randomization_test`` job per model; finished runs are skipped, so an
interrupted run of this script loses at most one epoch of each running job):

- ``main``: the paper's settings (SGD, momentum 0.9, batch 128, lr 0.01, the learning rate
  multiplied by 0.95 per 50,000 examples seen), images centre-cropped to 24x24 (the paper
  crops CIFAR-10's 32x32 to 28x28), per-image whitening, a budget of --max-epochs epochs,
  stopping at 100% training accuracy. Per model and seed: the five variants, label noise
  0..1, the Table 1 grid on true labels (weight decay 5e-4, random 24x24 crops, both) and
  random labels with the same regularizers (Appendix E). Seed 0 of every model first.
- ``constant_lr``: the same models on true labels, label noise and random labels with a
  constant learning rate (lr_decay 1) and a larger budget: can they fit random labels at all
  when the learning rate does not vanish? (seed 0)

Results go to --results/<stage>/<model>/; ``scripts/make_report.py`` writes the report from them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import rethink  # noqa: E402

MODELS = ("mlp1x512", "mlp3x512")
COMMON = dict(dataset="fashion_mnist", crop=24, grid_weight_decay=5e-4, grid_augment="crop")


SEEDS = (0, 1, 2)
MAX_EPOCHS = 50


def main_plan(model: str, seeds=SEEDS, max_epochs: int = MAX_EPOCHS) -> list:
    """The runs of the ``main`` stage for one model (``rethink.randomization.PlannedRun`` list)."""
    return rethink.randomization.plan_runs(seeds=list(seeds), regularized_random=True, model=model,
                                           max_epochs=max_epochs, **COMMON)


def stage_main(args, model: str, seeds: list[int]) -> None:
    rethink.randomization_test(
        model, seeds=seeds, out_dir=args.results / "main" / model, resume=True, progress=not args.quiet,
        device="cpu", devices=["cpu"] * args.workers if args.workers > 1 else None, regularized_random=True,
        max_epochs=args.max_epochs, **COMMON)


CONSTANT_LR = dict(corruptions=("none", "random_labels"), label_noise=(0.0, 0.4, 0.8, 1.0), grid=False, lr_decay=1.0)
CONSTANT_LR_EPOCHS = 300


def constant_lr_plan(model: str, seeds=SEEDS[:1], max_epochs: int = CONSTANT_LR_EPOCHS) -> list:
    """The runs of the ``constant_lr`` stage for one model."""
    return rethink.randomization.plan_runs(seeds=list(seeds), model=model, max_epochs=max_epochs,
                                           **CONSTANT_LR, **COMMON)


def stage_constant_lr(args, model: str, seeds: list[int]) -> None:
    rethink.randomization_test(
        model, seeds=seeds, out_dir=args.results / "constant_lr" / model, resume=True, progress=not args.quiet,
        device="cpu", devices=["cpu"] * args.workers if args.workers > 1 else None,
        max_epochs=args.constant_lr_epochs, **CONSTANT_LR, **COMMON)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", type=Path, default=ROOT / "results" / "fashion")
    p.add_argument("--stages", nargs="+", default=["main", "constant_lr"], choices=["main", "constant_lr"])
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    p.add_argument("--max-epochs", type=int, default=MAX_EPOCHS)
    p.add_argument("--constant-lr-epochs", type=int, default=CONSTANT_LR_EPOCHS)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    if "main" in args.stages:
        for model in args.models:  # seed 0 of every model first, then the other seeds
            stage_main(args, model, args.seeds[:1])
        for model in args.models:
            stage_main(args, model, args.seeds)
    if "constant_lr" in args.stages:
        for model in args.models:
            stage_constant_lr(args, model, args.seeds[:1])
    print(f"done in {(time.perf_counter() - t0) / 3600:.2f} h", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
