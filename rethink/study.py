"""The study: rank complexity measures by how well they predict the generalization gap
over many runs (Jiang et al. 2020, "Fantastic generalization measures and where to find
them"; Dziugaite et al. 2020, "In search of robust measures of generalization").

The measures themselves live in :mod:`rethink.measures`; this module scores them the ways
the field does: Kendall's tau and the granulated tau (:func:`kendall_tau`,
:func:`granulated_tau`), the conditional mutual information of the NeurIPS 2020 PGDL
competition (:func:`cmi`, :func:`cmi_table`) and the sign-error over environments of
Dziugaite et al. (:func:`sign_error`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .corruption import Corruption
from .measures import DOCS, GROUPS, MEASURES, MeasureValues, compute


def _hyperparameters() -> tuple[str, ...]:
    from dataclasses import fields

    from .spec import RunSpec

    skip = {"model_fingerprint", "dataset_fingerprint", "corruption_seed", "subset_seed", "loss_window"}
    return tuple(f.name for f in fields(RunSpec) if f.name not in skip)


#: The settings of a run (rethink.spec.RunSpec fields) that can be the hyper-parameters of a
#: study; those that vary across the runs are used.
HYPERPARAMETERS = _hyperparameters()


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's tau-b between two sequences, over the positions where both are finite (and
    +-inf counts as ordered). ``(P - Q) / sqrt((P + Q + T_a) (P + Q + T_b))`` with P concordant,
    Q discordant pairs, T_a pairs tied only in a, T_b tied only in b. NaN with fewer than 2
    usable positions or when either side is constant."""
    x = torch.tensor([float(v) for v in a], dtype=torch.float64)
    y = torch.tensor([float(v) for v in b], dtype=torch.float64)
    ok = ~(torch.isnan(x) | torch.isnan(y))
    x, y = x[ok], y[ok]
    if len(x) < 2:
        return math.nan
    dx = torch.sign(x[:, None] - x[None, :])
    dy = torch.sign(y[:, None] - y[None, :])
    iu = torch.triu_indices(len(x), len(x), 1)
    dx, dy = dx[iu[0], iu[1]], dy[iu[0], iu[1]]
    s = float((dx * dy).sum())
    nx, ny = float((dx != 0).sum()), float((dy != 0).sum())
    if nx == 0 or ny == 0:
        return math.nan
    return s / math.sqrt(nx * ny)


def _hp_value(cfg: dict, key: str):
    v = cfg.get(key)
    return tuple(v) if isinstance(v, list) else v


def granulated_tau(values: Sequence[float], gaps: Sequence[float], configs: Sequence[dict],
                   hyperparameters: Sequence[str]) -> tuple[float, dict[str, float]]:
    """Jiang et al.'s granulated Kendall coefficient. For each hyper-parameter h, runs are grouped
    by the values of all the other hyper-parameters; ``psi_h`` is the mean of :func:`kendall_tau`
    over the groups with at least two runs (that differ only in h); the result is
    ``(mean over h of psi_h, {h: psi_h})`` (NaN where no group has two comparable runs)."""
    per: dict[str, float] = {}
    for h in hyperparameters:
        others = [k for k in hyperparameters if k != h]
        groups: dict[tuple, list[int]] = {}
        for i, cfg in enumerate(configs):
            groups.setdefault(tuple(repr(_hp_value(cfg, k)) for k in others), []).append(i)
        taus = [kendall_tau([values[i] for i in idx], [gaps[i] for i in idx]) for idx in groups.values() if len(idx) > 1]
        taus = [t for t in taus if not math.isnan(t)]
        per[h] = sum(taus) / len(taus) if taus else math.nan
    valid = [v for v in per.values() if not math.isnan(v)]
    return (sum(valid) / len(valid) if valid else math.nan), per


# ---------------------------------------------------------------------------- pairwise scores


def _check_scores_input(values, gaps, hparams) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """(values, gaps) as float64 arrays, the hyper-parameter names, and an int code per run and
    name (equal codes <=> equal values, compared by repr). Raises ValueError on bad input."""
    values, gaps, hparams = list(values), list(gaps), list(hparams)
    if not (len(values) == len(gaps) == len(hparams)):
        raise ValueError(f"values, gaps and hparams must have one entry per run: got {len(values)}, "
                         f"{len(gaps)} and {len(hparams)}")
    if not values:
        raise ValueError("no runs: values, gaps and hparams are empty")
    out = []
    for label, seq in (("values", values), ("gaps", gaps)):
        arr = np.empty(len(seq))
        for i, v in enumerate(seq):
            try:
                arr[i] = float(v)
            except (TypeError, ValueError):
                raise ValueError(f"{label}[{i}] = {v!r} is not a number") from None
        out.append(arr)
    for i, h in enumerate(hparams):
        if not isinstance(h, Mapping):
            raise ValueError(f"hparams[{i}] must be a dict of hyper-parameter name -> value, got {type(h).__name__}")
    names = list(hparams[0])
    for i, h in enumerate(hparams):
        if set(h) != set(names):
            raise ValueError(f"hparams[{i}] has hyper-parameters {sorted(map(str, h))}, "
                             f"but hparams[0] has {sorted(map(str, names))}")
    codes = np.zeros((len(hparams), len(names)), dtype=np.int64)
    for k, name in enumerate(names):
        seen: dict[str, int] = {}
        for i, h in enumerate(hparams):
            codes[i, k] = seen.setdefault(repr(_hp_value(h, name)), len(seen))
    return out[0], out[1], names, codes


def _normalized_cmi(v: np.ndarray, g: np.ndarray, cell: np.ndarray) -> float:
    """I(V_mu; V_g | cell) / H(V_g | cell) over all ordered pairs (i, j), i == j included, with
    V = [x_i > x_j] and cell the conditioning value of the pair (``cell`` (n, n) int)."""
    vg = (g[:, None] > g[None, :]).ravel().astype(np.int64)
    vm = (v[:, None] > v[None, :]).ravel().astype(np.int64)
    cell = cell.ravel()
    cells = int(cell.max()) + 1
    counts = np.bincount(cell * 4 + vg * 2 + vm, minlength=cells * 4).reshape(cells, 2, 2).astype(np.float64)
    total = counts.sum((1, 2))
    counts, total = counts[total > 0], total[total > 0]
    weight = total / total.sum()  # p(cell)
    joint = counts / total[:, None, None]
    pg, pm = joint.sum(2), joint.sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(joint > 0, joint * np.log2(joint / (pg[:, :, None] * pm[:, None, :])), 0.0)
        ent = np.where(pg > 0, -pg * np.log2(pg), 0.0)
    mi, h = float((weight * terms.sum((1, 2))).sum()), float((weight * ent.sum(1)).sum())
    return mi / h if h > 0 else math.nan


def cmi_table(values: Sequence[float], gaps: Sequence[float], hparams: Sequence[Mapping],
              set_sizes: Sequence[int] | None = None, degenerate: str = "nan") -> dict[tuple[str, ...], float]:
    """Conditional mutual information between a measure and the generalization gap, per
    conditioning set of hyper-parameters (Jiang et al. 2020, Section 4; the NeurIPS 2020 PGDL
    competition's ``scoring_program/mutual_information.py``, which this follows, as read in a
    copy of the competition's starting kit on GitHub, cadurosar/pgdl).

    Over all ordered pairs of runs (i, j), as the competition's double loop takes them (i == j
    included), ``V_g = [gap_i > gap_j]`` and ``V_mu = [value_i > value_j]`` (ties count as "not
    greater", as there). A conditioning set S of hyper-parameters puts a pair in the cell given
    by the values of S of *both* runs (the competition's key ``str(v_i) + str(v_j)`` per
    hyper-parameter). The score of S is ``I(V_mu; V_g | cell) / H(V_g | cell)`` (base 2), each
    term an average over cells weighted by their share of the pairs; the competition averages
    its cells unweighted, which is the same on the complete grids with one run per combination
    that it requires.

    Args:
        values, gaps: one float per run (the measure, the gap); runs where either is NaN are left
            out; +-inf compare as ordered.
        hparams: one dict per run, hyper-parameter name -> value (compared by ``repr``), every
            dict with the same names.
        set_sizes: sizes of the conditioning sets. Default: the competition's, every pair of
            distinct hyper-parameters (``(2,)``; its code also has a table for the empty set but
            never uses it), when at least three hyper-parameters are given;
            with k < 3, sets of size k - 1 (conditioning on all k would leave only runs that differ
            in nothing in each cell; with one, the empty set: plain normalized mutual
            information). Jiang et al.'s text takes ``|S| <= 2``: ``(0, 1, 2)``.

    Returns:
        {tuple of hyper-parameter names (sorted as given): score in [0, 1]}; a score is NaN when
        the gap's sign is constant within every cell (nothing to predict), e.g. fewer than two
        runs left. 0: the measure's order tells nothing about the gap's within the cells; 1: it
        determines it.
        degenerate: the score of a set where the gap's order is constant in every cell: "nan"
            (rethink's old convention: the set is dropped by :func:`cmi`) or "zero" (the PGDL
            competition's scorer: 0, so it becomes the minimum).

    Raises:
        ValueError: lengths that differ, no runs, a ``degenerate`` other than "nan"/"zero", a value that is not a number, dicts with
            different hyper-parameter names, or set sizes that are negative or all larger than
            the number of hyper-parameters.
    """
    hparams = list(hparams)
    if degenerate not in ("nan", "zero"):
        raise ValueError(f"degenerate must be 'nan' or 'zero', got {degenerate!r}")
    fill = math.nan if degenerate == "nan" else 0.0
    v, g, names, codes = _check_scores_input(values, gaps, hparams)
    if set_sizes is None:
        sizes = [min(2, max(len(names) - 1, 0))]
    else:
        sizes = sorted({int(s) for s in set_sizes})
        if not sizes or sizes[0] < 0:
            raise ValueError(f"set_sizes must be non-negative integers, got {set_sizes!r}")
        if sizes[0] > len(names):
            raise ValueError(f"set_sizes {set_sizes!r}: there are only {len(names)} hyper-parameters ({names})")
    keep = ~(np.isnan(v) | np.isnan(g))
    v, g, codes = v[keep], g[keep], codes[keep]
    table: dict[tuple[str, ...], float] = {}
    for size in sizes:
        for subset in itertools.combinations(range(len(names)), size):
            if len(v) < 2:
                table[tuple(names[k] for k in subset)] = fill
                continue
            cid = np.unique(codes[:, list(subset)], axis=0, return_inverse=True)[1].reshape(-1) if subset \
                else np.zeros(len(v), dtype=np.int64)
            ncell = int(cid.max()) + 1
            score = _normalized_cmi(v, g, cid[:, None] * ncell + cid[None, :])
            table[tuple(names[k] for k in subset)] = fill if math.isnan(score) else score
    return table


def cmi(values: Sequence[float], gaps: Sequence[float], hparams: Sequence[Mapping],
        set_sizes: Sequence[int] | None = None, degenerate: str = "nan") -> float:
    """The PGDL competition's score of a measure: the minimum over conditioning sets of
    :func:`cmi_table` (sets whose score is NaN left out; NaN if all are; with
    ``degenerate="zero"`` a degenerate set scores 0, as in the competition). Same arguments and
    errors as :func:`cmi_table`."""
    scores = [s for s in cmi_table(values, gaps, hparams, set_sizes, degenerate).values() if not math.isnan(s)]
    return min(scores) if scores else math.nan


@dataclass(frozen=True)
class SignError:
    """What :func:`sign_error` returns.

    ``worst``/``mean``: the largest / the average sign-error over environments (NaN when there
    is no environment); ``environments``: how many; ``pairs``: pairs of runs compared in them;
    ``noise``: the gap difference at or below which a pair was dropped; ``per_environment``: one
    ``(hyper-parameter varied, ((name, value), ...) held fixed, (value_a, value_b), error, pairs)``
    per environment."""

    worst: float
    mean: float
    environments: int
    pairs: int
    noise: float
    per_environment: tuple = ()


def _sign(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a > b).astype(np.int64) - (a < b).astype(np.int64)


def sign_error(values: Sequence[float], gaps: Sequence[float], hparams: Sequence[Mapping], *,
               noise: float | None = None, seed_key: str = "seed", min_pairs: int = 1) -> SignError:
    """Dziugaite et al. 2020's sign-error of a measure over environments ("In search of robust
    measures of generalization"; their code, nitarshan/robust-generalization-measures on GitHub,
    ``experiments/coupled_networks/create_environments.py`` and ``common.py``, which this follows).

    Hyper-parameters are the names in ``hparams`` other than ``seed_key``. A pair of runs (i, j)
    is compared when they differ in exactly one hyper-parameter h (their seeds may differ); its
    environment is (h, the values of the other hyper-parameters, the two values of h). Its
    error is ``(1 - sign(value_i - value_j) * sign(gap_i - gap_j)) / 2``: 0 when the measure
    orders the two runs as their gaps, 1 when it orders them the other way, 1/2 when the
    measure ties. A pair whose ``|gap_i - gap_j| <= noise`` is dropped: its gaps differ by no
    more than seed-to-seed noise (Dziugaite et al. weight pairs by a Hoeffding bound instead;
    this is the hard-threshold form). An environment's sign-error is the mean over its pairs;
    environments with fewer than ``min_pairs`` pairs are left out. The result's ``worst`` is the
    maximum over environments (their robustness criterion), ``mean`` the average.

    Args:
        values, gaps: one float per run; runs where either is NaN are left out.
        hparams: one dict per run, name -> value (compared by ``repr``), all with the same names.
        noise: the gap-difference threshold. None: the mean ``|gap_i - gap_j|`` over pairs of runs
            that differ only in ``seed_key`` (0.0 when there is no such pair or no ``seed_key``).
        min_pairs: fewest pairs for an environment to count (>= 1). Dziugaite et al. keep
            environments whose effective number of weighted pairs is at least 12, over many
            seeds; with one seed per configuration, as in most studies here, an environment
            has one pair.

    Returns:
        :class:`SignError`. With no environment left (no two runs differing in exactly one
        hyper-parameter by more than ``noise`` in gap), ``worst`` and ``mean`` are NaN.

    Raises:
        ValueError: as :func:`cmi_table`, and for a negative or non-finite ``noise`` or
            ``min_pairs < 1``.
    """
    hparams = list(hparams)
    v, g, names, codes = _check_scores_input(values, gaps, hparams)
    if noise is not None and not (isinstance(noise, (int, float)) and math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    if not (isinstance(min_pairs, int) and min_pairs >= 1):
        raise ValueError(f"min_pairs must be an integer >= 1, got {min_pairs!r}")
    hp = [k for k, name in enumerate(names) if name != seed_key]
    i, j = np.triu_indices(len(v), 1)
    differ = codes[i][:, hp] != codes[j][:, hp]
    if noise is None:
        noise = 0.0
        if seed_key in names:
            s = names.index(seed_key)
            same = ~differ.any(1) & (codes[i, s] != codes[j, s]) & ~np.isnan(g[i]) & ~np.isnan(g[j])
            noise = float(np.abs(g[i] - g[j])[same].mean()) if same.any() else 0.0
    ok = (differ.sum(1) == 1) & ~np.isnan(v[i]) & ~np.isnan(v[j]) & ~np.isnan(g[i]) & ~np.isnan(g[j])
    ok &= np.abs(g[i] - g[j]) > noise
    i, j, differ = i[ok], j[ok], differ[ok]
    err = (1 - _sign(v[i], v[j]) * _sign(g[i], g[j])) / 2
    envs: dict[tuple, list[float]] = {}
    for n, (a, b) in enumerate(zip(i, j)):
        h = hp[int(np.argmax(differ[n]))]
        fixed = tuple((names[k], _hp_value(hparams[a], names[k])) for k in hp if k != h)
        pair = tuple(sorted((_hp_value(hparams[a], names[h]), _hp_value(hparams[b], names[h])), key=repr))
        envs.setdefault((names[h], fixed, pair), []).append(float(err[n]))
    rows = tuple((*key, sum(e) / len(e), len(e)) for key, e in envs.items() if len(e) >= min_pairs)
    errs = [r[3] for r in rows]
    return SignError(max(errs) if errs else math.nan, sum(errs) / len(errs) if errs else math.nan, len(rows),
                     sum(r[4] for r in rows), noise, rows)


# ---------------------------------------------------------------------------- statistics


def seed_sd(groups) -> tuple[float, int]:
    """The seed-to-seed standard deviation of a quantity (e.g. the gap), pooled over
    configurations: ``groups`` holds one sequence of values per configuration (its seeds);
    returns ``(sqrt(sum of squared deviations from each configuration's mean / degrees of
    freedom), configurations with at least two finite values)``; NaN with none. For two seeds
    each term is ``(g_0 - g_1)^2 / 2``."""
    ss, dof, used = 0.0, 0, 0
    for g in groups:
        v = [float(x) for x in g if math.isfinite(float(x))]
        if len(v) < 2:
            continue
        m = sum(v) / len(v)
        ss += sum((x - m) ** 2 for x in v)
        dof += len(v) - 1
        used += 1
    return (math.sqrt(ss / dof) if dof else math.nan), used


def kendall_tau_a(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's tau-a, as Jiang et al. 2020 define it: ``(P - Q) / (n (n - 1) / 2)`` over all
    pairs of the n positions where both are not NaN (ties count in the denominator, so tau-a is
    smaller in size than tau-b, :func:`kendall_tau`, whenever there are ties). NaN with n < 2."""
    x = np.array([float(v) for v in a])
    y = np.array([float(v) for v in b])
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y = x[ok], y[ok]
    if len(x) < 2:
        return math.nan
    i, j = np.triu_indices(len(x), 1)
    return float((_sign(x[i], x[j]) * _sign(y[i], y[j])).sum()) / len(i)


def bootstrap_interval(statistic, n: int, *, resamples: int = 1000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval over models: ``statistic(idx)`` (idx an int64 array of
    length n, drawn with replacement by ``numpy.random.default_rng(seed)``, one draw per
    resample) evaluated ``resamples`` times; returns the ``(1 - level) / 2`` and
    ``(1 + level) / 2`` quantiles of the finite values (NaN, NaN when none is finite)."""
    if n < 1 or resamples < 1 or not 0 < level < 1:
        raise ValueError(f"bootstrap needs n >= 1, resamples >= 1, 0 < level < 1; got {n}, {resamples}, {level}")
    rng = np.random.default_rng(seed)
    stats = np.array([statistic(rng.integers(0, n, n)) for _ in range(resamples)], dtype=np.float64)
    stats = stats[np.isfinite(stats)]
    if not len(stats):
        return math.nan, math.nan
    lo, hi = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def one_run_interval(statistic, groups: Sequence[Sequence[int]], *, resamples: int = 1000, seed: int = 0,
                     level: float = 0.95) -> tuple[float, float, float]:
    """The spread of ``statistic(idx)`` over grids of one run per configuration.

    ``groups`` lists each configuration's run indices (its seeds). A draw takes one index of
    every group, uniformly and independently (``numpy.random.default_rng(seed)``: one call
    ``integers(0, sizes)`` per draw, ``sizes`` the groups' lengths in order), so every drawn grid
    is complete and holds no run twice, unlike a bootstrap resample of the runs, whose duplicated
    runs add tied pairs. ``statistic`` gets the int64 array of the drawn indices (one per group,
    in the groups' order). Returns ``(median, lo, hi)``: the median and the ``(1 - level) / 2``
    and ``(1 + level) / 2`` quantiles of the finite values over ``resamples`` draws (NaN, NaN,
    NaN when none is finite). It measures how much the statistic moves with the seeds' draw at
    one seed per configuration, not the uncertainty of an estimate from all the runs."""
    groups = [list(g) for g in groups]
    if not groups or any(not g for g in groups) or resamples < 1 or not 0 < level < 1:
        sizes = [len(g) for g in groups]
        raise ValueError(f"one_run_interval needs non-empty groups, resamples >= 1, 0 < level < 1; got group "
                         f"sizes {sizes[:8]}{'...' if len(sizes) > 8 else ''}, {resamples}, {level}")
    rng = np.random.default_rng(seed)
    sizes = np.array([len(g) for g in groups])
    table = np.full((len(groups), int(sizes.max())), -1, dtype=np.int64)
    for i, g in enumerate(groups):
        table[i, :len(g)] = g
    rows = np.arange(len(groups))
    stats = np.array([statistic(table[rows, rng.integers(0, sizes)]) for _ in range(resamples)], dtype=np.float64)
    stats = stats[np.isfinite(stats)]
    if not len(stats):
        return math.nan, math.nan, math.nan
    med, lo, hi = np.quantile(stats, [0.5, (1 - level) / 2, (1 + level) / 2])
    return float(med), float(lo), float(hi)


def permutation_pvalue(values: Sequence[float], gaps: Sequence[float], *, resamples: int = 1000, seed: int = 0,
                       statistic=None) -> float:
    """Two-sided permutation p-value of ``statistic(values, gaps)`` (default :func:`kendall_tau`):
    the gaps are permuted against the values ``resamples`` times (``default_rng(seed)``); returns
    ``(1 + #{|stat_perm| >= |stat_obs|}) / (1 + resamples)`` (NaN when the observed statistic is)."""
    stat = statistic or kendall_tau
    v = np.array([float(x) for x in values])
    g = np.array([float(x) for x in gaps])
    obs = stat(v, g)
    if math.isnan(obs):
        return math.nan
    rng = np.random.default_rng(seed)
    hits = sum(abs(stat(v, g[rng.permutation(len(g))])) >= abs(obs) - 1e-12 for _ in range(resamples))
    return (1 + hits) / (1 + resamples)


def sign_error_by_hyperparameter(result: SignError) -> dict[str, float]:
    """Mean sign-error over the environments of each varied hyper-parameter of a
    :func:`sign_error` result: {hyper-parameter: mean error}."""
    by: dict[str, list[float]] = {}
    for h, _fixed, _pair, err, _n in result.per_environment:
        by.setdefault(h, []).append(err)
    return {h: sum(e) / len(e) for h, e in by.items()}


@dataclass(frozen=True)
class Baseline:
    """What :func:`hyperparameter_baseline` returns: ``best`` (the hyper-parameter whose values,
    coded by their order, have the largest |tau| with the gap), ``best_tau``, ``single`` ({name:
    tau}), ``model_tau`` (tau between the gaps and held-out predictions of a gradient-boosting
    regressor on the one-hot hyper-parameters, grouped K-fold), ``folds``."""

    best: str
    best_tau: float
    single: dict
    model_tau: float
    folds: int


def level_order(value) -> tuple:
    """A sort key for a hyper-parameter's values (also as their ``repr``): numbers by value; a
    label corruption ("none", "labels:0.2", "random_labels", as :meth:`Corruption.parse` reads
    it) by the probability with which a label is redrawn, so that "none" comes first and label
    noise in order; anything else after them, by its text."""
    text = value if isinstance(value, str) else repr(value)
    text = text[1:-1] if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"" else text
    try:
        return (0, float(text), text)
    except ValueError:
        pass
    try:
        c = Corruption.parse(text)
    except ValueError:
        return (2, 0.0, text)
    if c.kind == "none" or c.is_label_corruption:
        return (1, c.label_probability, text)
    return (2, 0.0, text)


def _ordinal(col: list) -> np.ndarray:
    keys = sorted({repr(v) for v in col}, key=level_order)
    return np.array([keys.index(repr(v)) for v in col], dtype=np.float64)


def hyperparameter_baseline(gaps: Sequence[float], hparams: Sequence[Mapping], *, folds: int = 8,
                            seed: int = 0) -> Baseline:
    """How well the hyper-parameters alone rank the gaps. (a) per hyper-parameter, tau-b between
    its values (in the order of :func:`level_order`: numbers by value, label noise by its
    fraction, other text as text) and the gap; the largest |tau| wins. (b) a
    ``sklearn.ensemble.GradientBoostingRegressor`` (seeded) on one-hot hyper-parameters, fitted
    and predicted with ``GroupKFold(folds)`` where a group is one configuration (runs with equal
    hyper-parameters, i.e. its seeds, stay in one fold); tau-b between held-out predictions and
    gaps. ``hparams`` must not hold the seed. Raises ValueError as :func:`cmi_table`."""
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.model_selection import GroupKFold

    hparams = list(hparams)
    _, g, names, codes = _check_scores_input(list(gaps), gaps, hparams)
    single = {h: kendall_tau(_ordinal([_hp_value(d, h) for d in hparams]), g) for h in names}
    best = max(single, key=lambda h: -1 if math.isnan(single[h]) else abs(single[h]))
    onehot = np.concatenate([np.eye(int(codes[:, k].max()) + 1)[codes[:, k]] for k in range(len(names))], axis=1)
    groups = np.unique(codes, axis=0, return_inverse=True)[1].reshape(-1)
    k = min(folds, len(set(groups.tolist())))
    pred = np.full(len(g), math.nan)
    if k >= 2:
        for tr, te in GroupKFold(n_splits=k).split(onehot, g, groups):
            m = GradientBoostingRegressor(random_state=seed, n_estimators=100, max_depth=2).fit(onehot[tr], g[tr])
            pred[te] = m.predict(onehot[te])
    return Baseline(best, single[best], single, kendall_tau(pred, g), k)


class StudyReport:
    """What :func:`study` produced: ``rows`` (one dict per run: run_name, hyper-parameters,
    train_acc, test_acc, gap and every measure), ``ranking`` (one dict per measure: measure,
    tau, granulated, cmi (:func:`cmi` over the hyper-parameters that vary, seed excluded),
    sign_error_worst, sign_error_mean, sign_error_envs (:func:`sign_error`, seed as the noise
    key), runs, per-hyper-parameter psi, seconds per run), ``hyperparameters`` (the
    config keys that vary), ``seconds`` (group -> total seconds), ``skipped`` (run -> reason),
    ``paths`` (csv, md, png)."""

    def __init__(self, rows, ranking, hyperparameters, seconds, skipped, paths):
        self.rows, self.ranking, self.hyperparameters = rows, ranking, hyperparameters
        self.seconds, self.skipped, self.paths = seconds, skipped, paths

    def __repr__(self) -> str:
        return f"StudyReport({len(self.rows)} runs, {len(self.ranking)} measures, paths={self.paths})"


def _measure_values(output: dict) -> MeasureValues:
    """A MeasureJob's output (values and seconds per group) as MeasureValues."""
    mv = MeasureValues(output["values"])
    mv.seconds = dict(output.get("seconds", {}))
    return mv


def _measure_runs(runs, measures, device, devices, executor, seed, dataset, progress, compute_kwargs):
    """(result, measure values or an exception) per run. Runs read from a folder go through the
    runner as cached ``MeasureJob``s (in parallel with ``devices``/``executor``); runs held in
    memory, or measured on other data (``dataset``), are measured here, uncached."""
    from pathlib import Path

    from .runner import run_jobs
    from .zoo import MeasureJob

    out = {}
    settings = dict(compute_kwargs, measures=measures, seed=seed)
    cached = [r for r in runs if r.path is not None and dataset is None and r.model is None]
    for folder in sorted({Path(r.path).parent for r in cached}):
        here = [r for r in cached if Path(r.path).parent == folder]
        jobs = [MeasureJob.make(Path(r.path).stem, settings) for r in here]
        try:
            values = run_jobs(jobs, folder, device=device, devices=devices, executor=executor, progress=progress,
                              desc="measures")
            for r, v in zip(here, values):
                out[id(r)] = _measure_values(v)
        except (ValueError, RuntimeError, FileNotFoundError):
            # a job failed (in a worker, or here: a run whose weights are gone and whose measures
            # were never cached): each job alone, so the cached ones are still read, keeping each error
            for r, job in zip(here, jobs):
                try:
                    out[id(r)] = _measure_values(run_jobs([job], folder, device=device, progress=False,
                                                          desc="measures")[0])
                except (ValueError, RuntimeError, FileNotFoundError) as e:
                    out[id(r)] = e
    for r in runs:
        if id(r) in out:
            continue
        data = dataset(r) if callable(dataset) else dataset
        target = r if (r.model is not None or r.path is None) else str(r.path)
        try:
            out[id(r)] = compute(target, data, device=device, **settings)
        except (ValueError, RuntimeError, FileNotFoundError) as e:
            out[id(r)] = e
    return out


def _without_folder(message: str, path) -> str:
    """``message`` with the folder of the run at ``path`` left out of the file names it holds: a
    report names the file, never an absolute path of the machine that made it."""
    if path is None:
        return message
    import os
    from pathlib import Path

    for folder in sorted({str(Path(path).resolve().parent), str(Path(path).parent)}, key=len, reverse=True):
        message = message.replace(folder + os.sep, "")
    return message


def study(results_or_dir, out_dir=None, *, measures="all", device="auto", seed=0, dataset=None,
          progress: bool = False, devices=None, executor=None, **compute_kwargs) -> StudyReport:
    """Rank complexity measures by how well they predict the generalization gap across runs.

    For every completed run (a folder of result JSONs, e.g. written by ``sweep`` or ``zoo``,
    or a list of Results / result paths), the measures of :func:`rethink.measures.compute`
    and the gap ``train_acc - test_acc`` of the last epoch. Measures of runs read from files
    are computed by the one runner, cached per run beside the result
    (``<run_name>.measures.json``) and spread over ``devices`` or an ``executor`` like any
    sweep. Then, per measure: Kendall's tau with the gap over all runs and per seed (their
    spread is the seed-to-seed variation of the score), the granulated tau
    (:func:`granulated_tau`), the conditional mutual information (:func:`cmi`) and the
    sign-error (:func:`sign_error`) over the run settings (:data:`HYPERPARAMETERS`) that vary.
    Writes into ``out_dir`` (default: the results folder): ``measures.csv`` (one row per
    run), ``measures.md`` (the ranking and the time per measure) and ``measures.png``.

    ``dataset``: optional training data instead of each run's own: a Dataset (the run's
    corruption is applied), an ``(x, y)`` pair used as is, or a callable ``result -> either``.
    Other keyword arguments go to :func:`compute`.

    Raises:
        ValueError: no results, no completed run, a list given without ``out_dir``, an
            ``out_dir`` that is a file, a bad measure setting (named), before anything is measured.
    """
    import csv
    import io
    import os
    from pathlib import Path

    from ._io import atomic_write_text, check_writable
    from .measures import check_settings
    from .results import load_runs

    folder = Path(results_or_dir) if isinstance(results_or_dir, (str, os.PathLike)) else None
    runs = load_runs(results_or_dir)
    if out_dir is None:
        if folder is None:
            raise ValueError("study of a list of results needs out_dir")
        out_dir = folder
    out_dir = Path(out_dir)
    if not runs:
        raise ValueError(f"no results found in {results_or_dir}")
    check_settings(dict(compute_kwargs, measures=measures, seed=seed))  # before anything is measured
    check_writable(out_dir, "out_dir")
    skipped = {}
    done = []
    for i, r in enumerate(runs):
        name = r.config.get("run_name") or (Path(r.path).stem if r.path is not None else f"run{i}")
        if r.status != "completed" or not r.history:
            skipped[name] = f"status {r.status}" + (f": {r.error}" if r.error else "")
        else:
            done.append((name, r))
    values = _measure_runs([r for _, r in done], measures, device, devices, executor, seed, dataset, progress,
                           compute_kwargs)
    rows, configs, seconds = [], [], {}
    for name, res in done:
        m = values[id(res)]
        if isinstance(m, Exception):
            skipped[name] = _without_folder(f"{type(m).__name__}: {m}", res.path)
            continue
        fin = res.final
        row = {"run_name": name, **{k: _hp_value(res.config, k) for k in HYPERPARAMETERS},
               "train_acc": fin.get("train_acc"), "test_acc": fin.get("test_acc"), "gap": fin.get("gap"), **m}
        rows.append(row)
        configs.append(res.config)
        for g, sec in getattr(m, "seconds", {}).items():
            seconds[g] = seconds.get(g, 0.0) + sec
    if not rows:
        raise ValueError(f"no completed run could be measured ({len(skipped)} skipped: {skipped})")
    names = [k for k in MEASURES if k in rows[0]]
    hps = [h for h in HYPERPARAMETERS if len({repr(_hp_value(c, h)) for c in configs}) > 1]
    ranking, noise = _rank(rows, names, configs, hps, seconds)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out_dir / "measures.csv", "md": out_dir / "measures.md", "png": out_dir / "measures.png"}
    buf = io.StringIO()
    cols = ["run_name", *hps, "train_acc", "test_acc", "gap", *names]
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({c: r.get(c) for c in cols})
    atomic_write_text(paths["csv"], buf.getvalue())
    atomic_write_text(paths["md"], _markdown(rows, ranking, hps, seconds, skipped, noise))
    _plot(rows, [r["measure"] for r in ranking[:PLOT_MEASURES]], paths["png"], total=len(names))
    return StudyReport(rows, ranking, hps, seconds, skipped, {k: str(v) for k, v in paths.items()})


def _rank(rows, names, configs, hps, seconds) -> tuple[list[dict], float]:
    """One ranking entry per measure (see :class:`StudyReport`), sorted by |tau|."""
    gaps = [r["gap"] for r in rows]
    gaps_f = [math.nan if v is None else v for v in gaps]
    group_of = {m: g for g, ms in GROUPS.items() for m in ms}
    hp_runs = [{h: _hp_value(c, h) for h in hps} for c in configs]  # seed included: sign_error's noise
    cmi_runs = [{h: v for h, v in d.items() if h != "seed"} for d in hp_runs]  # seed is not a design choice
    seeds = sorted({c.get("seed") for c in configs}, key=repr)
    ranking, noise = [], math.nan
    for k in names:
        vals = [r[k] for r in rows]
        gran, per = granulated_tau(vals, gaps, configs, hps)
        se = sign_error(vals, gaps_f, hp_runs)
        noise = se.noise
        by_seed = [kendall_tau([v for v, c in zip(vals, configs) if c.get("seed") == s],
                               [g for g, c in zip(gaps, configs) if c.get("seed") == s]) for s in seeds]
        by_seed = [t for t in by_seed if not math.isnan(t)]
        spread = float(np.std(by_seed, ddof=1)) if len(by_seed) > 1 else math.nan
        ranking.append({"measure": k, "tau": kendall_tau(vals, gaps), "tau_by_seed": by_seed, "tau_spread": spread,
                        "granulated": gran, "cmi": cmi(vals, gaps_f, cmi_runs), "sign_error_worst": se.worst,
                        "sign_error_mean": se.mean, "sign_error_envs": se.environments,
                        "runs": sum(1 for v in vals if not math.isnan(v)), **{f"psi_{h}": per[h] for h in hps},
                        "seconds_per_run": seconds.get(group_of[k], 0.0) / len(rows)})
    ranking.sort(key=lambda r: -abs(r["tau"]) if not math.isnan(r["tau"]) else math.inf)
    return ranking, noise


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if isinstance(v, float):
        return f"{v:+.3f}" if abs(v) <= 1 else f"{v:.4g}"
    return str(v)


def _markdown(rows, ranking, hps, seconds, skipped, noise=math.nan) -> str:
    n = len(rows)
    gaps = [r["gap"] for r in rows]
    envs = max((r["sign_error_envs"] for r in ranking), default=0)
    lines = [
        "# Complexity measures against the generalization gap",
        "",
        f"{n} runs; gap = train accuracy - test accuracy (from {min(gaps):.3f} to {max(gaps):.3f}). "
        f"Hyper-parameters that vary: {', '.join(hps) if hps else 'none'}.",
        "tau: Kendall's tau-b between the measure and the gap over all runs (+1: the measure orders the "
        "runs exactly as their gaps), with its spread over seeds (sample standard deviation of tau computed on "
        "each seed's runs alone) where there are several seeds. Granulated: Jiang et al.'s average of tau within groups of runs that "
        "differ in one hyper-parameter (psi_h per hyper-parameter h). Margin, sigma and alpha are expected "
        "to fall as the gap grows (negative tau). runs: runs where the measure is defined (not NaN).",
        "CMI: the PGDL competition's score, the minimum over pairs of hyper-parameters (single ones when "
        "fewer than three vary; seed excluded) of the mutual information between the order of two runs by the "
        "measure and by the gap, given both runs' values of those hyper-parameters, over the entropy of the "
        "gap's order (0: no information, 1: determines it; blind to the measure's direction).",
        "Sign err: Dziugaite et al.'s sign-error over pairs of runs that differ in one hyper-parameter, worst "
        "and mean over environments (0: the measure orders every pair as the gap, 0.5: chance, 1: always "
        "reversed, so near 1 for a margin, sigma or alpha that works); pairs whose gaps differ by at most "
        f"{noise:.3g} dropped (the mean gap difference of runs that differ only in seed; 0 without seeds); "
        f"{envs} environments.",
        "",
        "| rank | measure | tau | granulated | CMI | sign err worst | sign err mean | "
        + " | ".join(f"psi {h}" for h in hps) + (" | " if hps else "") + "runs | s / run | definition |",
        "| --- | --- | --- | --- | --- | --- | --- | " + "--- | " * len(hps) + "--- | --- | --- |",
    ]
    for i, r in enumerate(ranking, 1):
        tau = _fmt(r["tau"]) + (f" ± {r['tau_spread']:.3f}" if not math.isnan(r["tau_spread"]) else "")
        cells = [str(i), r["measure"], tau, _fmt(r["granulated"]), _fmt(r["cmi"]),
                 _fmt(r["sign_error_worst"]), _fmt(r["sign_error_mean"]), *(_fmt(r[f"psi_{h}"]) for h in hps),
                 str(r["runs"]), f"{r['seconds_per_run']:.3g}", DOCS.get(r["measure"], "").replace("|", "\\|")]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Time per measure group", "", "| group | total s | s / run |", "| --- | --- | --- |"]
    for g, s in sorted(seconds.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {g} | {s:.3g} | {s / n:.3g} |")
    if skipped:
        lines += ["", "## Runs not measured", ""] + [f"- {k}: {v}" for k, v in skipped.items()]
    return "\n".join(lines) + "\n"


#: measures.png shows the first this many measures of the ranking (all are in measures.csv)
PLOT_MEASURES = 8


def _plot(rows, names, path, total: int | None = None) -> None:
    """Gap against measure for ``names`` (the top of the ranking), one readable panel each;
    values that are not finite are counted in the panel's title, not drawn."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ._io import atomic_write_bytes

    cols = 4
    nr = max(1, math.ceil(len(names) / cols))
    fig, axes = plt.subplots(nr, cols, figsize=(4 * cols, 3.4 * nr), squeeze=False)
    gaps = [r["gap"] for r in rows]
    kinds = sorted({str(r.get("corruption")) for r in rows})
    colors = {k: plt.cm.tab10(i % 10) for i, k in enumerate(kinds)}
    for ax, k in zip(axes.flat, names):
        for kind in kinds:
            pts = [(r[k], r["gap"]) for r in rows if str(r.get("corruption")) == kind and math.isfinite(r[k])]
            if pts:
                ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=12, color=colors[kind], label=kind)
        tau = kendall_tau([r[k] for r in rows], gaps)
        bad = sum(not math.isfinite(r[k]) for r in rows)
        head = f"{k}, tau={tau:+.2f}" if not math.isnan(tau) else k
        ax.set_title(head + (f"\n{bad} of {len(rows)} runs not finite, not drawn" if bad else ""), fontsize=10)
        ax.tick_params(labelsize=8)
        ax.set_xlabel(k, fontsize=9)
        ax.set_ylabel("generalization gap", fontsize=9)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    if len(kinds) > 1:
        axes.flat[0].legend(fontsize=8, title="corruption", title_fontsize=8)
    if total is not None and total > len(names):
        fig.suptitle(f"the top {len(names)} of {total} measures of the ranking (every value is in measures.csv)",
                     fontsize=11)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
