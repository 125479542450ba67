"""Make docs/REPRODUCTION.md: the paper's randomization test run with rethink, next to the paper.

    python scripts/make_report.py                      # everything (resumable)
    python scripts/make_report.py --report-only        # rewrite the report from the results on disk

What it runs (every run resumable: finished runs in --results are skipped):

1. On the embedded digits dataset, for each model in --models (default: mlp1x512, mlp3x512,
   alexnet_small, inception_small), ``rethink.randomization_test``: the five variants,
   the label-noise sweep (0, 0.2, ..., 1) and the Table 1 grid (true labels with weight
   decay --grid-weight-decay and augmentation --grid-augment). ``--noise-models`` and
   ``--grid-models`` restrict the sweep and the grid to some models (a subset, named in
   the report).
2. CIFAR-10-scale synthetic data: 50,000 Gaussian 3x32x32 training images with random
   labels (centre-cropped to 28x28 as in the paper), MLP 1x512: steps and seconds to fit.

Then it writes docs/REPRODUCTION.md and docs/figures/*.png from the result files only:
every number in the report comes from a run (the paper's numbers are quoted as the paper's).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import rethink  # noqa: E402
from rethink import plots  # noqa: E402
from rethink._build import describe_machine  # noqa: E402
from rethink.randomization import DEFAULT_CORRUPTIONS, DEFAULT_LABEL_NOISE, verdict  # noqa: E402
from rethink.results import Result  # noqa: E402

ALL_MODELS = ("mlp1x512", "mlp3x512", "alexnet_small", "inception_small")

#: The paper's Table 1 (CIFAR-10), train/test accuracy in %: quoted from the paper, not produced here.
PAPER_TABLE1 = {
    "inception_small": {"aug+wd": (100, 89.05), "aug": (100, 89.31), "wd": (100, 86.03), "none": (100, 85.75), "random_labels": (100, 9.78)},
    "inception_small_nobn": {"wd": (100, 83.00), "none": (100, 82.00), "random_labels": (100, 10.12)},
    "alexnet_small": {"aug+wd": (99.90, 81.22), "aug": (99.82, 79.66), "wd": (100, 77.36), "none": (100, 76.07), "random_labels": (99.82, 9.86)},
    "mlp3x512": {"wd": (100, 53.35), "none": (100, 52.39), "random_labels": (100, 10.48)},
    "mlp1x512": {"wd": (99.80, 50.39), "none": (100, 50.51), "random_labels": (99.34, 10.61)},
}
#: Steps until training loss <= 0.01 for small Inception on CIFAR-10, measured by a reproduction of the
#: paper (quoted, not produced here): true labels, random labels, shuffled px, random px, Gaussian.
PAPER_INCEPTION_STEPS = {"true": 5_700, "random_labels": 17_700, "shuffled_pixels": 6_700, "random_pixels": 13_000, "gaussian": 9_900}
#: Parameter counts of the paper's models on CIFAR-10 (28x28x3 input), quoted from the paper.
PAPER_PARAMS = {"mlp1x512": 1_209_866, "mlp3x512": 1_735_178, "alexnet_small": 1_387_786, "inception_small": 1_649_402}
SETTINGS = ("aug+wd", "aug", "wd", "none", "random_labels")
SETTING_NAMES = {
    "aug+wd": "augmentation + weight decay",
    "aug": "augmentation",
    "wd": "weight decay",
    "none": "no regularizer",
    "random_labels": "random labels",
}


# ----------------------------------------------------------------------------- running


def machine_line(device: torch.device) -> str:
    return describe_machine(device)


def per_model(text: str | None, cast) -> dict[str, Any]:
    """Parse "model=value;model=value" (values may hold commas)."""
    out: dict[str, Any] = {}
    for item in (text or "").split(";"):
        if item.strip():
            k, _, v = item.partition("=")
            out[k.strip()] = cast(v.strip())
    return out


def run_digits(args) -> None:
    for model in args.models:
        t0 = time.perf_counter()
        noise = DEFAULT_LABEL_NOISE if model in args.noise_models else (0.0, 1.0)
        max_epochs = args.model_max_epochs.get(model, args.max_epochs)
        rethink.randomization_test(
            model,
            "digits",
            corruptions=args.model_corruptions.get(model, DEFAULT_CORRUPTIONS),
            label_noise=noise,
            seeds=args.seeds,
            out_dir=args.results / "digits" / model,
            device=args.device,
            resume=True,
            progress=not args.no_progress,
            grid=model in args.grid_models,
            grid_weight_decay=args.grid_weight_decay,
            grid_augment=args.grid_augment,
            **({"max_epochs": max_epochs} if max_epochs else {}),
        )
        print(f"digits/{model}: {time.perf_counter() - t0:.0f} s", flush=True)


def synthetic_dataset(n_train: int):
    return rethink.datasets.synthetic(n_train, 1000, shape=(3, 32, 32), num_classes=10, seed=0)


def run_synthetic(args) -> None:
    t0 = time.perf_counter()
    ds = synthetic_dataset(args.synthetic_n)
    rethink.fit_random(
        "mlp1x512",
        ds,
        "gaussian",
        crop=28,
        max_epochs=args.synthetic_max_epochs,
        device=args.device,
        seed=0,
        out_dir=args.results / "synthetic",
        resume=True,
        progress=not args.no_progress,
        run_name=f"mlp1x512_synthetic{args.synthetic_n}_gaussian_random_labels_s0",
    )
    print(f"synthetic: {time.perf_counter() - t0:.0f} s", flush=True)


# ----------------------------------------------------------------------------- report helpers


def load_folder(folder: Path) -> list[Result]:
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("*.json")):
        try:
            r = Result.load(path)
        except ValueError:
            continue
        if r.history and r.status == "completed":
            out.append(r)
    return out


def pct(x: float | None, digits: int = 2) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100.0 * x:.{digits}f}"


def setting_of(d: dict[str, Any]) -> str | None:
    wd, aug = bool(d["weight_decay"]), d["augment"] is not None
    if d["variant"] == "true":
        return {(True, True): "aug+wd", (True, False): "aug", (False, True): "wd", (False, False): "none"}[(aug, wd)]
    if d["variant"] == "random_labels" and not wd and not aug:
        return "random_labels"
    return None


def mean(xs) -> float:
    xs = [float(x) for x in xs if x is not None and not math.isnan(float(x))]
    return sum(xs) / len(xs) if xs else math.nan


def cell(ds: list[dict[str, Any]]) -> tuple[float, float] | None:
    if not ds:
        return None
    return mean(d["train_acc"] for d in ds), mean(d["test_acc"] for d in ds)


def fit_steps(ds: list[dict[str, Any]]) -> float:
    if not ds or any(d["steps_to_fit"] is None for d in ds):
        return math.nan
    return mean(d["steps_to_fit"] for d in ds)


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out) + "\n"


def rel(path: Path, start: Path) -> str:
    return os.path.relpath(path, start).replace(os.sep, "/")


def fmt_seconds(s: float) -> str:
    if math.isnan(s):
        return "-"
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


# ----------------------------------------------------------------------------- the report


def write_report(args) -> Path:
    docs, figs = args.docs, args.docs / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    by_model: dict[str, list[Result]] = {}
    for model in ALL_MODELS:
        rs = load_folder(args.results / "digits" / model)
        if rs:
            by_model[model] = rs
    digits_all = [r for rs in by_model.values() for r in rs]
    synth = load_folder(args.results / "synthetic")
    descs = {m: [plots.describe(r) for r in rs] for m, rs in by_model.items()}
    lines: list[str] = []
    w = lines.append

    w("# Reproduction: Zhang et al. 2017, Table 1 and Figure 1, with rethink\n")
    w(
        "This file is generated by `python scripts/make_report.py` from the result files the runs wrote "
        f"(`{rel(args.results, ROOT)}/`); every number and figure below except the paper's own comes from "
        "those files. The paper's numbers are CIFAR-10 (50,000 training images, 3x28x28 after cropping); "
        "the runs here use the digits dataset embedded in rethink (scikit-learn's 8x8 handwritten digits), "
        "which is what a 2-core CPU can train every model of the paper on in minutes, plus a CIFAR-10-sized "
        "synthetic set for the speed of fitting noise.\n"
    )
    devices = sorted({str(r.config.get("versions", {}).get("device") or r.config.get("device")) for r in digits_all + synth})
    total = sum(d["seconds"] for ds in descs.values() for d in ds if not math.isnan(d["seconds"]))
    total += sum(plots.describe(r)["seconds"] for r in synth if not math.isnan(plots.describe(r)["seconds"]))
    w(f"- Machine of this report: {machine_line(torch.device('cpu'))}.")
    w(f"- Devices recorded in the results: {', '.join(devices) if devices else 'none'}.")
    w(f"- Training time of all runs shown, summed: {fmt_seconds(total)}.")
    w(f"- rethink {rethink.__version__}; runs: {len(digits_all)} on digits, {len(synth)} synthetic.")
    w("- Times come from a 2-core machine shared with other work, often with two runs in parallel, one torch thread each: they are noisy.")
    w(f"- GPU: {'a CUDA device was visible: ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU was available for this report, so the CIFAR-scale GPU run is not part of it'}.")
    w("")

    # ---- what ran
    w("## What ran\n")
    rows = []
    for model in ALL_MODELS:
        ds = descs.get(model, [])
        variants = sorted({d["variant"] for d in ds if d["variant"] in plots.VARIANTS and not d["weight_decay"] and d["augment"] is None}, key=list(plots.VARIANTS).index)
        levels = sorted({d["label_noise"] for d in ds if d["label_noise"] is not None and not d["weight_decay"] and d["augment"] is None})
        grid = sorted({setting_of(d) for d in ds if setting_of(d) in ("aug+wd", "aug", "wd")}, key=SETTINGS.index)
        wds = sorted({d["weight_decay"] for d in ds if d["weight_decay"]})
        augs = sorted({d["augment"] for d in ds if d["augment"]})
        fitted = sum(1 for d in ds if d["steps_to_fit"] is not None)
        rows.append(
            [
                plots._model_label(model),
                len(ds),
                ", ".join(plots.VARIANTS[v] for v in variants) or "none",
                ", ".join(f"{p:g}" for p in levels) or "none",
                (", ".join(grid) + f" (wd {'/'.join(f'{v:g}' for v in wds) or '-'}, {'/'.join(augs) or 'no augmentation'})") if grid else "not run",
                f"{fitted}/{len(ds)}",
                fmt_seconds(sum(d["seconds"] for d in ds if not math.isnan(d["seconds"]))),
            ]
        )
    w(md_table(["model", "runs", "variants", "label-noise levels", "Table 1 grid", "runs that reached 100% train acc.", "training time"], rows))
    missing = []
    for m in ALL_MODELS:
        ds = descs.get(m, [])
        if not ds:
            missing.append(f"{plots._model_label(m)}: every run")
            continue
        gaps = []
        if not any(d["variant"] == "labels" for d in ds):
            gaps.append("the label-noise levels between 0 and 1")
        if not any(setting_of(d) in ("aug+wd", "aug", "wd") for d in ds):
            gaps.append("the Table 1 grid")
        if gaps:
            missing.append(f"{plots._model_label(m)}: " + " and ".join(gaps))
    if missing:
        w(
            "This is a subset of the full report: left out for time were "
            + "; ".join(missing)
            + ". `python scripts/make_report.py` (defaults) runs them all; it skips the runs already on disk.\n"
        )
    conf = digits_all[0].config if digits_all else {}
    n_train = sorted({r.config.get("num_train") for r in digits_all if r.config.get("num_train")})
    n_test = sorted({r.config.get("num_test") for r in digits_all if r.config.get("num_test")})
    shapes = sorted({"x".join(str(v) for v in r.config.get("input_shape", [])) for r in digits_all})
    digits_size = (
        f"{'/'.join(f'{n:,}' for n in n_train) or '?'} training and {'/'.join(f'{n:,}' for n in n_test) or '?'} test "
        f"images, input {'/'.join(shapes) or '?'}"
    )
    per_image = ", ".join(
        f"{plots._model_label(m)} {rs[0].config['num_parameters'] / rs[0].config['num_train']:,.0f}"
        for m, rs in by_model.items()
        if rs[0].config.get("num_parameters") and rs[0].config.get("num_train")
    )
    paper_per_image = ", ".join(f"{plots._model_label(m)} {n / 50_000:,.0f}" for m, n in PAPER_PARAMS.items())
    true_steps = [
        f"{plots._model_label(m)} {fit_steps([d for d in ds if setting_of(d) == 'none']):,.0f}"
        for m, ds in descs.items()
        if not math.isnan(fit_steps([d for d in ds if setting_of(d) == "none"]))
    ]
    lrs = ", ".join(sorted({f"{r.config.get('lr'):g} ({plots._model_label(r.config.get('model'))})" for r in digits_all}))
    budgets = ", ".join(
        f"{plots._model_label(m)} {'/'.join(str(v) for v in sorted({r.config.get('max_epochs') for r in rs}))}"
        for m, rs in by_model.items()
    )
    if conf:
        w(
            f"Training settings (from the results): SGD, momentum {conf.get('momentum')}, batch {conf.get('batch_size')}, "
            f"learning rate {lrs}, "
            f"multiplied by {conf.get('lr_decay')} per {conf.get('lr_decay_examples'):,} examples, normalization "
            f"{conf.get('normalize')}, {'center crop ' + str(conf.get('crop')) if conf.get('crop') else 'no crop'}, until 100% train accuracy or an epoch budget ({budgets}).\n"
        )

    # ---- Table 1
    w("## Table 1: train / test accuracy (%)\n")
    w(f"Paper: CIFAR-10. rethink: digits ({digits_size}). Each cell is train/test.\n")
    rows = []
    for model in ALL_MODELS:
        if model not in descs and model not in PAPER_TABLE1:
            continue
        for s in SETTINGS:
            paper = PAPER_TABLE1.get(model, {}).get(s)
            ours = cell([d for d in descs.get(model, []) if setting_of(d) == s])
            if paper is None and ours is None:
                continue
            rows.append(
                [
                    plots._model_label(model),
                    SETTING_NAMES[s],
                    f"{paper[0]:.2f}/{paper[1]:.2f}" if paper else "-",
                    f"{pct(ours[0])}/{pct(ours[1])}" if ours else "not run",
                ]
            )
    w(md_table(["model", "setting", "paper (CIFAR-10)", "rethink (digits)"], rows))
    if digits_all:
        w("The library's own table (`rethink.plots.table1` on all digits results; the per-model `table1.md` files hold the same numbers):\n")
        w(plots.table1(digits_all))

    # ---- agreement, computed
    w("### Where Table 1 agrees and differs\n")
    for model, ds in descs.items():
        label = plots._model_label(model)
        true = [d for d in ds if setting_of(d) == "none"]
        rl = [d for d in ds if setting_of(d) == "random_labels"]
        if not true or not rl:
            continue
        paper = PAPER_TABLE1.get(model, {})
        t_tr, t_te = cell(true)
        r_tr, r_te = cell(rl)
        chance = mean(d["chance"] for d in rl)
        fits = r_tr >= 0.9995
        sent = [
            f"**{label}**: random labels reach {pct(r_tr)}% train accuracy "
            f"({'fitted, as in the paper' if fits else 'not fitted within the epoch budget, unlike the paper'}, "
            f"paper {paper.get('random_labels', ('-',))[0]}%), and test accuracy {pct(r_te)}% "
            f"({'within 5 points of' if abs(r_te - chance) <= 0.05 else 'more than 5 points from'} chance, {pct(chance, 0)}%; paper {paper.get('random_labels', (0, '-'))[1]}%)."
        ]
        if "none" in paper:
            diff = 100 * t_te - paper["none"][1]
            sent.append(
                f"True-label test accuracy is {pct(t_te)}% against the paper's {paper['none'][1]:.2f}% "
                f"({diff:+.1f} points){': digits is a much easier task than CIFAR-10 (small centred grayscale strokes, little variation within a class)' if diff > 0 else ''}."
            )
        regs = {s: cell([d for d in ds if setting_of(d) == s]) for s in ("aug+wd", "aug", "wd")}
        parts = []
        for s, c in regs.items():
            if c is None:
                continue
            ours = 100 * (c[1] - t_te)
            theirs = paper[s][1] - paper["none"][1] if s in paper and "none" in paper else None
            parts.append(
                f"{SETTING_NAMES[s]} {ours:+.2f} points" + (f" (paper {theirs:+.2f})" if theirs is not None else "")
            )
        if parts:
            num_test = by_model[model][0].config.get("num_test")
            one = f" (one test image is {100 / num_test:.2f} points)" if num_test else ""
            sent.append("Regularizers change true-label test accuracy by: " + "; ".join(parts) + one + ".")
        w(" ".join(sent) + "\n")
    effects = [
        100 * (cell([d for d in ds if setting_of(d) == s])[1] - cell([d for d in ds if setting_of(d) == "none"])[1])
        for ds in descs.values()
        for s in ("aug+wd", "aug", "wd")
        if cell([d for d in ds if setting_of(d) == s]) and cell([d for d in ds if setting_of(d) == "none"])
    ]
    aug_effects = [
        100 * (cell([d for d in ds if setting_of(d) == s])[1] - cell([d for d in ds if setting_of(d) == "none"])[1])
        for ds in descs.values()
        for s in ("aug+wd", "aug")
        if cell([d for d in ds if setting_of(d) == s]) and cell([d for d in ds if setting_of(d) == "none"])
    ]
    paper_effects = [t[s][1] - t["none"][1] for t in PAPER_TABLE1.values() for s in ("aug+wd", "aug", "wd") if s in t and "none" in t]
    if effects:
        w(
            f"Regularizers: here they move true-label test accuracy by {min(effects):+.2f} to {max(effects):+.2f} points "
            f"(paper: {min(paper_effects):+.2f} to {max(paper_effects):+.2f}). As in the paper, every model reaches 100% "
            "training accuracy with or without them and generalizes well without them"
            + ("; the paper's gains from cropping on CIFAR-10 do not carry over to flips of 8x8 digits.\n" if aug_effects and max(aug_effects) <= 0 else ".\n")
            if all(d["train_acc"] >= 0.9995 for ds in descs.values() for d in ds if setting_of(d) in ("aug+wd", "aug", "wd", "none"))
            else f"Regularizers: here they move true-label test accuracy by {min(effects):+.2f} to {max(effects):+.2f} points "
            f"(paper: {min(paper_effects):+.2f} to {max(paper_effects):+.2f}).\n"
        )
    w(
        f"Why they differ: digits has {digits_size}, against CIFAR-10's 50,000 training images of 3x28x28 "
        f"(parameters per training image here: {per_image or '-'}; on CIFAR-10: {paper_per_image}), "
        f"the true-label runs fit in {', '.join(true_steps) or '-'} steps, "
        "and the true-label test "
        "accuracy is high for every architecture (the ranking of architectures on CIFAR-10 comes from its harder "
        "images, which 8x8 digits do not have). The grid's augmentation here is "
        f"{', '.join(sorted({d['augment'] for ds in descs.values() for d in ds if d['augment']})) or 'none'}: "
        "the paper's random crops (rethink's `crop_flip`: zero padding 4, then a random crop) shift an 8x8 digit by "
        "up to half its width, so that the clean training set is no longer fitted to 100% and every such run lasts "
        "its whole epoch budget, "
        "and a horizontal flip is not label-preserving for digits as it is for photographs, "
        "so its effect need not match the paper's. What does not depend on the dataset is the paper's point: the same "
        "networks, with the same settings, drive training accuracy on random labels to (nearly) 100% while test "
        "accuracy stays at chance.\n"
    )

    # ---- Figure 1
    w("## Figure 1\n")
    w(
        "The paper's Figure 1 (CIFAR-10): (a) the training loss of small Inception reaches about 0 for all five "
        "variants, with random pixels and Gaussian starting to converge faster than random labels; (b) the time to "
        "overfit grows only by a small constant factor as label corruption goes from 0 to 1; (c) test error grows "
        "steadily to 90% at full corruption.\n"
    )
    if digits_all:
        first = "inception_small" if "inception_small" in by_model else next(iter(by_model))
        combined = plots.figure1(digits_all, figs / "figure1_digits.png", model=first, title="rethink on digits (panel a: " + plots._model_label(first) + ")", dpi=72)
        w(f"![Figure 1 on digits]({rel(combined, docs)})\n")
        end_ds = [d for d in descs[first] if d["variant"] in plots.VARIANTS and not d["weight_decay"] and d["augment"] is None]
        ends = [f"{plots.VARIANTS[d['variant']]} {d['train_loss']:.3f}" for d in end_ds]
        near0 = all(d["train_loss"] < 0.05 for d in end_ds)
        w(
            "A run stops once its training accuracy reaches 100%, so each curve of panel (a) ends at the loss it had "
            f"then ({plots._model_label(first)}: {', '.join(ends)}), "
            + ("close to 0 as in the paper.\n" if near0 else "not all close to 0 as in the paper.\n")
        )
        w("Per model (drawn by `rethink.plots.figure1` from that model's results, as `rethink randomization-test` draws its `figure1.png`):\n")
        for model, rs in by_model.items():
            dst = plots.figure1(rs, figs / f"figure1_digits_{model}.png", model=model, title=f"{plots._model_label(model)} on digits", dpi=72)
            w(f"- {plots._model_label(model)}: ![{model}]({rel(dst, docs)})")
        w("")
    # (a) ordering, (b) factor, (c) growth, computed
    w("### Where Figure 1 agrees and differs\n")
    ref = PAPER_INCEPTION_STEPS
    shape_notes: list[str] = []
    rows = [
        [
            "paper: small Inception, CIFAR-10 (a reproduction; steps to loss <= 0.01)",
            " / ".join(f"{ref[v] / ref['true']:.2f}" for v in plots.VARIANTS),
            "random pixels, Gaussian",
            "grows by a small constant factor from 0 to 1 (Figure 1b)",
            "grows steadily to 90 at 1 (Figure 1c)",
            "yes",
        ]
    ]
    for model, ds in descs.items():
        base = [d for d in ds if not d["weight_decay"] and d["augment"] is None]
        steps = {v: fit_steps([d for d in base if d["variant"] == v]) for v in plots.VARIANTS}
        t = steps["true"]
        ratio = {v: (s / t if t and not math.isnan(s) and not math.isnan(t) else math.nan) for v, s in steps.items()}
        noise = sorted({d["label_noise"] for d in base if d["label_noise"] is not None})
        err = [1 - mean(d["test_acc"] for d in base if d["label_noise"] == p) for p in noise]
        slow = [fit_steps([d for d in base if d["label_noise"] == p]) / t if t and not math.isnan(t) else math.nan for p in noise]
        monotone = all(b >= a - 0.01 for a, b in zip(err, err[1:])) if len(err) > 1 else None
        faster = [
            plots.VARIANTS[v]
            for v in ("random_pixels", "gaussian")
            if not math.isnan(steps[v]) and not math.isnan(steps["random_labels"]) and steps[v] < steps["random_labels"]
        ]
        if len(noise) > 2 and not any(math.isnan(x) for x in slow):
            peak = max(zip(slow, noise))
            shape_notes.append(
                f"{plots._model_label(model)}: the steps to fit "
                + ("grow with label noise up to 1" if peak[1] == noise[-1] else f"peak at label noise {peak[1]:g} ({peak[0]:.2f}x true labels), not at 1 ({slow[-1]:.2f}x)")
                + "."
            )
        rows.append(
            [
                plots._model_label(model),
                " / ".join("-" if math.isnan(ratio[v]) else f"{ratio[v]:.2f}" for v in plots.VARIANTS),
                ", ".join(faster) if faster else "neither",
                ", ".join(f"{p:g}: " + ("-" if math.isnan(x) else f"{x:.2f}") for p, x in zip(noise, slow)),
                ", ".join(f"{p:g}: {100 * e:.1f}" for p, e in zip(noise, err)),
                {True: "yes", False: "no", None: "-"}[monotone],
            ]
        )
    w(
        md_table(
            [
                "model",
                "steps to fit relative to true labels (true / random labels / shuffled px / random px / Gaussian)",
                "fit faster than random labels",
                "(b) label noise: steps to fit relative to true labels",
                "(c) label noise: test error %",
                "test error grows with noise (1-point tolerance)",
            ],
            rows,
        )
    )
    w(
        "Panel (b) in the paper: the slowdown from true to random labels is a small constant factor; the table gives "
        "the factor measured here for each model (a dash: a run did not reach 100% train accuracy). Panel (c): at "
        "full corruption the test error should reach 1 - 1/10 = 90%. On digits the true-label runs fit in very few "
        "steps, because a small set of easy images is memorized quickly, so the factors can be larger than on CIFAR-10, where "
        "fitting the real labels also takes thousands of steps.\n"
    )
    if shape_notes:
        w(
            " ".join(shape_notes)
            + " Where the peak is not at 1, this differs from the paper's Figure 1b, which grows with the noise level. A likely reason: a partially corrupted "
            "training set mixes a rule (the clean majority) with exceptions that contradict it, and on a small, easy "
            "dataset the rule is learned at once while the last few exceptions take long to fit.\n"
        )

    # ---- verdicts
    w("## Verdicts printed by `rethink randomization-test`\n")
    for model, rs in by_model.items():
        try:
            w(f"- {verdict(rs)}")
        except ValueError as e:
            w(f"- {plots._model_label(model)}: no verdict ({e}).")
    w("")

    # ---- synthetic
    w("## CIFAR-10-scale synthetic data: fitting 50,000 random points\n")
    if synth:
        rows = []
        for r in synth:
            d = plots.describe(r)
            hist = r.history
            fit_sec = next((h["seconds"] for h in hist if h["epoch"] == r.epochs_to_fit), math.nan) if r.epochs_to_fit else math.nan
            per_epoch = d["seconds"] / d["epochs"] if d["epochs"] else math.nan
            rows.append(
                [
                    plots._model_label(d["model"]),
                    f"{r.config.get('num_train'):,} x {'x'.join(str(v) for v in r.config.get('input_shape', []))}",
                    r.config.get("device"),
                    f"{d['steps_to_fit']:,}" if d["steps_to_fit"] else f"not fitted in {d['steps']:,}",
                    r.epochs_to_fit or f"> {d['epochs']}",
                    fmt_seconds(fit_sec) if r.epochs_to_fit else f"> {fmt_seconds(d['seconds'])}",
                    f"{pct(d['train_acc'])}%",
                    f"{per_epoch:.1f} s",
                    f"{d['steps'] / d['seconds']:.0f}" if d["seconds"] else "-",
                ]
            )
        w(md_table(["model", "training set (after crop)", "device", "steps to fit", "epochs", "seconds to fit", "final train acc.", "seconds / epoch (incl. evaluation)", "steps / s"], rows))
        c = synth[0].config
        faster_g = ", ".join(
            plots._model_label(m)
            for m, ds in descs.items()
            if fit_steps([d for d in ds if setting_of(d) == "random_labels"])
            > fit_steps([d for d in ds if d["variant"] == "gaussian" and not d["weight_decay"] and d["augment"] is None])
        )
        dim = math.prod(c.get("input_shape", [0]))
        w(
            f"Setup (from the result): {c.get('num_train'):,} synthetic images (uniform random bytes, 3x32x32, "
            f"uniformly random labels over {c.get('num_classes')} classes) replaced by rethink's `{c.get('corruption')}` "
            "corruption (Gaussian noise with the mean and variance of the source images), "
            f"center-cropped to {c.get('crop')}x{c.get('crop')} as in the paper, normalization {c.get('normalize')}; "
            f"SGD with learning rate {c.get('lr'):g}, momentum {c.get('momentum'):g}, batch {c.get('batch_size')}; "
            f"device {c.get('device')}. "
            f"Seconds include the evaluation of the whole training set after every epoch.\n"
        )
        w(
            f"The paper reports that its MLP 1x512 fits random CIFAR-10 labels (99.34% train accuracy) but gives no "
            f"times. Independent Gaussian points in {dim:,} dimensions are nearly orthogonal to each other, which makes "
            "them easier to fit than random labels on real images, whose similar images must receive unrelated "
            f"labels. On digits, Gaussian inputs were fitted in fewer steps than random labels by {faster_g or 'no model'}.\n"
        )
    else:
        w("Not run (use `python scripts/make_report.py` without `--no-synthetic`).\n")

    # ---- beyond the paper: which measures predict the gap
    if digits_all and not args.no_measures:
        w("## Beyond the paper: which complexity measure predicts the generalization gap?\n")
        paths = sorted(p for model in ALL_MODELS for p in (args.results / "digits" / model).glob("*.json"))
        t0 = time.perf_counter()
        rep = rethink.study.study(paths, out_dir=args.results / "measures", device=args.device)
        seconds = time.perf_counter() - t0
        png = figs / "measures_digits.png"
        png.write_bytes(Path(rep.paths["png"]).read_bytes())
        w(
            f"`rethink.study.study` on the {len(rep.rows)} completed digits runs above (all four models, every "
            f"variant, label-noise level and regularizer; {len(rep.skipped)} skipped) took {fmt_seconds(seconds)} on "
            f"{machine_line(torch.device('cpu'))}. Each measure is computed on the trained network (batch norm folded) "
            "and ranked by Kendall's tau with the generalization gap (train accuracy minus test accuracy) over all "
            "runs, and by the granulated tau of Jiang et al. (tau averaged within groups of runs that differ in one "
            f"hyper-parameter: {', '.join(rep.hyperparameters)}). The table is the library's `measures.md`, as written.\n"
        )
        md = Path(rep.paths["md"]).read_text(encoding="utf-8")
        w("\n".join(line for line in md.splitlines() if not line.startswith("# ")).strip() + "\n")
        w(f"![measures against the gap]({rel(png, docs)})\n")

    w("## How to reproduce\n")
    w("```\npython scripts/make_report.py            # all runs (resumable), then this file\n"
      "python scripts/make_report.py --report-only\n"
      "rethink randomization-test --model alexnet_small --out results/alexnet   # one model\n```\n")
    out = docs / "REPRODUCTION.md"
    from rethink._io import atomic_write_text

    atomic_write_text(out, "\n".join(lines).rstrip() + "\n")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", type=Path, default=ROOT / "results" / "report", help="folder for the runs (resumable)")
    p.add_argument("--docs", type=Path, default=ROOT / "docs", help="folder for REPRODUCTION.md and figures/")
    p.add_argument("--models", default=",".join(ALL_MODELS), help="models for the digits runs")
    p.add_argument("--noise-models", default=None, help="models that get the label-noise sweep (default: all)")
    p.add_argument("--grid-models", default=None, help="models that get the Table 1 grid (default: all)")
    p.add_argument("--seeds", default="0")
    p.add_argument("--max-epochs", type=int, default=None, help="epoch budget per digits run (default: the engine's)")
    p.add_argument("--model-max-epochs", default=None, help='per-model epoch budgets, e.g. "inception_small=60;alexnet_small=300"')
    p.add_argument("--model-corruptions", default=None, help='per-model variants, e.g. "inception_small=none,random_labels"')
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: fastest on a shared 2-core machine)")
    p.add_argument("--grid-weight-decay", type=float, default=5e-4)
    p.add_argument("--grid-augment", default="flip")
    p.add_argument("--synthetic-n", type=int, default=50_000)
    p.add_argument("--synthetic-max-epochs", type=int, default=200)
    p.add_argument("--no-synthetic", action="store_true")
    p.add_argument("--no-digits", action="store_true")
    p.add_argument("--no-measures", action="store_true", help="leave out the complexity-measure study")
    p.add_argument("--report-only", action="store_true", help="only rewrite the report from the results on disk")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    args.noise_models = args.models if args.noise_models is None else [m.strip() for m in args.noise_models.split(",") if m.strip()]
    args.grid_models = args.models if args.grid_models is None else [m.strip() for m in args.grid_models.split(",") if m.strip()]
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.model_max_epochs = per_model(args.model_max_epochs, int)
    args.model_corruptions = per_model(args.model_corruptions, lambda v: [c.strip() for c in v.split(",") if c.strip()])
    torch.set_num_threads(args.threads)
    if not args.report_only:
        if not args.no_digits:
            run_digits(args)
        if not args.no_synthetic:
            run_synthetic(args)
    print(write_report(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
