"""Feature maps for Section 5's minimum-norm interpolation, and the kernels built on them.

A feature map ``phi`` turns an input ``x`` into a vector; the minimum-norm interpolant is then
found in the space of ``phi``, with the linear kernel ``<phi(x), phi(x')>`` or with a
Gaussian or Laplacian kernel on top. The paper (Section 5) compares raw pixels with random
convolutional features on CIFAR-10; :class:`RandomConvFeatures` is such a map:

    phi(x) = flatten(avgpool_{pool x pool}(relu(conv(x, W))))

with ``filters`` random ``size x size`` filters ``W`` (``C`` input channels, valid padding,
stride 1), each drawn from N(0, 1), made zero-mean over its ``C * size * size`` values (so
a flat region gives 0) and scaled to unit l2 norm; the ReLU maps are average-pooled onto a
``pool x pool`` grid (adaptive average pooling). Its dimension is
``filters * pool * pool``. The filters are a pure function of ``seed``.

:func:`kernel_block` evaluates the kernels of :mod:`rethink.min_norm` on two sets of feature
vectors in float64, and :class:`KernelOperator` applies an n x n kernel matrix block by
block without storing it:

- ``"linear"``: ``<a, b>``;
- ``"rbf"``: ``exp(-gamma ||a - b||^2)`` (Gaussian);
- ``"laplacian"``: ``exp(-gamma ||a - b||_2)`` (Euclidean distance, as in Belkin, Ma and
  Mandal 2018).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ._check import check_int, check_number, check_seed, check_shape

__all__ = ["KernelOperator", "RandomConvFeatures", "check_kernel_args", "default_gamma", "feature_map", "kernel_block",
           "random_relu_weights", "squared_norms"]

KERNELS = ("linear", "rbf", "laplacian", "random_features")
DISTANCE_KERNELS = ("rbf", "laplacian")


@dataclass(frozen=True)
class RandomConvFeatures:
    """Random convolutional features: random filters, ReLU, average pooling (see module doc).

    Args:
        image_shape: (C, H, W) of one input; inputs are given flattened, (m, C*H*W), or as
            (m, C, H, W).
        filters: number of random filters (>= 1).
        size: filter side (1 <= size <= min(H, W)).
        pool: side of the output grid of average pooling (1 <= pool <= H - size + 1).
        seed: seed of the filters (an int >= 0).
        batch: images convolved at once (bounds the memory of the ReLU maps).

    Raises:
        ValueError: a setting outside the ranges above.
    """

    image_shape: tuple[int, int, int]
    filters: int = 64
    size: int = 5
    pool: int = 4
    seed: int = 0
    batch: int = 1024

    def __post_init__(self):
        shape = check_shape("image_shape (C, H, W)", self.image_shape, length=3)
        object.__setattr__(self, "image_shape", shape)
        for name in ("filters", "size", "pool", "batch"):
            object.__setattr__(self, name, check_int(name, getattr(self, name), low=1))
        object.__setattr__(self, "seed", check_seed("seed", self.seed))
        _, h, w = shape
        if self.size > min(h, w):
            raise ValueError(f"filter size {self.size} exceeds the image ({h} x {w})")
        if self.pool > min(h, w) - self.size + 1:
            raise ValueError(f"pool {self.pool} exceeds the {h - self.size + 1} x {w - self.size + 1} feature map")

    @property
    def input_dim(self) -> int:
        """C * H * W."""
        return math.prod(self.image_shape)

    @property
    def dim(self) -> int:
        """Dimension of the features: filters * pool * pool."""
        return self.filters * self.pool * self.pool

    def weights(self, device=None, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """The filters, (filters, C, size, size) of ``dtype`` on ``device``: the same numbers on
        every device (drawn on the CPU from ``seed``)."""
        c = self.image_shape[0]
        g = torch.Generator().manual_seed(self.seed)
        W = torch.randn(self.filters, c * self.size * self.size, generator=g, dtype=torch.float64)
        W -= W.mean(1, keepdim=True)
        W /= W.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return W.reshape(self.filters, c, self.size, self.size).to(device=device, dtype=dtype)

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        """phi(X): X (m, C*H*W) or (m, C, H, W), any real dtype, any device; returns float64
        (m, dim) on X's device. Raises ValueError when X has another number of values per
        point or a NaN/infinite value, TypeError when X is not a real tensor."""
        if not isinstance(X, torch.Tensor) or X.is_complex() or X.dtype == torch.bool:
            raise TypeError(f"X must be a real torch.Tensor, got {type(X).__name__}")
        if X.dim() < 2 or math.prod(X.shape[1:]) != self.input_dim:
            raise ValueError(f"X must have shape (m, {self.input_dim}) or (m, *{self.image_shape}), "
                             f"got {tuple(X.shape)}")
        m = X.shape[0]
        if X.is_floating_point() and not bool(torch.isfinite(X).all()):
            r, c = (int(v) for v in (~torch.isfinite(X.reshape(m, -1))).nonzero()[0])
            raise ValueError(f"X has a non-finite value at row {r}, column {c} (flattened)")
        Xi = X.reshape(m, *self.image_shape)
        W = self.weights(X.device)
        out = torch.empty(m, self.dim, dtype=torch.float64, device=X.device)
        for s in range(0, m, self.batch):
            maps = torch.nn.functional.conv2d(Xi[s : s + self.batch].to(torch.float64), W).relu_()
            out[s : s + self.batch] = torch.nn.functional.adaptive_avg_pool2d(maps, self.pool).flatten(1)
        return out


def check_kernel_args(kernel: str, gamma, width, features) -> None:
    """Raises ValueError/TypeError for a kernel name, bandwidth, random-feature width or
    feature map that :func:`rethink.min_norm.min_norm_fit` does not accept together."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    if kernel in DISTANCE_KERNELS:
        if gamma is not None:
            check_number("gamma", gamma, low=0, low_open=True)
    elif gamma is not None:
        raise ValueError(f"gamma applies to the rbf and laplacian kernels only, got gamma={gamma!r} "
                         f"with kernel={kernel!r}")
    if kernel == "random_features":
        check_int("width (of kernel='random_features')", width, low=1)
        if features is not None:
            raise ValueError("features cannot be combined with kernel='random_features' (itself a feature map)")
    elif width is not None:
        raise ValueError(f"width applies to kernel='random_features' only, got width={width!r} with kernel={kernel!r}")
    if features is not None and not callable(features):
        raise TypeError(f"features must be a callable feature map, got {type(features).__name__}")


def feature_map(X: torch.Tensor, kernel: str, features, W, b) -> torch.Tensor:
    """phi(X): float64 (m, D) for X float64 (m, d): random ReLU features for kernel
    "random_features" (weights W, b), else ``features(X)`` when a feature map is given, else X."""
    if kernel == "random_features":
        return torch.relu(X @ W.T + b).mul_(math.sqrt(2.0 / W.shape[0]))
    if features is not None:
        F = features(X)
        if not isinstance(F, torch.Tensor) or F.dim() != 2 or F.shape[0] != X.shape[0]:
            raise ValueError(f"features must map (m, d) inputs to an (m, D) tensor, got "
                             f"{type(F).__name__} {tuple(getattr(F, 'shape', ()))}")
        return F.to(torch.float64)
    return X


def random_relu_weights(X: torch.Tensor, width: int, seed: int):
    """(W (width, d), b (width,)) float64 on X's device for the "random_features" kernel,
    drawn on the CPU from ``seed``; W is scaled by the training inputs X (n, d) so that
    ``W x`` has about unit variance."""
    d = X.shape[1]
    g = torch.Generator().manual_seed(check_seed("seed", seed))
    m2 = float((X * X).mean())  # so that W x has about unit variance over the data
    m2 = m2 if m2 > 0 else 1.0
    W = (torch.randn(width, d, generator=g, dtype=torch.float64) / math.sqrt(d * m2)).to(X.device)
    b = torch.randn(width, generator=g, dtype=torch.float64).to(X.device)
    return W, b


def default_gamma(F: torch.Tensor, kernel: str, gamma: float | None) -> float | None:
    """The bandwidth: ``gamma`` when given, else ``1 / (D var(F))`` for rbf and
    ``1 / sqrt(D var(F))`` for laplacian (F (n, D) the training features); None for the
    other kernels."""
    if kernel not in DISTANCE_KERNELS:
        return None
    if gamma is not None:
        return float(gamma)
    var = float(F.var()) if F.numel() > 1 else 0.0
    scale = F.shape[1] * var
    if not scale > 0:
        return 1.0
    return 1.0 / scale if kernel == "rbf" else 1.0 / math.sqrt(scale)


def squared_norms(F: torch.Tensor) -> torch.Tensor:
    """Row squared norms of F (m, D) float64: (m,) float64, same device."""
    return (F * F).sum(1)


def kernel_block(A: torch.Tensor, B: torch.Tensor, kernel: str, gamma: float | None,
                 a_sq: torch.Tensor | None = None, b_sq: torch.Tensor | None = None,
                 same: bool = False) -> torch.Tensor:
    """The kernel between the rows of A (m, D) and B (p, D), both float64 on one device:
    float64 (m, p) on that device.

    ``a_sq``/``b_sq`` are the rows' squared norms (computed when None). ``same=True`` says A
    and B are the same points (a diagonal block): their distances on the diagonal are set to
    exactly 0, so that ``k(x, x)`` is exact (``||a||^2 + ||a||^2 - 2<a, a>`` rounds to about
    1e-16 ||a||^2, whose square root would perturb the Laplacian's diagonal by ~1e-8).
    """
    if kernel not in DISTANCE_KERNELS:
        return A @ B.T
    a_sq = squared_norms(A) if a_sq is None else a_sq
    b_sq = squared_norms(B) if b_sq is None else b_sq
    if kernel == "rbf":  # -gamma ||a - b||^2 in one matrix product, then exp: few passes over K
        K = torch.addmm((a_sq * -gamma).unsqueeze(1) + (b_sq * -gamma).unsqueeze(0), A, B.T, alpha=2.0 * gamma)
        K.clamp_(max=0.0)
        if same:
            K.fill_diagonal_(0.0)
        return K.exp_()
    # ||a||^2 + ||b||^2 - 2 <a, b> in one matrix product (beta = 1 on the broadcast norms)
    K = torch.addmm(a_sq.unsqueeze(1) + b_sq.unsqueeze(0), A, B.T, alpha=-2.0).clamp_(min=0.0)
    if same:
        K.fill_diagonal_(0.0)
    _exact_small_distances(K, A, B, float(a_sq.max()) + float(b_sq.max()))
    return K.sqrt_().mul_(-gamma).exp_()


def _exact_small_distances(D2: torch.Tensor, A: torch.Tensor, B: torch.Tensor, scale: float) -> None:
    """Recomputes, from the differences, the squared distances below 1e-6 * scale: there the
    matrix-product form has lost digits (its error is about 1e-16 * scale), and the square
    root of the Laplacian kernel would turn an error of 1e-16 into 1e-8 near 0."""
    idx = (D2 < 1e-6 * scale).nonzero()
    for s in range(0, idx.shape[0], 4096):
        i, j = idx[s : s + 4096].unbind(1)
        D2[i, j] = (A[i] - B[j]).pow_(2).sum(1)


class KernelOperator:
    """``K + ridge I`` of the rows of F, evaluated block by block in float64, never stored.

    Args:
        F: float64 (n, D) feature vectors, any device.
        kernel: "linear" (also used for "random_features"), "rbf" or "laplacian".
        gamma: bandwidth of rbf/laplacian (None for linear).
        ridge: lambda >= 0 on the diagonal.
        block: rows of one kernel block: the products hold one (block, block) float64
            block and its temporaries at a time.
    """

    def __init__(self, F: torch.Tensor, kernel: str, gamma, ridge: float, block: int):
        self.F, self.kernel, self.gamma, self.ridge, self.block = F, kernel, gamma, ridge, block
        self.sq = squared_norms(F) if kernel in DISTANCE_KERNELS else None
        self.n = F.shape[0]

    def mean_diagonal(self) -> float:
        """Mean of the diagonal of K + ridge I."""
        return (1.0 if self.kernel in DISTANCE_KERNELS else float(squared_norms(self.F).mean())) + self.ridge

    def lower_blocks(self):
        """Yields (i0, i1, j0, j1, K[i0:i1, j0:j1]) for the blocks on and below the diagonal."""
        n, b, F, sq = self.n, self.block, self.F, self.sq
        for i0 in range(0, n, b):
            i1 = min(i0 + b, n)
            for j0 in range(0, i0 + 1, b):
                j1 = min(j0 + b, n)
                Kb = kernel_block(F[i0:i1], F[j0:j1], self.kernel, self.gamma,
                                  None if sq is None else sq[i0:i1], None if sq is None else sq[j0:j1],
                                  same=i0 == j0)
                yield i0, i1, j0, j1, Kb

    def matmul(self, V: torch.Tensor) -> torch.Tensor:
        """(K + ridge I) V for V (n, k) float64 on F's device: float64 (n, k). Each block below
        the diagonal is formed once and used for both of its products (K is symmetric); the
        linear kernel uses F (F^T V) instead."""
        if self.kernel not in DISTANCE_KERNELS:  # K V = F (F^T V): O(n D k)
            out = self.F @ (self.F.T @ V)
        else:
            out = torch.zeros_like(V)
            for i0, i1, j0, j1, Kb in self.lower_blocks():
                out[i0:i1].addmm_(Kb, V[j0:j1])
                if j0 != i0:
                    out[j0:j1].addmm_(Kb.T, V[i0:i1])
        return out.add_(V, alpha=self.ridge) if self.ridge else out

    def form_float32(self, out: torch.Tensor, shift: float) -> None:
        """Writes the lower triangle (and diagonal blocks) of K + (ridge + shift) I into
        ``out`` (n, n) float32; raises ValueError on a non-finite entry."""
        for i0, i1, j0, j1, Kb in self.lower_blocks():
            if not bool(torch.isfinite(Kb).all()):
                raise ValueError(nonfinite_kernel_message(self.F))
            out[i0:i1, j0:j1] = Kb
        if self.ridge + shift:
            out.diagonal().add_(self.ridge + shift)


def nonfinite_kernel_message(F: torch.Tensor) -> str:
    """The error message for a kernel that overflowed, naming the largest feature value."""
    return (f"the kernel matrix has non-finite entries: the inputs (or features) are too large "
            f"(max |value| = {float(F.abs().max()):.3g}); rescale them")
