"""Theorem 1 of Zhang et al. 2017 (finite-sample expressivity): the construction.

"There exists a two-layer neural network with ReLU activations and 2n + d weights that
can represent any function on a sample of size n in d dimensions." The network is

    f(x) = sum_j w_j * relu(<a, x> - b_j),

with ``a`` chosen so that the projections z_i = <a, x_i> are distinct, and breakpoints
interleaved with the sorted projections, ``b_1 < z_1 < b_2 < z_2 < ... < b_n < z_n``.
:func:`rethink.interpolate` builds it (through :func:`_theorem1`) in O(n d + n log n + n k) without forming the n x n
triangular system: the weights follow from a linear recurrence along the sorted
projections (a parallel scan on CUDA). :class:`InterpolatingNet` evaluates it through
its piecewise-linear segments, O(d + log n) per query.

Numerics: projections, breakpoints and weights are float64 whatever the dtype of X (X is
read once, in its own dtype). Breakpoints sit at b_j = z_{j-1} + t (z_j - z_{j-1}) with
t = 1/16, so rounding error in the slope recurrence is multiplied by t / (1 - t) = 1/15 per
step instead of growing. The direction ``a`` is drawn from a generator seeded by ``seed``.
Each direction is offered with both signs (projecting onto -a gives exactly -z, sorted the
other way). A candidate qualifies when its sorted projections are distinct (ties only
between identical rows) and every gap exceeds 64 float64 ulps of the largest projection.
Up to n = 10,000, where the literal network (``to_sequential``) is practical, 4 candidates
per pass over X compete on how large their weights are relative to the span of the
projections (this bounds the rounding of the literal network's sum), and up to 4 passes
are made while its estimated rounding error exceeds 1e-7 of the targets. Beyond, one
direction per pass, redrawn (up to 4 passes) only when it does not qualify.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ._check import check_int, check_seed
from .ops import FLOAT_DTYPES  # (also registers the ops' fake kernels)

__all__ = ["InterpolatingNet", "BREAKPOINT_T", "NUM_CANDIDATES", "MAX_ROUNDS", "EXTRA_ROUNDS_MAX_N"]

#: Breakpoint position between consecutive sorted projections (see module docstring).
BREAKPOINT_T = 1.0 / 16.0
#: Candidate directions projected together in one pass over X (for n <= EXTRA_ROUNDS_MAX_N).
NUM_CANDIDATES = 4
#: At most this many passes (rounds of candidates) over X.
MAX_ROUNDS = 4
#: Largest n for which candidates compete on the literal network's accuracy.
EXTRA_ROUNDS_MAX_N = 10_000
_EPS = torch.finfo(torch.float64).eps


# --- ops ---------------------------------------------------------------------


def _project(X: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """``X @ A.T`` in float64: X (n, d) float16/bfloat16/float32/float64, A (C, d) float64."""
    return torch.ops.rethink.interp_project(X, A)


# --- the network -------------------------------------------------------------


class InterpolatingNet(nn.Module):
    """The two-layer ReLU network of Theorem 1, f(x) = sum_j w_j * relu(<a, x> - b_j).

    Built by :func:`interpolate`. Buffers (float64, on the device that built the net):

    - ``a`` (d,): the projection direction.
    - ``b`` (n,): breakpoints, ascending (one per training point, in sorted order).
    - ``w`` (n,) for scalar targets, (n, k) for k outputs: output weights.

    plus the segment form used for evaluation (``node_z``, ``node_b``, ``node_y``,
    ``node_s``: the distinct sorted projections, their breakpoints, target values and
    slopes). ``num_weights`` is 2n + d for scalar targets and d + n + n k otherwise.
    """

    def __init__(
        self,
        a: torch.Tensor,
        b: torch.Tensor,
        w: torch.Tensor,
        node_z: torch.Tensor,
        node_b: torch.Tensor,
        node_y: torch.Tensor,
        node_s: torch.Tensor,
        *,
        num_classes: int | None = None,
    ):
        super().__init__()
        self.register_buffer("a", a)
        self.register_buffer("b", b)
        self.register_buffer("w", w)
        self.register_buffer("node_z", node_z)
        self.register_buffer("node_b", node_b)
        self.register_buffer("node_y", node_y)
        self.register_buffer("node_s", node_s)
        #: number of classes for a classification net, else None.
        self.num_classes = num_classes

    @property
    def in_features(self) -> int:
        return self.a.shape[0]

    @property
    def num_outputs(self) -> int:
        """k: columns of ``w`` (1 for scalar targets)."""
        return 1 if self.w.dim() == 1 else self.w.shape[1]

    @property
    def num_weights(self) -> int:
        """d + n + n k weights: 2n + d for scalar targets."""
        return self.a.numel() + self.b.numel() + self.w.numel()

    def project(self, X: torch.Tensor) -> torch.Tensor:
        """<a, x> for each row of X (m, d) as float64 (m,), computed exactly as at construction."""
        X = _check_queries(X, self.in_features, self.a.device)
        return _project(X, self.a.unsqueeze(0)).squeeze(1)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """f(X) in float64: (m,) for scalar targets, (m, k) otherwise.

        Args:
            X: (m, d) floating tensor on the net's device.

        Raises:
            ValueError: X is not 2-D floating, has the wrong number of columns, or lives on
                another device.
        """
        zq = self.project(X)
        out = torch.ops.rethink.interp_eval(zq, self.node_b, self.node_z, self.node_y, self.node_s)
        return out.squeeze(1) if self.w.dim() == 1 else out

    def predict(self, X: torch.Tensor) -> torch.Tensor:
        """argmax of f over the k outputs: int64 (m,) classes.

        Raises:
            ValueError: the net has a single scalar output.
        """
        if self.w.dim() == 1:
            raise ValueError(
                "predict needs a net with k outputs (class labels or (n, k) targets); this one is scalar"
            )
        return self.forward(X).argmax(dim=1)

    def to_sequential(self) -> nn.Sequential:
        """The literal network ``Linear(d, n) -> ReLU -> Linear(n, k, bias=False)`` in float64.

        The first layer holds ``a`` in every row and bias ``-b``; the second holds ``w``
        (k = 1 for scalar targets, so its output is (m, 1)). It computes the same function
        as the net, up to the rounding of summing n ReLUs (it is O(n d) per query and holds
        n d weights in its first layer).
        """
        n, d = self.b.shape[0], self.a.shape[0]
        W = self.w.unsqueeze(1) if self.w.dim() == 1 else self.w
        k = W.shape[1]
        kw = dict(dtype=torch.float64, device=self.a.device)
        first = nn.Linear(d, n, **kw)
        second = nn.Linear(n, k, bias=False, **kw)
        with torch.no_grad():
            first.weight.copy_(self.a.unsqueeze(0).expand(n, d))
            first.bias.copy_(-self.b)
            second.weight.copy_(W.t())
        return nn.Sequential(first, nn.ReLU(), second)

    def extra_repr(self) -> str:
        kind = (
            f"num_classes={self.num_classes}"
            if self.num_classes is not None
            else f"outputs={self.num_outputs}"
        )
        return f"d={self.in_features}, n={self.b.shape[0]}, {kind}, num_weights={self.num_weights}"


# --- construction ------------------------------------------------------------


def _check_queries(X, d: int, device: torch.device) -> torch.Tensor:
    if not isinstance(X, torch.Tensor):
        raise ValueError(f"X must be a torch.Tensor, got {type(X).__name__}")
    if X.dim() != 2:
        raise ValueError(f"X must be 2-D (m, d), got shape {tuple(X.shape)}")
    if X.dtype not in FLOAT_DTYPES:
        raise ValueError(f"X must be float16, bfloat16, float32 or float64, got {X.dtype}")
    if X.shape[1] != d:
        raise ValueError(f"X has {X.shape[1]} columns but the net expects d = {d}")
    if X.device != device:
        raise ValueError(f"X is on {X.device} but the net is on {device}; move one of them")
    return X


def _check_X(X) -> torch.Tensor:
    if not isinstance(X, torch.Tensor):
        raise ValueError(f"X must be a torch.Tensor, got {type(X).__name__}")
    if X.dim() != 2:
        raise ValueError(f"X must be 2-D (n, d), got shape {tuple(X.shape)}")
    if X.dtype not in FLOAT_DTYPES:
        raise ValueError(f"X must be float16, bfloat16, float32 or float64, got {X.dtype}")
    n, d = X.shape
    if n == 0:
        raise ValueError("X has n = 0 rows: nothing to interpolate")
    if d == 0:
        raise ValueError("X has d = 0 columns")
    return X


def _targets(
    Y, n: int, device: torch.device, num_classes: int | None
) -> tuple[torch.Tensor, int | None, bool]:
    """Targets as float64 (n, k), the number of classes (or None) and whether Y was scalar."""
    if num_classes is not None:
        from .datasets import MAX_CLASSES

        num_classes = check_int("num_classes", num_classes, low=1, high=MAX_CLASSES)
    if not isinstance(Y, torch.Tensor):
        raise ValueError(f"Y must be a torch.Tensor, got {type(Y).__name__}")
    if Y.dim() not in (1, 2):
        raise ValueError(f"Y must be (n,) or (n, k), got shape {tuple(Y.shape)}")
    if Y.shape[0] != n:
        raise ValueError(f"length mismatch: X has n = {n} rows but Y has {Y.shape[0]}")
    Y = Y.to(device)
    if Y.dtype == torch.bool or Y.is_complex():
        raise ValueError(f"Y must be floating targets or integer class labels, got {Y.dtype}")
    if not Y.is_floating_point():
        if Y.dim() != 1:
            raise ValueError(f"integer class labels must be 1-D (n,), got shape {tuple(Y.shape)}")
        lo, hi = int(Y.min()), int(Y.max())
        if lo < 0:
            i = int((Y < 0).nonzero()[0])
            raise ValueError(f"class labels must be >= 0, got Y[{i}] = {int(Y[i])}")
        if num_classes is None:
            num_classes = hi + 1
        if num_classes < 1 or hi >= num_classes:
            raise ValueError(f"num_classes = {num_classes} but the largest label is {hi}")
        try:
            T = torch.nn.functional.one_hot(Y.long(), num_classes).to(torch.float64)
        except (RuntimeError, MemoryError):
            raise MemoryError(f"the one-hot targets of n = {n} points and num_classes = {num_classes} "
                              f"({8 * n * num_classes / 2**30:.1f} GiB) do not fit in memory") from None
        return T, int(num_classes), False
    if num_classes is not None:
        raise ValueError("num_classes is only meaningful with integer class labels; Y is floating")
    T = Y.to(torch.float64)
    if T.dim() == 2 and T.shape[1] == 0:
        raise ValueError(f"Y has no target columns (shape {tuple(Y.shape)}): give (n,) or (n, k) with k >= 1")
    bad = ~torch.isfinite(T)
    if bool(bad.any()):
        i = int(bad.reshape(n, -1).any(dim=1).nonzero()[0])
        raise ValueError(f"Y has a NaN or inf value (row {i})")
    scalar = T.dim() == 1
    return (T.unsqueeze(1) if scalar else T), None, scalar


def _nonfinite_message(X: torch.Tensor, Z: torch.Tensor) -> str:
    rows = (~torch.isfinite(Z)).any(dim=1).nonzero()
    i = int(rows[0])
    cols = (~torch.isfinite(X[i])).nonzero()
    if cols.numel():
        j = int(cols[0])
        return f"X has a NaN or inf value: X[{i}, {j}] = {float(X[i, j])}"
    return f"row {i} of X is too large: its projection overflows float64"


def _theorem1(
    X: torch.Tensor, Y: torch.Tensor, *, num_classes: int | None = None, seed: int = 0
) -> InterpolatingNet:
    """The network of Theorem 1 (``interpolate(X, Y)`` with the defaults): same arguments,
    returns, cost and errors as :func:`interpolate`."""
    seed = check_seed("seed", seed)
    X = _check_X(X)
    n, d = X.shape
    T, num_classes, scalar = _targets(Y, n, X.device, num_classes)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    a, z_sorted, idx, duplicates = _choose_direction(X, Y, T, num_classes, scalar, gen)
    k = T.shape[1]
    if not duplicates:
        node_z, node_y, rows = z_sorted.contiguous(), T[idx].contiguous(), idx
        node_b, node_s = torch.ops.rethink.interp_weights(node_z, node_y, BREAKPOINT_T)
        b, w = node_b, torch.diff(node_s, dim=0, prepend=torch.zeros_like(node_s[:1]))
        w_nodes = w
    else:  # identical rows share one node; their copies get w = 0
        first = torch.ones(n, dtype=torch.bool, device=X.device)
        first[1:] = z_sorted[1:] != z_sorted[:-1]
        node_z, rows = z_sorted[first].contiguous(), idx[first]
        node_y = T[rows].contiguous()
        node_b, node_s = torch.ops.rethink.interp_weights(node_z, node_y, BREAKPOINT_T)
        b = node_b[torch.cumsum(first.to(torch.int64), 0) - 1]
        w_nodes = torch.diff(node_s, dim=0, prepend=torch.zeros_like(node_s[:1]))
        w = torch.zeros(n, k, dtype=torch.float64, device=X.device)
        w[first] = w_nodes
    _check_no_overflow(node_z, node_y, node_b, node_s, w_nodes, rows)
    if scalar:
        w = w.squeeze(1)
    return InterpolatingNet(a.clone(), b, w, node_z, node_b, node_y, node_s, num_classes=num_classes)


def _choose_direction(X, Y, T, num_classes, scalar, gen):
    """The direction ``a`` (see the module docstring), its sorted projections, the sorting
    order and whether X holds identical rows."""
    n, d = X.shape
    # Candidates are ranked on one combination of the target columns (exact for k = 1).
    k = T.shape[1]
    # (elementwise, in a fixed order: the same bits on every device)
    if k == 1:
        y_rank = T[:, 0].contiguous()
    elif num_classes is not None:  # one-hot rows: the combination is r[label]
        r = torch.randn(k, generator=gen, dtype=torch.float64).to(X.device)
        y_rank = r[Y.to(X.device).long()]
    else:
        r = torch.randn(k, generator=gen, dtype=torch.float64).tolist()
        y_rank = T[:, 0] * r[0]
        for c in range(1, k):
            y_rank = y_rank + T[:, c] * r[c]
    y_scale = float(y_rank.abs().max())

    best = None  # (score, direction, sorted projections, order)
    checked_duplicates = duplicates = False
    # Up to n = EXTRA_ROUNDS_MAX_N, where the literal network is practical, several candidates
    # per pass compete on how accurately it sums; beyond, one direction per pass, redrawn only
    # when its projections are not well separated.
    per_round = NUM_CANDIDATES if n <= EXTRA_ROUNDS_MAX_N else 1
    for round_ in range(MAX_ROUNDS):
        A = torch.randn(per_round, d, generator=gen, dtype=torch.float64).to(X.device)
        Z = _project(X, A)  # (n, C): one pass over X for every candidate
        if not bool(torch.isfinite(Z).all()):
            raise ValueError(_nonfinite_message(X, Z))
        # Each direction is offered with both signs: projecting onto -a gives exactly -z, and
        # the reversed order changes which weights the literal network sums over long spans.
        A = torch.cat([A, -A])
        Zt = Z.t()
        zs, order = torch.ops.rethink.interp_sort(torch.cat([Zt, -Zt]))  # (2C, n), stable
        valid = []
        last = round_ == MAX_ROUNDS - 1
        for c, ties in _valid_candidates(X, zs, order, required=best is None and last):
            if not checked_duplicates:
                if ties.numel():
                    _check_duplicate_targets(T, ties, scalar, num_classes)
                checked_duplicates = True
                duplicates = ties.numel() > 0  # identical rows tie under every direction
            valid.append(c)
        if valid:
            rows = torch.tensor(valid, device=X.device)
            scores = torch.ops.rethink.interp_score(zs[rows], order[rows], y_rank, BREAKPOINT_T).tolist()
            for c, score in zip(valid, scores):
                score = score if math.isfinite(score) else math.inf  # overflowing weights rank last
                if best is None or score < best[0]:
                    best = (score, A[c], zs[c], order[c])
        # Another pass over X only where the literal network is practical and would lose
        # more than ~1e-7 of the targets' scale to rounding.
        if best is not None and (n > EXTRA_ROUNDS_MAX_N or 2 * _EPS * best[0] <= 1e-7 * y_scale):
            break
    _, a, z_sorted, idx = best
    return a, z_sorted, idx, duplicates


def _check_no_overflow(node_z, node_y, node_b, node_s, w, rows) -> None:
    """Raise when a breakpoint, slope or output weight is not finite (the net would output
    NaN); ``rows[j]`` is the row of X at node j."""
    bad_b = ~torch.isfinite(node_b)
    if bool(bad_b.any()):
        j = int(bad_b.nonzero()[0])
        raise ValueError(
            f"the projections of X span {float(node_z[-1] - node_z[0]):.3g} (from {float(node_z[0]):.3g}): "
            f"breakpoint {j} (row {int(rows[j])} of X) overflows float64; scale X down"
        )
    for name, v in (("slope", node_s), ("output weight", w)):
        bad = ~torch.isfinite(v).all(dim=1)
        if bool(bad.any()):
            j = int(bad.nonzero()[0])
            i = int(rows[j])
            if j == 0:
                raise ValueError(
                    f"the {name} at row {i} of X overflows float64 (target {_fmt_row(node_y[0])}); "
                    "scale the targets down"
                )
            p = int(rows[j - 1])
            raise ValueError(
                f"the {name} between rows {p} and {i} of X overflows float64: their targets "
                f"{_fmt_row(node_y[j - 1])} and {_fmt_row(node_y[j])} differ over a projection gap of "
                f"{float(node_z[j] - node_z[j - 1]):.3g}; scale the targets down or separate the points"
            )


def _fmt_row(t: torch.Tensor) -> str:
    return repr(float(t[0])) if t.numel() == 1 else str([float(v) for v in t])


def _check_duplicate_targets(T, ties, scalar, num_classes) -> None:
    """Identical rows (pairs in ``ties``) are allowed only with identical targets."""
    p, q = ties[:, 0], ties[:, 1]
    differ = (T[p] != T[q]).any(dim=1)
    if bool(differ.any()):
        k = int(differ.nonzero()[0])
        i, j = sorted((int(p[k]), int(q[k])))
        raise ValueError(
            f"rows {i} and {j} of X are identical but their targets differ "
            f"(Y[{i}] = {_fmt(T[i], scalar, num_classes)}, Y[{j}] = {_fmt(T[j], scalar, num_classes)})"
        )


def _fmt(t: torch.Tensor, scalar: bool, num_classes: int | None) -> str:
    if num_classes is not None:
        return str(int(t.argmax()))
    if scalar:
        return repr(float(t[0]))
    return str([float(v) for v in t])


def _valid_candidates(X: torch.Tensor, zs: torch.Tensor, order: torch.Tensor, required: bool = True):
    """Yield (candidate, tied row pairs (p, 2)) for every usable candidate direction.

    A candidate is usable when every tie between adjacent sorted projections comes from
    identical rows of X and every other gap is wide enough (64 float64 ulps of the largest
    projection) to place a breakpoint strictly inside.

    Raises:
        ValueError: ``required`` and no candidate is usable (two distinct rows project too
            close together).
    """
    C, n = zs.shape
    gaps = zs[:, 1:] - zs[:, :-1]  # (C, n-1), >= 0
    scale = zs.abs().amax(dim=1)  # (C,)
    tied = gaps == 0
    masked = torch.where(tied, torch.full_like(gaps, float("inf")), gaps)
    if n > 1:
        min_gap, at = masked.amin(dim=1), masked.argmin(dim=1)
        ok_gap = ((min_gap > 64 * _EPS * scale) | torch.isinf(min_gap)).tolist()
    else:
        ok_gap = [True] * C
    any_tie = tied.any(dim=1).tolist() if n > 1 else [False] * C
    no_pairs = order.new_empty((0, 2))
    first_bad = None
    found = False
    for c in range(C):
        pairs = no_pairs
        if any_tie[c]:
            pos = tied[c].nonzero().squeeze(1)
            pairs = torch.stack([order[c, pos], order[c, pos + 1]], dim=1)
            same = (X[pairs[:, 0]] == X[pairs[:, 1]]).all(dim=1)
            if not bool(same.all()):
                k = int((~same).nonzero()[0])
                first_bad = first_bad or tuple(sorted((int(pairs[k, 0]), int(pairs[k, 1]))))
                continue
        if not ok_gap[c]:
            j = int(at[c])
            first_bad = first_bad or tuple(sorted((int(order[c, j]), int(order[c, j + 1]))))
            continue
        found = True
        yield c, pairs
    if required and not found:
        i, j = first_bad
        raise ValueError(
            f"rows {i} and {j} of X are distinct but too close to separate: their float64 projections "
            f"coincide or nearly coincide under every candidate direction"
        )
