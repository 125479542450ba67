"""A model zoo with convolutional networks: MLPs, small AlexNet and the
Network-in-Network family of Jiang et al. 2020 on Fashion-MNIST subsets, resumably.

    python scripts/zoo_convnets.py --list             # every stage's runs and counts (nothing trains)
    python scripts/zoo_convnets.py cost               # one short run per family: s/epoch, measures, grid hours
    python scripts/zoo_convnets.py pilot              # each hyper-parameter's effect on the gap against seed noise
    python scripts/zoo_convnets.py main [--measures]  # the full grid (and every run's complexity measures)

Every run goes through the one runner, :func:`rethink.zoo` (finished runs are skipped, an
interrupted one continues from its checkpoint), with :data:`SETTINGS`: Fashion-MNIST
(1 x 28 x 28 images), the first 2,000 test images for the gap, and the common stopping rule
of Jiang et al.: 99% training accuracy (on the whole, possibly corrupted, training subset)
within a budget of :data:`BUDGET` epochs. Results go to results/zoo_convnets/<stage>.

Stages:

- ``pilot``: one family at a time, a base configuration (:data:`BASE`) and, for each
  hyper-parameter, the base with that hyper-parameter at each of two levels
  (:data:`PILOT_LEVELS`), two seeds each. It prints, per family and hyper-parameter, the
  mean gap at each level, the difference, and that difference over the seed-to-seed
  standard deviation of the gap (pooled over the family's pilot configurations): levels
  whose difference is within the seed noise move nothing and are not worth a factor of
  the main grid.
- ``main``: the factorial grid of each family (:data:`MAIN`), two seeds.
- ``cost``: one run of each family (its costliest model of the main grid, at its smallest
  batch size) on the smallest training subset for ``--epochs`` epochs, then its complexity
  measures; prints seconds per epoch and of the measures, estimates the main grid's hours
  (see :func:`estimate`) and projects a Jiang-scale grid of 2,187 NiN models on CIFAR-10
  (:func:`project_jiang`). ``--device cuda`` measures on a GPU (results in ``cost_cuda``). Its
  runs are resumable like the others: a rerun prints the stored timings (delete
  results/zoo_convnets/cost to measure again; the thread count is part of each run).

``--workers N`` trains N runs at once in worker processes (each with cpu_count / N torch
threads on the CPU; on a GPU they share it); ``--threads`` sets torch's threads of this process
(in-process runs, ``--workers 1``). ``--device cuda`` trains and measures every run of a stage on
the GPU; ``main --families alexnet nin`` trains those families' grids only (two processes can
share the main grid's folder, one family each; ``--models`` narrows a family to some models, and
``--seeds 1`` a stage to one of its seeds, so two processes can split one model's runs by seed);
``pilot --families nin --hyperparameters depth label_noise`` trains NiN's base and those two
blocks only (the table is printed over every stored pilot run).
``main --measures --each`` trains and measures one run at a time, cheapest first, where a block
otherwise trains all its runs before measuring any: a process stopped early (a session's end)
leaves each run it finished with its measures. A run whose measures are cached is not trained
again, weights file or not (a committed result folder copied into results/ resumes as it is).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import rethink  # noqa: E402
from rethink import models as _models  # noqa: E402
from rethink.zoo import zoo_specs  # noqa: E402

OUT = ROOT / "results" / "zoo_convnets"
SEEDS = (0, 1)
#: The epoch budget within which every run is to reach the stopping rule.
BUDGET = 200
#: Settings of every run of every stage (the cost stage overrides the budget and the rule).
SETTINGS = dict(dataset="fashion_mnist", stop_at_train_acc=0.99, max_epochs=BUDGET, test_size=2000)

#: The base configuration of each family (the pilot's centre); ``model`` sets width and depth.
BASE = {
    "mlp": dict(model="mlp2x256", lr=0.02, batch_size=64, weight_decay=0.0, dropout=0.0, augment=None,
                train_size=2000, corruption="none"),
    "alexnet": dict(model="alexnet_small", lr=0.01, batch_size=64, weight_decay=0.0, dropout=0.0, augment=None,
                    train_size=2000, corruption="none"),
    "nin": dict(model="nin3x48", lr=0.02, batch_size=64, weight_decay=0.0, dropout=0.0, augment=None,
                train_size=2000, corruption="none"),
}
_COMMON_LEVELS = {
    "batch_size": ("batch_size", [32, 128]),
    "weight_decay": ("weight_decay", [0.0, 5e-4]),
    "dropout": ("dropout", [0.0, 0.3]),
    "augment": ("augment", [None, "crop_flip"]),
    "train_size": ("train_size", [1000, 4000]),
    "label_noise": ("corruption", ["none", "labels:0.2"]),
}
#: The pilot: per family, hyper-parameter -> (the RunSpec setting it changes, its two levels);
#: every other setting as in BASE. Width and depth are the model name's.
#: The "_wide" entries: the MLP pilot's first levels of width, learning rate, batch size, weight
#: decay and dropout moved the gap by less than 1.5 seed standard deviations (docs/STUDY.md), so
#: the pilot tries each at wider levels before the main grid drops it or keeps it.
PILOT_LEVELS = {
    "mlp": {"width": ("model", ["mlp2x128", "mlp2x512"]), "depth": ("model", ["mlp1x256", "mlp4x256"]),
            "lr": ("lr", [0.005, 0.05]), **_COMMON_LEVELS,
            "width_wide": ("model", ["mlp2x32", "mlp2x2048"]), "lr_wide": ("lr", [0.001, 0.1]),
            "batch_size_wide": ("batch_size", [16, 256]), "weight_decay_wide": ("weight_decay", [0.0, 5e-3]),
            "dropout_wide": ("dropout", [0.0, 0.6])},
    "alexnet": {"lr": ("lr", [0.003, 0.03]), **_COMMON_LEVELS},
    "nin": {"width": ("model", ["nin3x24", "nin3x96"]), "depth": ("model", ["nin2x48", "nin4x48"]),
            "lr": ("lr", [0.005, 0.05]), **_COMMON_LEVELS},
}
#: How far (in seed standard deviations of the gap) a pilot hyper-parameter must move the gap,
#: with every run at the stopping rule, for the main grid to vary it.
PILOT_THRESHOLD = 1.5
#: The main grid: per family, a factorial grid of RunSpec settings (two seeds each run), of the
#: hyper-parameters the pilot found to move the gap by at least 1.5 seed standard deviations with
#: every run at the stopping rule (docs/STUDY.md): for MLPs width (32 / 2048: -1.9), depth (1 / 4:
#: +1.6), training-set size (-3.6) and label noise (+9.2); for small AlexNet training-set size
#: (-2.9) and label noise (+9.7) only. Learning rate, batch size, weight decay and dropout moved
#: neither family's gap beyond that, at either pair of levels tried; augmentation kept the MLPs
#: below 99% training accuracy within the budget (their smaller gap is not at the rule) and left
#: AlexNet's within the seed noise at 4x the epochs. Levels between the pilot's are added to reach
#: the size. NiN's levels are Jiang et al.'s width and depth with the two factors that moved both
#: other families, chosen before its pilot was in. Its pilot then moved the gap with the learning
#: rate (0.005 / 0.05) and the batch size (32 / 128) too. The learning rate was tried as a factor
#: of this grid at 0.005 (the level that moved the gap furthest from the base 0.02) and dropped:
#: nin2x24 at 0.005 stays below the rule within the budget (the probe's runs, :data:`PROBE`,
#: docs/STUDY.md), so half a level would be unscored; 0.05 (whose pilot runs, nin3x48, were at the
#: rule) moved the pilot's gap 1.4 seed sd from the base, below the 1.5 the grid asks for.
#: docs/STUDY.md gives, post hoc, how far each factor moves the gap on the main grid itself.
MAIN = {
    "mlp": {"model": [f"mlp{d}x{w}" for d in (1, 2, 4) for w in (32, 128, 512, 2048)],
            "corruption": ["none", "labels:0.1", "labels:0.2"], "train_size": [1000, 2000, 4000]},
    "alexnet": {"model": ["alexnet_small"], "corruption": ["none", "labels:0.1", "labels:0.2", "labels:0.3"],
                "train_size": [500, 1000, 2000, 4000]},
    "nin": {"model": ["nin2x24", "nin2x96", "nin4x24", "nin4x96"], "corruption": ["none", "labels:0.2"],
            "train_size": [1000, 2000]},
}


#: The probe of a main-grid factor that was tried and dropped: main-grid runs of NiN at learning
#: rate 0.005, trained by ``main --measures --each --families nin`` while MAIN["nin"] held
#: ``"lr": [0.02, 0.005]``, then moved from main/ to results/zoo_convnets/probe_nin_lr (stored
#: under docs/results/zoo_convnets/probe_nin_lr, reported in docs/STUDY.md).
PROBE = {"family": "nin", "setting": "lr", "level": 0.005, "folder": "probe_nin_lr"}


def family(model: str) -> str:
    """The family of a model name: "mlp", "alexnet" or "nin"."""
    return "mlp" if model.startswith("mlp") else "nin" if model.startswith("nin") else "alexnet"


def pilot_blocks() -> list[tuple[str, dict, dict]]:
    """The pilot as ``[(label, grid, settings)]`` for :func:`rethink.zoo`: per family, the base
    configuration, then one block per hyper-parameter (its two levels, the rest at the base).
    A configuration shared by two blocks (a level equal to the base) is one run: the runner
    finds it finished."""
    blocks = []
    for fam, base in BASE.items():
        blocks.append((f"{fam}/base", {"model": [base["model"]]}, {k: v for k, v in base.items() if k != "model"}))
        for hp, (key, levels) in PILOT_LEVELS[fam].items():
            rest = {k: v for k, v in base.items() if k != key}
            blocks.append((f"{fam}/{hp}", {key: list(levels)}, rest))
    return blocks


def pilot_selection(families, hyperparameters=None) -> list[tuple[str, dict, dict]]:
    """The pilot's blocks (:func:`pilot_blocks`) of ``families``, in that order, and of those only
    the base and the blocks of ``hyperparameters`` (None: every one). Raises ValueError naming
    a hyper-parameter that is in no family's pilot (:data:`PILOT_LEVELS`)."""
    if hyperparameters is not None:
        known = {hp for levels in PILOT_LEVELS.values() for hp in levels}
        bad = sorted(set(hyperparameters) - known)
        if bad:
            raise ValueError(f"--hyperparameters {bad}: not a pilot hyper-parameter (one of {sorted(known)})")
    return [b for f in families for b in pilot_blocks() if b[0].split("/")[0] == f
            and (hyperparameters is None or b[0].split("/")[1] in ("base", *hyperparameters))]


def main_blocks() -> list[tuple[str, dict, dict]]:
    """The main grid as ``[(family, grid, settings)]``: each family's factorial grid, with the
    settings it does not vary at the family's base (:data:`BASE`)."""
    out = []
    for fam, grid in MAIN.items():
        fixed = {k: v for k, v in BASE[fam].items() if k not in grid}
        out.append((fam, grid, fixed))
    return out


def specs(blocks) -> list:
    """The distinct RunSpecs of ``blocks`` (seeds :data:`SEEDS`), in order."""
    seen, out = set(), []
    for _, grid, fixed in blocks:
        for s in zoo_specs(grid, SEEDS, **{**SETTINGS, **fixed}):
            if s.run_name() not in seen:
                seen.add(s.run_name())
                out.append(s)
    return out


def one_by_one(blocks, seeds=SEEDS) -> list[tuple[str, dict, dict, tuple]]:
    """``blocks`` split into one block per run of ``seeds``, as ``(label, grid of one cell, fixed,
    (seed,))``: smaller training sets first, then fewer flipped labels (what fits in fewer
    epochs), then the seed."""
    out = []
    for label, grid, fixed in blocks:
        keys = list(grid)
        for values in itertools.product(*(grid[k] for k in keys)):
            cell = dict(zip(keys, values))
            for seed in seeds:
                out.append((f"{label} {cell} seed {seed}", {k: [v] for k, v in cell.items()}, fixed, (seed,)))

    def cost(b):
        cell = {**b[2], **{k: v[0] for k, v in b[1].items()}}
        return cell.get("train_size", 0), str(cell.get("corruption", "none")) != "none", b[3]
    return sorted(out, key=cost)


def check_seeds(seeds) -> None:
    """Raises ValueError naming ``seeds`` unless they are some of the grid's :data:`SEEDS`."""
    if not seeds or set(seeds) - set(SEEDS):
        raise ValueError(f"seeds {list(seeds)}: the grid's seeds are {list(SEEDS)}")


def train(blocks, out_dir: Path, devices, measures: bool = False, device: str = "cpu", each: bool = False,
          seeds=SEEDS) -> list:
    """Every block through :func:`rethink.zoo` into ``out_dir`` on ``device`` (or its worker
    ``devices``), each run of ``seeds`` (the grid's :data:`SEEDS` or some of them); the results,
    one per distinct run. ``each``: one run at a time, trained and then measured
    (:func:`one_by_one`), so that a process stopped early leaves every run it finished with its
    measures (without it a block trains all its runs, then measures them)."""
    check_seeds(seeds)
    results = {}
    runs = one_by_one(blocks, seeds) if each else [(label, grid, fixed, tuple(seeds)) for label, grid, fixed in blocks]
    for label, grid, fixed, run_seeds in runs:
        t0 = time.perf_counter()
        rep = rethink.zoo(grid, run_seeds, out_dir, measures=measures, device=device, devices=devices, progress=False,
                          **{**SETTINGS, **fixed})
        for r in rep.results:
            results[r.run_name] = r
        done = sum(r.status == "completed" for r in rep.results)
        print(f"{label}: {done}/{len(rep.results)} completed ({time.perf_counter() - t0:.0f} s)", flush=True)
    return list(results.values())


def pilot_effects(results) -> dict[str, dict]:
    """Per family, the pilot's findings: ``{"sd": the family's seed-to-seed standard deviation of
    the gap, "configs": configurations it pools, "rows": {hyper-parameter: row}}``, where a row has
    ``levels``, ``means`` (mean gap per level over its runs, NaN where a level has none), ``runs``
    and ``fit`` (runs per level and those at the stopping rule), ``diff`` (the second level's mean
    minus the first's) and ``ratio`` (``diff`` over ``sd``; NaN where a level has no runs). Runs
    not finished (still training, interrupted, failed) are left out, as if not run."""
    results = [r for r in results if r.status == "completed"]
    by_config: dict[tuple, dict[int, float]] = {}
    fit_by_config: dict[tuple, dict[int, bool]] = {}
    for r in results:
        s = r.spec
        # one configuration = every setting but the seed and the seeds it defaults (corruption, subset)
        key = tuple(sorted((k, v) for k, v in s.to_dict().items()
                           if k not in ("seed", "corruption_seed", "subset_seed", "run_name")))
        by_config.setdefault(key, {})[s.seed] = r.final.get("gap", math.nan)
        fit_by_config.setdefault(key, {})[s.seed] = r.epochs_to_fit is not None
    out = {}
    for fam, base in BASE.items():
        sd, used = rethink.study.seed_sd(list(g.values()) for k, g in by_config.items()
                                         if family(dict(k)["model"]) == fam)
        rows = {}
        for hp, (key, levels) in PILOT_LEVELS[fam].items():
            means, runs, fit = [], [], []
            for lv in levels:
                want = {**base, key: lv}
                keys = [k for k in by_config if all(dict(k).get(a) == b for a, b in want.items())]
                g = [v for k in keys for v in by_config[k].values()]
                means.append(statistics.fmean(g) if g else math.nan)
                f = [x for k in keys for x in fit_by_config[k].values()]
                runs.append(len(f))
                fit.append(sum(f))
            diff = means[1] - means[0]
            rows[hp] = dict(key=key, levels=list(levels), means=means, runs=runs, fit=fit, diff=diff,
                            ratio=diff / sd if sd > 0 else math.nan)
        out[fam] = dict(sd=sd, configs=used, rows=rows)
    return out


def pilot_report(results) -> str:
    """The pilot's table (:func:`pilot_effects`): per family and hyper-parameter, the mean gap
    (training minus test accuracy, final epoch) at each level over the seeds, the difference, and
    the difference over the family's seed-to-seed standard deviation of the gap (pooled over its
    configurations: :func:`rethink.study.seed_sd`), and per level how many runs reached the
    stopping rule. A level without finished runs reads "not run", and its difference "-"; runs not
    finished are left out of every count."""
    results = [r for r in results if r.status == "completed"]
    effects = pilot_effects(results)
    fitted: dict[str, int] = {}
    for r in results:
        fitted[family(r.spec.model)] = fitted.get(family(r.spec.model), 0) + (r.epochs_to_fit is not None)
    lines = ["| family | hyper-parameter | levels | mean gap per level | difference | / seed sd | runs at the rule per level |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for fam, eff in effects.items():
        for hp, row in eff["rows"].items():
            means = " / ".join("not run" if n == 0 else f"{m:.3f}" for m, n in zip(row["means"], row["runs"]))
            ran = all(row["runs"])
            diff = f"{row['diff']:+.3f}" if ran else "-"
            ratio = f"{row['ratio']:+.1f}" if ran and math.isfinite(row["ratio"]) else "-"
            fits = " / ".join(f"{f}/{n}" for f, n in zip(row["fit"], row["runs"]))
            lines.append(f"| {fam} | {hp} | {row['levels'][0]} / {row['levels'][1]} | {means} | {diff} | {ratio} | "
                         f"{fits} |")
        lines.append(f"| {fam} | (seed sd of the gap) | | {eff['sd']:.4f} over {eff['configs']} configurations | | | |")
    total = {f: sum(family(r.spec.model) == f for r in results) for f in BASE}
    lines.append("\nReached 99% training accuracy within the budget: " + ", ".join(
        f"{f} {fitted.get(f, 0)}/{total[f]}" for f in BASE) + ". A level whose runs did not all reach it "
        "(last column) has its gap at the end of the budget, not at the rule: its difference is not comparable.")
    return "\n".join(lines)


#: The pilot's hyper-parameters behind each setting the main grid varies.
MAIN_FROM_PILOT = {"model": ("width", "depth", "width_wide"), "corruption": ("label_noise",),
                   "train_size": ("train_size",), "lr": ("lr", "lr_wide"), "batch_size": ("batch_size", "batch_size_wide")}


def main_grid_support(results, threshold: float = PILOT_THRESHOLD) -> dict[str, dict[str, list]]:
    """Per family and per setting its main grid varies (:data:`MAIN`), what the pilot says of it:
    ``{"moved": [(hyper-parameter, ratio)], "within": [...], "not_at_rule": [...], "not_run": [...]}``
    over the pilot's hyper-parameters behind the setting (:data:`MAIN_FROM_PILOT`). ``moved``: the
    difference is at least ``threshold`` seed standard deviations with every run at the rule;
    ``within``: every run at the rule, less than that; ``not_at_rule``: some run missed the rule;
    ``not_run``: a level has no stored runs."""
    effects = pilot_effects(results)
    out: dict[str, dict[str, list]] = {}
    for fam, grid in MAIN.items():
        rows = effects[fam]["rows"]
        for key in grid:
            cat = {"moved": [], "within": [], "not_at_rule": [], "not_run": []}
            for hp in MAIN_FROM_PILOT.get(key, ()):
                if hp not in rows:
                    continue
                row = rows[hp]
                if not all(row["runs"]):
                    cat["not_run"].append((hp, math.nan))
                elif row["fit"] != row["runs"]:
                    cat["not_at_rule"].append((hp, row["ratio"]))
                elif abs(row["ratio"]) >= threshold:
                    cat["moved"].append((hp, row["ratio"]))
                else:
                    cat["within"].append((hp, row["ratio"]))
            out.setdefault(fam, {})[key] = cat
    return out


def _main_factors(spec) -> dict:
    """The main grid's factors of one run: a family's width and depth (read from its model name,
    ``mlp<depth>x<width>`` or ``nin<depth>x<width>``; absent for a model without them), then each
    other setting its family's grid varies (:data:`MAIN`: label noise as the corruption, the
    training-set size), in the grid's order."""
    out = {}
    name = spec.model
    fam = family(name)
    if fam in ("mlp", "nin"):
        depth, width = name[3:].split("x")
        out.update(width=int(width), depth=int(depth))
    d = spec.to_dict()
    out.update({k: d[k] for k in MAIN[fam] if k != "model"})
    return out


def main_effects(results) -> dict[str, dict]:
    """Per family, how far each factor the main grid varies moves the gap, measured on the main
    grid itself: ``{"sd": the family's seed-to-seed standard deviation of the gap (pooled over its
    configurations, :func:`rethink.study.seed_sd`), "configs": how many, "rows": {factor: row}}``.
    A factor's row compares its levels on matched configurations: the groups of configurations
    equal in every other factor that hold every level of this one (each configuration's gap the
    mean over its seeds); ``levels``, ``means`` (mean gap per level over those groups), ``groups``
    (how many), ``spread`` (largest level mean minus smallest), ``ratio`` (``spread`` over
    ``sd``), ``first_last`` (last level's mean minus the first's, levels in order, label noise by
    its fraction: :func:`rethink.study.level_order`), ``runs`` (the fewest runs behind one level's
    mean) and ``se`` (the standard error of a difference of two level means from seed noise
    alone, ``sd * sqrt(2 / runs)``; a spread of several ``se`` is no accident of the seeds, even
    where it is within one run's ``sd``, as the level means average many runs). Only completed
    runs that reached the stopping rule count; a factor with one level in a family has no row."""
    from collections import defaultdict

    by_config: dict[tuple, list[float]] = defaultdict(list)
    fam_of: dict[tuple, str] = {}
    factors: dict[str, list[str]] = {}  # per family, its factors in _main_factors' order
    for r in results:
        if r.status != "completed" or r.epochs_to_fit is None:
            continue
        f = _main_factors(r.spec)
        key = tuple(sorted(f.items(), key=lambda kv: kv[0]))
        by_config[key].append(r.final.get("gap", math.nan))
        fam_of[key] = family(r.spec.model)
        factors.setdefault(fam_of[key], list(f))
    out = {}
    for fam in BASE:
        cfgs = {k: statistics.fmean(v) for k, v in by_config.items() if fam_of[k] == fam}
        if not cfgs:
            continue
        sd, used = rethink.study.seed_sd(v for k, v in by_config.items() if fam_of[k] == fam)
        rows = {}
        for factor in factors[fam]:
            levels = sorted({dict(k)[factor] for k in cfgs}, key=rethink.study.level_order)
            if len(levels) < 2:
                continue
            groups: dict[tuple, dict] = defaultdict(dict)
            for k in cfgs:
                groups[tuple(kv for kv in k if kv[0] != factor)][dict(k)[factor]] = k
            full = [g for g in groups.values() if len(g) == len(levels)]
            means = [statistics.fmean(cfgs[g[lv]] for g in full) if full else math.nan for lv in levels]
            spread = max(means) - min(means) if full else math.nan
            # runs behind each level mean (seeds of its configurations), the fewest over levels
            runs = min((sum(len(by_config[g[lv]]) for g in full) for lv in levels), default=0)
            se = sd * math.sqrt(2 / runs) if runs else math.nan  # of a difference of two level means
            rows[factor] = dict(levels=levels, means=means, groups=len(full), runs=runs, spread=spread,
                                ratio=spread / sd if sd > 0 else math.nan, first_last=means[-1] - means[0],
                                se=se)
        out[fam] = dict(sd=sd, configs=used, rows=rows)
    return out


def main_effects_report(results) -> str:
    """:func:`main_effects` as a markdown table: per family and factor, the mean gap per level on
    matched configurations, the last level minus the first, the spread of the level means and
    that spread over the family's seed standard deviation; then the family's seed sd."""
    lines = ["| family | factor | levels | mean gap per level (matched) | last - first | spread | spread / seed sd "
             "| spread / s.e. | matched groups (runs per level) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for fam, eff in main_effects(results).items():
        for factor, row in eff["rows"].items():
            if not row["groups"]:
                lines.append(f"| {fam} | {factor} | {' / '.join(map(str, row['levels']))} | no configuration holds "
                             "every level | - | - | - | - | 0 |")
                continue
            lines.append(f"| {fam} | {factor} | {' / '.join(map(str, row['levels']))} | "
                         f"{' / '.join(f'{m:.3f}' for m in row['means'])} | {row['first_last']:+.3f} | "
                         f"{row['spread']:.3f} | {row['ratio']:.1f} | {row['spread'] / row['se']:.1f} | "
                         f"{row['groups']} ({row['runs']}) |")
        lines.append(f"| {fam} | (seed sd of the gap) | | {eff['sd']:.4f} over {eff['configs']} configurations "
                     "| | | | | |")
    return "\n".join(lines)


def macs(model, shape=(1, 28, 28), classes: int = 10) -> int:
    """Multiply-accumulates of one forward pass of ``model`` (a registered name, or an
    ``nn.Module``) on one ``shape`` image (conv and linear layers only)."""
    import torch

    net = (_models.create(model, shape, classes, seed=0) if isinstance(model, str) else model).eval()
    total = 0

    def hook(mod, inp, out):
        nonlocal total
        if isinstance(mod, torch.nn.Conv2d):
            total += out.numel() * (mod.in_channels // mod.groups) * mod.kernel_size[0] * mod.kernel_size[1]
        elif isinstance(mod, torch.nn.Linear):
            total += out.numel() * mod.in_features

    hs = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        net(torch.zeros(1, *shape))
    for h in hs:
        h.remove()
    return total


def cost_runs() -> dict[str, dict]:
    """Per family, the cost stage's run: the costliest model (most MACs) of its main grid at its
    smallest batch size and training subset; every other setting at the base."""
    out = {}
    for fam, grid, fixed in main_blocks():
        run = {**fixed, **{k: v[0] for k, v in grid.items()}}
        run["model"] = max(grid["model"], key=macs)
        run["batch_size"] = min(grid.get("batch_size", [run["batch_size"]]))
        run["train_size"] = min(grid.get("train_size", [run["train_size"]]))
        run["corruption"], run["augment"] = "none", None
        out[fam] = run
    return out


#: Where the typical epochs to the stopping rule come from: the committed MLP zoo (Fashion-MNIST
#: subsets, the same rule), median per (training-set size, label noise).
MLP_ZOO = ROOT / "docs" / "results" / "zoo"


def typical_epochs() -> dict[tuple[int, str], float]:
    """Median epochs to 99% training accuracy in the committed MLP zoo, per (train_size,
    corruption); empty when it is not there."""
    got: dict[tuple[int, str], list[int]] = {}
    for p in sorted(MLP_ZOO.glob("*.json")):
        if p.name.endswith(".measures.json"):
            continue
        d = json.loads(p.read_text())
        c = d.get("config", {})
        got.setdefault((c.get("train_size"), c.get("corruption")), []).append(len(d.get("history", [])))
    return {k: statistics.median(v) for k, v in got.items() if v}


def estimate(per_epoch: dict[str, float], cost: dict[str, dict]) -> dict[str, dict[str, float]]:
    """CPU hours of the main grid, per family and in all (key "all"), from the measured seconds per epoch of each family's cost run.

    A run's epoch is taken to cost its family's measured epoch scaled by its training-set size
    over the cost run's (the evaluation of the 2,000 test images each epoch is scaled too: an
    overestimate) and, for "mac-scaled", by its model's MACs over the cost run's model's
    ("upper" keeps every model at the costliest one's). Batch sizes are not scaled: the cost
    run trains at the family's smallest, the slowest per epoch. Epochs: "typical" uses the
    median epochs to the rule in the committed MLP zoo per (train_size, label noise), the
    nearest training-set size where it has none ("budget": every run trains all BUDGET epochs)."""
    typ = typical_epochs()
    kinds = ("typical_mac_scaled", "typical_upper", "budget_mac_scaled", "budget_upper")
    hours = {f: dict.fromkeys(kinds, 0.0) for f in (*BASE, "all")}
    mac = {}
    for s in specs(main_blocks()):
        fam = family(s.model)
        c = cost[fam]
        for m in (s.model, c["model"]):
            mac.setdefault(m, macs(m))
        sec = per_epoch[fam] * s.train_size / c["train_size"]
        scaled = sec * mac[s.model] / mac[c["model"]]
        near = [k for k in typ if k[1] == s.corruption]
        epochs = typ[min(near, key=lambda k: abs(k[0] - s.train_size))] if near else BUDGET
        for f in (fam, "all"):
            hours[f]["typical_mac_scaled"] += scaled * epochs / 3600
            hours[f]["typical_upper"] += sec * epochs / 3600
            hours[f]["budget_mac_scaled"] += scaled * BUDGET / 3600
            hours[f]["budget_upper"] += sec * BUDGET / 3600
    return hours


def measure_seconds(groups: dict[str, float], n_from: int, n_to: int, max_examples: int = 2048) -> float:
    """The measures' seconds (``groups``: group -> seconds, measured on ``n_from`` training
    examples) projected to ``n_to`` examples: the groups that pass over every example
    (:data:`rethink.measures.FULL_DATA_GROUPS`) scale with the count, the subsampled ones
    (:data:`rethink.measures.SUBSAMPLED_GROUPS`) with the subsample's size, the rest not at all."""
    from rethink.measures import FULL_DATA_GROUPS, SUBSAMPLED_GROUPS

    def scale(g):
        if g in FULL_DATA_GROUPS:
            return n_to / n_from
        return min(n_to, max_examples) / min(n_from, max_examples) if g in SUBSAMPLED_GROUPS else 1.0

    return sum(v * scale(g) for g, v in groups.items())


#: A Jiang et al. 2020-scale grid for the projection of :func:`project_jiang`: 2,187 = 3^7
#: networks of the NiN family on CIFAR-10 (50,000 training images of 3 x 32 x 32), three depths
#: and three widths (the per-epoch cost of the other five three-level hyper-parameters is taken
#: as the cost run's: batch size 64, no augmentation), at each of ``epochs`` epochs.
JIANG_RUNS, JIANG_IMAGES, JIANG_SHAPE = 2187, 50_000, (3, 32, 32)
JIANG_MODELS = tuple((d, w) for d in (2, 3, 4) for w in (96, 192, 384))  # (depth, width)
JIANG_EPOCHS = (20, 50, 100)


def project_jiang(nin_epoch_s: float, nin_measures: dict[str, float], cost_run: dict, unit: str = "CPU") -> list[str]:
    """Lines projecting the cost of a 2,187-model Jiang-scale grid (:data:`JIANG_RUNS`) from the
    NiN cost run: seconds per epoch scaled by MACs per image (the grid's models at
    :data:`JIANG_SHAPE` over the cost run's model at 1 x 28 x 28) and by training-set size
    (:data:`JIANG_IMAGES` over the cost run's); the measures' seconds (``nin_measures``: group ->
    seconds) scaled by MACs and by :func:`measure_seconds` to that size. An approximation: only
    the convolutions scale with MACs, and the epochs to the stopping rule are not known for
    CIFAR-10 here, so the projection is given at each of :data:`JIANG_EPOCHS` epochs."""
    ref = macs(cost_run["model"])
    ratio = statistics.mean(macs(_models.NiN(JIANG_SHAPE, 10, width=w, depth=d), JIANG_SHAPE)
                            for d, w in JIANG_MODELS) / ref
    epoch = nin_epoch_s * ratio * JIANG_IMAGES / cost_run["train_size"]
    meas = measure_seconds(nin_measures, cost_run["train_size"], JIANG_IMAGES) * ratio
    lines = [f"Jiang-scale grid: {JIANG_RUNS} NiN models (depth x width {', '.join(f'{d}x{w}' for d, w in JIANG_MODELS)}; mean {ratio:.1f}x the MACs of "
             f"{cost_run['model']} on 1x28x28) on {JIANG_IMAGES:,} images of {'x'.join(map(str, JIANG_SHAPE))}: "
             f"{epoch:.0f} s per epoch and {meas:.0f} s of measures per model (MAC-scaled)"]
    for e in JIANG_EPOCHS:
        h = JIANG_RUNS * (epoch * e + meas) / 3600
        lines.append(f"  at {e} epochs per model: {h:,.0f} {unit} hours in all; over 64 such workers through "
                     f"submitit (independent jobs): {h / 64:,.1f} h of wall time")
    return lines


def run_cost(epochs: int, threads: int, devices, device: str = "cpu") -> None:
    """Train the cost runs (``epochs`` epochs each, no stopping rule, ``threads`` torch threads as
    part of each run's settings), compute their complexity measures, and print seconds per
    epoch, seconds of measures, the main grid's estimate and the Jiang-scale projection
    (:func:`project_jiang`)."""
    cost = cost_runs()
    per_epoch, measure_s = {}, {}
    for fam, run in cost.items():
        settings = {**SETTINGS, **{k: v for k, v in run.items() if k != "model"}, "max_epochs": epochs,
                    "stop_at_train_acc": None, "threads": threads}
        out = OUT / ("cost" if device == "cpu" else f"cost_{device}")
        rep = rethink.zoo({"model": [run["model"]]}, (0,), out, measures=True, device=device,
                          devices=devices, progress=False, **settings)
        r = rep.results[0]
        secs = [h["seconds"] for h in r.history]
        steps = [b - a for a, b in zip([0.0] + secs, secs)]
        per_epoch[fam] = statistics.median(steps)
        groups = json.loads((out / f"{r.run_name}.measures.json").read_text())["seconds"]
        measure_s[fam] = groups
        top = sorted(groups.items(), key=lambda kv: -kv[1])[:3]
        print(f"{fam}: {run['model']} ({_models.num_parameters(_models.create(run['model'], (1, 28, 28), 10)):,} "
              f"parameters, {macs(run['model']) / 1e6:.2f} M MACs per image), train_size {run['train_size']}, batch "
              f"{run['batch_size']}, {threads} thread(s), {device}: {per_epoch[fam]:.2f} s per epoch (median of "
              f"{len(steps)} epochs: {', '.join(f'{x:.2f}' for x in steps)}); measures {sum(groups.values()):.1f} s "
              f"(largest: {', '.join(f'{g} {v:.1f} s' for g, v in top)})", flush=True)
    runs = specs(main_blocks())
    conv = sum(s.model in _models.CONVOLUTIONAL for s in runs)
    hours = estimate(per_epoch, cost)
    typ = typical_epochs()
    print(f"main grid: {len(runs)} runs ({conv} convolutional); typical epochs to the rule (MLP zoo medians): "
          + (", ".join(f"{k[0]}/{k[1]}: {v:g}" for k, v in sorted(typ.items())) or f"none, {BUDGET} used"))
    meas_h = {f: 0.0 for f in (*BASE, "all")}  # every run's model at its family's costliest: an upper bound
    for s in runs:
        sec = measure_seconds(measure_s[family(s.model)], cost[family(s.model)]["train_size"], s.train_size)
        meas_h[family(s.model)] += sec / 3600
        meas_h["all"] += sec / 3600
    for f, h in hours.items():
        n = len(runs) if f == "all" else sum(family(s.model) == f for s in runs)
        meas = meas_h[f]
        print(f"estimated {device.upper()} hours at {threads} thread(s), {f} ({n} runs): typical {h['typical_mac_scaled']:.1f} "
              f"(MAC-scaled), {h['typical_upper']:.1f} (every model at its family's costliest); whole budget of "
              f"{BUDGET} epochs: {h['budget_mac_scaled']:.1f} (MAC-scaled), {h['budget_upper']:.1f} (costliest); "
              f"measures at most {meas:.1f} (every model at its family's costliest)")
    unit = f"CPU ({threads} thread)" if device == "cpu" else "GPU"
    print("\n".join(project_jiang(per_epoch["nin"], measure_s["nin"], cost["nin"], unit)))


def list_stages() -> None:
    """Print every stage's runs and counts."""
    cost = cost_runs()
    print(f"== cost: {len(cost)} runs (one per family, --epochs epochs, no stopping rule)")
    for fam, run in cost.items():
        print(f"  {fam}: " + ", ".join(f"{k}={v}" for k, v in run.items()))
    for stage, blocks in (("pilot", pilot_blocks()), ("main", main_blocks())):
        runs = specs(blocks)
        conv = sum(s.model in _models.CONVOLUTIONAL for s in runs)
        fams = {f: sum(family(s.model) == f for s in runs) for f in BASE}
        print(f"== {stage}: {len(runs)} runs, {conv} convolutional ("
              + ", ".join(f"{f} {n}" for f, n in fams.items()) + f"), seeds {list(SEEDS)}")
        for label, grid, fixed in blocks:
            n = len(zoo_specs(grid, SEEDS, **{**SETTINGS, **fixed}))
            print(f"  {label}: {n} runs; grid " + ", ".join(f"{k}={v}" for k, v in grid.items())
                  + "; fixed " + ", ".join(f"{k}={v}" for k, v in fixed.items()))
        for s in runs:
            print(f"    {s.run_name()}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("stage", nargs="?", choices=["cost", "pilot", "main"])
    p.add_argument("--list", action="store_true", help="print every stage's runs and counts; train nothing")
    p.add_argument("--workers", type=int, default=1, help="worker processes (runs at once)")
    p.add_argument("--threads", type=int, default=1, help="torch threads of this process")
    p.add_argument("--epochs", type=int, default=3, help="epochs of each cost run")
    p.add_argument("--measures", action="store_true", help="main: compute every run's complexity measures too")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="the device of every run (workers share it)")
    p.add_argument("--families", nargs="+", choices=list(MAIN), default=list(MAIN),
                   help="main, pilot: these families' grids only, in this order (another process may train the rest)")
    p.add_argument("--hyperparameters", nargs="+", default=None,
                   help="pilot: only the base and these hyper-parameters' blocks (e.g. depth train_size label_noise)")
    p.add_argument("--each", action="store_true",
                   help="main: train and measure one run at a time, cheapest first (a process stopped early "
                        "keeps every run it finished with its measures); pilot: train one run at a time, "
                        "cheapest first")
    p.add_argument("--models", nargs="+", default=None,
                   help="main: only these models of the families' grids (e.g. nin2x24 nin4x24)")
    p.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS),
                   help=f"main, pilot: only these of the grid's seeds {list(SEEDS)} (another process may train "
                        "the rest)")
    args = p.parse_args(argv)
    if args.list:
        list_stages()
        return 0
    if args.stage is None:
        p.error("give a stage (cost, pilot, main) or --list")
    try:
        check_seeds(args.seeds)
    except ValueError as e:
        p.error(f"--{e}")
    import torch

    torch.set_num_threads(args.threads)
    devices = [args.device] * args.workers if args.workers > 1 else None
    t0 = time.perf_counter()
    if args.stage == "cost":
        run_cost(args.epochs, args.threads, devices, args.device)
    elif args.stage == "pilot":
        try:
            blocks = pilot_selection(args.families, args.hyperparameters)
        except ValueError as e:
            p.error(str(e))
        train(blocks, OUT / "pilot", devices, device=args.device, each=args.each, seeds=args.seeds)
        # the table over every stored pilot run, those of families another process trains too
        print(pilot_report(rethink.load_runs(OUT / "pilot")))
    else:
        blocks = sorted((b for b in main_blocks() if b[0] in args.families), key=lambda b: args.families.index(b[0]))
        if args.models:
            bad = sorted(set(args.models) - {m for _, g, _ in blocks for m in g["model"]})
            if bad:
                p.error(f"--models {bad}: not in the grids of {args.families}")
            blocks = [(f, {**g, "model": [m for m in g["model"] if m in args.models]}, fx) for f, g, fx in blocks
                      if any(m in args.models for m in g["model"])]
        results = train(blocks, OUT / "main", devices, measures=args.measures, device=args.device, each=args.each,
                        seeds=args.seeds)
        print(f"{len(results)} runs, {sum(r.status == 'completed' for r in results)} completed")
    print(f"{args.stage}: {(time.perf_counter() - t0) / 60:.1f} min", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
