"""Modules for the paper's conv nets, backed by rethink's fused kernels (:mod:`rethink.ops`).

- :class:`LocalResponseNorm` is a drop-in for ``torch.nn.LocalResponseNorm``: the same
  constructor, semantics and ``repr``, one fused kernel forward and one backward instead of
  torch's chain of pad, avg-pool, pow, mul and div.
- :class:`ReLUMaxPoolLRN` is small AlexNet's block after its convolution, ReLU -> 3x3/2
  max-pool -> local response normalization, in one op forward and one backward.

Inputs are (N, C, H, W) (``LocalResponseNorm``: (N, C, *)), float16/bfloat16/float32/float64,
on the CPU or a CUDA device, in contiguous or channels-last layout (kept in the output).
"""

from __future__ import annotations

import torch
from torch import nn

from . import ops
from ._check import check_int


class LocalResponseNorm(nn.Module):
    """``torch.nn.LocalResponseNorm(size, alpha, beta, k)`` on rethink's fused kernel:
    ``y = x * (k + alpha / size * sum_{c'} x[c']^2)^-beta``, the sum over the ``size`` channels
    ``c - size // 2 .. c + (size - 1) // 2`` (those outside count as zeros)."""

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> None:
        super().__init__()
        check_int("LocalResponseNorm: size", size, low=1)
        if not (alpha >= 0 and beta >= 0 and k > 0):
            raise ValueError(f"LocalResponseNorm: needs alpha >= 0, beta >= 0, k > 0, got {alpha}, {beta}, {k}")
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return ops.local_response_norm(input, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self) -> str:
        return "{size}, alpha={alpha}, beta={beta}, k={k}".format(**self.__dict__)


class ReLUMaxPoolLRN(nn.Module):
    """``nn.Sequential(nn.ReLU(), nn.MaxPool2d(kernel_size, stride, padding),
    nn.LocalResponseNorm(size, alpha, beta, k))`` as one fused op (``relu=False`` drops the
    ReLU). Same values and gradients as that chain (ties in a window go to its first position
    in row-major order, as in torch's max-pool)."""

    def __init__(self, kernel_size: int, stride: int, padding: int, size: int, alpha: float = 1e-4,
                 beta: float = 0.75, k: float = 1.0, relu: bool = True) -> None:
        super().__init__()
        for name, v, low in (("kernel_size", kernel_size, 1), ("stride", stride, 1), ("padding", padding, 0),
                             ("size", size, 1)):
            check_int(f"ReLUMaxPoolLRN: {name}", v, low=low, high=None)
        if 2 * padding > kernel_size:
            raise ValueError(f"ReLUMaxPoolLRN: padding {padding} exceeds half the kernel size {kernel_size}")
        if not (alpha >= 0 and beta >= 0 and k > 0):
            raise ValueError(f"ReLUMaxPoolLRN: needs alpha >= 0, beta >= 0, k > 0, got {alpha}, {beta}, {k}")
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.size, self.alpha, self.beta, self.k, self.relu = size, alpha, beta, k, relu

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return ops.pool_lrn(input, self.kernel_size, self.stride, self.padding, self.size, self.alpha, self.beta,
                            self.k, relu=self.relu)

    def extra_repr(self) -> str:
        return ("kernel_size={kernel_size}, stride={stride}, padding={padding}, size={size}, alpha={alpha}, "
                "beta={beta}, k={k}, relu={relu}").format(**self.__dict__)
