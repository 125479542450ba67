"""Section 5 of the paper: minimum-norm interpolation with kernels.

SGD from zero on a linear model ``f(x) = <w, phi(x)>`` stays in the span of the data,
so when it interpolates it reaches ``w = Phi^T alpha`` with ``K alpha = Y`` and
``K = Phi Phi^T``: the minimum l2-norm interpolant. :func:`min_norm_fit` solves that
system exactly (Cholesky in float64) for three kernels:

- ``"linear"``: ``k(x, x') = <x, x'>`` on the flattened inputs;
- ``"rbf"``: ``k(x, x') = exp(-gamma * ||x - x'||^2)`` (Gaussian kernel);
- ``"random_features"``: ``k(x, x') = <phi(x), phi(x')>`` with random ReLU features
  ``phi(x) = sqrt(2 / width) * relu(W x + b)``, ``W_ij ~ N(0, 1 / (d * m2))`` with
  ``m2 = mean(X^2)`` over the training inputs (so ``W x`` has about unit variance),
  ``b_j ~ N(0, 1)``, drawn from ``seed``.

The returned :class:`MinNormPredictor` predicts, reports its RKHS norm
``sqrt(trace(alpha^T K alpha))`` and its training error.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import torch

__all__ = ["KernelMemoryError", "MinNormPredictor", "kernel_matrix", "min_norm_fit", "memory_estimate"]

KERNELS = ("linear", "rbf", "random_features")

#: Copies of an n x n float64 matrix that min_norm_fit holds at once (K, its Cholesky
#: factor, and one temporary while K is formed).
_NN_COPIES = 3


class KernelMemoryError(MemoryError):
    """The n x n kernel matrix does not fit in the memory available on the device.

    Attributes:
        needed: bytes min_norm_fit would allocate.
        available: bytes available on the device.
        suggested_n: a training-set size whose kernel matrix fits.
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


def memory_estimate(n: int, d: int, k: int = 1) -> int:
    """Bytes :func:`min_norm_fit` allocates for ``n`` points of dimension ``d`` and ``k`` targets.

    ``8 * (3 n^2 + 2 n d + 2 n k)``: three n x n float64 matrices (kernel, Cholesky factor,
    one temporary) plus the float64 inputs and targets.
    """
    return 8 * (_NN_COPIES * n * n + 2 * n * d + 2 * n * k)


def _resolve_device(device) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _as_matrix(X, name: str) -> torch.Tensor:
    if not isinstance(X, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(X).__name__}")
    if X.dim() < 2:
        raise ValueError(f"{name} must have shape (n, ...) with n points, got shape {tuple(X.shape)}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} has no points (shape {tuple(X.shape)}): there is no training data")
    if not (X.is_floating_point() or X.dtype in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)):
        raise TypeError(f"{name} must be a real tensor, got dtype {X.dtype}")
    return X.reshape(X.shape[0], -1)


def _rbf(A: torch.Tensor, B: torch.Tensor, gamma: float) -> torch.Tensor:
    # ||a - b||^2 = ||a||^2 + ||b||^2 - 2 <a, b>, formed in place to hold one n x m matrix.
    K = A @ B.T
    K.mul_(-2.0)
    K.add_((A * A).sum(1, keepdim=True))
    K.add_((B * B).sum(1).unsqueeze(0))
    K.clamp_(min=0.0)
    K.mul_(-gamma)
    K.exp_()
    return K


@dataclass
class MinNormPredictor:
    """A fitted minimum-norm kernel interpolant ``f(x) = sum_i alpha_i k(x_i, x)``.

    Attributes:
        kernel: "linear", "rbf" or "random_features".
        alpha: float64 (n, k) dual coefficients, on the fit's device.
        norm: ``sqrt(trace(alpha^T K alpha))``, the RKHS norm of f (for the linear kernel,
            the l2 norm of the weights ``w = X^T alpha``); computed with K, not K + ridge*I.
        train_error: fraction of training points whose predicted class (argmax over the
            k outputs, or the sign for one output with +-1 targets) differs from the
            target's; 0 when ridge = 0 (exact interpolation). NaN for real-valued targets.
        train_residual: ``max_i |f(x_i) - y_i|`` over all outputs (about 1e-10 with ridge 0).
        gamma: the rbf bandwidth used (None for other kernels).
        ridge: the lambda of ``(K + lambda I) alpha = Y``.
        width: number of random features (random_features only).
        num_classes: k when Y were integer class labels, else None.
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
    _X: torch.Tensor = field(repr=False)
    _W: torch.Tensor | None = field(default=None, repr=False)
    _b: torch.Tensor | None = field(default=None, repr=False)
    _block: int = field(default=4096, repr=False)

    @property
    def device(self) -> torch.device:
        return self.alpha.device

    def _features(self, X: torch.Tensor) -> torch.Tensor:
        return _features(X, self.kernel, self._W, self._b)

    def _cross(self, Xq: torch.Tensor) -> torch.Tensor:
        """k(Xq, X_train): (m, n) float64."""
        if self.kernel == "rbf":
            return _rbf(Xq, self._X, self.gamma)
        return self._features(Xq) @ self._X.T

    def predict(self, X: torch.Tensor) -> torch.Tensor:
        """Scores f(X): X (m, ...) with the training inputs' trailing size, any real dtype,
        any device (moved to the fit's device). Returns float64 (m, k) on the fit's device.
        Raises ValueError when X's flattened dimension differs from the training inputs'."""
        Xm = _as_matrix(X, "X")
        if Xm.shape[1] != self._input_dim:
            raise ValueError(f"X has {Xm.shape[1]} values per point; the fit was on {self._input_dim}")
        Xm = Xm.to(device=self.device, dtype=torch.float64)
        out = []
        for s in range(0, Xm.shape[0], self._block):
            out.append(self._cross(Xm[s : s + self._block]) @ self.alpha)
        return torch.cat(out)

    def classify(self, X: torch.Tensor) -> torch.Tensor:
        """Predicted classes, int64 (m,): argmax of the scores (the sign for one output, as 0/1)."""
        f = self.predict(X)
        if f.shape[1] == 1:
            return (f[:, 0] > 0).long()
        return f.argmax(1)

    def error(self, X: torch.Tensor, y: torch.Tensor) -> float:
        """Classification error of :meth:`classify` against integer labels ``y`` (m,)."""
        y = torch.as_tensor(y)
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} points but y has {y.shape[0]} labels")
        return float((self.classify(X).cpu() != y.cpu().long()).double().mean())

    @property
    def _input_dim(self) -> int:
        return self._W.shape[1] if self.kernel == "random_features" else self._X.shape[1]


def _features(X: torch.Tensor, kernel: str, W, b) -> torch.Tensor:
    if kernel == "random_features":
        return torch.relu(X @ W.T + b).mul_(math.sqrt(2.0 / W.shape[0]))
    return X


def kernel_matrix(X: torch.Tensor, kernel: str = "rbf", gamma: float | None = None, width: int | None = None,
                  seed: int = 0, device=None) -> torch.Tensor:
    """The float64 (n, n) kernel matrix of X (n, ...) on ``device`` (default: X's device).
    Same kernels and parameters as :func:`min_norm_fit`."""
    X = _as_matrix(X, "X").to(device=device or X.device, dtype=torch.float64)
    gamma, W, b = _kernel_params(X, kernel, gamma, width, seed)
    if kernel == "rbf":
        return _rbf(X, X, gamma)
    F = _features(X, kernel, W, b)
    return F @ F.T


def _kernel_params(X, kernel, gamma, width, seed):
    n, d = X.shape
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    W = b = None
    if kernel == "rbf":
        if gamma is None:
            var = float(X.var()) if X.numel() > 1 else 0.0
            gamma = 1.0 / (d * var) if var > 0 else 1.0
        elif not (isinstance(gamma, (int, float)) and gamma > 0 and math.isfinite(gamma)):
            raise ValueError(f"gamma must be a positive finite number, got {gamma!r}")
        gamma = float(gamma)
    else:
        if gamma is not None:
            raise ValueError(f"gamma applies to the rbf kernel only, got gamma={gamma!r} with kernel={kernel!r}")
        gamma = None
    if kernel == "random_features":
        if not isinstance(width, int) or isinstance(width, bool) or width < 1:
            raise ValueError(f"kernel='random_features' needs an integer width >= 1, got width={width!r}")
        g = torch.Generator().manual_seed(int(seed))
        m2 = float((X * X).mean())  # so that W x has about unit variance over the data
        m2 = m2 if m2 > 0 else 1.0
        W = (torch.randn(width, d, generator=g, dtype=torch.float64) / math.sqrt(d * m2)).to(X.device)
        b = torch.randn(width, generator=g, dtype=torch.float64).to(X.device)
    elif width is not None:
        raise ValueError(f"width applies to kernel='random_features' only, got width={width!r} with kernel={kernel!r}")
    return gamma, W, b


def min_norm_fit(X: torch.Tensor, Y: torch.Tensor, kernel: str = "rbf", gamma: float | None = None,
                 ridge: float = 0.0, *, width: int | None = None, seed: int = 0, num_classes: int | None = None,
                 device=None, max_memory: int | None = None) -> MinNormPredictor:
    """Minimum-norm kernel interpolation: solve ``(K + ridge * I) alpha = Y`` by Cholesky in float64.

    Args:
        X: training inputs (n, ...), any real dtype, any device; flattened to (n, d).
        Y: targets: integer class labels (n,) (encoded as one-hot 0/1 rows of ``num_classes``
            columns), or real targets (n,) or (n, k).
        kernel: "linear", "rbf" or "random_features" (see the module docstring).
        gamma: rbf bandwidth; default ``1 / (d * X.var())`` (scikit-learn's "scale").
        ridge: lambda >= 0 added to the diagonal; 0 interpolates exactly.
        width: number of random ReLU features (random_features only, required there).
        seed: seed of the random features.
        num_classes: number of classes for integer labels (default ``max(Y) + 1``).
        device: "cpu", "cuda", "auto" or a torch.device (default: X's device).
        max_memory: bytes allowed for the solve (default: what the device has available).

    Returns:
        a :class:`MinNormPredictor`.

    Raises:
        TypeError/ValueError: X or Y of the wrong type or shape, no training points,
            unknown kernel, bad gamma/ridge/width.
        KernelMemoryError (a MemoryError): the n x n matrices do not fit; the message names
            the sizes and a subsample size that fits.
        ValueError: K (+ ridge I) is not positive definite (e.g. duplicate points, or a
            linear / random-features kernel with fewer dimensions than points): pass ridge > 0.
    """
    Xm = _as_matrix(X, "X")
    if not isinstance(Y, torch.Tensor):
        raise TypeError(f"Y must be a torch.Tensor, got {type(Y).__name__}")
    n, d = Xm.shape
    if Y.shape[0] != n:
        raise ValueError(f"X has {n} points but Y has {Y.shape[0]} rows")
    if not (isinstance(ridge, (int, float)) and ridge >= 0 and math.isfinite(ridge)):
        raise ValueError(f"ridge must be a finite number >= 0, got {ridge!r}")
    dev = Xm.device if device is None else _resolve_device(device)

    labels = None
    if Y.dtype in (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8):
        if Y.dim() != 1:
            raise ValueError(f"integer labels Y must have shape (n,), got {tuple(Y.shape)}")
        if int(Y.min()) < 0:
            raise ValueError(f"class labels must be >= 0, got {int(Y.min())}")
        k = int(num_classes) if num_classes is not None else int(Y.max()) + 1
        if int(Y.max()) >= k:
            raise ValueError(f"label {int(Y.max())} is out of range for num_classes={k}")
        labels = Y.long()
        Yf = torch.nn.functional.one_hot(labels.cpu(), k).to(torch.float64)
    elif Y.is_floating_point():
        if Y.dim() not in (1, 2):
            raise ValueError(f"real targets Y must have shape (n,) or (n, k), got {tuple(Y.shape)}")
        Yf = Y.reshape(n, -1).to(torch.float64)
        k = Yf.shape[1]
    else:
        raise TypeError(f"Y must be integer labels or real targets, got dtype {Y.dtype}")

    width_dim = width if kernel == "random_features" and isinstance(width, int) else d
    needed = memory_estimate(n, max(d, width_dim or d), k)
    available = int(max_memory) if max_memory is not None else _available_bytes(dev)
    if needed > available:
        per_n2 = 8 * _NN_COPIES
        suggested = int(math.isqrt(max(available // (per_n2 * 2), 1)))  # half the budget: headroom
        raise KernelMemoryError(
            f"min_norm_fit: n={n} points need about {needed / 2**30:.2f} GiB for the {n} x {n} float64 kernel "
            f"(and its Cholesky factor) but only {available / 2**30:.2f} GiB is available on {dev}; "
            f"subsample to about n={suggested} points (or use another device)",
            needed, available, suggested,
        )

    Xd = Xm.to(device=dev, dtype=torch.float64)
    gamma, W, b = _kernel_params(Xd, kernel, gamma, width, seed)
    if kernel == "rbf":
        K = _rbf(Xd, Xd, gamma)
        Xstore = Xd
    else:
        F = _features(Xd, kernel, W, b)
        K = F @ F.T
        Xstore = F
    Yd = Yf.to(dev)
    if ridge > 0:
        K.diagonal().add_(ridge)
    L, info = torch.linalg.cholesky_ex(K)
    if int(info) != 0:
        raise ValueError(
            f"min_norm_fit: the {kernel} kernel matrix{' + ridge*I' if ridge > 0 else ''} of {n} points is not "
            f"positive definite (Cholesky failed at column {int(info)}): the points cannot be interpolated "
            f"exactly (duplicate points, or a kernel of rank < n such as linear with d={d} or random features "
            f"of width {width}); pass ridge > 0"
        )
    alpha = torch.cholesky_solve(Yd, L)
    del L
    if ridge > 0:
        K.diagonal().sub_(ridge)
    fitted = K @ alpha
    norm = float(torch.sqrt(torch.clamp((alpha * fitted).sum(), min=0.0)))
    residual = float((fitted - Yd).abs().max())
    if labels is not None:
        pred = fitted.argmax(1) if k > 1 else (fitted[:, 0] > 0.5).long()
        train_error = float((pred.cpu() != labels.cpu()).double().mean())
    else:
        train_error = math.nan
    del K, fitted
    return MinNormPredictor(kernel=kernel, alpha=alpha, norm=norm, train_error=train_error,
                            train_residual=residual, gamma=gamma, ridge=float(ridge),
                            width=width if kernel == "random_features" else None,
                            num_classes=k if labels is not None else None, _X=Xstore, _W=W, _b=b)
