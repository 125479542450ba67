"""Section 5 of the paper: minimum-norm interpolation with kernels, up to n = 60,000 on a CPU.

SGD from zero on a linear model ``f(x) = <w, phi(x)>`` stays in the span of the data,
so when it interpolates it reaches ``w = Phi^T alpha`` with ``K alpha = Y`` and
``K = Phi Phi^T``: the minimum l2-norm interpolant. :func:`min_norm_fit` solves that
system for four kernels (kernel functions in :mod:`rethink.features`):

- ``"linear"``: ``k(x, x') = <phi(x), phi(x')>`` (phi = identity unless ``features`` is given);
- ``"rbf"``: ``exp(-gamma ||phi(x) - phi(x')||^2)`` (Gaussian), default
  ``gamma = 1 / (D var(phi(X)))``;
- ``"laplacian"``: ``exp(-gamma ||phi(x) - phi(x')||_2)`` (Euclidean, as in Belkin, Ma and
  Mandal 2018), default ``gamma = 1 / sqrt(D var(phi(X)))``, so that ``gamma * distance``
  is about sqrt(2) for two independent points, as ``gamma * distance^2`` is about 2 for rbf;
- ``"random_features"``: the linear kernel on ``phi(x) = sqrt(2 / width) relu(W x + b)``,
  ``W_ij ~ N(0, 1 / (d mean(X^2)))``, ``b_j ~ N(0, 1)``, drawn from ``seed``.

``features`` composes a feature map (e.g. :class:`rethink.features.RandomConvFeatures`)
with the linear, rbf or laplacian kernel. D is the dimension of phi.

Two solvers, chosen by memory (``method="auto"``) or by name:

- ``"cholesky"``: K in float64, Cholesky, then iterative refinement in float64: three
  n x n float64 matrices (``8 * 3 n^2`` bytes).
- ``"pcg"``: K is formed in float32 (``4 n^2`` bytes) and factored in place (blocked
  Cholesky, lower triangle); that factor preconditions a conjugate-gradient iteration in
  float64 whose products ``K V`` are recomputed block by block in float64 from the features,
  so K is never stored in float64. The iteration stops when every column's relative
  residual ``||K alpha_c - y_c|| / ||y_c||``, recomputed from scratch in float64, is <= tol.
  The factor is of ``K + s I`` with ``s = u sqrt(n)`` times K's mean diagonal (u = 2^-24,
  float32's unit roundoff: about the error a float32 Cholesky accumulates over n terms),
  which keeps the factorization from breaking down on eigenvalues below its own rounding
  error; if it still fails, s is multiplied by 10 (at most three times). The shift changes
  only the preconditioner, not the system solved.

Several right-hand sides (Y of shape (n, k)) share one factorization and one kernel
product per iteration. With ``ridge = 0``, exact duplicate rows of X are found first: equal
targets are solved on the unique rows (the interpolant f and its norm are the same; the
stored alpha puts each group's weight on its first row), conflicting targets raise.
The returned :class:`MinNormPredictor` predicts, reports its RKHS norm
``sqrt(trace(alpha^T K alpha))``, its training error and its residual.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass, field, replace

import torch

from ._build import resolve_device
from ._check import check_int, check_number, check_seed
from .datasets import MAX_CLASSES as _MAX_CLASSES
from .features import (
    DISTANCE_KERNELS,
    KERNELS,  # noqa: F401  (re-exported as rethink.min_norm.KERNELS)
    KernelOperator,
    check_kernel_args,
    default_gamma,
    feature_map,
    kernel_block,
    nonfinite_kernel_message,
    random_relu_weights,
    squared_norms,
)

__all__ = ["KernelMemoryError", "MinNormPredictor", "cholesky_inplace", "cholesky_solve_inplace_factor", "kernel_matrix",
           "memory_estimate", "min_norm_fit"]

METHODS = ("auto", "cholesky", "pcg")
#: rows of a kernel block (products) and of a Cholesky panel
BLOCK = 2048
#: n x n float64 matrices the "cholesky" method holds at once (K, its factor, one temporary)
_NN_COPIES = 3
#: float32 factorizations tried, with shifts (10^i) u sqrt(n) mean(diag K), i = 0, 1, ...
SHIFT_ATTEMPTS = 4
_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


class KernelMemoryError(MemoryError):
    """The solve does not fit in the memory available on the device.

    Attributes:
        needed: bytes min_norm_fit would allocate (for the cheapest allowed method).
        available: bytes available on the device.
        suggested_n: a training-set size that fits.
    """

    def __init__(self, message: str, needed: int, available: int, suggested_n: int):
        super().__init__(message)
        self.needed = needed
        self.available = available
        self.suggested_n = suggested_n


def _available_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - exotic platforms
        return 8 << 30


def memory_estimate(n: int, d: int, k: int = 1, method: str = "cholesky", block: int = BLOCK) -> int:
    """Bytes :func:`min_norm_fit` allocates for ``n`` points, ``d`` features and ``k`` targets.

    - ``"cholesky"``: ``8 * (3 n^2 + 2 n d + 6 n k)``: three n x n float64 matrices (kernel,
      factor, one temporary), the float64 inputs and features, and the targets.
    - ``"pcg"``: ``4 n^2 + 8 * (2 n d + 12 n k) + 24 b^2 + 8 b min(n, 4 b)`` with
      ``b = min(block, n)``: the float32 kernel/factor, inputs and features, twelve n x k
      float64 vectors of the iteration, three float64 kernel blocks and a panel.

    Raises ValueError for an unknown method.
    """
    if method == "cholesky":
        return 8 * (_NN_COPIES * n * n + 2 * n * d + 6 * n * k)
    if method == "pcg":
        b = min(block, n)
        return 4 * n * n + 8 * (2 * n * d + 12 * n * k) + 24 * b * b + 8 * b * min(n, 4 * b)
    raise ValueError(f"method must be 'cholesky' or 'pcg', got {method!r}")


def _largest_n(method: str, d: int, k: int, budget: int, block: int) -> int:
    lo, hi = 1, 1
    while memory_estimate(hi, d, k, method, block) <= budget:
        hi *= 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if memory_estimate(mid, d, k, method, block) <= budget else (lo, mid)
    return lo


def _as_matrix(X, name: str) -> torch.Tensor:
    if not isinstance(X, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(X).__name__}")
    if X.dim() < 2:
        raise ValueError(f"{name} must have shape (n, ...) with n points, got shape {tuple(X.shape)}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} has no points (shape {tuple(X.shape)}): there is no training data")
    if not (X.is_floating_point() or X.dtype in _INT_DTYPES):
        raise TypeError(f"{name} must be a real tensor, got dtype {X.dtype}")
    Xm = X.reshape(X.shape[0], -1)
    _check_finite(Xm, name)
    return Xm


def _check_finite(M: torch.Tensor, name: str) -> None:
    """ValueError naming the first (row, column) of M (n, m) that is NaN or infinite."""
    if not M.is_floating_point():
        return
    bad = ~torch.isfinite(M)
    if bool(bad.any()):
        r, c = (int(v) for v in bad.nonzero()[0])
        raise ValueError(f"{name} has a non-finite value ({float(M[r, c])}) at row {r}, column {c}"
                         f"{' (flattened)' if name.startswith('X') else ''}: remove or fix that point")


@dataclass
class MinNormPredictor:
    """A fitted minimum-norm kernel interpolant ``f(x) = sum_i alpha_i k(x_i, x)``.

    Attributes:
        kernel: "linear", "rbf", "laplacian" or "random_features".
        alpha: float64 (n_unique, k) dual coefficients, on the fit's device (one row per
            training point, or per unique training point when duplicates were merged).
        norm: ``sqrt(trace(alpha^T K alpha))``, the RKHS norm of f (for the linear kernel,
            the l2 norm of the weights ``w = Phi^T alpha``); computed with K, not K + ridge*I.
        train_error: fraction of training points whose predicted class (argmax over the
            k outputs, or the sign for one output with +-1 targets) differs from the
            target's; 0 when ridge = 0 (exact interpolation). NaN for real-valued targets.
        train_residual: ``max_i |f(x_i) - y_i|`` over all outputs.
        gamma: the rbf/laplacian bandwidth used (None for other kernels).
        ridge: the lambda of ``(K + lambda I) alpha = Y``.
        width: number of random features (random_features only).
        num_classes: k when Y were integer class labels, else None.
        method: "cholesky" or "pcg", the solver used.
        relative_residual: ``||(K + ridge I) alpha - Y||_F / ||Y||_F`` in float64.
        column_norms: float64 (k,) CPU, ``sqrt(alpha_c^T K alpha_c)`` per output column
            (``norm**2 == (column_norms**2).sum()``).
        column_residuals: float64 (k,) CPU, each column's relative residual.
        converged: whether every column's relative residual is <= the fit's tol.
        solve_info: seconds per stage, iterations, residual history, shift (a dict).
        features: the feature map given to min_norm_fit (None for none).
        train_index: int64 (n_unique,) CPU indices of the training rows alpha refers to
            when duplicate rows were merged, else None.
    """

    kernel: str
    alpha: torch.Tensor
    norm: float
    train_error: float
    train_residual: float
    gamma: float | None
    ridge: float
    width: int | None
    num_classes: int | None
    method: str = "cholesky"
    relative_residual: float = math.nan
    column_norms: torch.Tensor | None = field(default=None, repr=False)
    column_residuals: torch.Tensor | None = field(default=None, repr=False)
    converged: bool = True
    solve_info: dict = field(default_factory=dict, repr=False)
    features: object = field(default=None, repr=False)
    train_index: torch.Tensor | None = field(default=None, repr=False)
    _X: torch.Tensor | None = field(default=None, repr=False)
    _W: torch.Tensor | None = field(default=None, repr=False)
    _b: torch.Tensor | None = field(default=None, repr=False)
    _d: int = field(default=0, repr=False)
    _block: int = field(default=1024, repr=False)

    @property
    def device(self) -> torch.device:
        return self.alpha.device

    def _features(self, X: torch.Tensor) -> torch.Tensor:
        return feature_map(X, self.kernel, self.features, self._W, self._b)

    def predict(self, X: torch.Tensor) -> torch.Tensor:
        """Scores f(X): X (m, ...) with the training inputs' trailing size, any real dtype,
        any device (moved to the fit's device). Returns float64 (m, k) on the fit's device.
        Raises ValueError when X's flattened dimension differs from the training inputs', or
        X holds NaN or infinite values."""
        Xm = _as_matrix(X, "X")
        if Xm.shape[1] != self._d:
            raise ValueError(f"X has {Xm.shape[1]} values per point; the fit was on {self._d}")
        Xm = Xm.to(device=self.device, dtype=torch.float64)
        train_sq = squared_norms(self._X) if self.kernel in DISTANCE_KERNELS else None
        out = []
        for s in range(0, Xm.shape[0], self._block):
            F = self._features(Xm[s : s + self._block])
            out.append(kernel_block(F, self._X, self.kernel, self.gamma, b_sq=train_sq) @ self.alpha)
        return torch.cat(out)

    def classify(self, X: torch.Tensor) -> torch.Tensor:
        """Predicted classes, int64 (m,): argmax of the scores (for a fit on real targets with
        one output column, its sign as 0/1)."""
        f = self.predict(X)
        if f.shape[1] == 1 and self.num_classes is None:
            return (f[:, 0] > 0).long()
        return f.argmax(1)  # class labels: one column per class (a single class: always 0)

    def error(self, X: torch.Tensor, y: torch.Tensor) -> float:
        """Classification error of :meth:`classify` against integer labels ``y`` (m,)."""
        X = _as_matrix(X, "X")
        y = torch.as_tensor(y)
        if y.dim() != 1 or y.dtype.is_floating_point or y.dtype.is_complex:
            raise ValueError(f"y must be integer labels (m,), got {y.dtype} of shape {tuple(y.shape)}")
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} points but y has {y.shape[0]} labels")
        return float((self.classify(X).cpu() != y.cpu().long()).double().mean())


def _check_settings(method, ridge, tol, max_iter, block) -> None:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    check_number("ridge", ridge, low=0)
    check_number("tol", tol, low=0, high=1, low_open=True, high_open=True)
    for name, v in (("max_iter", max_iter), ("block", block)):
        check_int(name, v, low=1)


def _features_and_params(X, kernel, gamma, width, seed, features):
    """(F, gamma, W, b) for float64 X (n, d)."""
    W = b = None
    if kernel == "random_features":
        W, b = random_relu_weights(X, width, seed)
    F = feature_map(X, kernel, features, W, b)
    _check_finite(F, "phi(X)")
    return F, default_gamma(F, kernel, gamma), W, b


def kernel_matrix(X: torch.Tensor, kernel: str = "rbf", gamma: float | None = None, width: int | None = None,
                  seed: int = 0, device=None, features=None) -> torch.Tensor:
    """The float64 (n, n) kernel matrix of X (n, ...) on ``device`` (default: X's device).
    Same kernels, parameters and errors as :func:`min_norm_fit`."""
    check_kernel_args(kernel, gamma, width, features)
    X = _as_matrix(X, "X").to(device=device or X.device, dtype=torch.float64)
    F, gamma, _, _ = _features_and_params(X, kernel, gamma, width, seed, features)
    return kernel_block(F, F, kernel, gamma, same=True)


def cholesky_inplace(A: torch.Tensor, block: int = BLOCK) -> int:
    """Blocked Cholesky factorization of A (n, n) in place (lower triangle), any float dtype
    and device. Reads only the lower triangle and the diagonal blocks of A; on return the
    lower triangle holds L with ``L L^T = A``. Returns -1 on success, else the 0-based column
    at which A was found not positive definite (A is then partly overwritten)."""
    n = A.shape[0]
    for j in range(0, n, block):
        e = min(j + block, n)
        Ljj, info = torch.linalg.cholesky_ex(A[j:e, j:e])
        if int(info) != 0:
            return j + int(info) - 1
        A[j:e, j:e] = Ljj
        for r in range(e, n, 4 * block):  # panel: A[e:, j:e] <- A[e:, j:e] L_jj^-T, in chunks
            s = min(r + 4 * block, n)
            A[r:s, j:e] = torch.linalg.solve_triangular(Ljj.mT, A[r:s, j:e], upper=True, left=False)
        for i0 in range(e, n, block):  # trailing lower triangle: A[i, e:i1] -= P_i P^T
            i1 = min(i0 + block, n)
            A[i0:i1, e:i1].addmm_(A[i0:i1, j:e], A[e:i1, j:e].T, alpha=-1.0)
    return -1


def cholesky_solve_inplace_factor(L: torch.Tensor, R: torch.Tensor, block: int = BLOCK) -> torch.Tensor:
    """Solves ``L L^T Z = R`` with L the lower triangle of L (n, n) (its upper triangle is
    ignored), R (n, k) of any float dtype; the solves run in L's dtype. Returns Z in R's dtype."""
    Z = R.to(L.dtype, copy=True)
    n = L.shape[0]
    starts = range(0, n, block)
    for i0 in starts:
        i1 = min(i0 + block, n)
        if i0:
            Z[i0:i1].addmm_(L[i0:i1, :i0], Z[:i0], alpha=-1.0)
        Z[i0:i1] = torch.linalg.solve_triangular(L[i0:i1, i0:i1].tril(), Z[i0:i1], upper=False)
    for i0 in reversed(starts):
        i1 = min(i0 + block, n)
        if i1 < n:
            Z[i0:i1].addmm_(L[i1:, i0:i1].T, Z[i1:], alpha=-1.0)
        Z[i0:i1] = torch.linalg.solve_triangular(L[i0:i1, i0:i1].tril().mT, Z[i0:i1], upper=True)
    return Z.to(R.dtype)


def _column_rel(R: torch.Tensor, ynorm: torch.Tensor) -> torch.Tensor:
    return R.norm(dim=0) / ynorm


def _pcg(op: KernelOperator, L: torch.Tensor, Y: torch.Tensor, tol: float, max_iter: int, log):
    """Flexible (Polak-Ribiere) preconditioned conjugate gradients, one independent iteration
    per column of Y, sharing each product K P. Returns (alpha, (K + ridge I) alpha, info)."""
    ynorm = Y.norm(dim=0)
    ynorm = torch.where(ynorm > 0, ynorm, torch.ones_like(ynorm))
    x = torch.zeros_like(Y)
    r = Y.clone()
    rel = _column_rel(r, ynorm)
    info = {"iteration_s": [], "residual_history": [], "true_residual_checks": 0}
    restart = True
    for it in range(max_iter + 1):
        if bool((rel <= tol).all()):  # the recurrence says done: check with the true residual
            t0 = time.perf_counter()
            Kx = op.matmul(x)
            r = Y - Kx
            rel = _column_rel(r, ynorm)
            info["true_residual_checks"] += 1
            info["check_s"] = info.get("check_s", 0.0) + time.perf_counter() - t0
            log(f"pcg: true relative residual {float(rel.max()):.2e} after {it} iterations")
            if bool((rel <= tol).all()):
                return x, Kx, info
            restart = True
        if it == max_iter:
            break
        t0 = time.perf_counter()
        if restart:
            z = cholesky_solve_inplace_factor(L, r, op.block)
            p, rz, restart = z.clone(), (r * z).sum(0), False
        q = op.matmul(p)
        pq = (p * q).sum(0)
        active = (rel > tol) & (pq > 0)
        a = torch.where(active, rz / torch.where(active, pq, torch.ones_like(pq)), torch.zeros_like(pq))
        x.add_(p * a)
        r_new = r - q * a
        z = cholesky_solve_inplace_factor(L, r_new, op.block)
        beta = torch.where(active & (rz > 0), (z * (r_new - r)).sum(0) / torch.where(rz > 0, rz, 1.0), 0.0)
        rz = (r_new * z).sum(0)
        p = z.add_(p * beta)
        r = r_new
        rel = _column_rel(r, ynorm)
        info["iteration_s"].append(time.perf_counter() - t0)
        info["residual_history"].append(float(rel.max()))
        log(f"pcg: iteration {it + 1}: max relative residual {float(rel.max()):.2e} "
            f"({info['iteration_s'][-1]:.1f} s)")
        if not bool(active.any()) and not bool((rel <= tol).all()):
            break  # breakdown: p^T K p <= 0 in every unfinished column
    Kx = op.matmul(x)
    return x, Kx, info


def _solve_pcg(op: KernelOperator, Y: torch.Tensor, tol: float, max_iter: int, log):
    info = {}
    t0 = time.perf_counter()
    L = torch.empty(op.n, op.n, dtype=torch.float32, device=Y.device)
    info["allocate_s"] = time.perf_counter() - t0
    info["form_s"], info["factor_s"], info["factor_attempts"] = 0.0, 0.0, 0
    base = 2.0**-24 * math.sqrt(op.n) * op.mean_diagonal()
    for shift in (base * 10.0**i for i in range(SHIFT_ATTEMPTS)):
        t0 = time.perf_counter()
        op.form_float32(L, shift)
        t1 = time.perf_counter()
        col = cholesky_inplace(L, op.block)
        t2 = time.perf_counter()
        info["form_s"] += t1 - t0
        info["factor_s"] += t2 - t1
        info["factor_attempts"] += 1
        log(f"pcg: float32 kernel formed in {t1 - t0:.1f} s, factored in {t2 - t1:.1f} s (shift {shift:.1e})"
            + ("" if col < 0 else f": not positive definite at column {col}"))
        if col < 0:
            info["shift"] = shift
            break
    else:
        raise ValueError(
            f"min_norm_fit: the {op.kernel} kernel matrix of {op.n} points is not positive definite in "
            f"float32 even when shifted by {shift:.1e} ({shift / op.mean_diagonal():.1e} times its mean diagonal): "
            "it is (nearly) singular "
            "(near-duplicate points, or a kernel of rank < n); pass ridge > 0")
    alpha, Kx, it_info = _pcg(op, L, Y, tol, max_iter, log)
    del L
    info.update(it_info)
    info["iterations"] = len(info["iteration_s"])
    return alpha, Kx, info


def _solve_cholesky(op: KernelOperator, Y: torch.Tensor, tol: float, log):
    info = {}
    t0 = time.perf_counter()
    K = kernel_block(op.F, op.F, op.kernel, op.gamma, op.sq, op.sq, same=True)
    if not bool(torch.isfinite(K).all()):
        raise ValueError(nonfinite_kernel_message(op.F))
    if op.ridge:
        K.diagonal().add_(op.ridge)
    t1 = time.perf_counter()
    L, status = torch.linalg.cholesky_ex(K)
    if int(status) != 0:
        raise ValueError(
            f"min_norm_fit: the {op.kernel} kernel matrix{' + ridge*I' if op.ridge else ''} of {op.n} points is "
            f"not positive definite (Cholesky failed at column {int(status) - 1}): the points cannot be "
            f"interpolated exactly (near-duplicate points, or a kernel of rank < n); pass ridge > 0")
    alpha = torch.cholesky_solve(Y, L)
    t2 = time.perf_counter()
    ynorm = Y.norm(dim=0)
    ynorm = torch.where(ynorm > 0, ynorm, torch.ones_like(ynorm))
    refinements = 0
    Kx = K @ alpha
    while refinements < 3 and not bool((_column_rel(Y - Kx, ynorm) <= tol).all()):
        alpha += torch.cholesky_solve(Y - Kx, L)  # iterative refinement in float64
        Kx = K @ alpha
        refinements += 1
    info.update(form_s=t1 - t0, factor_s=t2 - t1, refine_s=time.perf_counter() - t2, refinements=refinements)
    log(f"cholesky: formed in {t1 - t0:.1f} s, factored and solved in {t2 - t1:.1f} s")
    return alpha, Kx, info


def _dedupe(Xm: torch.Tensor, Yf: torch.Tensor, labels):
    """(keep, rowmap): indices of the first row of each group of identical rows, and for every
    row the position of its group in ``keep``; (None, None) when all rows differ. Raises
    ValueError when two identical rows have different targets."""
    _, inv = torch.unique(Xm, dim=0, return_inverse=True)
    n = Xm.shape[0]
    first = torch.full((int(inv.max()) + 1,), n, dtype=torch.int64, device=inv.device)
    first.scatter_reduce_(0, inv, torch.arange(n, device=inv.device), reduce="amin")
    if first.shape[0] == n:
        return None, None
    inv, first = inv.cpu(), first.cpu()
    rep = first[inv]
    bad = (Yf != Yf[rep]).any(1).nonzero()
    if bad.numel():
        i = int(bad[0])
        j = int(rep[i])
        what = (f"labels {int(labels[j])} and {int(labels[i])}" if labels is not None else "targets")
        raise ValueError(f"rows {j} and {i} of X are identical but have different {what}: no function "
                         "interpolates both; remove one of them or pass ridge > 0")
    keep, order = torch.sort(first)
    pos = torch.empty_like(order)
    pos[order] = torch.arange(order.shape[0])
    return keep, pos[inv]


def _targets(Y, n, num_classes):
    """(Yf float64 (n, k) CPU, labels int64 (n,) or None, k); for labels Yf is None: the
    one-hot rows are built by :func:`_one_hot` once the memory check has passed."""
    if not isinstance(Y, torch.Tensor):
        raise TypeError(f"Y must be a torch.Tensor, got {type(Y).__name__}")
    if Y.shape[0] != n:
        raise ValueError(f"X has {n} points but Y has {Y.shape[0]} rows")
    if Y.dtype in _INT_DTYPES:
        if Y.dim() != 1:
            raise ValueError(f"integer labels Y must have shape (n,), got {tuple(Y.shape)}")
        if int(Y.min()) < 0:
            raise ValueError(f"class labels must be >= 0, got {int(Y.min())}")
        k = check_int("num_classes", num_classes, low=1, high=_MAX_CLASSES) if num_classes is not None \
            else int(Y.max()) + 1
        if int(Y.max()) >= k:
            raise ValueError(f"label {int(Y.max())} is out of range for num_classes={k}")
        return None, Y.long().cpu(), k
    if Y.is_floating_point():
        if Y.dim() not in (1, 2):
            raise ValueError(f"real targets Y must have shape (n,) or (n, k), got {tuple(Y.shape)}")
        Yf = Y.reshape(n, -1).to("cpu", torch.float64)
        if Yf.shape[1] == 0:
            raise ValueError(f"Y has no target columns (shape {tuple(Y.shape)}): give (n,) or (n, k) with k >= 1")
        _check_finite(Yf, "Y")
        return Yf, None, Yf.shape[1]
    raise TypeError(f"Y must be integer labels or real targets, got dtype {Y.dtype}")


def _choose_method(method, n, D, k, available, dev, block):
    fits = {m: memory_estimate(n, D, k, m, block) <= available for m in ("cholesky", "pcg")}
    if method == "auto":
        chosen = "cholesky" if fits["cholesky"] else "pcg"
    else:
        chosen = method
    if fits[chosen]:
        return chosen
    needed = memory_estimate(n, D, k, chosen, block)
    suggested = _largest_n(chosen, D, k, int(0.9 * available), block)
    raise KernelMemoryError(
        f"min_norm_fit: n={n} points need about {needed / 2**30:.2f} GiB with method '{chosen}' "
        f"({'float64 kernel and its Cholesky factor' if chosen == 'cholesky' else 'float32 kernel factor'}) "
        f"but only {available / 2**30:.2f} GiB is available on {dev}; subsample to about n={suggested} "
        "points (or use another device)",
        needed, available, suggested,
    )


def min_norm_fit(X: torch.Tensor, Y: torch.Tensor, kernel: str = "rbf", gamma: float | None = None,
                 ridge: float = 0.0, *, width: int | None = None, seed: int = 0, num_classes: int | None = None,
                 device=None, max_memory: int | None = None, features=None, method: str = "auto",
                 tol: float = 1e-9, max_iter: int = 100, block: int = BLOCK, log=None) -> MinNormPredictor:
    """Minimum-norm kernel interpolation: solve ``(K + ridge * I) alpha = Y`` (see the module doc).

    Args:
        X: training inputs (n, ...), any real dtype, any device; flattened to (n, d).
        Y: targets: integer class labels (n,) (encoded as one-hot 0/1 rows of ``num_classes``
            columns), or real targets (n,) or (n, k) (k right-hand sides, one factorization).
        kernel: "linear", "rbf", "laplacian" or "random_features" (see the module docstring).
        gamma: rbf/laplacian bandwidth; default from ``var(phi(X))`` (module docstring).
        ridge: lambda >= 0 added to the diagonal; 0 interpolates exactly.
        width: number of random ReLU features (random_features only, required there).
        seed: seed of the random features.
        num_classes: number of classes for integer labels (default ``max(Y) + 1``).
        device: "cpu", "cuda", "auto" or a torch.device (default: X's device).
        max_memory: bytes allowed for the solve (default: what the device has available).
        features: a feature map phi applied to the flattened inputs before the linear, rbf or
            laplacian kernel: :class:`rethink.features.RandomConvFeatures` or any deterministic
            callable taking float64 (m, d) to (m, D) that has an int attribute ``dim``. With
            the linear kernel, exact interpolation needs D >= n.
        method: "auto" (float64 "cholesky" when it fits in memory, else "pcg"), "cholesky"
            or "pcg".
        tol: the largest relative residual ``||(K + ridge I) alpha_c - y_c|| / ||y_c||`` of a
            column accepted by "pcg" (and aimed at by refinement in "cholesky").
        max_iter: most conjugate-gradient iterations ("pcg").
        block: rows per kernel block and per Cholesky panel ("pcg").
        log: None or a callable taking one progress line (str), e.g. ``print``.

    Returns:
        a :class:`MinNormPredictor`; with "pcg" that did not reach tol in max_iter iterations,
        ``converged`` is False and a RuntimeWarning is issued.

    Raises:
        TypeError/ValueError: X or Y of the wrong type or shape, no training points, NaN or
            infinite values in X or Y (the message names the row and column), unknown kernel
            or method, bad gamma/ridge/width/tol/max_iter/block.
        ValueError: exact duplicate rows of X with different targets (ridge = 0; the message
            names the rows); a linear kernel with fewer features than points (rank < n) and
            ridge = 0; K (+ ridge I) not positive definite (e.g. near-duplicate points): pass
            ridge > 0; a kernel overflowing to non-finite values.
        KernelMemoryError (a MemoryError): the solve does not fit; the message names the sizes
            and a subsample size that fits.
    """
    log = log if log is not None else (lambda _line: None)
    t_start = time.perf_counter()
    check_kernel_args(kernel, gamma, width, features)
    _check_settings(method, ridge, tol, max_iter, block)
    seed = check_seed("seed", seed)
    if max_memory is not None:
        check_number("max_memory (bytes)", max_memory, low=1, integer=True)
    Xm = _as_matrix(X, "X")
    n, d = Xm.shape
    Yf, labels, k = _targets(Y, n, num_classes)
    dev = Xm.device if device is None else resolve_device(device, kernels=False)

    keep = rowmap = None
    if ridge == 0:
        keep, rowmap = _dedupe(Xm, Yf if labels is None else labels[:, None], labels)
    nu = n if keep is None else keep.shape[0]
    D = width if kernel == "random_features" else (int(getattr(features, "dim", d)) if features is not None else d)
    if kernel == "linear" and ridge == 0 and D < nu:
        raise ValueError(f"the linear kernel on {D} features has rank <= {D} < n={nu} points: it cannot "
                         "interpolate them exactly; use >= n features, an rbf/laplacian kernel, or ridge > 0")
    available = int(max_memory) if max_memory is not None else _available_bytes(dev)
    chosen = _choose_method(method, nu, max(d, D), k, available, dev, block)
    if labels is not None:  # the one-hot targets, after the memory check (num_classes may be large)
        Yf = torch.nn.functional.one_hot(labels, k).to(torch.float64)

    Xd = (Xm if keep is None else Xm[keep.to(Xm.device)]).to(device=dev, dtype=torch.float64)
    F, gamma, W, b = _features_and_params(Xd, kernel, gamma, width, seed, features)
    del Xd
    op = KernelOperator(F, kernel, gamma, float(ridge), block)
    Yd = (Yf if keep is None else Yf[keep]).to(dev)
    if chosen == "cholesky":
        alpha, Kx, info = _solve_cholesky(op, Yd, tol, log)
    else:
        alpha, Kx, info = _solve_pcg(op, Yd, tol, max_iter, log)
    info.update(method=chosen, ridge=float(ridge))

    predictor = _summarize(alpha, Kx, Yd, labels, rowmap, info, tol)
    info["total_s"] = time.perf_counter() - t_start
    return replace(predictor, kernel=kernel, gamma=gamma, features=features, train_index=keep,
                   width=width if kernel == "random_features" else None, _X=F, _W=W, _b=b, _d=d)


def _summarize(alpha, Kx, Yd, labels, rowmap, info, tol) -> MinNormPredictor:
    """The predictor's numbers from alpha and Kx = (K + ridge I) alpha (kernel fields unset)."""
    ridge = info["ridge"]
    ynorm = Yd.norm(dim=0)
    col_res = ((Kx - Yd).norm(dim=0) / torch.where(ynorm > 0, ynorm, torch.ones_like(ynorm))).cpu()
    rel = float((Kx - Yd).norm() / Yd.norm().clamp_min(1e-300))
    converged = bool((col_res <= tol).all()) if info["method"] == "pcg" else True
    if not converged:
        warnings.warn(f"min_norm_fit: pcg stopped after {info['iterations']} iterations with relative residual "
                      f"{float(col_res.max()):.2e} > tol={tol:g}; K may be (nearly) singular: raise max_iter "
                      "or pass ridge > 0", RuntimeWarning, stacklevel=3)
    fitted = Kx.sub_(alpha, alpha=ridge) if ridge else Kx
    col_sq = (alpha * fitted).sum(0).clamp_min(0.0).cpu()
    k = Yd.shape[1]
    if labels is not None:
        pred = fitted.argmax(1).cpu()  # one column per class (k = 1: the single class 0)
        pred = pred if rowmap is None else pred[rowmap]
        train_error = float((pred != labels).double().mean())
    else:
        train_error = math.nan
    return MinNormPredictor(
        kernel="", alpha=alpha, norm=float(col_sq.sum().sqrt()), train_error=train_error,
        train_residual=float((fitted - Yd).abs().max()), gamma=None, ridge=ridge, width=None,
        num_classes=k if labels is not None else None, method=info["method"], relative_residual=rel,
        column_norms=col_sq.sqrt(), column_residuals=col_res, converged=converged, solve_info=info,
    )
