"""Depth k, width O(n/k): the paper's deep variant of Theorem 1 (Zhang et al. 2017, appendix).

The paper states that a depth-k ReLU network of width O(n/k) also fits any n points. This
module builds one that computes *the same function* as the Theorem 1 network of
:mod:`rethink.expressivity` (same direction ``a``, nodes, breakpoints and slopes), with its n
ReLUs split over k hidden layers.

Construction. Let z = <a, x>, let f be Theorem 1's piecewise-linear interpolant along z
(f(z_j) = y_j at the m distinct sorted projections, kinks at the breakpoints
b_0 < z_0 < b_1 < ... < b_{m-1} < z_{m-1}, f = 0 below b_0, slope S_j on [b_j, b_{j+1}],
w_j = S_j - S_{j-1}). Split the nodes into k consecutive blocks of about m/k (block l holds
nodes J_l .. J_{l+1} - 1; each split sits at the widest gap within m/(32k) of its nominal
place). With lo_l = b_{J_l} and hi_l = b_{J_{l+1}} (hi of the last block = +inf),

    f(z) = D_1(z) + ... + D_k(z),   D_l(z) = f(clamp(z, lo_l, hi_l)) - f(lo_l)       (*)

(telescoping: for z in block L the terms l < L give f(hi_l) - f(lo_l) = f(lo_{l+1}) - f(lo_l),
the term L gives f(z) - f(lo_L), the terms l > L give 0; f(lo_1) = f(b_0) = 0). Each D_l is a
sum of ReLUs:

- block 1 (hidden layer 1, input x), in left-pointing form:
  D_1(z) = f(hi_1) - S_{J_2 - 1} relu(hi_1 - z) + sum_{0 < j < J_2} w_j relu(b_j - z) + S_0 relu(b_0 - z);
- a middle block l (hidden layer l), on u = min(z, hi_l) = hi_l - relu(hi_l - z):
  D_l(z) = S_{J_l} relu(u - b_{J_l}) + sum_{J_l < j < J_{l+1}} w_j relu(u - b_j), each unit being
  relu((hi_l - b_j) - M_l) with M_l = relu(hi_l - z) a unit of layer l - 1;
- the last block: the same sum on z itself, each unit relu(z - b_j).

Between layers, z travels as the pair relu(z), relu(-z) (z = relu(z) - relu(-z)) and the
running sum r of the finished blocks as relu(r), relu(-r) per output column; the output
layer adds the last block to relu(r) - relu(-r). Every identity used is exact in real
arithmetic, so the network equals f everywhere, hence reproduces every target (Theorem 1).

Floating point. ``forward`` evaluates f through its segments (Theorem 1's ``interp_eval``):
exact at the training points. The literal network (``to_sequential`` and ``forward_layers``)
rounds: at a training point of block L, every later block gives exactly 0 (each of its units
sees a single rounding of a negative number: the node gaps exceed 64 float64 ulps, the
construction checks the boundary nodes), every earlier middle block gives its own rounded
constant, and block L sums only its own terms. Its error is therefore a sum of block-local
rounding errors plus the first layer's rounding of <a, x> times the local slope; the tests
check it against 1e-6 max|Y| (n <= 3000) and benchmarks/RESULTS_constructions.md reports it
at n = 60,000.
"""

from __future__ import annotations

import torch
from torch import nn

from ._check import check_int
from .theorem1 import InterpolatingNet, _theorem1

__all__ = ["DeepInterpolatingNet", "interpolate_deep"]

#: A split may move this fraction of a block (m / k) to land on a wider gap.
SPLIT_WINDOW = 1 / 32
#: to_sequential() refuses to build dense matrices larger than this many bytes.
MAX_SEQUENTIAL_BYTES = 2**31


class DeepInterpolatingNet(nn.Module):
    """A depth-k ReLU network of width about m/k that computes Theorem 1's function.

    Built by ``rethink.interpolate(X, Y, depth=k)`` (see the module docstring for the
    construction and its proof). Holds the Theorem 1 network ``shallow``
    (:class:`~rethink.expressivity.InterpolatingNet`: direction ``a``, nodes, breakpoints and
    slopes, float64 on the device that built it) and ``block_starts`` (k,) int64, the first
    node of each hidden layer's block.

    Sizes, with m distinct training points (m = n without duplicate rows), block sizes
    m_1 .. m_k (sum m) and K outputs (K = 1 for scalar targets; ``depth`` = k >= 2):

    - ``hidden_widths``: w_1 = m_1 + 3 + [k >= 3]; w_l = m_l + 2K + 2 + [l <= k - 2] for
      1 < l < k; w_k = m_k + 2K.
    - ``num_weights`` = d + sum(w_l) + E: the d entries of ``a`` (every row of the first
      layer is +a or -a), one bias per hidden unit, and the E weight entries the construction
      places in the later layers: m_l + 4 + 2 [l <= k - 2] + 2K (m'_{l-1} + 2 [l >= 3]) into a
      middle layer l, 2 m_k + 2K (m'_{k-1} + 2 [k >= 3]) into the last, K (m_k + 2) into the
      output, where m'_1 = m_1 + 1 and m'_l = m_l otherwise. In all d + (2 + 2K) m + O(kK).
    """

    def __init__(self, shallow: InterpolatingNet, block_starts: torch.Tensor):
        super().__init__()
        self.shallow = shallow
        self.register_buffer("block_starts", block_starts)

    # --- sizes -----------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """k: the number of hidden layers."""
        return self.block_starts.numel()

    @property
    def num_classes(self) -> int | None:
        return self.shallow.num_classes

    @property
    def in_features(self) -> int:
        return self.shallow.in_features

    @property
    def num_outputs(self) -> int:
        return self.shallow.num_outputs

    def block_sizes(self) -> list[int]:
        """m_1 .. m_k: nodes per hidden layer's block."""
        starts = self.block_starts.tolist() + [self.shallow.node_z.numel()]
        return [starts[i + 1] - starts[i] for i in range(self.depth)]

    @property
    def hidden_widths(self) -> list[int]:
        """Width of each hidden layer (formula in the class docstring)."""
        m, k, K = self.block_sizes(), self.depth, self.num_outputs
        widths = [m[0] + 3 + (k >= 3)]
        widths += [m[i] + 2 * K + 2 + (i + 1 <= k - 2) for i in range(1, k - 1)]
        return widths + [m[-1] + 2 * K]

    @property
    def num_weights(self) -> int:
        """d + sum(hidden_widths) + the weight entries after the first layer (class docstring)."""
        m, k, K = self.block_sizes(), self.depth, self.num_outputs
        mp = [m[0] + 1] + m[1:]
        entries = 0
        for i in range(1, k - 1):  # middle layer l = i + 1
            entries += m[i] + 4 + 2 * (i + 1 <= k - 2) + 2 * K * (mp[i - 1] + 2 * (i + 1 >= 3))
        entries += 2 * m[-1] + 2 * K * (mp[k - 2] + 2 * (k >= 3))
        entries += K * (m[-1] + 2)
        return self.in_features + sum(self.hidden_widths) + entries

    # --- evaluation --------------------------------------------------------------------

    def project(self, X: torch.Tensor) -> torch.Tensor:
        """<a, x> per row of X (m, d) as float64 (m,), as at construction."""
        return self.shallow.project(X)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """f(X) in float64 through the segment form (exact at the training points): (m,) for
        scalar targets, (m, K) otherwise. X: (m, d) floating, on the net's device.

        Raises:
            ValueError: X is not 2-D floating, has the wrong number of columns, or lives on
                another device.
        """
        return self.shallow(X)

    def predict(self, X: torch.Tensor) -> torch.Tensor:
        """argmax of f over the K outputs: int64 (m,). Raises ValueError for a scalar net."""
        return self.shallow.predict(X)

    def _parts(self):
        """Per-block tensors of the literal network (float64, on the net's device)."""
        net = self.shallow
        S, b, z = net.node_s, net.node_b, net.node_z
        W = torch.diff(S, dim=0, prepend=torch.zeros_like(S[:1]))
        starts = self.block_starts.tolist()
        W[starts] = S[starts]  # each block opens with the full slope of its first segment
        ends = starts[1:] + [b.numel()]
        hi = [b[e] for e in ends[:-1]]  # hi_l, as 0-d tensors (the last block has none)
        j1 = ends[0] - 1
        c0 = net.node_y[j1] + S[j1] * (hi[0] - z[j1])  # f(hi_1)
        return W, starts, ends, hi, c0

    def forward_layers(self, X: torch.Tensor, chunk_rows: int | None = None) -> torch.Tensor:
        """The literal network evaluated layer by layer: the units and weights of
        :meth:`to_sequential`, without its dense matrices (O(d + m K) per query).

        The projection z = <a, x> is computed once (as in :meth:`forward`); each later unit
        is rounded as in the dense network, sums may be ordered differently. Shapes and
        errors as :meth:`forward`; queries are processed ``chunk_rows`` at a time.
        """
        zq = self.project(X)
        if chunk_rows is None:
            chunk_rows = max(1, 2**24 // max(self.hidden_widths))
        W, starts, ends, hi, c0 = self._parts()
        out = torch.cat(
            [
                self._layers_chunk(zq[i : i + chunk_rows], W, starts, ends, hi, c0)
                for i in range(0, max(zq.numel(), 1), chunk_rows)
            ]
        )
        return out.squeeze(1) if self.shallow.w.dim() == 1 else out

    def _layers_chunk(self, z, W, starts, ends, hi, c0) -> torch.Tensor:
        b, S, k = self.shallow.node_b, self.shallow.node_s, self.depth
        relu = torch.relu
        # hidden layer 1: block 1 (left-pointing), z carried as relu(z), relu(-z), M_2
        s0, e0 = starts[0], ends[0]
        h = relu(b[s0:e0] - z[:, None])
        r = c0 + h @ W[s0:e0] - relu(hi[0] - z)[:, None] * S[e0 - 1]  # running sum of finished blocks
        P, N = relu(z), relu(-z)
        M = relu(hi[1] - z) if k >= 3 else None
        for i in range(1, k - 1):  # middle layers
            s, e = starts[i], ends[i]
            h = relu((hi[i] - b[s:e]) - M[:, None])
            Rp, Rm = relu(r), relu(-r)
            zc = P - N
            P, N = relu(zc), relu(-zc)
            M = relu(hi[i + 1] - zc) if i + 1 <= k - 2 else None
            r = (Rp - Rm) + h @ W[s:e]
        s, e = starts[k - 1], ends[k - 1]
        h = relu((P - N)[:, None] - b[s:e])
        Rp, Rm = relu(r), relu(-r)
        return (Rp - Rm) + h @ W[s:e]

    def to_sequential(self, max_bytes: int = MAX_SEQUENTIAL_BYTES) -> nn.Sequential:
        """The literal network ``Linear -> ReLU -> ... -> Linear`` (k hidden layers, widths
        :attr:`hidden_widths`) in float64 on the net's device; the output layer has no bias.

        It computes the same function as the net up to rounding (module docstring). Its
        matrices are dense, about d m/k + m^2/k entries in all.

        Raises:
            ValueError: the dense matrices would take more than ``max_bytes`` bytes (use
                :meth:`forward_layers` for the same network without them).
        """
        widths, d, K = self.hidden_widths, self.in_features, self.num_outputs
        shapes = list(zip(widths, [d] + widths[:-1])) + [(K, widths[-1])]
        nbytes = 8 * sum(o * i + o for o, i in shapes)
        if nbytes > max_bytes:
            raise ValueError(
                f"to_sequential would hold {nbytes / 2**30:.1f} GiB of dense float64 matrices "
                f"(widths {widths[0]}..{widths[-1]}, depth {self.depth}); max_bytes = {max_bytes}. "
                "forward_layers() evaluates the same network without them"
            )
        mats = _dense_layers(self, widths, d, K)
        kw = dict(dtype=torch.float64, device=self.shallow.a.device)
        layers: list[nn.Module] = []
        for li, (weight, bias) in enumerate(mats):
            lin = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, **kw)
            with torch.no_grad():
                lin.weight.copy_(weight)
                if bias is not None:
                    lin.bias.copy_(bias)
            layers.append(lin)
            if li < len(mats) - 1:
                layers.append(nn.ReLU())
        return nn.Sequential(*layers)

    def extra_repr(self) -> str:
        return (
            f"d={self.in_features}, depth={self.depth}, hidden_widths={self.hidden_widths[0]}.."
            f"{self.hidden_widths[-1]}, outputs={self.num_outputs}, num_weights={self.num_weights}"
        )


def _dense_layers(net: DeepInterpolatingNet, widths, d: int, K: int):
    """[(weight, bias)] of every Linear of the literal network (unit layout in the comments)."""
    W, starts, ends, hi, c0 = net._parts()
    b, S, a, k = net.shallow.node_b, net.shallow.node_s, net.shallow.a, net.depth
    kw = dict(dtype=torch.float64, device=a.device)
    # layer 1 units: [block 1: relu(b_j - z) ..., relu(hi_1 - z)], P, N, [M_2]
    m0 = ends[0] - starts[0]
    sign = torch.full((widths[0],), -1.0, **kw)
    bias = torch.zeros(widths[0], **kw)
    bias[:m0], bias[m0] = b[: ends[0]], hi[0]
    P, N = m0 + 1, m0 + 2
    sign[P] = 1.0
    if k >= 3:
        bias[m0 + 3] = hi[1]
    mats = [(sign[:, None] * a[None, :], bias)]
    # the previous layer's finished block: columns and coefficients (K outputs), constant
    prev_cols = torch.arange(m0 + 1, device=a.device)
    prev_coef = torch.cat([W[: ends[0]], -S[ends[0] - 1 : ends[0]]])
    prev_const = c0
    prev_R = None  # (R+ start, R- start) of the previous layer
    prev_M = m0 + 3 if k >= 3 else None
    for i in range(1, k + 1):
        last_hidden = i == k - 1
        out_layer = i == k
        width = K if out_layer else widths[i]
        Wt = torch.zeros(width, widths[i - 1], **kw)
        bias = None if out_layer else torch.zeros(width, **kw)
        s, e = (starts[i], ends[i]) if not out_layer else (0, 0)
        mi = e - s
        if out_layer:
            Rp = torch.arange(K, device=a.device)
            sign_r = [1.0]
        else:
            if last_hidden:  # relu(z - b_j) from P, N
                Wt[:mi, P], Wt[:mi, N], bias[:mi] = 1.0, -1.0, -b[s:e]
            else:  # relu((hi - b_j) - M)
                Wt[:mi, prev_M], bias[:mi] = -1.0, hi[i] - b[s:e]
            Rp = mi + torch.arange(K, device=a.device)
            sign_r = [1.0, -1.0]
        for sg, rows in zip(sign_r, [Rp, Rp + K]):
            Wt[rows[:, None], prev_cols[None, :]] = sg * prev_coef.t()
            if prev_R is not None:
                Wt[rows, prev_R[0] + torch.arange(K, device=a.device)] = sg
                Wt[rows, prev_R[1] + torch.arange(K, device=a.device)] = -sg
            if prev_const is not None:
                bias[rows] = sg * prev_const
        if not out_layer and not last_hidden:  # carry z (P, N) and M for the next block
            nP, nN = mi + 2 * K, mi + 2 * K + 1
            Wt[nP, P], Wt[nP, N], Wt[nN, P], Wt[nN, N] = 1.0, -1.0, -1.0, 1.0
            if i + 1 <= k - 2:
                Wt[nN + 1, P], Wt[nN + 1, N], bias[nN + 1] = -1.0, 1.0, hi[i + 1]
                prev_M = nN + 1
            P, N = nP, nN
        mats.append((Wt, bias))
        if not out_layer:
            prev_cols = torch.arange(mi, device=a.device)
            prev_coef = W[s:e]
            prev_const = None
            prev_R = (mi, mi + K)
    return mats


def _block_starts(z: torch.Tensor, k: int) -> list[int]:
    """First node of each of k blocks: near l m / k, at the widest gap within SPLIT_WINDOW m / k."""
    m = z.numel()
    gaps = torch.diff(z).tolist()  # gaps[j - 1] = z_j - z_{j-1}
    win = int(SPLIT_WINDOW * m / k)
    starts = [0]
    for i in range(1, k):
        nominal = round(i * m / k)
        lo, hi = max(starts[-1] + 1, nominal - win), min(m - (k - i), nominal + win)
        best = max(range(lo, hi + 1), key=lambda j: (gaps[j - 1], -abs(j - nominal)))
        starts.append(best)
    return starts


def interpolate_deep(
    X: torch.Tensor, Y: torch.Tensor, depth: int, *, num_classes: int | None = None, seed: int = 0
) -> DeepInterpolatingNet:
    """The depth-k network (k = ``depth`` >= 2 hidden layers) that reproduces (X, Y).

    Same X, Y, num_classes and seed as :func:`rethink.interpolate` (which calls this for
    ``depth > 1``); builds Theorem 1's network, then splits its m distinct nodes into
    ``depth`` blocks. Cost: that of Theorem 1 plus O(m K).

    Returns:
        :class:`DeepInterpolatingNet`, float64, on X's device.

    Raises:
        ValueError: everything :func:`rethink.interpolate` raises; ``depth`` < 2 or larger than
            the number m of distinct rows of X (each hidden layer needs one node of its own).
    """
    check_int("depth (interpolate_deep: at least 2 hidden layers)", depth, low=2)
    net = _theorem1(X, Y, num_classes=num_classes, seed=seed)
    m = net.node_z.numel()
    if depth > m:
        raise ValueError(
            f"depth = {depth} hidden layers need at least {depth} distinct rows of X (one node per "
            f"layer), but X has m = {m}"
        )
    starts = _block_starts(net.node_z, depth)
    z, b = net.node_z, net.node_b
    # Middle blocks (layers 2 .. k-1) read min(z, hi) = hi - relu(hi - z): the node just below
    # each block must give a negative pre-activation (hi - b_J) - (hi - z_{J-1}) after rounding.
    for i in range(1, depth - 1):
        J, hi = starts[i], b[starts[i + 1]]
        pre = float((hi - b[J]) - (hi - z[J - 1]))
        if not pre < 0:
            raise ValueError(
                f"the split before node {J} of {m} is too narrow for float64 (pre-activation {pre:.3g} >= 0); "
                "the projections of two rows of X are too close"
            )
    return DeepInterpolatingNet(net, torch.tensor(starts, dtype=torch.int64, device=z.device))
