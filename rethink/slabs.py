"""Baum's construction in ReLU form (Bubeck, Eldan, Lee, Mikulincer 2020).

Baum (1988) memorized binary labels of n points in general position in R^d with ceil(n/d)
threshold neurons; Bubeck et al. observe that about 4 ceil(n/d) ReLU neurons fit any real
labels. :func:`interpolate_slabs` builds such a two-layer network, checks its guarantee on
every point, and handles data that is not in general position.

Construction. Partition the points into groups S of at most s points (s = d at first). For a
group, solve one s x s-completed linear system for a hyperplane through its points,
<u, x_i - p> = 1 (i in S), and for a tilt v with <v, x_i - p> = y_i (p: a reference point
drawn at random near the data's mean in each round; when |S| < d the system is completed with random rows, <r, u> = <r, v> = 0). With
t(x) = <u, x - p> - 1 and l(x) = <v, x - p>,

    g_S(x) = [relu(t + delta + eps l) - relu(t + delta) - relu(t - delta + eps l) + relu(t - delta)] / eps

(4 neurons; with K outputs, 2 + 2K neurons sharing the two untilted ones). Proof of the fit:
at i in S, t = 0 and, when eps |y_i| <= delta, the brackets give (delta + eps y_i) - delta - 0 + 0
= eps y_i, so g_S(x_i) = y_i; at any other point j with margin gamma_j = |t(x_j)| and
delta + eps |l(x_j)| <= gamma_j, either all four ReLUs are off (t <= -gamma_j) or all four are on
and cancel (t >= gamma_j), so g_S(x_j) = 0. Hence f = sum_S g_S fits every target. With
delta = gamma / 2 (gamma: the group's smallest margin) and eps at most half the largest value
these inequalities allow, they hold with slack delta / 4 in every comparison.

Class labels use groups of one class and Baum's slab with a flat top, 4 neurons per group:
h_S(x) = [relu(t + delta) - relu(t + delta/2) - relu(t - delta/2) + relu(t - delta)] / (delta/2) is
exactly 1 for |t| <= delta/2 (whatever the small residual t of the group's own points) and 0 for
|t| >= delta; it feeds the output of the group's class.

Checked, not assumed. For every group the construction computes t and l at all n points
(blockwise matrix products, O(n^2) work in all), the residual rho = max |t| over its own points
and a bound tau = (d + 2) eps_64 max_j (sum_c |u_c| (|x_jc| + |x_jc - p_c|) + |<u, p>| + 2) on the
rounding of any pre-activation (eps_64: float64 epsilon). A group is accepted only when its
margin gamma is positive and rho + 2 tau <= delta / 4, so every sign above holds for the
rounded network too. Finally the network is evaluated on every training point; groups whose
own points miss their targets by more than ``SLAB_TOLERANCE`` max|Y| are rejected as well, with
every group whose output leaks into a missed point (a thin slab's cancelling units, rounded
in the summed network, can leak more than its own check measured).
Points of rejected groups are regrouped (a new permutation) with s shrunk by 10% per round
(halved once s < d/2), down to s = 1 (a hyperplane through one point with a random normal).

Points not in general position (stated handling):

- exact duplicate rows: removed when their targets agree (they get the same output);
  conflicting targets raise ValueError naming both rows;
- columns constant over all rows (e.g. always-black border pixels): dropped (weight 0);
  the network then ignores them, which changes nothing on the training points;
- groups whose points span too few dimensions (pixels constant within the group make a
  random group of d images rank-deficient, as in Fashion-MNIST) or whose slab would touch
  another point: rejected by the checks above and regrouped smaller. Nothing is perturbed:
  the network fits the original points.
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch import nn

from ._check import check_seed
from .theorem1 import _check_duplicate_targets, _check_queries, _check_X, _targets

__all__ = ["SlabNet", "interpolate_slabs", "SLAB_TOLERANCE"]

#: Accepted error at the training points, relative to max |target|.
SLAB_TOLERANCE = 1e-7
_EPS = torch.finfo(torch.float64).eps
_MAX_ROUNDS = 64


class SlabNet(nn.Module):
    """Two-layer ReLU network f(x) = W_out relu(W x + c) built by Baum's construction.

    Built by ``rethink.interpolate(X, Y, method="slabs")``. Buffers (float64, on the device
    that built it): ``weight`` (H, d), ``bias`` (H,), ``out_weight`` (K, H) with K outputs
    (K = 1 for scalar targets). ``group_sizes`` (G,) int64: the points of each group.

    Sizes: with G groups, ``hidden_widths`` = [H], H = 4 G for scalar targets and class labels,
    (2 + 2K) G for (n, K) targets; G = ceil(n' / d') when every first-round group
    passes its checks (n' distinct rows, d' non-constant columns), more when groups had to
    be regrouped. ``num_weights`` = H (d' + 1) + E: every hidden unit's weights on the d'
    non-constant columns and its bias, and the E output entries the construction places
    (4 K per group: 4 G for scalar targets; 4 per group for class labels).
    """

    def __init__(self, weight, bias, out_weight, group_sizes, *, d_eff, scalar, num_classes, entries):
        super().__init__()
        self.register_buffer("weight", weight)
        self.register_buffer("bias", bias)
        self.register_buffer("out_weight", out_weight)
        self.register_buffer("group_sizes", group_sizes)
        #: non-constant columns of the training X (the others carry weight 0).
        self.d_eff = int(d_eff)
        self.scalar = bool(scalar)
        self.num_classes = num_classes
        self._entries = int(entries)
        #: how the construction went: duplicate rows removed, constant columns dropped, rounds,
        #: group sizes tried, groups rejected (singular system, margin, overflow, rounding,
        #: after assembly) and the largest error at the training rows, max_error.
        self.report: dict = {}

    @property
    def in_features(self) -> int:
        return self.weight.shape[1]

    @property
    def num_outputs(self) -> int:
        return self.out_weight.shape[0]

    @property
    def num_groups(self) -> int:
        return self.group_sizes.numel()

    @property
    def depth(self) -> int:
        return 1

    @property
    def hidden_widths(self) -> list[int]:
        return [self.weight.shape[0]]

    @property
    def num_weights(self) -> int:
        """H (d' + 1) + output entries (class docstring)."""
        return self.weight.shape[0] * (self.d_eff + 1) + self._entries

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """f(X) in float64: (m,) for scalar targets, (m, K) otherwise.

        Args:
            X: (m, d) floating tensor on the net's device (converted to float64).

        Raises:
            ValueError: X is not 2-D floating, has the wrong number of columns, or lives on
                another device.
        """
        X = _check_queries(X, self.in_features, self.weight.device).to(torch.float64)
        out = torch.relu(torch.addmm(self.bias, X, self.weight.t())) @ self.out_weight.t()
        return out.squeeze(1) if self.scalar else out

    def predict(self, X: torch.Tensor) -> torch.Tensor:
        """argmax of f over the K outputs: int64 (m,). Raises ValueError for a scalar net."""
        if self.scalar:
            raise ValueError(
                "predict needs a net with k outputs (class labels or (n, k) targets); this one is scalar"
            )
        return self.forward(X).argmax(dim=1)

    def to_sequential(self) -> nn.Sequential:
        """``Linear(d, H) -> ReLU -> Linear(H, K, bias=False)`` in float64: the same network
        (and the same arithmetic as :meth:`forward`)."""
        kw = dict(dtype=torch.float64, device=self.weight.device)
        first = nn.Linear(self.in_features, self.weight.shape[0], **kw)
        second = nn.Linear(self.weight.shape[0], self.num_outputs, bias=False, **kw)
        with torch.no_grad():
            first.weight.copy_(self.weight)
            first.bias.copy_(self.bias)
            second.weight.copy_(self.out_weight)
        return nn.Sequential(first, nn.ReLU(), second)

    def extra_repr(self) -> str:
        return (
            f"d={self.in_features}, d_eff={self.d_eff}, groups={self.num_groups}, "
            f"hidden={self.weight.shape[0]}, outputs={self.num_outputs}, num_weights={self.num_weights}"
        )


# --- construction ------------------------------------------------------------


def interpolate_slabs(
    X: torch.Tensor, Y: torch.Tensor, *, num_classes: int | None = None, seed: int = 0
) -> SlabNet:
    """Baum's construction (module docstring): a two-layer ReLU net that fits (X, Y).

    Args:
        X: (n, d) float16/bfloat16/float32/float64 on CPU or CUDA (copied to float64).
        Y: (n,) or (n, K) floating targets, or (n,) integer class labels.
        num_classes: number of classes for integer labels; default max(label) + 1.
        seed: seeds the reference point, the grouping and the completion rows.

    Returns:
        :class:`SlabNet` on X's device with max |f(x_i) - y_i| <= SLAB_TOLERANCE max |y| at
        every training row (checked before returning).

    Cost: O(n d) to deduplicate, G batched d' x d' LU solves (O(n d'^2) in all) and O(n^2)
    for the margins (blockwise matrix products), per round.

    Raises:
        ValueError: bad X or Y (as :func:`rethink.interpolate`), NaN or inf in X, identical
            rows with different targets (both named), targets so large that the output
            weights overflow, or rows that stay inseparable even with one point per group
            (two rows named).
    """
    seed = check_seed("seed", seed)
    X = _check_X(X)
    n, d = X.shape
    T, num_classes, scalar = _targets(Y, n, X.device, num_classes)
    X64 = X.to(torch.float64)
    bad = ~torch.isfinite(X64)
    if bool(bad.any()):
        i, j = (int(v) for v in bad.nonzero()[0])
        raise ValueError(f"X has a NaN or inf value: X[{i}, {j}] = {float(X64[i, j])}")
    gen = torch.Generator(device="cpu").manual_seed(seed)
    keep = _deduplicate(X64, T, scalar, num_classes)
    Xu, Tu = X64[keep], T[keep]
    labels = Y.to(X.device).long()[keep] if num_classes is not None else None
    cols = (Xu != Xu[:1]).any(dim=0).nonzero().squeeze(1)
    if cols.numel() == 0:  # a single distinct row: one unit relu(1) carries its target
        net = _single_point_net(Tu[0], d, scalar, num_classes, X.device)
        net.report = dict(duplicates_removed=n - 1, constant_columns=d, max_error=0.0, rounds=0)
        return net
    Xr = Xu[:, cols]
    # The slabs are found on X / 2^e (exact), with 2^e about the largest |x|: squared distances
    # of data at 1e200 would overflow float64 and those of data at 1e-200 underflow.
    scale = 2.0 ** math.frexp(float(Xr.abs().max()))[1]
    fit = _Fitter(Xr / scale, Tu, labels, gen, T.abs().max())
    groups = fit.run()
    W, c, Wout, entries = fit.assemble(groups)
    W = W / scale
    if not bool(torch.isfinite(W).all()):
        raise ValueError(f"the first-layer weights of the slab network do not fit in float64 at the scale of X "
                         f"(largest |x| = {float(Xr.abs().max()):.3g}): rescale X")
    weight = torch.zeros(W.shape[0], d, dtype=torch.float64, device=X.device)
    weight[:, cols] = W
    sizes = torch.tensor([len(g.rows) for g in groups], dtype=torch.int64, device=X.device)
    net = SlabNet(
        weight, c, Wout, sizes, d_eff=cols.numel(), scalar=scalar, num_classes=num_classes, entries=entries
    )
    out = net(X64)
    err = float((out.reshape(n, -1) - T).abs().max())
    if err > fit.tol:
        raise ValueError(f"the slab network misses a target by {err:.3g} > {fit.tol:.3g} after its checks")
    net.report = dict(
        duplicates_removed=n - keep.numel(), constant_columns=d - cols.numel(), max_error=err, **fit.log
    )
    return net


def _deduplicate(X64, T, scalar, num_classes) -> torch.Tensor:
    """Indices of the first copy of every distinct row (ascending); raises for identical rows
    with different targets."""
    n = X64.shape[0]
    _, inv = torch.unique(X64, dim=0, return_inverse=True)
    first = torch.full((int(inv.max()) + 1,), n, dtype=torch.int64, device=X64.device)
    first.scatter_reduce_(0, inv, torch.arange(n, device=X64.device), reduce="amin")
    if first.numel() < n:
        rep = first[inv]
        copies = (rep != torch.arange(n, device=X64.device)).nonzero().squeeze(1)
        _check_duplicate_targets(T, torch.stack([rep[copies], copies], dim=1), scalar, num_classes)
    return torch.sort(first).values


def _single_point_net(t, d, scalar, num_classes, device) -> SlabNet:
    kw = dict(dtype=torch.float64, device=device)
    weight, bias = torch.zeros(1, d, **kw), torch.ones(1, **kw)
    out = t.reshape(-1, 1).clone()
    sizes = torch.ones(1, dtype=torch.int64, device=device)
    return SlabNet(
        weight, bias, out, sizes, d_eff=0, scalar=scalar, num_classes=num_classes, entries=out.numel()
    )


@contextlib.contextmanager
def _one_cpu_thread(device: torch.device):
    """Batched CPU LU with several torch threads fails inside MKL in torch 2.13 ("Parameter 6
    was incorrect on entry to DLASWP", then a hang) for matrices of a few hundred rows; one
    thread is also the faster on a loaded machine. CUDA is left alone."""
    if device.type != "cpu":
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


class _Group:
    """One accepted group: its rows (into the distinct points), hyperplane u, tilt V (d', K) or
    class, delta and eps."""

    def __init__(self, rows, p, u, V, cls, delta, eps):
        self.rows, self.p, self.u, self.V, self.cls, self.delta, self.eps = rows, p, u, V, cls, delta, eps


class _Fitter:
    """Rounds of grouping, solving and checking (module docstring)."""

    def __init__(self, Xr, T, labels, gen, y_max):
        self.X, self.T, self.labels, self.gen = Xr, T, labels, gen
        n, dd = Xr.shape
        self.n, self.dd, self.dev = n, dd, Xr.device
        self.tol = SLAB_TOLERANCE * float(y_max)
        self.mean = Xr.mean(dim=0)
        self.row_scale = float((Xr - self.mean).pow(2).sum(dim=1).mean().sqrt())
        self.witness = None  # (row in group, row too close or None: missed once summed) of the last rejection
        self.overflow = False  # a group was rejected because its output weights overflow
        self.expected_groups = 1
        #: how the construction went (see SlabNet.report)
        self.log = dict(
            rounds=0,
            group_sizes_tried=[],
            rejected_singular=0,
            rejected_margin=0,
            rejected_overflow=0,
            rejected_rounding=0,
            rejected_after_assembly=0,
        )

    def run(self) -> list[_Group]:
        pool = torch.arange(self.n, device=self.dev)
        s = min(self.dd, self.n)
        accepted: list[_Group] = []
        for _ in range(_MAX_ROUNDS):
            self._reference_point()
            groups = self._make_groups(pool, s)
            self.log["rounds"] += 1
            self.log["group_sizes_tried"].append(s)
            self.expected_groups = max(self.expected_groups, len(accepted) + len(groups))
            new = self._fit(groups)
            accepted += new
            done = torch.zeros(self.n, dtype=torch.bool, device=self.dev)
            for g in accepted:
                done[g.rows] = True
            if bool(done.all()):
                accepted, missed = self._accuracy(accepted)
                if not missed.numel():
                    return accepted
                pool = missed
            else:
                pool = (~done).nonzero().squeeze(1)
            if s == 1 and not new:
                break
            s = max(1, (s * 9) // 10 if 2 * s > self.dd else s // 2)
        if self.overflow:
            raise ValueError(
                "the targets are too large for the slab network: its output weights overflow float64"
            )
        i, j = self.witness
        if j is None:  # the last rejection came after the slabs were summed
            raise ValueError(
                f"row {i} of the distinct rows of X (after removing duplicates) misses its target once the "
                f"slabs are summed (float64 rounding), even with one point per group; the points are too close"
            )
        raise ValueError(
            f"rows {i} and {j} of the distinct rows of X (after removing duplicates) are not separable "
            f"by a float64 slab even with one point per group; the points are too close"
        )

    def _reference_point(self) -> None:
        """A fresh generic reference point p for the round (random offset from the mean: p on
        a group's hyperplane would make its system singular)."""
        r = torch.randn(self.dd, generator=self.gen, dtype=torch.float64).to(self.dev)
        self.p = self.mean + (0.5 * self.row_scale / self.dd**0.5) * r
        self.Xc = self.X - self.p
        self.absX = self.X.abs() + self.Xc.abs()

    def _make_groups(self, pool: torch.Tensor, s: int) -> list[torch.Tensor]:
        perm = pool[torch.randperm(pool.numel(), generator=self.gen).to(self.dev)]
        runs = [perm]
        if self.labels is not None:  # one class per group
            lab = self.labels[perm]
            order = torch.sort(lab, stable=True).indices
            perm, counts = perm[order], torch.unique_consecutive(lab[order], return_counts=True)[1]
            runs = list(torch.split(perm, counts.tolist()))
        return [g for run in runs for g in torch.split(run, s)]

    def _fit(self, groups: list[torch.Tensor]) -> list[_Group]:
        dd, K = self.dd, self.T.shape[1]
        out: list[_Group] = []
        # bounded memory: the systems (G d'^2) and the margins (n G (K + 3))
        batch = max(1, min(2**25 // (dd * dd), 2**24 // (self.n * (K + 3))))
        for b0 in range(0, len(groups), batch):
            gs = groups[b0 : b0 + batch]
            sizes = torch.tensor([g.numel() for g in gs], device=self.dev)
            seg = torch.repeat_interleave(torch.arange(len(gs), device=self.dev), sizes)
            sol, ok = self._solve(gs, sizes, seg)
            out += self._check(gs, seg, sol, ok)
        return out

    def _solve(self, gs, sizes, seg):
        """Hyperplane and tilt of each group: (G, d', 1 + K) solutions, usable mask (G,)."""
        dd, G = self.dd, len(gs)
        K = 0 if self.labels is not None else self.T.shape[1]
        rowmask = torch.arange(dd, device=self.dev)[None, :] < sizes[:, None]  # (G, d')
        rows = torch.cat(gs)
        A = torch.empty(G, dd, dd, dtype=torch.float64, device=self.dev)
        A[rowmask] = self.Xc[rows]
        n_rand = int((~rowmask).sum())
        if n_rand:
            R = torch.randn(n_rand, dd, generator=self.gen, dtype=torch.float64).to(self.dev)
            A[~rowmask] = R * (self.row_scale / dd**0.5)
        B = torch.zeros(G, dd, 1 + K, dtype=torch.float64, device=self.dev)
        B[..., 0][rowmask] = 1.0
        if K:
            B[:, :, 1:][rowmask] = self.T[rows]
        # A group's rows span at most (columns varying within it) + 1 dimensions.
        first = self.X[torch.stack([g[0] for g in gs])]
        varies = torch.zeros(G, dd, dtype=torch.int32, device=self.dev)
        varies.index_add_(0, seg, (self.X[rows] != first[seg]).to(torch.int32))
        rank_ok = sizes <= (varies > 0).sum(dim=1) + 1
        eye = torch.eye(dd, dtype=torch.float64, device=self.dev)
        A[~rank_ok] = eye  # singular for sure: not factored
        with _one_cpu_thread(self.dev):
            LU, piv, info = torch.linalg.lu_factor_ex(A)
            ok = rank_ok & (info == 0)
            if not bool(ok.all()):  # a zero pivot: solve nothing with that factorization
                LU[~ok] = eye
                piv[~ok] = torch.arange(1, dd + 1, dtype=piv.dtype, device=self.dev)
            sol = torch.linalg.lu_solve(LU, piv, B)
            sol = sol + torch.linalg.lu_solve(LU, piv, B - A @ sol)  # one step of refinement
        ok &= torch.isfinite(sol).flatten(1).all(dim=1)
        return sol, ok

    def _check(self, gs, seg, sol, ok) -> list[_Group]:
        """Margins of each group's slab against every point, then the slab's actual output at
        every point; the accepted groups."""
        G, dd = len(gs), self.dd
        U = torch.where(ok[:, None], sol[:, :, 0], 0.0)  # (G, d')
        t = self.Xc @ U.t() - 1.0  # (n, G)
        own = torch.zeros(self.n, G, dtype=torch.bool, device=self.dev)
        own[torch.cat(gs), seg] = True
        at = t.abs()
        rho = torch.where(own, at, 0.0).amax(dim=0)
        others = torch.where(own, torch.inf, at)
        gamma, near = others.min(dim=0)
        lin = self.absX @ U.abs().t() + (U @ self.p).abs()[None, :] + 2.0
        tau = (dd + 2) * _EPS * lin.amax(dim=0)
        delta = torch.where(torch.isinf(gamma), torch.ones_like(gamma), gamma / 2)
        good = ok & (gamma > 0) & (rho + 2 * tau <= delta / 4)
        self.log["rejected_singular"] += int((~ok).sum())
        self.log["rejected_margin"] += int((ok & ~good).sum())
        cls = V = None
        if self.labels is None:
            V = torch.where(ok[:, None, None], sol[:, :, 1:], 0.0)  # (G, d', K)
            L = torch.einsum("nd,gdk->ngk", self.Xc, V).abs().amax(dim=2)
            lam = torch.where(own, L, 0.0).amax(dim=0)
            e1 = (delta - rho - 2 * tau) / lam
            e2 = (others - delta - 2 * tau) / torch.where(own, torch.nan, L)
            eps = 0.5 * torch.minimum(e1, e2.nan_to_num(nan=torch.inf).amin(dim=0))
            eps = torch.where(torch.isinf(eps), torch.ones_like(eps), eps)
            self.log["rejected_margin"] += int((good & ~(eps > 0)).sum())
            good &= eps > 0
        else:
            cls = self.labels[torch.stack([g[0] for g in gs])]
            eps = torch.ones_like(delta)
        P = self.p.expand(G, dd)
        W, c, Wo = _neurons(U, V, delta, eps, cls, P, self.T.shape[1])
        finite = torch.isfinite(Wo).flatten(1).all(dim=1) & torch.isfinite(c).all(dim=1)
        self.overflow |= bool((good & ~finite).any())
        self.log["rejected_overflow"] += int((good & ~finite).sum())
        good &= finite
        # the slab's output at every point, computed as the network computes it
        H = torch.relu(torch.addmm(c.reshape(-1), self.X, W.reshape(-1, dd).t())).reshape(self.n, G, -1)
        C = torch.einsum("ngp,gpk->ngk", H, torch.where(good[:, None, None], Wo, 0.0))
        own_err = torch.where(own, (C - self.T[:, None, :]).abs().amax(dim=2), 0.0).amax(dim=0)
        leak = torch.where(own, 0.0, C.abs().amax(dim=2)).amax(dim=0)
        precise = (own_err <= self.tol / 2) & (leak <= self.tol / (4 * self.expected_groups**0.5))
        self.log["rejected_rounding"] += int((good & ~precise).sum())
        good &= precise
        accepted = []
        for g in range(G):
            if bool(good[g]):
                Vg = V[g] if V is not None else None
                cg = int(cls[g]) if cls is not None else None
                accepted.append(_Group(gs[g], self.p, U[g], Vg, cg, float(delta[g]), float(eps[g])))
            else:
                self.witness = (int(gs[g][0]), int(near[g]))
        return accepted

    def _accuracy(self, groups):
        """Drop groups whose own points miss their targets by more than the tolerance."""
        W, c, Wout, _ = self.assemble(groups)
        H = torch.relu(torch.addmm(c, self.X, W.t()))
        out = H @ Wout.t()
        err = (out - self.T).abs().amax(dim=1)
        miss = err > self.tol
        if not bool(miss.any()):
            return groups, miss.nonzero().squeeze(1)
        # A miss is its own group's error or another group's leak (the float64 rounding of a
        # slab's cancelling units at a point outside it, amplified by its output weights, can
        # exceed what the group's check measured): drop the owners and the leaking groups.
        G, K = len(groups), Wout.shape[0]
        rows = miss.nonzero().squeeze(1)
        per = torch.einsum("mgp,gpk->mgk", H[rows].reshape(len(rows), G, -1),
                           Wout.t().reshape(G, -1, K)).abs().amax(dim=2)  # (missed points, G)
        owner = torch.full((self.n,), -1, dtype=torch.long, device=self.dev)
        for k, g in enumerate(groups):
            owner[g.rows] = k
        per[torch.arange(len(rows), device=self.dev), owner[rows]] = 0.0
        leaking = (per > self.tol / (4 * self.expected_groups**0.5)).any(dim=0).tolist()
        kept, missed = [], []
        for k, g in enumerate(groups):
            (missed if bool(miss[g.rows].any()) or leaking[k] else kept).append(g)
        self.log["rejected_after_assembly"] += len(missed)
        self.witness = (int(err.argmax()), None)
        return kept, torch.cat([g.rows for g in missed])

    def assemble(self, groups):
        """(W (H, d'), c (H,), W_out (K, H), placed output entries) of the accepted groups."""
        dev = self.dev
        U = torch.stack([g.u for g in groups])  # (G, d')
        delta = torch.tensor([g.delta for g in groups], dtype=torch.float64, device=dev)
        eps = torch.tensor([g.eps for g in groups], dtype=torch.float64, device=dev)
        K = self.T.shape[1]
        if self.labels is not None:
            cls, V, entries = torch.tensor([g.cls for g in groups], device=dev), None, 4 * len(groups)
        else:
            cls, V, entries = None, torch.stack([g.V for g in groups]), 4 * K * len(groups)
        P = torch.stack([g.p for g in groups])
        W, c, Wo = _neurons(U, V, delta, eps, cls, P, K)
        if not bool(torch.isfinite(Wo).all() and torch.isfinite(c).all()):
            raise ValueError(
                "the targets are too large for the slab network: its output weights overflow float64"
            )
        return W.reshape(-1, self.dd), c.reshape(-1), Wo.reshape(-1, K).t().contiguous(), entries


def _neurons(U, V, delta, eps, cls, p, K: int):
    """Each group's hidden units and output weights: W (G, P, d'), c (G, P), W_out (G, P, K);
    p (G, d'): each group's reference point.

    Tilted slab (V given, P = 2 + 2K units: relu(t + delta), relu(t - delta), then
    relu(t + delta + eps l_k) and relu(t - delta + eps l_k) for each output k; outputs
    (A+_k - B+ - A-_k + B-) / eps). Flat-top slab (class ``cls``, P = 4: relu(t + delta),
    relu(t + delta/2), relu(t - delta/2), relu(t - delta); output (2 / delta) (1, -1, -1, 1)).
    Here t = <u, x - p> - 1 and l = <v, x - p>, so every unit is relu(<w, x> + c).
    """
    G, dd = U.shape
    dev = U.device
    if V is None:
        W = U[:, None, :].expand(G, 4, dd)
        shift = torch.stack([delta, delta / 2, -delta / 2, -delta], dim=1)
        Wo = torch.zeros(G, 4, K, dtype=torch.float64, device=dev)
        pattern = torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64, device=dev)
        Wo[torch.arange(G, device=dev), :, cls] = (2.0 / delta)[:, None] * pattern
    else:
        tilted = U[:, None, :] + eps[:, None, None] * V.transpose(1, 2)  # (G, K, d')
        W = torch.cat([U[:, None], U[:, None], tilted, tilted], dim=1)
        ones = torch.ones(G, 1, dtype=torch.float64, device=dev)
        shift = torch.cat([ones, -ones, ones.expand(G, K), -ones.expand(G, K)], dim=1) * delta[:, None]
        inv = (1.0 / eps)[:, None]
        Wo = torch.zeros(G, 2 + 2 * K, K, dtype=torch.float64, device=dev)
        Wo[:, 0, :], Wo[:, 1, :] = -inv, inv
        kk = torch.arange(K, device=dev)
        Wo[:, 2 + kk, kk] = inv
        Wo[:, 2 + K + kk, kk] = -inv
    c = -torch.einsum("gpd,gd->gp", W, p) - 1.0 + shift
    return W, c, Wo
