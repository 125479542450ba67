"""The exact-fit constructions' one front end: :func:`interpolate`.

It validates the choice of construction and dispatches to Theorem 1
(:mod:`rethink.theorem1`: two layers, 2n + d weights), the paper's depth-k network
(:mod:`rethink.depth`) or Baum's slabs (:mod:`rethink.slabs`). Each construction lives in
its own module, below this one; the sample validators they share are in
:mod:`rethink.theorem1`.
"""

from __future__ import annotations

import torch
from torch import nn

from ._check import check_int, check_seed
from .depth import interpolate_deep
from .slabs import interpolate_slabs
from .theorem1 import (
    BREAKPOINT_T,
    EXTRA_ROUNDS_MAX_N,
    MAX_ROUNDS,
    NUM_CANDIDATES,
    InterpolatingNet,
    _theorem1,
)

__all__ = ["interpolate", "InterpolatingNet", "BREAKPOINT_T", "NUM_CANDIDATES", "MAX_ROUNDS", "EXTRA_ROUNDS_MAX_N"]


def interpolate(
    X: torch.Tensor,
    Y: torch.Tensor,
    *,
    num_classes: int | None = None,
    seed: int = 0,
    depth: int = 1,
    method: str = "projection",
) -> nn.Module:
    """Build a ReLU network that reproduces the sample (X, Y) exactly.

    Three constructions (docs/CONSTRUCTIONS.md compares them):

    - ``method="projection", depth=1`` (default): the network of Theorem 1,
      :class:`InterpolatingNet`, 2n + d weights.
    - ``method="projection", depth=k > 1``: the paper's depth-k network of width O(n/k),
      :class:`rethink.depth.DeepInterpolatingNet` (the same function, split into k hidden
      layers).
    - ``method="slabs"``: Baum's construction in ReLU form (Bubeck, Eldan, Lee, Mikulincer
      2020), :class:`rethink.slabs.SlabNet`, two layers with about 4 ceil(n / d) neurons.

    Args:
        X: (n, d) float16/bfloat16/float32/float64 tensor on CPU or CUDA. The projection
            constructions read it once, in its own dtype (never copied to float64); the slab
            construction copies it to float64.
        Y: (n,) or (n, k) floating targets (regression), or (n,) integer class labels
            (classification: one-hot targets with ``num_classes`` columns). Moved to X's
            device.
        num_classes: number of classes for integer labels; default max(label) + 1.
        seed: seeds the random choices (the direction ``a``; the slabs' grouping): same seed,
            same net.
        depth: number of hidden layers (``method="projection"`` only; 1 for slabs).
        method: ``"projection"`` or ``"slabs"``.

    Returns:
        an ``nn.Module`` with float64 weights on X's device whose ``forward`` reproduces the
        targets at every training point (for depth 1: exactly at the nodes of the segment form).

    Cost (depth 1): O(n d) for the projection, O(n log n) for the sort, O(n k) for the weights.

    Raises:
        ValueError: X is not a 2-D floating tensor, n = 0 or d = 0, Y's length differs from
            n, X or Y holds NaN or inf, labels are negative or exceed ``num_classes``, two
            identical rows of X have different targets (both row indices are named), two
            distinct rows are so close that no float64 projection separates them, a slope or
            weight of the network would overflow float64 (the rows are named), or ``depth`` /
            ``method`` is invalid (and what :func:`rethink.depth.interpolate_deep` and
            :func:`rethink.slabs.interpolate_slabs` raise).
    """
    if method not in ("projection", "slabs"):
        raise ValueError(f"method must be 'projection' or 'slabs', got {method!r}")
    seed = check_seed("seed", seed)
    depth = check_int("depth (the number of hidden layers)", depth, low=1)
    if method == "slabs":
        if depth != 1:
            raise ValueError(f"method='slabs' builds one hidden layer: depth must be 1, got {depth}")
        return interpolate_slabs(X, Y, num_classes=num_classes, seed=seed)
    if depth > 1:
        return interpolate_deep(X, Y, depth, num_classes=num_classes, seed=seed)
    return _theorem1(X, Y, num_classes=num_classes, seed=seed)
