"""Does one setting change how runs fit? Runs grouped by everything but that setting and its seed.

``compare(results, setting)`` answers questions such as "do random labels fit the same way in
bfloat16 autocast as in float32?" from stored results: the runs are grouped by model, dataset,
corruption and every other setting except ``setting`` and the seeds; within each group, each
value of ``setting`` gets the mean and spread over seeds of the epochs to fit, the final
training and test accuracy, and each difference from the first value is called an effect only
when it exceeds the sum of the two spreads (with one seed per value, no claim is made).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

from .plots import mean_spread
from .results import Result
from .spec import RunSpec

__all__ = ["Comparison", "compare", "QUANTITIES"]

#: The quantities compared, as ``Result.summary()`` keys.
QUANTITIES = ("epochs_to_fit", "train_acc", "test_acc")
_SEEDS = ("seed", "corruption_seed", "subset_seed")


@dataclass(frozen=True)
class Comparison:
    """One group of runs that differ only in ``setting`` (and seeds).

    ``group``: the settings the runs share: model, dataset, corruption, and every RunSpec field
    that differs somewhere in the input.
    ``values``: the values of ``setting``, first the reference. ``stats[value][quantity]`` is
    ``(mean, spread, runs)`` over the finite values (an unfitted run has no epochs to fit:
    ``fitted[value]`` counts the runs that reached the stopping target of ``runs[value]``).
    ``verdict[value][quantity]``: "effect", "within the spread", or "one seed: no claim",
    against the reference value; for the epochs to fit, "not every run fit (...)" when some run
    of either value did not reach the stopping target (the counts differ or are incomplete).
    """

    setting: str
    group: dict[str, Any]
    values: tuple[Any, ...]
    runs: dict[Any, int]
    fitted: dict[Any, int]
    stats: dict[Any, dict[str, tuple[float, float, int]]]
    verdict: dict[Any, dict[str, str]]


def _judge(a: tuple[float, float, int], b: tuple[float, float, int]) -> str:
    (ma, sa, na), (mb, sb, nb) = a, b
    if na < 2 or nb < 2:
        return "one seed: no claim"
    return "effect" if abs(ma - mb) > sa + sb else "within the spread"


def compare(results: Iterable[Result], setting: str) -> list[Comparison]:
    """Group ``results`` by every RunSpec field except ``setting`` and the seeds; compare the
    values of ``setting`` within each group (see :class:`Comparison`).

    Args:
        results: stored runs (``rethink.load_runs``); unfinished runs are left out.
        setting: a RunSpec field, e.g. ``"dtype"``, ``"weight_decay"``, ``"augment"``.

    Returns: one Comparison per group with at least two values of ``setting``, in the order
    the groups first appear.

    Raises:
        ValueError: ``setting`` is not a RunSpec field, or is a seed.
    """
    names = [f.name for f in fields(RunSpec)]
    if setting not in names or setting in _SEEDS:
        raise ValueError(f"setting must be a RunSpec field other than the seeds, got {setting!r}; "
                         f"choose one of: {', '.join(n for n in names if n not in _SEEDS)}")
    done = [r for r in results if r.status == "completed"]
    keys = [n for n in names if n not in _SEEDS and n != setting]
    groups: dict[tuple, dict[Any, list[dict]]] = defaultdict(lambda: defaultdict(list))
    shared: dict[tuple, dict[str, Any]] = {}
    for r in done:
        key = tuple(repr(r.config.get(k)) for k in keys)
        groups[key][r.config.get(setting)].append(r.summary())
        shared[key] = {k: r.config.get(k) for k in keys}
    varying = {k for k in keys if len({repr(c[k]) for c in shared.values()}) > 1} | \
        ({"model", "dataset", "corruption"} - {setting})
    out = []
    for key, by_value in groups.items():
        if len(by_value) < 2:
            continue
        values = tuple(by_value)
        stats = {v: {q: mean_spread(d[q] for d in ds) for q in QUANTITIES} for v, ds in by_value.items()}
        ref = values[0]
        fitted = {v: sum(d["epochs_to_fit"] is not None for d in ds) for v, ds in by_value.items()}
        verdict = {v: {q: _judge(stats[v][q], stats[ref][q]) for q in QUANTITIES} for v in values[1:]}
        for v in values[1:]:  # epochs to fit of the runs that fit: comparable only when every run fit
            if fitted[v] < len(by_value[v]) or fitted[ref] < len(by_value[ref]):
                verdict[v]["epochs_to_fit"] = (f"not every run fit ({fitted[v]} of {len(by_value[v])} against "
                                               f"{fitted[ref]} of {len(by_value[ref])})")
        out.append(Comparison(setting, {k: shared[key][k] for k in sorted(varying)}, values,
                              {v: len(ds) for v, ds in by_value.items()}, fitted, stats, verdict))
    return out
