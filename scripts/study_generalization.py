"""The generalization-measures study and the memorization experiment, resumably.

    python scripts/study_generalization.py train         # the model zoo (rethink.zoo.ZOO_GRID, 2 seeds)
    python scripts/study_generalization.py measures      # every zoo run's complexity measures (cached per run)
    python scripts/study_generalization.py study         # score the measures: tau, Psi, CMI, sign-error
    python scripts/study_generalization.py memorization  # Feldman & Zhang scores on Fashion-MNIST with label noise
    python scripts/study_generalization.py report        # docs/STUDY.md from the committed files

Results go to results/zoo and results/memorization; ``report`` reads the copies under
docs/results/ (``python scripts/make_report.py collect`` stores them) and writes docs/STUDY.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import rethink  # noqa: E402

ZOO_DIR = ROOT / "results" / "zoo"
MEMO_DIR = ROOT / "results" / "memorization"
#: The memorization experiment: MLP 1x512 on the first 5,000 Fashion-MNIST training images
#: with 20% of the labels flipped to another class, 70% subsets, up to 100 fits.
MEMO = dict(model="mlp1x512", dataset="fashion_mnist", corruption="labels:0.2:different", subset=0.7,
            train_pool=5000, batch_size=64, max_epochs=200, test_size=2000)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["train", "measures", "study", "memorization", "report"])
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=int, default=100, help="memorization fits")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    devices = ["cpu"] * args.workers if args.workers > 1 else None
    t0 = time.perf_counter()
    if args.what in ("train", "measures"):
        rep = rethink.zoo(out_dir=ZOO_DIR, seeds=(0, 1), measures=args.what == "measures", device="cpu",
                          devices=devices, progress=False)
        print(f"{len(rep.results)} runs, measures of {len(rep.measures)}")
    elif args.what == "study":
        rep = rethink.study.study(ZOO_DIR, device="cpu", progress=False)
        print(rep.paths)
    elif args.what == "memorization":
        rep = rethink.memorization(runs=args.runs, out_dir=MEMO_DIR, device="cpu", devices=devices, progress=False,
                                   **MEMO)
        print(f"AUROC {rep.auroc:.3f}; by runs {rep.auroc_by_runs}")
    print(f"{args.what}: {(time.perf_counter() - t0) / 60:.1f} min", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
