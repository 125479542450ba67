"""The perturbation measures: how far the weights of a trained network can move before its
training accuracy drops (Jiang et al. 2020; Dziugaite et al. 2020).

- :func:`pacbayes_sigma`: the largest Gaussian noise (plain, or proportional to each
  weight's magnitude) under which the mean accuracy stays within ``deviation``.
- :func:`sharpness_alpha`: the largest box (plain, or magnitude-aware) in which the worst
  perturbation found by projected gradient ascent keeps the accuracy within ``deviation``.

Every comparison of an accuracy with its target visits the examples in a random order and
stops as soon as the answer is decided (a sequential test that answers as the full
evaluation would except with probability at most 1e-4 per look); the sharpness search starts
from a search on a subset of the examples. :mod:`rethink.measures` holds the other measures
and ``compute``, which calls these on the batch-norm-folded network.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["pacbayes_sigma", "sharpness_alpha"]


def _check_model(model) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if next(model.parameters(), None) is None:
        raise ValueError(f"model {type(model).__name__} has no parameters: there is nothing to measure")


def _trace(model: nn.Module, x: torch.Tensor, fn: Callable) -> None:
    """Run ``model(x)`` with forward hook ``fn(name, module, inputs, output)`` on every module."""
    handles = [m.register_forward_hook(lambda mod, inp, out, name=name: fn(name, mod, inp, out))
               for name, m in model.named_modules()]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()


def _batches(n: int, size: int) -> Iterable[slice]:
    for s in range(0, n, size):
        yield slice(s, min(s + size, n))


def _check_data(x, y) -> None:
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError(f"training data must be tensors, got {type(x).__name__} and {type(y).__name__}")
    if len(x) == 0:
        raise ValueError("no training data: the training set is empty")
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} examples but y has {len(y)} labels")


class _Perturber:
    """The network at perturbed weights: its accuracy, its loss gradient, and the sequential test
    "is the mean accuracy of these weight sets at least the target" (:meth:`compare`).

    A group of k weight sets is a list of stacked tensors ``(k, *p.shape)``, one per parameter.
    With ``batched`` (default: on CUDA) a group is evaluated in one call, torch.func.vmap over
    ``functional_call`` (as many sets per call as ``memory_budget`` allows); otherwise (default
    on the CPU) set by set, which measured faster there: vmap turns convolutions into grouped
    ones and batches pooling slowly (benchmarks/RESULTS_measures.md)."""

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, memory_budget: int, batch_size: int,
                 *, batched: bool | None = None, seed: int = 0):
        self.model = model.eval()
        self.names = [n for n, _ in model.named_parameters()]
        self.params = [p.detach() for _, p in model.named_parameters()]
        self.dev = self.params[0].device
        self.x, self.y = x.to(self.dev), y.to(self.dev)
        self.n = len(self.x)
        self.batch = min(batch_size, self.n)
        self.batched = self.dev.type == "cuda" if batched is None else bool(batched)
        # the order in which the sequential test visits the examples: uniformly random, seeded
        self.order = torch.randperm(self.n, generator=torch.Generator().manual_seed(seed)).to(self.dev)
        act = [0]

        def hook(name, mod, inp, out):
            if isinstance(out, torch.Tensor) and not list(mod.children()):
                act[0] += out.numel() * out.element_size()

        _trace(model, self.x[:1], hook)
        self.act_bytes = max(act[0], 1) * 2
        self.param_bytes = sum(p.numel() * p.element_size() for p in self.params) * 3
        self.budget = memory_budget
        self._normal: dict[tuple[int, int], list[torch.Tensor]] = {}

    def _call(self, params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(self.model, dict(zip(self.names, params)), (x,))

    def accuracy(self, params: list[torch.Tensor], idx: torch.Tensor | None = None) -> float:
        """Exact accuracy at ``params`` on all examples (or on the examples ``idx``)."""
        x, y = (self.x, self.y) if idx is None else (self.x[idx], self.y[idx])
        correct = 0
        with torch.no_grad():
            for s in _batches(len(x), self.batch):
                correct += int((self._call(params, x[s]).argmax(1) == y[s]).sum())
        return correct / len(x)

    def normal(self, samples: int, seed: int) -> list[torch.Tensor]:
        """Standard normal draws z_j, j < samples, stacked per parameter ``(samples, *p.shape)``;
        sample j from generator seed ``seed * 1_000_003 + j`` (the same at every call)."""
        key = (samples, seed)
        if key not in self._normal:
            gens = [torch.Generator().manual_seed(seed * 1_000_003 + j) for j in range(samples)]
            self._normal[key] = [torch.stack([torch.randn(p.shape, generator=g, dtype=torch.float32) for g in gens])
                                 .to(device=self.dev, dtype=p.dtype) for p in self.params]
        return self._normal[key]

    def _correct(self, stacked: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> int:
        """Correct predictions on (x, y) summed over the k weight sets of ``stacked``."""
        k = stacked[0].shape[0]
        with torch.no_grad():
            if self.batched and k > 1:
                try:
                    f = torch.func.vmap(self._call, in_dims=(0, None))
                    chunk = int(max(1, min(k, self.budget // (self.param_bytes + self.batch * self.act_bytes))))
                    total = 0
                    for k0 in range(0, k, chunk):
                        part = [t[k0:k0 + chunk] for t in stacked]
                        for s in _batches(len(x), self.batch):
                            total += int((f(part, x[s]).argmax(2) == y[s]).sum())
                    return total
                except Exception:  # noqa: BLE001 - an op without a batching rule: fall back to a loop
                    self.batched = False
            return sum(int((self._call([t[i] for t in stacked], x[s]).argmax(1) == y[s]).sum())
                       for i in range(k) for s in _batches(len(x), self.batch))

    def compare(self, stacked: list[torch.Tensor], target: float, idx: torch.Tensor | None = None,
                *, delta: float = 1e-4, first: int = 64) -> tuple[bool, float]:
        """Whether the mean over the k weight sets of ``stacked`` of the accuracy on all examples
        (or on the examples ``idx``) is >= ``target``, and that mean minus ``target`` as estimated
        from the examples visited (exact when all were).

        The examples are visited in a random order (``self.order``, or ``idx`` as given) in chunks
        ending at m = first, 2 first, 4 first, ... After each chunk but the last, the answer is
        returned early when the remaining examples cannot change it, or when the mean accuracy
        over the m visited examples is more than ``t = sqrt(ln(1/delta) (1 - (m - 1)/n) / (2 m))``
        away from ``target``: by Serfling's inequality (sampling without replacement, values in
        [0, 1]), each such early answer differs from the full evaluation's with probability at
        most ``delta``. Otherwise all n examples are evaluated and the answer is exact."""
        order = self.order if idx is None else idx
        n, k = len(order), stacked[0].shape[0]
        need = target * k * n
        log_inv = math.log(1 / delta)
        correct, m, end = 0, 0, min(first, n)
        while True:
            part = order[m:end]
            correct += self._correct(stacked, self.x[part], self.y[part])
            m = end
            excess = correct / (k * m) - target
            if m >= n:
                return correct >= need, excess
            t = math.sqrt(log_inv * (1 - (m - 1) / n) / (2 * m))
            if correct >= need or excess >= t:
                return True, excess
            if correct + k * (n - m) < need or excess < -t:
                return False, excess
            end = min(2 * m, n)

    def loss_grad(self, params: list[torch.Tensor], idx: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Gradient of the mean cross-entropy over all examples (or the examples ``idx``) at ``params``."""
        x, y = (self.x, self.y) if idx is None else (self.x[idx], self.y[idx])
        ps = [p.detach().requires_grad_(True) for p in params]
        grads = [torch.zeros_like(p) for p in ps]
        with torch.enable_grad():
            for s in _batches(len(x), self.batch):
                loss = F.cross_entropy(self._call(ps, x[s]), y[s], reduction="sum") / len(x)
                for g, d in zip(grads, torch.autograd.grad(loss, ps)):
                    g += d
        return grads


def _floor(start: float) -> float:
    """The smallest value the search tries below ``start``: start / 4^k, the first below start * 1e-6."""
    s = start
    while s >= start * 1e-6:
        s /= 4
    return s


def _search(ok: Callable[[float], tuple[bool, float]], start: float, tol: float, max_evals: int, *,
            cap: float = 1e6, floor_first: bool = False, guess: float | None = None,
            slope: float | None = None, trace: list | None = None) -> float:
    """The largest s with ok(s) passing, for an ok that is (roughly) monotone decreasing.

    ``ok(s)`` returns (passed, excess): excess estimates (value at s) - target. Returns ``lo``:
    a passing s with a failing ``hi <= lo (1 + tol)`` seen too (or the best lo when ``max_evals``
    evaluations are spent); 0.0 when even s = :func:`_floor` fails, inf when ok still holds
    beyond ``cap`` or after ``max_evals`` doublings.

    The bracket [lo, hi] is found from ``start`` by doubling while ok passes, else dividing by 4
    (after trying :func:`_floor` first when ``floor_first``); or from a ``guess`` by steps in ln s
    of ln(1 + tol) (doubled from the third step on the same side), or, when ``slope`` (d excess /
    d ln s, negative) predicts the crossing farther away, to half of ln(1 + tol) short of it (so
    that the next step of ln(1 + tol) closes the bracket). It is then closed by geometric
    bisection. ``trace``: a list to which every (s, passed, excess) is appended."""
    w = math.log1p(tol)
    evals = 0

    def probe(s: float) -> tuple[float, bool, float]:
        nonlocal evals
        evals += 1
        passed, e = ok(s)
        if trace is not None:
            trace.append((s, passed, e))
        return s, passed, e

    lo = hi = None
    if guess is None:
        s, passed, _ = probe(start)
        while passed:
            lo = s
            if 2 * s > cap or evals >= max_evals:
                return math.inf
            s, passed, _ = probe(2 * s)
        hi, evals = s, evals - 1  # the failing end is not counted (as in the search before)
        if lo is None and floor_first and not probe(_floor(start))[1]:
            return 0.0
        while lo is None:
            if hi < start * 1e-6 or evals >= max_evals:
                return 0.0
            s, passed, _ = probe(hi / 4)
            lo, hi = (s, hi) if passed else (None, s)
    else:
        s, passed, e = probe(min(max(guess, _floor(start)), cap))
        lo, hi = (s, None) if passed else (None, s)
        k = 0
        while lo is None or hi is None:
            if lo is None and hi <= _floor(start):
                return 0.0
            d = max(w * 2 ** max(k - 1, 0), abs(e) / -slope - w / 2 if slope is not None and slope < 0 else 0)
            s = lo * math.exp(d) if hi is None else hi * math.exp(-d)
            if hi is None and (s > cap or evals >= max_evals):
                return math.inf
            if lo is None and (s <= _floor(start) or evals >= max_evals):
                if not probe(_floor(start))[1]:
                    return 0.0
                s, passed, e = _floor(start), True, 0.0
            else:
                s, passed, e = probe(s)
            lo, hi = (s, hi) if passed else (lo, s)
            k += 1
    while hi / lo > 1 + tol and evals < max_evals:
        s, passed, _ = probe(math.sqrt(lo * hi))
        lo, hi = (s, hi) if passed else (lo, s)
    return lo


def _coarse_to_fine(ok_on: Callable, order: torch.Tensor, coarse: int, tol: float, max_evals: int) -> float:
    """:func:`_search` for ``ok_on(None)`` (all examples), started from the answer of the search for
    ``ok_on(order[:coarse])`` (a random subset of ``coarse`` examples), whose evaluations also give
    the slope for the first step; straight from 1e-2 when ``coarse`` is 0 or more than half the
    examples. ``ok_on(idx)`` returns the ok of :func:`_search` on the examples ``idx``."""
    full = ok_on(None)
    if not (0 < coarse and 2 * coarse <= len(order)):
        return _search(full, 1e-2, tol, max_evals, floor_first=True)
    trace: list = []
    guess = _search(ok_on(order[:coarse]), 1e-2, tol, max_evals, floor_first=True, trace=trace)
    if guess == 0:
        return 0.0 if not full(_floor(1e-2))[0] else _search(full, 1e-2, tol, max_evals)
    if guess == math.inf:
        return _search(full, 1e-2, tol, max_evals, floor_first=True)
    return _search(full, 1e-2, tol, max_evals, guess=guess, slope=_slope(trace, guess))


def _slope(trace: list, guess: float) -> float | None:
    """d excess / d ln s near ``guess``: least squares over the (s, passed, excess) of ``trace``
    within a factor 4 of the guess and |excess| <= 0.25 (the steep, near-linear part of the
    accuracy curve); None unless that gives a negative slope from two or more values of s."""
    pts = [(math.log(s), e) for s, _, e in trace if abs(math.log(s / guess)) <= math.log(4) and abs(e) <= 0.25]
    if len({u for u, _ in pts}) < 2:
        return None
    mu, me = sum(u for u, _ in pts) / len(pts), sum(e for _, e in pts) / len(pts)
    slope = sum((u - mu) * (e - me) for u, e in pts) / sum((u - mu) ** 2 for u, _ in pts)
    return slope if slope < 0 else None


def pacbayes_sigma(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, magnitude_aware: bool = False,
                   deviation: float = 0.1, samples: int = 8, seed: int = 0, tol: float = 0.05,
                   max_evals: int = 24, epsilon: float = 1e-3, memory_budget: int = 1 << 30,
                   batch_size: int = 1024, batched: bool | None = None) -> float:
    """PAC-Bayes flatness (Jiang et al. 2020, Dziugaite et al. 2020).

    Plain: the largest ``sigma`` with ``E_u acc(w + u) >= acc(w) - deviation``, u ~ N(0, sigma^2 I)
    on every parameter. Magnitude-aware: the largest ``a`` with the same condition for
    ``u_i ~ N(0, a^2 w_i^2 + epsilon^2)``. The expectation is a Monte-Carlo mean over
    ``samples`` draws (seeded by ``seed``; the same standard-normal draws are reused at every
    sigma). sigma is bracketed by doubling from 1e-2 (or dividing by 4), then the bracket is closed
    to ``hi / lo <= 1 + tol`` by :func:`_search`; the answer is ``lo``. Each comparison with the
    target is a sequential test over the examples (:meth:`_Perturber.compare`): it stops once
    the answer is decided (differently from the full evaluation with probability at most 1e-4
    per look, 5 looks for 1,025 to 2,048 examples) and is otherwise exact. ``batched``: evaluate the samples in one torch.func.vmap call within
    ``memory_budget`` bytes (default: on CUDA only). Holds 2 x ``samples`` copies of the weights.
    Returns inf when no noise lowers the accuracy by ``deviation`` (a network at chance level:
    then ``acc(w) - deviation`` is below what noise can reach). Accuracy is on ``x`` (n, ...),
    ``y`` (n,) int64, moved to the model's device; the network is taken as given (fold batch
    norm first). Raises TypeError/ValueError for a model without parameters or bad data."""
    _check_model(model)
    _check_data(x, y)
    pert = _Perturber(model, x, y, memory_budget, batch_size, batched=batched, seed=seed)
    target = pert.accuracy(pert.params) - deviation
    z = pert.normal(samples, seed)

    def ok(a: float) -> tuple[bool, float]:
        if magnitude_aware:
            std = [torch.sqrt(a * a * p * p + epsilon * epsilon) for p in pert.params]
        else:
            std = [torch.full_like(p, a) for p in pert.params]
        return pert.compare([p.unsqueeze(0) + sd.unsqueeze(0) * zi for p, sd, zi in zip(pert.params, std, z)], target)

    return _search(ok, 1e-2, tol, max_evals)


def sharpness_alpha(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, magnitude_aware: bool = False,
                    deviation: float = 0.1, steps: int = 10, seed: int = 0, tol: float = 0.05,
                    max_evals: int = 20, epsilon: float = 1e-3, batch_size: int = 1024,
                    coarse_examples: int = 256) -> float:
    """Sharpness (worst-case flatness, Jiang et al. 2020): the largest ``a`` such that the
    perturbation ``u*`` that (approximately) maximizes the training cross-entropy within the box
    ``|u_i| <= r_i`` lowers accuracy by at most ``deviation``: ``acc(w + u*) >= acc(w) - deviation``.
    ``r_i = a`` (plain) or ``r_i = a |w_i| + epsilon`` (magnitude-aware). ``u*`` is found by
    ``steps`` steps of projected sign-gradient ascent of step ``r / 4`` from a seeded uniform
    start in the box; ``a`` by the same search as :func:`pacbayes_sigma` (relative precision
    ``tol``), the final accuracy compared by the same sequential test.

    The search first runs on a random subset of ``coarse_examples`` examples (ascent and
    accuracy on the subset; skipped when that is more than half the examples), then steps out
    from that guess on all examples until it holds a passing ``lo`` and a failing
    ``hi <= lo (1 + tol)``, and returns ``lo``: the bracket the search on all examples certifies,
    found with fewer ascents on all examples. Returns 0.0 when even ``a`` near 1e-8 fails (for
    the magnitude-aware box the ``epsilon`` floor alone can do that). Data and errors as
    :func:`pacbayes_sigma`."""
    _check_model(model)
    _check_data(x, y)
    pert = _Perturber(model, x, y, 0, batch_size, seed=seed)

    def ok_on(idx: torch.Tensor | None) -> Callable[[float], tuple[bool, float]]:
        target = pert.accuracy(pert.params, idx) - deviation

        def ok(a: float) -> tuple[bool, float]:
            r = [a * p.abs() + epsilon if magnitude_aware else torch.full_like(p, a) for p in pert.params]
            g = torch.Generator().manual_seed(seed)
            u = [(torch.rand(p.shape, generator=g, dtype=torch.float64).to(p) * 2 - 1) * ri
                 for p, ri in zip(pert.params, r)]
            for _ in range(steps):
                grads = pert.loss_grad([p + ui for p, ui in zip(pert.params, u)], idx)
                u = [torch.maximum(torch.minimum(ui + ri / 4 * gi.sign(), ri), -ri) for ui, ri, gi in zip(u, r, grads)]
            return pert.compare([(p + ui).unsqueeze(0) for p, ui in zip(pert.params, u)], target, idx)

        return ok

    return _coarse_to_fine(ok_on, pert.order, coarse_examples, tol, max_evals)
