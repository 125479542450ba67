"""Write docs/REPRODUCTION.md: the paper's protocol on real images, from committed result files.

    python scripts/make_report.py collect   # copy the finished runs of results/ into docs/results/
    python scripts/make_report.py digits    # run the embedded-digits job (a few minutes) into results/digits
    python scripts/make_report.py report    # write docs/REPRODUCTION.md and docs/figures/ from docs/results/

The runs themselves come from ``scripts/reproduce_fashion.py`` (Fashion-MNIST, hours on a
2-core CPU) and ``digits`` above. ``collect`` stores every result as compact JSON under
docs/results/ (weights stay behind), so every number of the report can be checked without
rerunning anything; ``report`` reads only those files and ``rethink.paper``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import rethink  # noqa: E402
from rethink import paper, plots  # noqa: E402
from rethink.plots import mean_spread, model_label, percent  # noqa: E402
from rethink.results import Result  # noqa: E402
from rethink.spec import RunSpec  # noqa: E402

DOCS = ROOT / "docs"
STORE = DOCS / "results"
FIGS = DOCS / "figures"
REPORTED = ("fashion", "convnets", "convnets_cuda", "digits")  # the folders under docs/results/ this report reads
SETTINGS = {"crop+wd": "random crop + weight decay", "crop": "random crop", "wd": "weight decay",
            "none": "no regularizer", "random_labels": "random labels"}


# ----------------------------------------------------------------------------- collecting


def collect(src: Path, dst: Path) -> int:
    """Copy every finished result JSON under ``src`` to the same relative path under ``dst``, compact;
    measure caches and memorization reports as they are. An unfinished run's JSON (one being
    trained, or trained again) is not copied, and an earlier finished copy of it is kept: a stored
    result is replaced only by a finished one. Returns the number of files written."""
    n = 0
    for path in sorted(src.rglob("*.json")):
        out = dst / path.relative_to(src)
        if path.name.endswith(".measures.json") or path.name == "memorization.json":  # caches and reports: as is
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(path.read_text())
            n += 1
            continue
        try:
            r = Result.load(path)
        except ValueError:
            continue
        if r.status != "completed":
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        d = r.to_dict()
        d["config"]["out_dir"] = _relative(d["config"].get("out_dir"), src)
        d["loss_log"] = [[int(s), round(v, 6)] for s, v in d["loss_log"]]
        out.write_text(json.dumps(d, separators=(",", ":"), allow_nan=True) + "\n")
        n += 1
    return n


def _relative(out_dir: str | None, src: Path) -> str | None:
    """A run's output folder as stored: ``results/<path under the collected folder>`` (where
    the scripts write by default), never an absolute path of the machine that made it."""
    if not out_dir or not os.path.isabs(out_dir):
        return out_dir
    rel = os.path.relpath(out_dir, src.resolve())
    return str(Path("results") / (rel if not rel.startswith("..") else Path(out_dir).name))


def load(folder: Path) -> list[Result]:
    return rethink.load_runs(folder) if folder.is_dir() else []


# ----------------------------------------------------------------------------- numbers


def pm(values, digits=2) -> str:
    """'mean ± spread (n)' in percent, '-' without values; a mean below 100% never reads as 100
    (`percent`)."""
    m, sd, n = mean_spread(values)
    if n == 0:
        return "-"
    return percent(m, digits) + (f" ± {100 * sd:.{digits}f}" if n > 1 else "") + (f" ({n})" if n > 1 else "")


def setting(d: dict) -> str | None:
    wd, crop = bool(d["weight_decay"]), d["augment"] is not None
    if d["dropout"]:
        return None
    if d["variant"] == "true":
        return {(True, True): "crop+wd", (True, False): "crop", (False, True): "wd", (False, False): "none"}[(crop, wd)]
    if d["variant"] == "random_labels" and not wd and not crop:
        return "random_labels"
    return None


def effect(a: list[float], b: list[float]) -> str:
    """Whether mean(a) - mean(b) exceeds the spread over seeds of both (else: no effect shown)."""
    (ma, sa, na), (mb, sb, nb) = mean_spread(a), mean_spread(b)
    if na < 2 or nb < 2:
        return f"{100 * (ma - mb):+.2f} points (one seed: no spread, no claim)"
    d = ma - mb
    verdict = "larger than the spread" if abs(d) > sa + sb else "within the spread over seeds: not an effect"
    return f"{100 * d:+.2f} points ({verdict}; spreads {100 * sa:.2f} and {100 * sb:.2f})"


def md(header, rows) -> str:
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    return "\n".join(out + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]) + "\n"


def hours(results: list[Result]) -> float:
    return sum(r.summary()["seconds"] for r in results if not math.isnan(r.summary()["seconds"])) / 3600


# ----------------------------------------------------------------------------- sections


def section_fashion(w, stage_dir: Path, models: list[str]) -> None:
    per_model = {m: load(stage_dir / m) for m in models}
    per_model = {m: rs for m, rs in per_model.items() if rs}
    if not per_model:
        w("No Fashion-MNIST results are stored yet (run `python scripts/reproduce_fashion.py`, then "
          "`python scripts/make_report.py collect`).\n\n")
        return
    every = [r for rs in per_model.values() for r in rs]
    cfg = every[0].config
    w("### Settings\n\n")
    w(f"Fashion-MNIST, {cfg['num_train']:,} training and {cfg['num_test']:,} test images, centre-cropped to "
      f"{cfg['crop']}x{cfg['crop']} (the paper crops CIFAR-10's 32x32 to 28x28); per-image whitening; SGD with "
      f"momentum {cfg['momentum']}, batch {cfg['batch_size']}, learning rate {cfg['lr']} multiplied by "
      f"{cfg['lr_decay']} per {cfg['lr_decay_examples']:,} examples (the paper's 0.95 per CIFAR-10 epoch); at most "
      f"{cfg['max_epochs']} epochs, stopping at {100 * (cfg['stop_at_train_acc'] or 1):.0f}% training accuracy. "
      f"Regularized runs: weight decay {max(r.config['weight_decay'] for r in every):g}, random "
      f"{cfg['crop']}x{cfg['crop']} crops of the 28x28 image (centre crop at test time).\n\n")
    lr_end = cfg["lr"] * cfg["lr_decay"] ** (cfg["max_epochs"] * cfg["num_train"] / cfg["lr_decay_examples"])
    w(f"After {cfg['max_epochs']} epochs the learning rate is {lr_end:.2g} ({100 * lr_end / cfg['lr']:.1f}% of its "
      f"initial value): training has all but stopped by the end of the budget.\n\n")
    rows = []
    for m, rs in per_model.items():
        seeds = sorted({r.config["seed"] for r in rs})
        rows.append([model_label(m), len(rs), ", ".join(map(str, seeds)), f"{hours(rs):.1f} h",
                     f"{rs[0].config['num_parameters']:,}", f"{rs[0].config['num_parameters'] / rs[0].config['num_train']:.1f}",
                     f"{paper.parameters_per_image(m):.1f}" if paper.parameters_per_image(m) else "-"])
    w(md(["model", "runs", "seeds", "training time (sum over runs)", "parameters", "parameters per training image",
          "paper: per CIFAR-10 image"], rows))
    w("\n")
    section_missing(w, stage_dir)
    cl_dir = stage_dir.parent / "constant_lr"
    section_findings(w, per_model, {m: load(cl_dir / m) for m in per_model} if cl_dir.exists() else {})
    section_table1(w, per_model)
    section_figures(w, per_model, stage_dir.name)
    section_appendix_e(w, per_model)


def _describe_spec(spec) -> str:
    regs = plots.regularizer_label({"augment": spec.augment, "weight_decay": spec.weight_decay,
                                    "dropout": spec.dropout})
    return str(spec.corruption) + ("" if regs == "no regularizer" else f" + {regs}")


def section_missing(w, stage_dir: Path) -> None:
    """Runs of the planned grid (scripts/reproduce_fashion.py) with no stored result, per model."""
    from reproduce_fashion import MODELS, SEEDS, main_plan

    w("### Runs not done\n\n")
    rows = []
    for m in MODELS:
        rs = load(stage_dir / m)
        epochs = rs[0].config["max_epochs"] if rs else None
        have = {r.config["run_name"] for r in rs}
        missing = [p.spec for p in main_plan(m, max_epochs=epochs or 50) if p.spec.run_name() not in have]
        if missing:
            seeds = sorted({s.seed for s in missing})
            rows.append([model_label(m), f"{len(missing)} of {len(missing) + len(have)}", ", ".join(map(str, seeds)),
                         "; ".join(dict.fromkeys(_describe_spec(s) for s in missing))])
    if rows:
        w(f"The grid of `scripts/reproduce_fashion.py` is {len(SEEDS)} seeds per model; these runs did not finish in "
          "the time this version had (rerunning the script resumes them, skipping every finished run):\n\n")
        w(md(["model", "runs missing", "seeds", "settings missing"], rows) + "\n")
    else:
        w(f"None: every run of the grid ({len(SEEDS)} seeds per model) is stored.\n\n")


def _plain(ds: list[dict], variant: str) -> list[dict]:
    """Runs of one variant without any regularizer."""
    return [d for d in ds if d["variant"] == variant and not d["weight_decay"] and d["augment"] is None
            and not d["dropout"]]


def _fit_rows(ds: list[dict]) -> tuple[list[list], list[str], list[str]]:
    rows, fitted, unfitted = [], [], []
    for v, name in plots.VARIANTS.items():
        vs = _plain(ds, v)
        if not vs:
            continue
        done = [d["epochs_to_fit"] for d in vs if d["epochs_to_fit"] is not None]
        rows.append([name, f"{len(done)} of {len(vs)}", f"{statistics.median(done):g}" if done else "-",
                     pm(d["train_acc"] for d in vs)])
        (fitted if len(done) == len(vs) else unfitted).append(name)
    return rows, fitted, unfitted


def _label_noise_claim(c: dict, chance_error: float) -> str:
    errs, spreads, levels = c["test_error"], c["spread"], c["label_noise"]
    if len(levels) < 2:
        return (f"only label noise {', '.join(f'{p:g}' for p in levels)} has runs so far (test error "
                f"{100 * errs[0]:.1f}%): no curve to compare")
    steps = list(zip(errs, errs[1:], spreads, spreads[1:]))
    head = (f"test error {100 * errs[0]:.1f}% at label noise {levels[0]:g} and {100 * errs[-1]:.1f}% at "
            f"{levels[-1]:g} (chance: {100 * chance_error:.0f}%); ")
    if min(c["seeds"]) < 2:
        rising = sum(b > a for a, b, _, _ in steps)
        return head + f"it rises at {rising} of {len(steps)} steps (one seed at some level: no spread to compare with)"
    rising = sum(b - a > sa + sb for a, b, sa, sb in steps)
    return head + f"it rises by more than the spread over seeds at {rising} of {len(steps)} steps"


def _median_epochs(ds: list[dict], variant: str) -> float | None:
    done = [d["epochs_to_fit"] for d in _plain(ds, variant) if d["epochs_to_fit"] is not None]
    return statistics.median(done) if done else None


def _order_claim(ds: list[dict], fitted: list[str]) -> str:
    """Which variants fit before random labels, from the median epochs to fit; nothing is said
    of an order when random labels did not fit in every run."""
    if not _plain(ds, "random_labels"):
        return " No random-label run is stored yet, so no order of fitting against random labels is shown."
    if "random labels" not in fitted:
        return (" Random labels did not fit in every run within the budget, so no order of fitting against "
                "random labels is shown.")
    ref = _median_epochs(ds, "random_labels")
    parts = []
    for v, name in plots.VARIANTS.items():
        if v == "random_labels" or name not in fitted:
            continue
        e = _median_epochs(ds, v)
        rel = "before" if e < ref else ("after" if e > ref else "in the same epoch as")
        parts.append(f"{name} (median epoch {e:g}) {rel}")
    return (f" Against random labels (median epoch {ref:g}): " + "; ".join(parts) + "."
            if parts else "")


def _fit_fraction(rs: list[Result]) -> tuple[int, int]:
    """(runs that reached the stopping target, runs) over the unregularized label-noise runs."""
    ds = [r.summary() for r in rs]
    ds = [d for d in ds if d["variant"] in ("true", "random_labels", "labels") and not d["weight_decay"]
          and d["augment"] is None and not d["dropout"]]
    return sum(d["epochs_to_fit"] is not None for d in ds), len(ds)


def _early_stopping(rs: list[Result]) -> tuple[list[float], str]:
    """Per true-label run: the best test accuracy over the schedule minus the final one (what
    early stopping could have kept), and the run it is largest for."""
    gains = []
    for r in rs:
        d = r.summary()
        if d["variant"] == "true" and not math.isnan(d["test_acc"]):
            gains.append((d["best_test_acc"] - d["test_acc"], d["run_name"]))
    return [g for g, _ in gains], (max(gains)[1] if gains else "")


def _stopped_at_best(rs: list[Result]) -> str:
    """A clause for the early-stopping lines: how many true-label runs end at their best test
    accuracy because the stopping rule ended them (100% training accuracy reached before the
    budget), so that the schedule's later epochs were never seen; "" when none does."""
    true = [d for d in (r.summary() for r in rs) if d["variant"] == "true" and not math.isnan(d["test_acc"])]
    k = sum(1 for d in true if d["epochs_to_fit"] is not None and d["best_test_acc"] <= d["test_acc"])
    if not k:
        return ""
    one = k == 1
    return (f"; {k} of {len(true)} end{'s' if one else ''} at {'its' if one else 'their'} best test accuracy as "
            f"the stopping rule ended {'it' if one else 'them'} at 100% training accuracy, before the end of the "
            "schedule")


def _old_shuffled(r: Result) -> bool:
    """A shuffled-pixels run trained before the permutation acted on the cropped view (its stored
    name no longer matches the name its spec gives today)."""
    return (r.config.get("corruption", "").startswith("shuffled_pixels")
            and RunSpec.from_config(r.config).run_name() != r.config["run_name"])


def _per_seed_relative(ds: list[dict], levels: list[float]) -> str:
    """Each seed's time to fit (steps) relative to its own true-label run at the label-noise
    ``levels`` where not every seed fit (so no mean is drawn): a line of the findings, "" when
    no seed fit any of them."""
    unreg = [d for d in ds if not d["weight_decay"] and d["augment"] is None and not d["dropout"]]
    base = {d["seed"]: d["steps_to_fit"] for d in unreg if d["variant"] == "true" and d["steps_to_fit"]}
    def level(d):  # the label-noise level of a run (random labels: 1), None for another variant
        return 1.0 if d["variant"] == "random_labels" else d["label_noise"] if d["variant"] == "labels" else None

    by_seed: dict[int, list[str]] = defaultdict(list)
    any_fit = False
    for p in levels:
        for d in sorted((d for d in unreg if level(d) == p), key=lambda d: d["seed"]):
            if d["steps_to_fit"] and base.get(d["seed"]):
                any_fit = True
                by_seed[d["seed"]].append(f"{p:g}: {d['steps_to_fit'] / base[d['seed']]:.2f}x")
            elif d["steps_to_fit"]:
                by_seed[d["seed"]].append(f"{p:g}: fit in {d['epochs_to_fit']} epochs (no true-label fit to compare)")
            else:
                by_seed[d["seed"]].append(f"{p:g}: not fit ({percent(d['train_acc'])}% training accuracy)")
    if not any_fit:
        return ""
    return ("  Where not every seed fit (no mean), each seed against its own true-label run: "
            + "; ".join(f"seed {s}: " + ", ".join(cs) for s, cs in sorted(by_seed.items())) + ".\n")


def section_findings(w, per_model, constant_lr: dict) -> None:
    """Where Fashion-MNIST agrees with the paper and where it does not, each claim from the numbers below."""
    w("### Where these runs agree with the paper and where they do not\n\n")
    w("The paper's statements are its CIFAR-10 results (`rethink.paper`); every other number is from the runs "
      "of this report. 'Fit' means the stopping rule, 100% training accuracy, was reached within the budget.\n\n")
    for m, rs in per_model.items():
        ds = [r.summary() for r in rs]
        cfg = rs[0].config
        rows, fitted, unfitted = _fit_rows(ds)
        ref = paper.parameters_per_image(m)
        w(f"**{model_label(m)}** ({cfg['num_parameters'] / cfg['num_train']:.1f} parameters per training image; "
          + (f"the paper's {model_label(m)} has {ref:.1f} per CIFAR-10 image" if ref else
             f"the paper's MLP 1x512 has {paper.parameters_per_image('mlp1x512'):.1f} per CIFAR-10 image")
          + ").\n\n")
        w(md(["variant (no regularizer)", "runs that fit", "median epochs to fit", "final train accuracy %"], rows))
        old = [r for r in rs if _old_shuffled(r)]
        if old:
            w(f"\n{len(old)} shuffled-pixels run(s) here were trained before shuffled pixels acted on the view: "
              "the whole 28x28 image was permuted, then centre-cropped, so the network saw a fixed random subset "
              "of the pixels; `rethink` now permutes the cropped view, and these runs are to be redone.\n")
        w(f"\n- Figure 1a (paper: {paper.FIGURE1_CLAIMS['a']}): within {cfg['max_epochs']} epochs, fit in every "
          f"run: {', '.join(fitted) or 'no variant'}; not fit in every run: {', '.join(unfitted) or 'no variant'}"
          + (" (the paper's models fit all five)" if unfitted else " (as the paper's models do)"
             if len(fitted) == 5 else f" (only {len(fitted)} of the five variants {'is' if len(fitted) == 1 else 'are'} stored)") + "."
          + _order_claim(ds, fitted) + "\n")
        longest = {}  # per corruption, the constant-learning-rate run with the largest budget
        for r in constant_lr.get(m, []):
            d = r.summary() | {"budget": r.config["max_epochs"]}
            if d["budget"] >= longest.get(d["corruption"], {"budget": -1})["budget"]:
                longest[d["corruption"]] = d
        order = {"none": 0, "random_labels": 1}
        for c, d in sorted(longest.items(), key=lambda kv: (order.get(kv[0], 2), kv[0])):
            w(f"  With a constant learning rate (budget {d['budget']} epochs, one seed), {c}: "
              f"{percent(d['train_acc'])}% training accuracy, "
              f"{'fit at epoch ' + str(d['epochs_to_fit']) if d['epochs_to_fit'] else 'not fit'}.\n")
        data = plots.figure1_data(rs, model=m)
        b = next(iter(data["b"].values()), None)
        if b and sum(not math.isnan(x) for x in b["relative"][1:]):
            w(f"- Figure 1b (paper: {paper.FIGURE1_CLAIMS['b']}): time to fit relative to true labels "
              + ", ".join(f"{p:g}: {r:.2f}x" for p, r in zip(b["label_noise"], b["relative"]) if not math.isnan(r))
              + ".\n" + _per_seed_relative(ds, [p for p, r in zip(b["label_noise"], b["relative"]) if math.isnan(r)]))
        else:
            noisy = [d for d in ds if d["variant"] in ("random_labels", "labels") and not d["weight_decay"]
                     and d["augment"] is None and not d["dropout"]]
            some = sum(d["epochs_to_fit"] is not None for d in noisy)
            w(f"- Figure 1b (paper: {paper.FIGURE1_CLAIMS['b']}): cannot be compared: "
              + (f"no label-noise level above 0 has every seed fit within the budget ({some} of {len(noisy)} "
                 "such runs fit; a level's time to fit is drawn only where all its seeds fit)"
                 if some else "no run with label noise above 0 fit within the budget" if noisy
                 else "no run with label noise above 0 is stored yet") + ".\n")
        c = next(iter(data["c"].values()), None)
        if c:
            fit, n = _fit_fraction(rs)
            caveat = "" if fit == n else (
                f" {'None' if fit == 0 else f'Only {fit}'} of these {n} runs reached 100% training accuracy, so this is the test error at the end "
                "of the budget, not the paper's quantity (the test error of networks that fit their training labels).")
            chance = 1.0 - 1.0 / int(rs[0].config.get("num_classes", 10))
            w(f"- Figure 1c (paper: {paper.FIGURE1_CLAIMS['c']}): {_label_noise_claim(c, chance)}.{caveat}\n")
        by = defaultdict(list)
        for d in ds:
            if setting(d):
                by[setting(d)].append(d["test_acc"])
        ref = paper.TABLE1.get(m, {})
        if by.get("wd") and by.get("none") and "wd" in ref and "none" in ref:
            w(f"- Weight decay (paper, one run: {ref['wd'][1] - ref['none'][1]:+.2f} points of test accuracy): "
              f"{effect(by['wd'], by['none'])}.\n")
        gains, where = _early_stopping(rs)
        if gains:
            g, sd, n = mean_spread(gains)
            w(f"- Early stopping (paper, CIFAR-10: {paper.EARLY_STOPPING_CIFAR10}): per true-label run, the best test "
              f"accuracy over the schedule exceeds the final one by {100 * g:.2f}"
              + (f" ± {100 * sd:.2f}" if n > 1 else "") + f" points ({n} run{'s' if n != 1 else ''}; largest {100 * max(gains):.2f}, "
              f"`{where}`{_stopped_at_best(rs)}).\n")
        w("\n")


def section_table1(w, per_model) -> None:
    w("### Table 1: train / test accuracy (%)\n\n")
    w("rethink: Fashion-MNIST, mean ± spread (sample standard deviation) over seeds, number of seeds in "
      "parentheses. Paper: CIFAR-10, one run, quoted from `rethink.paper.TABLE1`.\n\n")
    rows = []
    for m, rs in per_model.items():
        by = defaultdict(list)
        for r in rs:
            d = r.summary()
            s = setting(d)
            if s:
                by[s].append(d)
        for s, name in SETTINGS.items():
            ref = paper.TABLE1.get(m, {}).get(s)
            ds = by.get(s, [])
            rows.append([model_label(m), name, f"{ref[0]:.2f} / {ref[1]:.2f}" if ref else "-",
                         f"{pm(d['train_acc'] for d in ds)} / {pm(d['test_acc'] for d in ds)}" if ds else "not run"])
        none = [d["test_acc"] for d in by.get("none", [])]
        for s in ("wd", "crop", "crop+wd"):
            if by.get(s) and none:
                w(f"- {model_label(m)}, {SETTINGS[s]} against no regularizer, test accuracy: "
                  f"{effect([d['test_acc'] for d in by[s]], none)}.\n")
    w("\n" + md(["model", "setting", "paper (CIFAR-10)", "rethink (Fashion-MNIST)"], rows) + "\n")


def section_figures(w, per_model, stage: str, partners=()) -> None:
    """Figures 1 and 2 per model; ``partners``: runs of other models that Figure 2's batch-norm
    panel compares (small Inception without batch norm beside small Inception)."""
    FIGS.mkdir(parents=True, exist_ok=True)
    w("### Figures 1 and 2\n\n")
    for m, rs in per_model.items():
        f1 = plots.figure1(rs, FIGS / f"fashion_{stage}_{m}_figure1.png", model=m,
                           title=f"{model_label(m)} on Fashion-MNIST ({stage})", dpi=72)
        has_true = any(r.summary()["variant"] == "true" for r in rs)  # Figure 2 is drawn from true labels
        f2 = plots.figure2([*rs, *partners], FIGS / f"fashion_{stage}_{m}_figure2.png", model=m,
                           title=f"{model_label(m)} on Fashion-MNIST ({stage})", dpi=72) if has_true else None
        w(f"![Figure 1, {model_label(m)}](figures/{f1.name})\n\n")
        data = plots.figure1_data(rs, model=m)
        c = next(iter(data["c"].values()), None)
        if c:
            cells = [f"{p:g}: {100 * e:.1f}%" + (f" ± {100 * s:.1f}" if n > 1 else "")
                     for p, e, s, n in zip(c["label_noise"], c["test_error"], c["spread"], c["seeds"])]
            w(f"{model_label(m)}, test error against label corruption (panel c): {', '.join(cells)}.\n")
        b = next(iter(data["b"].values()), None)
        if b and any(not math.isnan(x) for x in b["relative"][1:]):
            cells = [f"{p:g}: {r:.2f}x" for p, r in zip(b["label_noise"], b["relative"]) if not math.isnan(r)]
            w(f"Time to fit relative to true labels (panel b): {', '.join(cells)}.\n")
        else:
            w("Panel (b) is empty: at no label-corruption level above 0 did every seed reach the stopping "
              "target within the budget, so there is no time to fit to compare.\n")
        w(f"\n![Figure 2, {model_label(m)}](figures/{f2.name})\n\n" if f2 else
          "\nNo Figure 2: no true-label run of this model is stored here.\n\n")
        gains, _ = _early_stopping(rs)
        if gains:
            g, sd, n = mean_spread(gains)
            w(f"{model_label(m)}, true labels: per run, early stopping could have gained {100 * g:.2f}"
              + (f" ± {100 * sd:.2f}" if n > 1 else "") + f" points of test accuracy ({n} run{'s' if n != 1 else ''}"
              f"{_stopped_at_best(rs)}; the panel draws means over seeds).\n\n")


def regularizers(weight_decay, augment) -> str:
    """A run's regularizers in words ("weight decay + random crop"), "" for none."""
    aug = [] if augment in (None, "", "none") else ["random crop" if augment == "crop" else f"augmentation {augment}"]
    return " + ".join((["weight decay"] if weight_decay else []) + aug)


def section_appendix_e(w, per_model) -> None:
    rows = []
    for m, rs in per_model.items():
        by = defaultdict(list)
        for r in rs:
            d = r.summary()
            if d["variant"] == "random_labels":
                by[regularizers(d["weight_decay"], d["augment"]) or "none"].append(d)
        for key, ds in by.items():
            ref = {"weight decay": paper.APPENDIX_E_RANDOM_LABELS.get((m, "weight decay")),
                   "random crop": paper.APPENDIX_E_RANDOM_LABELS.get((m, "random crop"))}.get(key)
            rows.append([model_label(m), key, f"{ref:.2f}" if ref else "-", pm(d["train_acc"] for d in ds),
                         pm(d["test_acc"] for d in ds)])
    if rows:
        w("### Random labels with regularizers (the paper's Appendix E)\n\n")
        w("Training accuracy (%) reached on random labels; paper: CIFAR-10, from secondary sources "
          "(`rethink.paper.APPENDIX_E_RANDOM_LABELS`).\n\n")
        w(md(["model", "regularizer", "paper train (CIFAR-10)", "rethink train", "rethink test"], rows) + "\n")


#: How the report says where runs not stored would come from: resuming the grid on its machine.
RESUME_CPU = ("Runs not done were not reached in the time this version had; `python scripts/reproduce_convnets.py` "
              "resumes them (finished runs are skipped, an interrupted run continues from its checkpoint).")


def section_convnets(w, folder: Path, figures: str = "convnets", stored_only: bool = False,
                     resume: str = RESUME_CPU) -> None:
    """The conv nets (and the MLP at the paper's parameters per image) of
    scripts/reproduce_convnets.py: per model and training-set size, every stage's runs together.
    ``figures`` prefixes the figure files; ``stored_only`` leaves out of the table the groups
    with no stored run; ``resume`` says how the runs not done would be done."""
    from reproduce_convnets import DTYPE_STAGES, STAGES

    # (model, training-set size, a second schedule's settings or ()) -> runs
    groups: dict[tuple[str, int, tuple], list[Result]] = defaultdict(list)
    planned: dict[tuple[str, int, tuple], dict] = defaultdict(dict)  # run name -> (first stage, spec)
    loaded: set[Path] = set()  # stages that share a folder (Stage.folder) are read once
    for st in STAGES:
        if st.name in DTYPE_STAGES:
            continue
        for m in st.models:
            key = (m, st.train_size or 60_000, st.schedule)  # a second schedule is its own group
            if folder / st.out / m not in loaded:
                loaded.add(folder / st.out / m)
                groups[key] += load(folder / st.out / m)
            for p in rethink.randomization.plan_runs(model=m, **st.kwargs()):
                planned[key].setdefault(p.spec.run_name(), (st.name, p.spec))
    dtypes = sorted({r.config.get("dtype", "float32") for rs in groups.values() for r in rs})
    w("Training subsets are fixed seeded draws (`train_size`) from the 60,000 training images; the test set is "
      "all 10,000 test images. Settings as above unless a table says otherwise (learning rate 0.1 for small "
      f"Inception, the paper's); {_dtype_text(dtypes)}.\n\n")
    rows = []
    for (m, n, sched), rs in groups.items():
        if stored_only and not rs:
            continue
        have = {r.config["run_name"] for r in rs}
        missing = [(st, sp) for name, (st, sp) in planned[(m, n, sched)].items() if name not in have]
        rows.append([model_label(m) + (f" ({_schedule_label(sched)})" if sched else ""), f"{n:,}",
                     len([r for r in rs if r.status == "completed"]), len(missing),
                     f"{hours(rs):.1f} h" if rs else "-",
                     f"{rs[0].config['num_parameters'] / rs[0].config['num_train']:.1f}" if rs else "-",
                     "; ".join(sorted({st for st, _ in missing})) or "-"])
    w(md(["model", "training images", "runs stored", "runs not done", "training time (sum over runs)",
          "parameters per training image", "stages with runs not done"], rows) + "\n")
    w(resume + "\n\n")
    for (m, n, sched), rs in groups.items():
        done = [r for r in rs if r.status == "completed" and not _old_shuffled(r)]
        old = [r for r in rs if r.status == "completed" and _old_shuffled(r)]
        if not done:
            continue
        second = f", a second schedule: {_schedule_label(sched, m)}" if sched else ""
        w(f"## {model_label(m)} on {n:,} Fashion-MNIST training images{second}\n\n")
        if m in INIT_NOTE:
            w(INIT_NOTE[m] + "\n\n")
        if old:
            w(f"{len(old)} shuffled-pixels run(s) stored here were trained before shuffled pixels acted on the "
              "cropped view (the whole 28x28 image was permuted, then centre-cropped); they are left out of "
              "every number below: " + ", ".join(f"`{r.config['run_name']}`" for r in old) + ".\n\n")
        per_model = {m: done}
        section_findings(w, per_model, {})
        section_table1(w, per_model)
        partner = BN_PARTNER.get(m)
        partners = [r for r in groups.get((partner, n, sched), []) if r.status == "completed"] if partner else []
        section_figures(w, per_model, f"{figures}_{n // 1000}k" + _schedule_suffix(sched), partners)
        if partner:
            section_batch_norm(w, m, done, partner, partners)
        section_appendix_e(w, per_model)
        for f in sorted({Path(r.path).parent.parent / "misfits.json" for r in done if r.path is not None}):
            section_misfits(w, f)  # the stage's (scripts/fashion_misfits.py --out <stage>/misfits.json)


def _schedule_label(sched: tuple, model: str | None = None) -> str:
    """A second schedule's settings (``Stage.schedule``) in words; with ``model``, against the
    paper's (e.g. "learning rate 0.01 instead of the paper's 0.1")."""
    d = dict(sched)
    parts = []
    if "lr" in d:
        parts.append(f"learning rate {d['lr']:g}" + (f" instead of the paper's {paper.LR.get(model, 0.01):g}"
                                                    if model else ""))
    if d.get("lr_decay") == 1.0:
        parts.append("a constant learning rate" + (" (the paper's decays by 0.95 per 50,000 examples)"
                                                   if model else ""))
    elif "lr_decay" in d:
        parts.append(f"learning rate multiplied by {d['lr_decay']:g} per 50,000 examples"
                     + (" instead of the paper's 0.95" if model else ""))
    return ", ".join(parts)


def _schedule_suffix(sched: tuple) -> str:
    """The figure files' suffix of a second schedule ("" for the paper's)."""
    d = dict(sched)
    return (f"_lr{d['lr']:g}" if "lr" in d else "") + (
        "_constlr" if d.get("lr_decay") == 1.0 else f"_decay{d['lr_decay']:g}" if "lr_decay" in d else "")


#: Models whose initialization is not PyTorch's default, said in their sections.
INIT_NOTE = {"inception_small_nobn": "Initialization: every conv He-normal (fan-in, ReLU gain) with zero bias "
             "(`rethink.models.SmallInception`, `bn=False`); at PyTorch's default init this network stayed at "
             "chance here. The paper does not state its init."}
#: The model each model's Figure 2 batch-norm panel and comparison is drawn against.
BN_PARTNER = {"inception_small": "inception_small_nobn"}


def section_batch_norm(w, m: str, runs: list[Result], other: str, other_runs: list[Result]) -> None:
    """The batch-norm comparison (the paper's Figure 2 and Table 1): final test accuracy of the
    unregularized true-label runs of ``m`` against ``other`` (the same network without batch norm)."""
    def accs(rs):
        return [d["test_acc"] for d in map(Result.summary, rs) if d["variant"] == "true" and setting(d) == "none"]

    a, b = accs(runs), accs(other_runs)
    ref_a, ref_b = (paper.TABLE1.get(x, {}).get("none") for x in (m, other))
    quoted = (f"paper, CIFAR-10 Table 1: {ref_a[1]:.2f}% with batch norm, {ref_b[1]:.2f}% without, "
              f"{ref_a[1] - ref_b[1]:+.2f} points" if ref_a and ref_b else "paper: no Table 1 row")
    if not a or not b:
        w(f"Batch norm ({quoted}): not compared here: no finished unregularized true-label run of "
          f"{model_label(other if a else m)}.\n\n")
        return
    (ma, *_), (mb, *_) = mean_spread(a), mean_spread(b)
    w(f"Batch norm ({quoted}): {model_label(m)} {100 * ma:.2f}% against {model_label(other)} {100 * mb:.2f}% "
      f"final test accuracy, {effect(a, b)}; Figure 2's second panel draws both learning curves.\n\n")


def _dtype_text(dtypes: list[str]) -> str:
    """What the runs' dtypes were, from their files."""
    if len(dtypes) == 1:
        return f"every run in {dtypes[0]}" + (" autocast" if dtypes[0] == "bfloat16" else "")
    return "runs in " + " and ".join(dtypes) + " (each table row names its runs' dtype)"


def _cell(stat: tuple[float, float, int], scale: float = 100.0) -> str:
    """'mean ± spread (n)' of a (mean, spread, n) triple, '-' for none."""
    m, sd, n = stat
    if n == 0:
        return "-"
    return (percent(m) if scale == 100.0 else f"{scale * m:.2f}") + (f" ± {scale * sd:.2f}" if n > 1 else "") + f" ({n})"


def section_dtype(w, folder: Path) -> None:
    """bfloat16 autocast against float32 on the same runs (stages dtype_float32 / dtype_bfloat16)."""
    from reproduce_convnets import DTYPE_STAGES

    from rethink.compare import compare

    rs = [r for st in DTYPE_STAGES for d in sorted((folder / st).glob("*"))
          if d.is_dir() for r in load(d)]
    if not rs:
        return
    w("## bfloat16 autocast against float32\n\n")
    n = rs[0].config["num_train"]
    w(f"The same runs (seeds, subsets, batches) in float32 and in bfloat16 autocast, {n:,} training images; "
      "mean ± spread over seeds (number of runs). A difference is called an effect only where it exceeds the sum "
      "of the two spreads (`rethink.compare`).\n\n")
    rows, effects = [], []
    for c in compare(rs, "dtype"):
        for v in c.values:
            st = c.stats[v]
            verdict = c.verdict.get(v, {})
            rows.append([model_label(c.group.get("model", "")), c.group.get("corruption", ""), v,
                         f"{c.fitted[v]} of {c.runs[v]}", _cell(st["epochs_to_fit"], 1.0),
                         _cell(st["train_acc"]), _cell(st["test_acc"]), "; ".join(f"{q}: {x}" for q, x in verdict.items()) or "reference"])
            effects += [f"{model_label(c.group.get('model', ''))} {c.group.get('corruption', '')} {q}"
                        for q, x in verdict.items() if x == "effect"]
    w(md(["model", "corruption", "dtype", "runs that fit", "epochs to fit", "train %", "test %",
          "against float32"], rows) + "\n")
    w(("Differences beyond the spread: " + "; ".join(effects) + ".\n\n") if effects else
      "No difference between bfloat16 and float32 exceeds the spread over seeds in these runs.\n\n")


def section_constant_lr(w, cl: Path) -> None:
    from reproduce_fashion import MODELS, constant_lr_plan

    for m in MODELS:
        rs = load(cl / m)
        have = {r.config["run_name"] for r in rs}
        missing = [p.spec for p in constant_lr_plan(m) if p.spec.run_name() not in have]
        ds = sorted((r.summary() | {"budget": r.config["max_epochs"]} for r in rs),
                    key=lambda d: (d["budget"], str(d["corruption"])))
        rows = [[d["corruption"], d["budget"], d["epochs"], "-" if d["epochs_to_fit"] is None else d["epochs_to_fit"],
                 percent(d["train_acc"]), f"{100 * d['test_acc']:.2f}",
                 f"{100 * d['best_test_acc']:.2f} (epoch {d['best_test_epoch']})"] for d in ds]
        w(f"{model_label(m)}" + (f" (training time, summed over runs: {hours(rs):.1f} h)" if rs else "") + ":\n\n")
        if rows:
            w(md(["corruption", "budget (epochs)", "epochs run", "epochs to fit", "train %", "test % (final)",
                  "best test % (epoch)"], rows) + "\n")
        if missing:
            w(f"Not done ({len(missing)} of {len(missing) + len(have & {p.spec.run_name() for p in constant_lr_plan(m)})}"
              f" runs of the {constant_lr_plan(m)[0].spec.max_epochs}-epoch stage): "
              + ", ".join(str(s.corruption) for s in missing) + ".\n\n")


def section_misfits(w, path: Path) -> None:
    """The training images nearly-fitted runs still get wrong (scripts/fashion_misfits.py). A run
    on a training subset carries the scale of its own images (``nearest_neighbour``); the others
    are measured against the file's, over the whole training split."""
    if not path.exists():
        return
    d = json.loads(path.read_text())
    runs = [r for r in d["runs"] if r["wrong"]]
    skipped = d.get("not_analysed", [])  # nearly fitted too, but their weights were not kept
    if not runs and not skipped:
        return
    whole = d["nearest_neighbour"]
    nns = [r.get("nearest_neighbour", whole) for r in runs]
    w("### What the nearly-fitted runs still get wrong\n\n")
    if not runs:
        _not_analysed(w, skipped)
        return
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    w(f"From `scripts/fashion_misfits.py` (`{shown}`): for each misclassified training "
      f"image, its nearest other training image, distances between the images as the network saw them "
      f"({whole['crop']}x{whole['crop']} crop, per-image whitening). For scale: over all {whole['images']:,} "
      f"training images the nearest neighbour is at a median distance of {whole['median']:.2f}; 1% have one "
      f"closer than {whole['p01']:.2f}, and {whole['below_1']} closer than 1.")
    own_scale = any(nn is not whole for nn in nns)  # some run on a subset: its own scale in its row
    if own_scale:
        w(" Each run's own training images (its subset) are the scale of its row: the last two columns.")
    w("\n\n")
    rows = []
    for r, nn in zip(runs, nns):
        ws = r["wrong"]
        rows.append([model_label(r["model"]), _setting(r), len(ws),
                     f"{max(x['distance'] for x in ws):.2f}",
                     f"{sum(x['nearest_label'] != x['label'] for x in ws)} of {len(ws)}",
                     f"{sum(x['predicted'] == x['nearest_label'] for x in ws)} of {len(ws)}"]
                    + ([f"{nn['images']:,}", f"{nn['below_1']}"] if own_scale else []))
    head = ["model", "corruption", "images misclassified", "largest distance to the nearest image",
            "nearest image has another label", "predicted as the nearest image's label"]
    if own_scale:
        head += ["training images", "of them with another closer than 1"]
    w(md(head, rows) + "\n")
    near, far = [], []  # runs whose every misfit has a near-duplicate (closer than 1), and the others
    for r, nn in zip(runs, nns):
        (near if max(x["distance"] for x in r["wrong"]) < 1 else far).append((r, nn))
    if near:
        n_wrong = sum(len(r["wrong"]) for r, _ in near)
        n_conflict = sum(x["nearest_label"] != x["label"] for r, _ in near for x in r["wrong"])
        rare = (f"which only {whole['below_1']} of {whole['images']:,} images have" if not own_scale
                else f"which at most {max(nn['below_1'] for _, nn in near)} of a run's training images have")
        pairs = {frozenset((x.get("image", x["index"]), x.get("nearest_image", x["nearest"])))  # training-split ids
                 for r, _ in near for x in r["wrong"]}
        which = "these runs" if len(near) == len(runs) else "the " + _rows_named(r for r, _ in near) + " run" + (
            "s" if len(near) > 1 else "")
        one = len(near) == 1 and len(runs) > 1
        w(f"Every image {which} still misclassif{'ies' if one else 'y'} has another training image closer than 1, "
          f"{rare}; in {n_conflict} of these {n_wrong} cases that near-duplicate carries a different label: what "
          + ("these runs leave" if len(near) == len(runs) else "it leaves" if one else "they leave") + " "
          + ("unfitted is one image of a nearly identical pair with conflicting labels" if n_conflict == n_wrong
             else f"unfitted is, but for {n_wrong - n_conflict}, one image of a nearly identical pair with "
                  "conflicting labels")
          + (f" ({len(pairs)} distinct pair{'s' if len(pairs) != 1 else ''} in all)" if len(pairs) < n_wrong else "")
          + (": training images " + "; ".join(" and ".join(map(str, sorted(q))) for q in sorted(map(sorted, pairs)))
             if len(pairs) <= 5 else "")
          + ".\n\n")
    if far:  # not near-duplicates: how far their misfits' neighbours are against the run's own scale
        cells = [f"{_rows_named([r])}: median {statistics.median(x['distance'] for x in r['wrong']):.2f} (the "
                 f"median over its training images {nn['median']:.2f}), {sum(x['distance'] < 1 for x in r['wrong'])} "
                 f"of {len(r['wrong'])} closer than 1" for r, nn in far]
        w(("In the other runs" if near else "In these runs") + ", the distance from each image still misclassified "
          "to its nearest other training image: " + "; ".join(cells)
          + (" (a run trained on random crops is looked at in its centre crop, the view its training accuracy is "
             "measured in)" if any(r.get("augment") for r, _ in far) else "") + ".\n\n")
    _not_analysed(w, skipped)


def _setting(r: dict) -> str:
    """A misfits row's 'corruption + regularizers'."""
    regs = regularizers(r.get("weight_decay"), r.get("augment"))
    return r["corruption"] + (f" + {regs}" if regs else "")


def _rows_named(runs) -> str:
    """'model corruption + regularizers' of misfits rows, joined, as their table rows name them."""
    return ", ".join(f"{model_label(r['model'])} {_setting(r)}" for r in runs)


def _not_analysed(w, skipped: list) -> None:
    """The nearly-fitted runs scripts/fashion_misfits.py could not look into (no weights kept)."""
    if not skipped:
        return
    cells = [f"{_rows_named([r])} (`{r['run_name']}`, {percent(r['train_acc'])}% training accuracy)" for r in skipped]
    w("Not analysed, as their weights were not kept: " + "; ".join(cells) + ".\n\n")


def section_digits(w) -> None:
    rs = load(STORE / "digits")
    if not rs:
        return
    w("## The embedded demo: digits\n\n")
    w(f"`rethink randomization-test` with its defaults (MLP 1x512 on scikit-learn's 8x8 digits, "
      f"{rs[0].config['num_train']:,} training images, {len(rs)} runs, {hours(rs) * 60:.1f} min of training).\n\n")
    w(plots.table1(rs) + "\n")
    w(rethink.randomization.verdict(rs) + "\n\n")


def _machine_of(r: Result) -> str | None:
    v = r.config.get("versions", {})
    if "cpu" not in v and not v.get("cuda"):
        return None
    name = v.get("device_name") if r.config.get("device", "cpu") != "cpu" else v.get("cpu")
    n = v.get("torch_threads")
    threads = f", {n} torch thread{'s' if n != 1 else ''}" if n else ""
    cores = f", {v['cpu_count']} cores" if v.get("cpu_count") else ""
    return f"{name}{cores}{threads} (torch {v.get('torch')})"


def section_machines(w) -> None:
    """The machines the stored runs were trained on, as their result files record them."""
    folders = sorted({p.parent for sub in REPORTED for p in (STORE / sub).rglob("*.json")})
    every = [r for d in folders for r in load(d)]
    seen = defaultdict(int)
    for r in every:
        seen[_machine_of(r)] += 1
    rows = [[m, n] for m, n in sorted(seen.items(), key=lambda kv: -kv[1]) if m]
    w("Machines, as the result files record them (model, cores and torch threads of the training process):\n\n")
    if rows:
        w(md(["machine", "runs"], rows) + "\n")
    if seen.get(None):
        meta = STORE / "machine.json"
        w(f"{seen[None]} result files were written before rethink recorded the machine in them"
          + (f"; `docs/results/machine.json`, written when they were collected, names "
             f"{json.loads(meta.read_text())['machine']} (the machine that collected them, which need not be the "
             "one that trained them)" if meta.exists() else "") + ".\n\n")


def report(out: Path) -> Path:
    lines: list[str] = []
    w = lines.append
    w("# Reproduction: Zhang et al. 2017 on real images, with rethink\n\n")
    w("Generated by `python scripts/make_report.py report` from the result files under `docs/results/` (one "
      "JSON per run: settings, per-epoch history, windowed training loss). Every number below except the "
      "paper's own comes from those files; the paper's numbers come from `rethink.paper` and are named as "
      "the paper's (CIFAR-10).\n\n")
    section_machines(w)
    w("## Fashion-MNIST at full scale, the paper's settings\n\n")
    models = sorted(p.name for p in (STORE / "fashion" / "main").glob("*") if p.is_dir()) \
        if (STORE / "fashion" / "main").exists() else []
    section_fashion(w, STORE / "fashion" / "main", models)
    cl = STORE / "fashion" / "constant_lr"
    if cl.exists():
        w("## Fashion-MNIST with a constant learning rate\n\n")
        w("The same models on true labels, label noise and random labels, with the learning rate held at its "
          "initial value (lr_decay 1) and a larger budget: can they fit random labels at all when the learning "
          "rate does not vanish? One seed.\n\n")
        section_constant_lr(w, cl)
        section_misfits(w, STORE / "fashion" / "misfits.json")
    conv = STORE / "convnets"
    if conv.exists():
        w("## The paper's conv nets on Fashion-MNIST (`scripts/reproduce_convnets.py`)\n\n")
        section_convnets(w, conv)
        section_dtype(w, conv)
    gpu = STORE / "convnets_cuda"
    if gpu.exists():
        machines = sorted({m for d in sorted({p.parent for p in gpu.rglob("*.json")}) for r in load(d)
                           if (m := _machine_of(r))})
        w("## The paper's conv nets on a lent GPU (`scripts/gpu_grids.sh`)\n\n")
        w(f"The same stages with `--device cuda`, trained on {'; '.join(machines)}, many runs side by side on "
          "the one GPU. Reported on their own: their numbers are never pooled with the CPU runs above (other "
          "kernels, other rounding), and their spreads are over their own seeds only.\n\n")
        section_convnets(w, gpu, figures="convnets_cuda", stored_only=True, resume=(
            "Runs not done were not reached in the GPU time this version was lent (15 minutes); on a GPU, "
            "`python scripts/reproduce_convnets.py --device cuda --workers 4 --results results/convnets_cuda` "
            "trains them (an interrupted run continues from its checkpoint where the machine kept it)."))
    section_digits(w)
    out.write_text("".join(lines))
    return out


def run_digits() -> None:
    rethink.randomization_test("mlp1x512", "digits", out_dir=ROOT / "results" / "digits", resume=True,
                               device="cpu", progress=False)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["collect", "digits", "report"])
    p.add_argument("--results", type=Path, default=ROOT / "results")
    args = p.parse_args(argv)
    if args.what == "collect":
        n = collect(args.results, STORE)
        print(f"stored {n} results under {os.path.relpath(STORE, ROOT)}")
    elif args.what == "digits":
        run_digits()
    else:
        print(report(DOCS / "REPRODUCTION.md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
