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
import math
import sys
import time
from collections import defaultdict
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


STORE = ROOT / "docs" / "results"
#: This project's one-line summary of what Jiang et al. 2020 found on CIFAR-10 (not their
#: numbers): their best measures were sharpness- and PAC-Bayes-based and magnitude-aware;
#: norm-based products often correlated negatively with the gap.
JIANG = {
    "pacbayes_mag_flatness": "among their best",
    "sharpness_mag": "among their best",
    "log_prod_spec": "often negative",
    "log_prod_fro": "often negative",
}


def _memorization_figure(d: dict, path: Path) -> Path:
    """Histograms of the memorization scores of flipped and clean examples, and AUROC by fits."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.2), dpi=80)
    FigureCanvasAgg(fig)
    ax, bx = fig.subplots(1, 2)
    flipped = [s for s, f in zip(d["scores"], d["flipped_mask"]) if f and s is not None]
    clean = [s for s, f in zip(d["scores"], d["flipped_mask"]) if not f and s is not None]
    bins = [i / 20 - 1 for i in range(41)]
    ax.hist(clean, bins=bins, alpha=0.6, label=f"clean labels ({len(clean)})", color="tab:blue")
    ax.hist(flipped, bins=bins, alpha=0.6, label=f"flipped labels ({len(flipped)})", color="tab:red")
    ax.set_xlabel("memorization score")
    ax.set_ylabel("examples")
    ax.legend(fontsize=8)
    runs = [int(k) for k in d["auroc_by_runs"]]
    bx.plot(runs, list(d["auroc_by_runs"].values()), marker="o")
    bx.set_xscale("log")
    bx.set_xlabel("fits used")
    bx.set_ylabel("AUROC against the flipped set")
    for a in (ax, bx):
        a.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def _effects_table(rows: list[dict], hps: list[str]) -> str:
    """Per hyper-parameter: the mean change of the gap between its two levels, the other
    hyper-parameters held fixed (pairs of configurations that differ in it alone, seeds
    averaged), against the seed-to-seed noise (the standard deviation of one run's gap around
    its configuration's mean, pooled over configurations)."""
    from collections import defaultdict

    cells: dict[tuple, list[float]] = defaultdict(list)
    for r in rows:
        cells[tuple(repr(r[h]) for h in hps)].append(r["gap"])
    noise, _ = rethink.study.seed_sd(cells.values())
    means = {k: sum(v) / len(v) for k, v in cells.items()}
    out = ["| hyper-parameter | levels | mean change of the gap | pairs | change / seed noise |",
           "| --- | --- | --- | --- | --- |"]
    for i, h in enumerate(hps):
        levels = sorted({k[i] for k in means}, key=rethink.study.level_order)
        if len(levels) != 2:
            continue
        diffs = [means[k[:i] + (levels[1],) + k[i + 1:]] - m for k, m in means.items()
                 if k[i] == levels[0] and k[:i] + (levels[1],) + k[i + 1:] in means]
        if not diffs:
            continue
        d = sum(diffs) / len(diffs)
        out.append(f"| {h} | {levels[0]} -> {levels[1]} | {d:+.4f} | {len(diffs)} | {d / noise:+.1f} |")
    return ("Seed-to-seed noise of the gap (the standard deviation of a run's gap around its "
            f"configuration's mean, pooled): {noise:.4f}. A hyper-parameter whose change is within "
            "about one noise unit does not move the gap in this zoo, so the zoo cannot tell a measure that "
            "follows it from one that does not; `scripts/zoo_convnets.py pilot` measures this before its levels "
            "are chosen.\n\n"
            + "\n".join(out) + "\n\n")


def _statistics_table(rep, hps: list[str], resamples: int = 200, seed: int = 0) -> str:
    """Per measure (in ``rep.ranking``'s order): tau-b with a 95% percentile bootstrap interval over
    runs, tau-a (Jiang et al.'s definition), Psi over the real hyper-parameters (the seed excluded)
    with its interval, CMI under both conventions for a conditioning set whose gap order is
    constant in every cell (dropped, and scored 0 as the PGDL scorer does) with the interval of
    the latter and its spread over grids of one run per configuration
    (:func:`rethink.study.one_run_interval`), and the mean sign error per hyper-parameter.
    ``resamples`` bootstrap draws of the runs and as many one-run grids
    (``numpy.random.default_rng(seed)``), the same draws for every measure."""
    import numpy as np

    st = rethink.study
    gaps = np.array([r["gap"] for r in rep.rows], dtype=np.float64)
    cfgs = [{h: r[h] for h in hps} for r in rep.rows]
    with_seed = [{**c, "seed": r.get("seed")} for c, r in zip(cfgs, rep.rows)]
    n = len(gaps)
    head = ["measure", "tau-b [95% CI]", "tau-a", "Psi [95% CI]", "CMI dropped / zero [95% CI of zero]",
            "CMI zero, one run per configuration: median [95%]", *[f"sign err {h}" for h in hps]]
    by_config: dict = {}
    for i, c in enumerate(cfgs):
        by_config.setdefault(tuple(repr(c[h]) for h in hps), []).append(i)
    groups = list(by_config.values())
    out = ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    outside = {"tau-b": 0, "Psi": 0, "CMI": 0}  # point estimates outside their own bootstrap interval

    def check(name, value, lo_hi):
        lo, hi = lo_hi
        if not (math.isnan(lo) or math.isnan(value)) and not lo - 1e-12 <= value <= hi + 1e-12:
            outside[name] += 1

    def ci(lo_hi):
        lo, hi = lo_hi
        return "n/a" if math.isnan(lo) else f"[{lo:+.3f}, {hi:+.3f}]"

    for r in rep.ranking:
        v = np.array([x[r["measure"]] for x in rep.rows], dtype=np.float64)
        v = np.where(np.isfinite(v), v, np.nan)  # non-finite values are left out, as in every score here
        def psi(idx, v=v):
            return st.granulated_tau(v[idx].tolist(), gaps[idx].tolist(), [cfgs[i] for i in idx], hps)[0]

        def cmi0(idx, v=v):
            return st.cmi(v[idx], gaps[idx], [cfgs[i] for i in idx], degenerate="zero")

        tau_ci = st.bootstrap_interval(lambda idx, v=v: st.kendall_tau(v[idx], gaps[idx]), n, resamples=resamples, seed=seed)
        psi_ci = st.bootstrap_interval(psi, n, resamples=resamples, seed=seed)
        cmi_ci = st.bootstrap_interval(cmi0, n, resamples=resamples, seed=seed)
        one_med, one_lo, one_hi = st.one_run_interval(cmi0, groups, resamples=resamples, seed=seed)
        full = np.arange(n)
        check("tau-b", st.kendall_tau(v, gaps), tau_ci)
        check("Psi", psi(full), psi_ci)
        check("CMI", cmi0(full), cmi_ci)
        se = st.sign_error_by_hyperparameter(st.sign_error(v.tolist(), gaps.tolist(), with_seed))
        cells = [r["measure"], f"{st.kendall_tau(v, gaps):+.3f} {ci(tau_ci)}", f"{st.kendall_tau_a(v, gaps):+.3f}",
                 f"{psi(full):+.3f} {ci(psi_ci)}",
                 f"{st.cmi(v, gaps, cfgs):.3f} / {cmi0(full):.3f} {ci(cmi_ci)}",
                 "n/a" if math.isnan(one_med) else f"{one_med:.3f} [{one_lo:.3f}, {one_hi:.3f}]",
                 *[f"{se[h]:.3f}" if h in se else "n/a" for h in hps]]
        out.append("| " + " | ".join(cells) + " |")
    note = ""
    if any(outside.values()):
        note = ("\nPoint estimates outside their own 95% interval: " + ", ".join(
            f"{k} {v} of {len(rep.ranking)}" for k, v in outside.items() if v) + ". A bootstrap resample draws runs "
            "with replacement, so it holds duplicated runs, which change the pairs these statistics count (CMI, "
            "a minimum over conditioning sets, most); such an interval is the statistic's resampling spread, not "
            "an interval around its estimate.\n")
    note += (f"\nThe one-run column draws, for every configuration, one of its runs (seeds) and scores the complete "
             f"grid so drawn ({resamples} draws, the same for every measure): the median and 95% range of CMI over "
             "grids of one seed per configuration, in which no run appears twice. It shows how far CMI moves with "
             "the seed a configuration's run has; it is not an interval around the estimate from all the runs.\n")
    return "\n".join(out) + "\n" + note



def main_grid_sentence(zoo_convnets, pilot_runs, n_runs: int) -> str:
    """What the main grid varies per family, each setting with the pilot's evidence for it
    (``zoo_convnets.main_grid_support``, in seed standard deviations), and, named, each pilot
    hyper-parameter behind a varied setting that the family's own pilot did not run, or did not
    show beyond the seed noise with every run at the rule."""
    support = zoo_convnets.main_grid_support(pilot_runs)
    status = {"within": "within the seed noise in its pilot", "not_at_rule": "off the rule in its pilot",
              "not_run": "not run in its pilot"}
    parts, unsupported = [], []
    for fam, grid, _ in zoo_convnets.main_blocks():
        items = []
        for key, levels in grid.items():
            cat = support[fam][key]
            ev = ", ".join(f"{hp} {r:+.1f}" for hp, r in cat["moved"])
            items.append(f"{key} in {{{', '.join(map(str, levels))}}}" + (f" ({ev})" if ev else ""))
            if len(levels) < 2:
                continue
            moved = {hp.removesuffix("_wide") for hp, _ in cat["moved"]}  # a "_wide" row: the same, wider levels
            for kind, why in status.items():
                for hp, _ in cat[kind]:
                    if hp.removesuffix("_wide") in moved:
                        continue
                    others = [f for f in support if f != fam and key in support[f]
                              and any(h == hp for h, _ in support[f][key]["moved"])]
                    unsupported.append(f"{fam}'s {hp} ({why}" + (
                        f"; beyond the seed noise in the pilots of {' and '.join(others)}" if others else "") + ")")
        parts.append(f"{fam}: " + ", ".join(items))
    text = (f"The main grid (`scripts/zoo_convnets.py main`, {n_runs} runs, two seeds) varies, per family (in "
            f"parentheses, the pilot's differences of the gap in seed standard deviations, at least "
            f"{zoo_convnets.PILOT_THRESHOLD} with every "
            f"run at the rule): " + "; ".join(parts) + ".")
    if unsupported:
        text += " Varied without that support from the family's own pilot: " + ", ".join(unsupported) + "."
    # the other way round: a pilot hyper-parameter that moved the gap, held at one value in the main grid
    effects = zoo_convnets.pilot_effects(pilot_runs)
    held = []
    for fam, grid, _ in zoo_convnets.main_blocks():
        behind = {hp.removesuffix("_wide") for key, levels in grid.items() if len(levels) > 1
                  for hp in zoo_convnets.MAIN_FROM_PILOT.get(key, ())}
        for hp, row in effects[fam]["rows"].items():
            if (hp.removesuffix("_wide") not in behind and all(row["runs"]) and row["fit"] == row["runs"]
                    and abs(row["ratio"]) >= zoo_convnets.PILOT_THRESHOLD):
                held.append(f"{fam}'s {hp} ({row['ratio']:+.1f}" + ("; one run at a level" if min(row["runs"]) < 2
                                                                      else "") + ")")
    if held:
        text += (" Held at one value in the main grid, though the family's own pilot moved the gap by at least "
                 f"{zoo_convnets.PILOT_THRESHOLD} seed standard deviations with every run at the rule: "
                 + ", ".join(held) + ".")
    return text


def probe_sentence(probe: dict, runs, budget: int, where: str) -> str:
    """What the probe of a dropped main-grid factor found (``probe``: its family, setting, level
    and folder, as ``zoo_convnets.PROBE``): per finished run (``runs``), its model, training-set
    size, label noise and seed, and the epochs it took to the stopping rule or the training
    accuracy it had at the end of the ``budget``. Raises ValueError naming a run that is not at
    the probe's level."""
    off = [r.run_name for r in runs if r.spec.to_dict()[probe["setting"]] != probe["level"]]
    if off:
        raise ValueError(f"runs {off}: not at the probe's {probe['setting']} = {probe['level']}")
    parts = []
    for r in sorted(runs, key=lambda r: r.run_name):
        s = r.spec
        acc = r.final.get("train_acc", float("nan"))
        what = (f"reached the rule in {r.epochs_to_fit} epochs" if r.epochs_to_fit is not None else
                f"{100 * acc:.1f}% training accuracy after {len(r.history)} of {budget} epochs, below the rule")
        parts.append(f"{s.model} on {s.train_size:,} images ({s.corruption}, seed {s.seed}): {what}")
    n_off = sum(r.epochs_to_fit is None for r in runs)
    return (f"Tried and dropped as a factor of {probe['family']}'s main grid: {probe['setting']} = {probe['level']} "
            f"(the probe's {len(runs)} finished run{'s' if len(runs) != 1 else ''}, `{where}`, main-grid "
            "configurations at that level): " + ("; ".join(parts) or "none finished") + "."
            + (f" {n_off} of {len(runs)} missed the rule, and a run off the rule is not scored, so the level "
               "would leave its configurations out of the grid's scores." if n_off else ""))


def main_effects_paragraph(zoo_convnets, runs) -> str:
    """How far each factor of the main grid moves the gap on the main grid itself
    (``zoo_convnets.main_effects_report``), with a sentence computed from it: the factors whose
    spread of level means exceeds one run's seed standard deviation, those within it, and of
    those, which are still beyond the seed noise of the level means (spread over at least 3
    standard errors)."""
    eff = zoo_convnets.main_effects(runs)
    beyond, within, within_se = [], [], []
    for fam, e in eff.items():
        for factor, row in e["rows"].items():
            if not row["groups"]:
                continue
            name = f"{fam}'s {factor} ({row['ratio']:.1f})"
            if row["ratio"] > 1:
                beyond.append(name)
            else:
                within.append(name)
                if row["spread"] >= 3 * row["se"]:
                    within_se.append(f"{fam}'s {factor} ({row['spread'] / row['se']:.1f} standard errors)")
    text = ("How far each factor the main grid varies moves the gap, measured on the main grid itself (post hoc; "
            "the pilot above chose the factors): per family and factor, the configurations equal in every other "
            "factor that hold each of its levels (each configuration's gap the mean of its seeds; runs at the "
            "rule only), the mean gap per level over them, the spread of those means (largest minus smallest) "
            "against one run's seed-to-seed standard deviation of the gap (pooled over the family's "
            "configurations) and against the standard error of a difference of two level means from seed noise "
            "alone, sd * sqrt(2 / runs per level). The spread is the largest of the differences between levels, so "
            "seed noise alone gives on average about 0.8 standard errors with two levels, 1.2 with three and 1.5 "
            "with four (the expected range of as many normal draws).\n\n"
            + zoo_convnets.main_effects_report(runs) + "\n\n")
    text += ("Beyond one run's seed noise (spread / seed sd above 1): " + (", ".join(beyond) or "none") + ". ")
    if within:
        text += ("Within it: " + ", ".join(within) + (
            "; of those, beyond the seed noise of the level means: " + ", ".join(within_se) if within_se else
            "; none of those is beyond 3 standard errors of the level means") + ". A factor within one run's seed "
            "noise moves the gap on average by less than one run's gap varies with its seed: it does not meet "
            "the criterion the grid was to satisfy.")
    varied = {k for _, grid, _ in zoo_convnets.main_blocks() for k, v in grid.items() if len(v) > 1}
    fixed = [k for k in next(iter(zoo_convnets.BASE.values())) if k not in varied and k != "model"]
    text += (" Not varied in the main grid (one value per family; the pilot table gives what each did there): "
             + ", ".join(fixed) + ".")
    return text + "\n\n"


def zoo_section(folder: Path, out_dir: Path, resamples: int = 100, measures="all") -> str:
    """The conv-net zoo's section of STUDY.md from its stored results and cached measures
    (``folder``; nothing is recomputed from weights where a cache is there): the runs per family,
    which reached the stopping rule (only those are scored; ``measures`` as for
    :func:`rethink.study.study`), the scores with intervals
    (:func:`_statistics_table`), degenerate measures, and the hyper-parameter baseline each
    measure has to beat."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import zoo_convnets

    runs = rethink.load_runs(folder, status="completed")
    at_rule = [r for r in runs if r.epochs_to_fit is not None]
    fams = {f: sum(zoo_convnets.family(r.spec.model) == f for r in runs) for f in zoo_convnets.BASE}
    rep = rethink.study.study(at_rule, out_dir=out_dir, device="cpu", measures=measures)
    hps = [h for h in rep.hyperparameters if h != "seed"]
    planned = len(zoo_convnets.specs(zoo_convnets.main_blocks()))
    conv = sum(r.spec.model in rethink.models.CONVOLUTIONAL for r in at_rule)
    where = defaultdict(int)  # (family, machine) -> runs, as the result files record the machine
    for r in runs:
        v = r.config.get("versions", {})
        dev = v.get("device_name") if str(r.config.get("device", "cpu")).startswith("cuda") else v.get("cpu")
        where[(zoo_convnets.family(r.spec.model), dev or "a machine not recorded")] += 1
    out = [f"{len(runs)} of the main grid's {planned} runs are stored (" + ", ".join(f"{f} {n}" for f, n in fams.items())
           + f"); {len(at_rule)} reached 99% training accuracy within {zoo_convnets.BUDGET} epochs and are scored "
           f"({conv} convolutional; {len(rep.rows)} with every measure cached). Trained on: "
           + "; ".join(f"{f} {n} on {d}" for (f, d), n in sorted(where.items())) + " (a GPU's kernels round "
           "otherwise than a CPU's; the gaps and measures are read the same way). Hyper-parameters that vary: "
           + ", ".join(hps) + "." + _never_alone(rep.rows, hps) + "\n\n"]
    if rep.skipped:  # runs at the rule that could not be measured, by family and reason
        why = defaultdict(list)
        for name, reason in rep.skipped.items():
            short = "no weights file and no cached measures" if "FileNotFoundError" in reason else reason
            why[(zoo_convnets.family(name.split("_")[0]), short)].append(name)
        out.append("Not scored, though they reached the rule: " + "; ".join(
            f"{len(v)} {fam} run{'s' if len(v) != 1 else ''} ({reason})" for (fam, reason), v in sorted(why.items()))
            + ". A run whose weights were not kept (a GPU's runs, whose result files came back without them) is "
            "measured by training it again where the measures are computed.\n\n")
    out.append(main_effects_paragraph(zoo_convnets, runs))
    out.append(_statistics_table(rep, hps, resamples=resamples))
    rows = rep.rows
    nonfinite = {r["measure"]: sum(not math.isfinite(x[r["measure"]]) for x in rows) for r in rep.ranking}
    constant = [r["measure"] for r in rep.ranking if len({x[r["measure"]] for x in rows if math.isfinite(x[r["measure"]])}) <= 1]
    def one_value(m):
        vals = {x[m] for x in rows if math.isfinite(x[m])}
        return f"{m} one value over the zoo" + (f" ({next(iter(vals)):.4g})" if vals else " (no finite value)")

    def not_finite(m, k):
        nan = sum(math.isnan(x[m]) for x in rows)
        parts = ([f"infinite in {k - nan}"] if k > nan else []) + (
            [f"undefined (NaN) in {nan}, scored on the other {len(rows) - nan}"] if nan else [])
        return f"{m} {' and '.join(parts)} of {len(rows)}"

    bad = [not_finite(m, k) for m, k in nonfinite.items() if k] + [one_value(m) for m in constant]
    out.append("\nDegenerate: " + ("; ".join(bad) if bad else "none") + ". A NaN is a measure undefined for that "
               "network (the margin signature's layer k where it has fewer hidden layers); every score above leaves "
               "those runs out of its pairs; tau ranks an infinity above every finite value.\n\n")
    gaps = [x["gap"] for x in rows]
    base = rethink.study.hyperparameter_baseline(gaps, [{h: x[h] for h in hps} for x in rows])
    beats_one = [r["measure"] for r in rep.ranking if abs(r["tau"]) > abs(base.best_tau)]
    beats_all = [r["measure"] for r in rep.ranking if abs(r["tau"]) > abs(base.model_tau)]
    out.append(f"The hyper-parameters alone: the best single one, {base.best}, ranks the gaps with |tau-b| "
               f"{abs(base.best_tau):.3f}; a gradient-boosting model on all of them, on held-out configurations "
               f"({base.folds}-fold), {abs(base.model_tau):.3f}. Measures above the best single hyper-parameter: "
               + (", ".join(beats_one) or "none") + "; above the model on all of them: "
               + (", ".join(beats_all) or "none") + ("" if beats_all else
                                                     " (no measure beats the hyper-parameters in this zoo)") + ".\n\n")
    out.append(family_scores(rep.rows, [r["measure"] for r in rep.ranking], hps, zoo_convnets.family,
                             order=list(zoo_convnets.BASE)))
    return "".join(out)


def family_scores(rows: list[dict], measures: list[str], hps: list[str], family_of, order=()) -> str:
    """The zoo scored within each family (``family_of(model)``), as Jiang et al. score within one
    architecture family: per measure and family, tau-b with the gap, Psi and CMI (the PGDL
    scorer's convention, degenerate sets scored 0) over the hyper-parameters that vary within the
    family; then the family's hyper-parameter baseline (:func:`rethink.study.hyperparameter_baseline`
    on its runs) and, per family, the measures whose |tau-b| exceeds the best single
    hyper-parameter's and the gradient-boosting model's. Families in ``order`` (the others after
    them, as they first appear); those with fewer than 4 runs are left out. Non-finite values are
    left out of each score."""
    import numpy as np

    st = rethink.study
    fams = {}
    for x in rows:
        fams.setdefault(family_of(x["model"]), []).append(x)
    rank = {f: i for i, f in enumerate(order)}
    fams = {f: fams[f] for f in sorted(fams, key=lambda f: rank.get(f, len(rank))) if len(fams[f]) >= 4}
    if not fams:
        return ""
    head = ["measure"] + [f"{f} {c}" for f in fams for c in ("tau-b", "Psi", "CMI")]
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    info = {}
    for f, xs in fams.items():
        fh = [h for h in hps if len({repr(x[h]) for x in xs}) > 1]
        gaps = np.array([x["gap"] for x in xs], dtype=np.float64)
        cfgs = [{h: x[h] for h in fh} for x in xs]
        base = st.hyperparameter_baseline(gaps.tolist(), cfgs) if fh else None
        info[f] = dict(hps=fh, gaps=gaps, cfgs=cfgs, base=base, taus={})

    def num(v, fmt="+.3f"):
        return "n/a" if v is None or math.isnan(v) else format(v, fmt)

    for m in measures:
        cells = [m]
        for f, xs in fams.items():
            d = info[f]
            v = np.array([x[m] for x in xs], dtype=np.float64)
            v = np.where(np.isfinite(v), v, np.nan)
            tau = st.kendall_tau(v, d["gaps"])
            d["taus"][m] = tau
            psi = st.granulated_tau(v.tolist(), d["gaps"].tolist(), d["cfgs"], d["hps"])[0] if d["hps"] else math.nan
            cmi = st.cmi(v, d["gaps"], d["cfgs"], degenerate="zero") if d["hps"] else math.nan
            cells += [num(tau), num(psi), num(cmi, ".3f")]
        lines.append("| " + " | ".join(cells) + " |")
    for label, key in (("(best single hyper-parameter)", "best_tau"), ("(gradient-boosting model, held out)", "model_tau")):
        cells = [label]
        for f in fams:
            b = info[f]["base"]
            cells += [num(abs(getattr(b, key)) if b else math.nan, ".3f") + (f" ({b.best})" if b and key == "best_tau"
                                                                           else ""), "", ""]
        lines.append("| " + " | ".join(cells) + " |")
    said = []
    for f, xs in fams.items():
        d, b = info[f], info[f]["base"]
        if b is None:
            said.append(f"{f} ({len(xs)} runs): no hyper-parameter varies, no baseline")
            continue
        one, model = ([m for m in measures if not math.isnan(d["taus"][m]) and abs(d["taus"][m]) > abs(t)]
                      for t in (b.best_tau, b.model_tau))
        said.append(f"{f} ({len(xs)} runs; varied: {', '.join(d['hps'])}): above its best single hyper-parameter "
                    f"({b.best}, |tau-b| {abs(b.best_tau):.3f}): " + (", ".join(one) if one else "none")
                    + f"; above the model on its hyper-parameters ({abs(b.model_tau):.3f}): "
                    + (", ".join(model) if model else "none"))
    return ("Within each family (Jiang et al. score within one architecture family; across families a measure "
            "can rank the gaps by telling the families apart): tau-b with the gap over the family's runs, Psi and "
            "CMI (degenerate sets scored 0) over the hyper-parameters that vary within it; the last two rows, the "
            "family's hyper-parameters alone (|tau-b|).\n\n" + "\n".join(lines) + "\n\nPer family: "
            + "; ".join(said) + ".\n\n")


def _never_alone(rows: list[dict], hps: list[str]) -> str:
    """A sentence naming each hyper-parameter of ``hps`` that no two runs of ``rows`` differ in
    alone (every group of runs equal in the others holds one of its values: it changes only with
    another hyper-parameter, as a family's learning rate does with its models), "" if none."""
    alone = []
    for h in hps:
        groups = defaultdict(set)
        for x in rows:
            groups[tuple(x[k] for k in hps if k != h)].add(x[h])
        if all(len(v) == 1 for v in groups.values()):
            alone.append(h)
    if not alone:
        return ""
    return "".join(f" No two runs differ in {h} alone (it changes only with another hyper-parameter): its sign error "
                   "reads n/a and Psi leaves it out." for h in alone)



def _p(p: float, eq: bool = False) -> str:
    """A permutation p-value as printed: never 0 (its floor is 1 / (1 + permutations))."""
    if math.isnan(p):
        return "n/a"
    if p < 0.001:
        return "< 0.001"
    return f"= {p:.3f}" if eq else f"{p:.3f}"


#: neighbours of the k-NN label-disagreement baseline of the memorization report
KNN = 10


def _pool(d: dict):
    """The memorization pool rebuilt from the dataset and the stored settings: its spec, the
    dataset, uint8 images (pool, C, H, W), corrupted int64 labels (pool,) and the flipped mask
    (bool, pool), checked against the stored one."""
    import torch

    st = d["settings"]
    spec = rethink.RunSpec.from_config({k: v for k, v in st.items() if k not in ("runs", "subset")})
    ds = rethink.datasets.load(spec.dataset)
    pool = d["pool"]
    labels = rethink.corruption.corrupted_labels(ds.train.labels, ds.num_classes, spec.corruption_object(),
                                                 "train")[:pool]
    flipped = torch.tensor(d["flipped_mask"], dtype=torch.bool)
    if not torch.equal(flipped, labels != ds.train.labels[:pool]):
        raise RuntimeError("the rebuilt corruption does not match the stored flipped mask")
    return spec, ds, ds.train.images[:pool], labels, flipped


def _knn_auroc(d: dict) -> float:
    """AUROC against the flipped labels of the k-NN label disagreement on the memorization pool
    (the pool's images and corrupted labels rebuilt from the dataset and the stored settings)."""
    from rethink.memorization import auroc

    _, _, images, labels, flipped = _pool(d)
    pool = len(labels)
    x = images.reshape(pool, -1).double() / 255
    import torch

    dist = torch.cdist(x, x)
    dist.fill_diagonal_(math.inf)
    nn_idx = dist.topk(KNN, largest=False).indices
    disagree = (labels[nn_idx] != labels[:, None]).double().mean(1)
    return auroc(disagree, flipped)


#: epochs after which the early-training loss signal is read, and the seeds of every signal's fits
SIGNAL_EPOCHS, SIGNAL_SEEDS = (1, 5), (0, 1, 2)


def simple_signals(d: dict, epochs=SIGNAL_EPOCHS, seeds=SIGNAL_SEEDS, progress: bool = False) -> dict:
    """Simpler signals of a flipped label on the memorization pool, each from a few fits of the
    memorization fits' settings (model, optimizer, schedule, stopping rule, seed) through
    :func:`rethink.fit_random` on the pool with its corrupted labels (as the user's data, so no
    further corruption):

    - ``loss_all``: each example's loss under one network trained on the whole pool to the rule;
    - ``loss_epoch{e}``: each example's training loss after ``e`` epochs of the same run (the
      same spec with ``max_epochs=e``: the first ``e`` epochs of the same trajectory, checked
      against the full run's history);
    - ``heldout_loss``: a 2-fold cross-fit: each half's loss under the network trained on the
      other half.

    Every signal once per seed in ``seeds`` (the fits' seed: initialization and batch order;
    the halves' split too). Returns ``{"auroc": {signal: [AUROC against the flipped set, per
    seed]}, "epochs", "seeds", "fits": {fit: summary}}``."""
    import torch
    import torch.nn.functional as F

    from rethink.memorization import auroc

    spec, ds, images, labels, flipped = _pool(d)
    pool = len(labels)
    test_x, test_y = ds.test.images[:spec.test_size or 2000], ds.test.labels[:spec.test_size or 2000]
    keys = ("model", "lr", "momentum", "weight_decay", "lr_decay", "lr_decay_examples", "batch_size", "max_epochs",
            "stop_at_train_acc", "normalize", "crop", "seed", "dtype")
    base = {k: getattr(spec, k) for k in keys if getattr(spec, k) is not None}

    def fit(idx, **over):
        data = rethink.datasets.from_tensors(images[idx], labels[idx], test_x, test_y, ds.num_classes,
                                             name="memorization_pool")
        return rethink.fit_random(base["model"], data, "none", progress=progress, device="cpu",
                                  **{k: v for k, v in {**base, **over}.items() if k != "model"})

    def losses(result, idx):
        data = rethink.datasets.from_tensors(images[idx], labels[idx], test_x, test_y, ds.num_classes)
        x, y = rethink.measures.training_tensors(data, None, spec.normalize, spec.crop)
        net = result.model.eval()
        with torch.no_grad():
            return torch.cat([F.cross_entropy(net(x[i:i + 1000]), y[i:i + 1000], reduction="none")
                              for i in range(0, len(y), 1000)]).double()

    everything = torch.arange(pool)
    out, fits = defaultdict(list), {}
    for seed in seeds:
        full = fit(everything, seed=seed)
        fits[f"whole pool, seed {seed}"] = full
        out["loss_all"].append(auroc(losses(full, everything), flipped))
        for e in epochs:
            early = fit(everything, max_epochs=e, seed=seed)
            if [h["train_acc"] for h in early.history] != [h["train_acc"] for h in full.history[:e]]:
                raise RuntimeError(f"the {e}-epoch run is not the first {e} epochs of the full run")
            out[f"loss_epoch{e}"].append(auroc(losses(early, everything), flipped))
        perm = torch.randperm(pool, generator=torch.Generator().manual_seed(seed))
        halves = (perm[: pool // 2].sort().values, perm[pool // 2:].sort().values)
        held = torch.empty(pool, dtype=torch.float64)
        for k, (a, b) in enumerate((halves, halves[::-1])):
            r = fit(a, seed=seed)
            fits[f"half {k}, seed {seed}"] = r
            held[b] = losses(r, b)
        out["heldout_loss"].append(auroc(held, flipped))
    return {"auroc": dict(out), "epochs": list(epochs), "seeds": list(seeds),
            "fits": {k: {"train_size": r.config["num_train"], "epochs": len(r.history),
                         "epochs_to_fit": r.epochs_to_fit, "train_acc": r.final["train_acc"]} for k, r in fits.items()}}


def signals_section(d: dict, sig: dict, knn: float) -> str:
    """The memorization score's AUROC beside the simpler signals' (``sig`` from
    :func:`simple_signals`, ``knn`` from :func:`_knn_auroc`), and what the comparison says."""
    from rethink.plots import mean_spread

    a, fits, st, seeds = sig["auroc"], sig["fits"], d["settings"], sig["seeds"]

    def cell(v):
        m, sd, n = mean_spread(v)
        return f"{m:.3f} ± {sd:.3f}" if n > 1 else f"{m:.3f}"

    def epochs(key):
        return "/".join(str(f["epochs"]) for k, f in fits.items() if k.startswith(key))

    rows = [("memorization score (the subsampling estimator above)",
             f"{st['runs']} on random {100 * st['subset']:.0f}% subsets", [d["auroc"]]),
            (f"k-NN label disagreement ({KNN} neighbours)", "none", [knn]),
            ("held-out loss, 2-fold cross-fit (each half's loss under the network trained on the other half)",
             f"2 per seed on halves of {fits[f'half 0, seed {seeds[0]}']['train_size']:,} images (epochs "
             f"{epochs('half 0')} and {epochs('half 1')})", a["heldout_loss"]),
            ("loss under one network trained on the whole pool to the rule",
             f"1 per seed (epochs {epochs('whole pool')})", a["loss_all"])]
    rows += [(f"training loss after {e} epoch{'s' if e != 1 else ''} of that run", "1 per seed (its first epochs)",
              a[f"loss_epoch{e}"]) for e in sig["epochs"]]
    lines = ["Simpler signals on the same pool and the same flipped labels, from fits with the memorization fits' "
             f"settings, each signal once per seed ({', '.join(map(str, seeds))}; mean ± sample standard deviation "
             "of the AUROC) (`python scripts/study_generalization.py signals`, stored in "
             "`docs/results/memorization/signals.json`):\n\n", "| signal | fits | AUROC against the flipped set |\n",
             "| --- | --- | --- |\n"]
    lines += [f"| {name} | {n} | {cell(v)} |\n" for name, n, v in rows]
    best_name, _, best = max(rows[1:], key=lambda r: mean_spread(r[2])[0])
    m, sd, n = mean_spread(best)
    diff = d["auroc"] - m
    verdict = (f"{abs(diff):.3f} {'above' if diff > 0 else 'below'} it" + (
        f", more than twice the seed spread of that signal ({sd:.3f})" if n > 1 and abs(diff) > 2 * sd else
        f", within twice the seed spread of that signal ({sd:.3f}): not a difference" if n > 1 else ""))
    lines.append(f"\nThe best simpler signal is the {best_name.split(' (')[0]} ({m:.3f}); the subsampling "
                 f"estimator's {d['auroc']:.3f} (one set of {st['runs']} fits) is {verdict}.\n")
    return "".join(lines)


def report(out: Path) -> Path:
    """docs/STUDY.md from the stored zoo (results, cached measures) and memorization files."""
    import json
    import math

    from rethink.plots import mean_spread

    lines: list[str] = []
    w = lines.append
    w("# What distinguishes a network that generalizes: measures over a model zoo, and memorization\n\n")
    w("Generated by `python scripts/study_generalization.py report` from the files under `docs/results/zoo` "
      "(one result JSON and one cached `.measures.json` per run) and `docs/results/memorization`. Nothing here "
      "is recomputed from weights: the scores come from the cached measure values.\n\n")
    zoo = STORE / "zoo"
    if zoo.exists():
        runs = rethink.load_runs(zoo)
        rep = rethink.study.study(zoo, out_dir=STORE / "zoo_study", device="cpu")
        from rethink.zoo import ZOO_GRID as grid
        hours = sum(r.summary()["seconds"] for r in runs) / 3600
        gaps = [r.final["gap"] for r in runs]
        fitted = sum(r.epochs_to_fit is not None for r in runs)
        w("## The zoo\n\n")
        w(f"{len(runs)} MLPs on Fashion-MNIST subsets: the factorial grid " + ", ".join(
            f"{k} in {{{', '.join(map(str, v))}}}" for k, v in grid.items()) + f", two seeds each "
          f"({len(runs)} = {len(runs) // 2} x 2). Every run trained with SGD (momentum 0.9) until 99% training "
          f"accuracy (the common stopping rule; {fitted} of {len(runs)} reached it) within 300 epochs; the gap is "
          f"training minus test accuracy on the first 2,000 test images, from {min(gaps):.3f} to {max(gaps):.3f}. "
          f"Training took {hours:.1f} h on one core of the 2-core CPU, shared with other jobs.\n\n")
        w("## Every measure, scored as the field scores them\n\n")
        w("tau: Kendall's tau with the gap over all runs; ± the spread of tau computed on each seed's 64 runs "
          "alone. Psi: the granulated tau (Jiang et al.), per hyper-parameter and their mean. CMI: the PGDL "
          "competition's conditional mutual information (minimum over pairs of hyper-parameters). Sign error: "
          "Dziugaite et al., worst and mean over environments (pairs that differ in one hyper-parameter, gap "
          "differences within the seed-to-seed noise dropped). For margin, sigma and alpha a good measure has a "
          "negative tau (they shrink as the gap grows) and a sign error near 1.\n\n")
        hps = [h for h in rep.hyperparameters if h != "seed"]
        head = ["measure", "tau", "p (perm.)", *[f"Psi {h}" for h in hps], "Psi mean", "CMI", "sign err worst / mean",
                "non-finite", "Jiang et al. (CIFAR-10), our summary"]
        gaps_row = [r["gap"] for r in rep.rows]
        pvals = {r["measure"]: rethink.study.permutation_pvalue([x[r["measure"]] for x in rep.rows], gaps_row,
                                                                 resamples=2000, seed=0) for r in rep.ranking}
        nonfinite = {r["measure"]: sum(not math.isfinite(x[r["measure"]]) for x in rep.rows) for r in rep.ranking}
        w("| " + " | ".join(head) + " |\n| " + " | ".join("---" for _ in head) + " |\n")
        def f(v):
            return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:+.3f}"

        def psi_mean(r):  # Jiang et al.'s Psi: the mean over the hyper-parameters (the seed is none)
            v = [r[f"psi_{h}"] for h in hps if not math.isnan(r[f"psi_{h}"])]
            return sum(v) / len(v) if v else math.nan

        for r in rep.ranking:
            tau = f(r["tau"]) + (f" ± {r['tau_spread']:.3f}" if not math.isnan(r["tau_spread"]) else "")
            cells = [r["measure"], tau, _p(pvals[r["measure"]]), *[f(r[f"psi_{h}"]) for h in hps],
                     f(psi_mean(r)), f(r["cmi"]), f"{f(r['sign_error_worst'])} / {f(r['sign_error_mean'])}",
                     f"{nonfinite[r['measure']]} of {len(rep.rows)}" if nonfinite[r["measure"]] else "0",
                     JIANG.get(r["measure"], "")]
            w("| " + " | ".join(cells) + " |\n")
        w("\n")
        w("p (perm.): two-sided permutation p-value of tau (2,000 permutations of the gaps, seed 0). Psi mean: the "
          "mean of the Psi columns shown (the seed is not a hyper-parameter). Non-finite: runs whose value is "
          "infinite or NaN (a NaN is left out of every score of that measure; an infinity is ranked above or below "
          "every finite value here, and left out in the next table). The last column is this project's one-line "
          "summary of Jiang et al.'s findings, not their numbers.\n\n")
        degenerate = [m for m, k in nonfinite.items() if k > len(rep.rows) // 2]
        constant = [r["measure"] for r in rep.ranking
                    if len({x[r["measure"]] for x in rep.rows if math.isfinite(x[r["measure"]])}) <= 1]
        if degenerate or constant:
            w("Degenerate measures: " + "; ".join(
                [f"{m} is not finite in {nonfinite[m]} of {len(rep.rows)} runs (its scores rest on the rest)"
                 for m in degenerate] + [f"{m} takes one value over the zoo" for m in constant]) + ".\n\n")
        w("### The same measures with intervals, both tau conventions and both CMI conventions\n\n")
        w(_statistics_table(rep, hps))
        w("\ntau-b: Kendall's tau-b (ties corrected; scipy's); tau-a: (concordant - discordant) / all pairs, as "
          "Jiang et al. 2020 define it. Intervals: 95% percentile bootstrap over runs (200 resamples, seed 0; a "
          "resample repeats runs, so its cells are not a complete grid). Psi: the granulated tau over the "
          "hyper-parameters of the grid, the seed not among them. CMI dropped: a conditioning set whose gap order "
          "is constant in every cell is left out of the minimum; zero: it scores 0, as the PGDL competition's "
          "scorer does (so the minimum is 0 wherever such a set exists). Sign err: the mean sign error over the "
          "environments that vary that hyper-parameter (pairs whose gaps differ by no more than the seed noise "
          "dropped); 0.5 is a coin. The Psi of the first table groups runs by the seed too (a group is one seed's "
          "runs that differ in one hyper-parameter); here a group holds both seeds' runs. A resample repeats runs, "
          "which adds pairs with equal hyper-parameters and shifts CMI's minimum up: where an interval misses its "
          "estimate, that is this bias, not evidence.\n\n")
        if all(abs(rethink.study.cmi([x[r["measure"]] for x in rep.rows], gaps_row, [{h: x[h] for h in hps} for x in rep.rows])
                   - rethink.study.cmi([x[r["measure"]] for x in rep.rows], gaps_row, [{h: x[h] for h in hps} for x in rep.rows],
                                       degenerate="zero")) < 1e-12 for r in rep.ranking):
            w("No conditioning set is degenerate in this zoo (its gap order varies within some cell of every pair "
              "of hyper-parameters), so the two CMI conventions agree for every measure.\n\n")
        best_cmi = max((r["cmi"] for r in rep.ranking if not math.isnan(r["cmi"])), default=math.nan)
        w(f"What a CMI of {best_cmi:.3f} means: knowing which of two runs has the larger measure removes "
          f"{100 * best_cmi:.1f}% of the uncertainty (entropy) about which has the larger gap, once both runs' "
          f"values of the worst pair of hyper-parameters are known. 0 is no information, 1 decides it; every "
          f"measure here is close to 0.\n\n")
        base = rethink.study.hyperparameter_baseline(gaps_row, [{h: x[h] for h in hps} for x in rep.rows])
        top = rep.ranking[0]
        w("## How much each hyper-parameter moves the gap, against the seed noise\n\n")
        w(_effects_table(rep.rows, hps))
        w("## What the hyper-parameters alone say\n\n")
        w("A measure is worth its computation only if it ranks the gaps better than the hyper-parameters do. "
          "Tau between each hyper-parameter (its values in order) and the gap: " + ", ".join(
              f"{h} {v:+.3f}" for h, v in sorted(base.single.items(), key=lambda kv: -abs(kv[1]))) +
          f". The best single hyper-parameter, {base.best}, has |tau| {abs(base.best_tau):.3f}; a gradient-boosting "
          f"model on the hyper-parameters, predicting each configuration's gap from the other configurations "
          f"({base.folds}-fold, a configuration's seeds kept together), reaches tau {base.model_tau:+.3f} on held-out "
          f"configurations. The best measure by |tau|, {top['measure']}, has tau {top['tau']:+.3f}: "
          + ("below" if abs(top["tau"]) < abs(base.best_tau) else "above") +
          " the best single hyper-parameter, and " + ("below" if abs(top["tau"]) < abs(base.model_tau) else "above") +
          " the model on all of them.\n\n")
        by = {r["measure"]: r for r in rep.ranking}
        envs = max(r["sign_error_envs"] for r in rep.ranking)
        worst = {round(r["sign_error_worst"], 3) for r in rep.ranking if not math.isnan(r["sign_error_worst"])}
        if worst == {1.0}:
            w(f"The sign error's worst case is over {envs} environments with few pairs each: for every measure some "
              f"environment orders all its pairs wrongly (1.000 throughout), so only the mean separates the "
              f"measures here.\n\n")
        w("Where this zoo agrees with Jiang et al. and where not (a tau counts only where its permutation p-value "
          "is below 0.05):\n\n")
        for name, theirs in JIANG.items():
            r = by.get(name)
            if r is None:
                continue
            rank = [x["measure"] for x in rep.ranking].index(name) + 1
            sign = "positive" if r["tau"] > 0 else "negative"
            pv = pvals[name]
            here = (f"tau {r['tau']:+.3f} ± {r['tau_spread']:.3f} (over the two seeds' halves of the zoo), rank {rank} "
                    f"of {len(rep.ranking)} by |tau|, permutation p {_p(pv, eq=True)}: "
                    + (f"{sign}, unlikely under no association" if pv < 0.05 else
                       "not distinguishable from no association"))
            w(f"- {name}: Jiang et al.: {theirs}; here: {here}.\n")
        w("\nThe gap in this zoo is driven mostly by label noise and training-set size (Psi near ±1 for those two "
          "hyper-parameters for most measures): a measure that tracks them ranks high by tau, whatever it does "
          "within the other hyper-parameters, where its Psi is small. Jiang et al.'s grid had no label noise.\n\n")
    pilot = STORE / "zoo_convnets" / "pilot"
    if pilot.exists():
        sys.path.insert(0, str(ROOT / "scripts"))
        import zoo_convnets

        runs = rethink.load_runs(pilot, status="completed")
        fams = sorted({zoo_convnets.family(r.spec.model) for r in runs})
        table = "\n".join(line for line in zoo_convnets.pilot_report(runs).splitlines()
                          if not line.startswith("| ") or line.split(" | ")[0][2:] in fams or "---" in line
                          or line.startswith("| family"))
        secs = sum(r.summary()["seconds"] for r in runs)
        w("## The conv-net zoo's pilot (`scripts/zoo_convnets.py pilot`)\n\n")
        w(f"{len(runs)} runs stored so far ({', '.join(fams)}; {secs / 60:.1f} min of training on one core), on "
          f"Fashion-MNIST subsets, every run trained until 99% training accuracy (the stopping rule; the last "
          f"line counts the runs that reached it) within {zoo_convnets.BUDGET} epochs. Per hyper-parameter, the "
          f"base configuration with it at each of two levels, two seeds: the change of the gap against the "
          f"family's seed-to-seed standard deviation. Families without stored runs are not shown.\n\n"
          f"{table}\n\n")
        main_runs = zoo_convnets.specs(zoo_convnets.main_blocks())
        w(main_grid_sentence(zoo_convnets, runs, len(main_runs))
          + ("" if (STORE / "zoo_convnets" / "main").exists() else " Its results are not stored yet.") + "\n\n")
        probe = STORE / "zoo_convnets" / zoo_convnets.PROBE["folder"]
        if probe.exists():
            w(probe_sentence(zoo_convnets.PROBE, rethink.load_runs(probe, status="completed"), zoo_convnets.BUDGET,
                             f"docs/results/zoo_convnets/{zoo_convnets.PROBE['folder']}") + "\n\n")
        if (STORE / "zoo_convnets" / "main").exists():
            w("## The conv-net zoo (`scripts/zoo_convnets.py main --measures`)\n\n")
            w(zoo_section(STORE / "zoo_convnets" / "main", STORE / "zoo_convnets_study"))
    memo = STORE / "memorization" / "memorization.json"
    if memo.exists():
        d = json.loads(memo.read_text())
        st = d["settings"]
        w("## Memorization per example (Feldman & Zhang 2020)\n\n")
        w(f"{st['model']} on the first {d['pool']:,} Fashion-MNIST training images, {d['flipped']:,} of whose labels "
          f"were flipped to another class ({st['corruption']}); {st['runs']} fits, each on a random "
          f"{100 * st['subset']:.0f}% subset ({st['train_size']:,} images), to 100% training accuracy within "
          f"{st['max_epochs']} epochs. The memorization score of an example is its accuracy in the fits that "
          f"trained on it minus in those that did not.\n\n")
        scores = [s for s in d["scores"] if s is not None]
        flipped = [s for s, f in zip(d["scores"], d["flipped_mask"]) if f and s is not None]
        clean = [s for s, f in zip(d["scores"], d["flipped_mask"]) if not f and s is not None]
        (mf, sf, nf), (mc, sc, nc) = mean_spread(flipped), mean_spread(clean)
        w(f"Mean score: flipped labels {mf:.3f} (sd {sf:.3f}, {nf} examples), clean labels {mc:.3f} (sd {sc:.3f}, "
          f"{nc}); {len(scores):,} examples scored. AUROC of the scores against the flipped set: "
          f"**{d['auroc']:.3f}**.\n\n| fits used | AUROC |\n| --- | --- |\n")
        for k, v in d["auroc_by_runs"].items():
            w(f"| {k} | {v:.3f} |\n")
        fits = rethink.load_runs(STORE / "memorization")
        all_fit = all(r.final["train_acc"] == 1.0 for r in fits)
        if not all_fit:
            raise RuntimeError("not every memorization fit reached 100% training accuracy: the paragraph below "
                               "would not hold")
        w(f"\nEvery one of the {len(fits)} fits reached 100% training accuracy, so an example's accuracy in the fits that trained on it is "
          f"1 and its score is 1 minus its accuracy in the fits that held it out: the score measures how often "
          f"networks that did not see an example disagree with its (possibly flipped) label, i.e. cross-validated "
          f"disagreement with the label. A simpler signal of the same kind, needing no training: the fraction of an "
          f"example's {KNN} nearest neighbours (Euclidean, pixels in [0, 1], within the pool) whose label differs "
          f"from its own; its AUROC against the flipped set is **{_knn_auroc(d):.3f}** (memorization scores: "
          f"{d['auroc']:.3f}).\n")
        sig_path = STORE / "memorization" / "signals.json"
        if sig_path.exists():
            w("\n" + signals_section(d, json.loads(sig_path.read_text()), _knn_auroc(d)))
        fig = _memorization_figure(d, ROOT / "docs" / "figures" / "memorization.png")
        w(f"\n![memorization scores, flipped and clean labels](figures/{fig.name})\n\n")
    out.write_text("".join(lines))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["train", "measures", "study", "memorization", "signals", "report"])
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
    elif args.what == "report":
        print(report(ROOT / "docs" / "STUDY.md"))
    elif args.what == "memorization":
        rep = rethink.memorization(runs=args.runs, out_dir=MEMO_DIR, device="cpu", devices=devices, progress=False,
                                   **MEMO)
        print(f"AUROC {rep.auroc:.3f}; by runs {rep.auroc_by_runs}")
    elif args.what == "signals":  # the simpler signals beside the stored memorization scores
        import json

        from rethink._io import atomic_write_text

        d = json.loads((STORE / "memorization" / "memorization.json").read_text())
        sig = simple_signals(d)
        atomic_write_text(STORE / "memorization" / "signals.json", json.dumps(sig, indent=1) + "\n")
        print(sig["auroc"])
    print(f"{args.what}: {(time.perf_counter() - t0) / 60:.1f} min", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
