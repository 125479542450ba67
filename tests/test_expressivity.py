"""Theorem 1 (finite-sample expressivity): rethink.interpolate and its ops.

Every op is checked against one plain-PyTorch reference (the dense lower-triangular
system of the paper for the weights), on CPU and, when present, CUDA.
"""

import re

import numpy as np
import pytest
import torch
from conftest import DEVICES, interpolation_samples, requires_cuda
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import rethink
from rethink.expressivity import BREAKPOINT_T

ops = torch.ops.rethink


# --- plain-PyTorch references ------------------------------------------------


def ref_breakpoints(z: torch.Tensor, t: float) -> torch.Tensor:
    """b_0 = z_0 - range (or - max(|z_0|, 1)), b_j = z_{j-1} + t (z_j - z_{j-1})."""
    m = z.shape[0]
    off = (z[-1] - z[0]) if m > 1 else torch.clamp(z[0].abs(), min=1.0)
    b = torch.empty_like(z)
    b[0] = z[0] - off
    b[1:] = z[:-1] + t * (z[1:] - z[:-1])
    return b


def ref_weights(z: torch.Tensor, y: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """w solving the paper's system A w = y, A_ij = max(z_i - b_j, 0) (dense, O(n^2))."""
    A = (z[:, None] - b[None, :]).clamp_min(0)
    return torch.linalg.solve_triangular(A, y, upper=False)


def ref_eval(zq: torch.Tensor, b: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """f(zq) = sum_j w_j relu(zq - b_j), dense."""
    return (zq[:, None] - b[None, :]).clamp_min(0) @ w


def targets_of(net, Y):
    if not Y.is_floating_point():
        return torch.nn.functional.one_hot(Y.long(), net.num_classes).double()
    return Y.double()


# --- ops against the references ---------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("d", [1, 15, 16, 17, 100])
def test_project_matches_reference(device, dtype, d):
    g = torch.Generator().manual_seed(d)
    X = torch.randn(37, d, generator=g).to(dtype).to(device)
    A = torch.randn(3, d, generator=g, dtype=torch.float64).to(device)
    Z = ops.interp_project(X, A)
    assert Z.dtype == torch.float64 and Z.shape == (37, 3)
    ref = X.double() @ A.t()  # exact widening of X, then float64
    torch.testing.assert_close(Z, ref, rtol=1e-12, atol=1e-12 * d)


@pytest.mark.parametrize("device", DEVICES)
def test_project_columns_and_signs_are_bitwise_consistent(device):
    g = torch.Generator().manual_seed(1)
    X = torch.randn(50, 77, generator=g).to(device)
    A = torch.randn(5, 77, generator=g, dtype=torch.float64).to(device)
    Z = ops.interp_project(X, A)
    for c in range(5):
        assert torch.equal(Z[:, c : c + 1], ops.interp_project(X, A[c : c + 1]))
    assert torch.equal(ops.interp_project(X, -A), -Z)
    # same rows, same bits, wherever they sit
    X2 = torch.cat([X[7:8], X, X[7:8]])
    Z2 = ops.interp_project(X2, A)
    assert torch.equal(Z2[0], Z[7]) and torch.equal(Z2[-1], Z[7])


@requires_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_project_cuda_bitwise_equals_cpu(dtype):
    g = torch.Generator().manual_seed(2)
    X = torch.randn(300, 333, generator=g).to(dtype)
    A = torch.randn(4, 333, generator=g, dtype=torch.float64)
    assert torch.equal(ops.interp_project(X, A), ops.interp_project(X.cuda(), A.cuda()).cpu())


@pytest.mark.parametrize("device", DEVICES)
def test_sort_matches_torch_sort(device):
    g = torch.Generator().manual_seed(3)
    z = torch.randn(3, 5000, generator=g, dtype=torch.float64)
    z[0, :100] = 1.5  # ties keep their order
    z[1, 10], z[1, 11], z[1, 12] = -0.0, 0.0, -0.0
    z[2] = torch.arange(5000, 0, -1, dtype=torch.float64)
    v, i = ops.interp_sort(z.to(device))
    rv, ri = torch.sort(z, dim=1, stable=True)
    assert torch.equal(i.cpu(), ri) and torch.equal(v.cpu(), rv)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("m,k", [(1, 1), (2, 3), (40, 1), (200, 4)])
def test_weights_match_dense_triangular_solve(device, m, k):
    g = torch.Generator().manual_seed(m * 10 + k)
    z = torch.sort(torch.randn(m, generator=g, dtype=torch.float64)).values
    y = torch.randn(m, k, generator=g, dtype=torch.float64)
    b, s = ops.interp_weights(z.to(device), y.to(device), BREAKPOINT_T)
    b, s = b.cpu(), s.cpu()
    rb = ref_breakpoints(z, BREAKPOINT_T)
    assert torch.equal(b, rb)
    assert bool((b[1:] > z[:-1]).all() and (b < z).all())
    w_ref = ref_weights(z, y, rb)
    w = torch.diff(s, dim=0, prepend=torch.zeros(1, k, dtype=torch.float64))
    torch.testing.assert_close(w, w_ref, rtol=1e-7, atol=1e-9 * float(w_ref.abs().max()))


@requires_cuda
def test_weights_cuda_scan_agrees_with_cpu_recurrence():
    g = torch.Generator().manual_seed(4)
    z = torch.sort(torch.randn(100_000, generator=g, dtype=torch.float64)).values.unique()
    y = torch.randn(z.shape[0], 10, generator=g, dtype=torch.float64)
    b, s = ops.interp_weights(z, y, BREAKPOINT_T)
    bc, sc = ops.interp_weights(z.cuda(), y.cuda(), BREAKPOINT_T)
    assert torch.equal(bc.cpu(), b)
    torch.testing.assert_close(sc.cpu(), s, rtol=1e-9, atol=1e-9 * float(s.abs().max()))


@pytest.mark.parametrize("device", DEVICES)
def test_eval_matches_dense_sum_and_hits_nodes_exactly(device):
    g = torch.Generator().manual_seed(5)
    m, k = 60, 3
    z = torch.sort(torch.randn(m, generator=g, dtype=torch.float64)).values
    y = torch.randn(m, k, generator=g, dtype=torch.float64)
    b, s = ops.interp_weights(z, y, BREAKPOINT_T)
    w = torch.diff(s, dim=0, prepend=torch.zeros(1, k, dtype=torch.float64))
    zq = torch.cat([z, torch.linspace(-5, 5, 1001, dtype=torch.float64), b, torch.tensor([float("nan")])])
    out = ops.interp_eval(*(t.to(device) for t in (zq, b, z, y, s))).cpu()
    assert torch.equal(out[:m], y)  # f(z_j) = y_j exactly
    assert bool(out[-1].isnan().all())
    ref = ref_eval(zq[:-1], b, w)
    scale = float(y.abs().max())
    torch.testing.assert_close(out[:-1], ref, rtol=0, atol=1e-8 * scale * float(w.abs().max()))


def ref_score(zs: torch.Tensor, order: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """sum_j |w_j| (z_max - b_j) per row, w from the dense solve over the distinct nodes."""
    out = []
    for z_row, o_row in zip(zs, order):
        first = torch.ones_like(z_row, dtype=torch.bool)
        first[1:] = z_row[1:] != z_row[:-1]
        z, yy = z_row[first], y[o_row[first]]
        b = ref_breakpoints(z, BREAKPOINT_T)
        w = ref_weights(z, yy[:, None], b).squeeze(1)
        out.append(float((w.abs() * (z[-1] - b)).sum()))
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("device", DEVICES)
def test_score_matches_dense_reference(device):
    g = torch.Generator().manual_seed(14)
    n = 80
    Z = torch.randn(5, n, generator=g, dtype=torch.float64)
    Z[1, 40:] = Z[1, :40]  # duplicate rows: ties in the sorted projections
    Z[3] = 2.5  # a single distinct node
    y = torch.randn(n, generator=g, dtype=torch.float64)
    y[40:] = y[:40]
    zs, order = torch.sort(Z, dim=1, stable=True)
    got = ops.interp_score(zs.to(device), order.to(device), y.to(device), BREAKPOINT_T).cpu()
    torch.testing.assert_close(got, ref_score(zs, order, y), rtol=1e-7, atol=0)


def _op_samples(device):
    g = torch.Generator().manual_seed(6)
    X = torch.randn(9, 20, generator=g).to(device)
    A = torch.randn(2, 20, generator=g, dtype=torch.float64).to(device)
    z = torch.sort(torch.randn(7, generator=g, dtype=torch.float64)).values.to(device)
    y = torch.randn(7, 2, generator=g, dtype=torch.float64).to(device)
    b, s = ops.interp_weights(z, y, BREAKPOINT_T)
    zq = torch.randn(11, generator=g, dtype=torch.float64).to(device)
    return {
        "interp_project": (X, A),
        "interp_sort": (torch.randn(3, 8, generator=g, dtype=torch.float64).to(device),),
        "interp_weights": (z, y, BREAKPOINT_T),
        "interp_eval": (zq, b, z, y, s),
        "interp_score": (
            z.expand(2, 7).contiguous(),
            torch.arange(7).expand(2, 7).contiguous().to(device),
            y[:, 0],
            0.25,
        ),
    }


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "name", ["interp_project", "interp_sort", "interp_weights", "interp_eval", "interp_score"]
)
def test_opcheck(device, name):
    torch.library.opcheck(getattr(ops, name).default, _op_samples(device)[name])


def test_ops_reject_bad_arguments_without_crashing():
    X = torch.randn(4, 3)
    with pytest.raises(RuntimeError, match="columns"):
        ops.interp_project(X, torch.randn(2, 5, dtype=torch.float64))
    with pytest.raises(RuntimeError, match="float64"):
        ops.interp_project(X, torch.randn(2, 3))
    with pytest.raises(RuntimeError, match="float16, bfloat16, float32 or float64"):
        ops.interp_project(X.long(), torch.randn(2, 3, dtype=torch.float64))
    with pytest.raises(RuntimeError, match="nodes"):
        ops.interp_weights(torch.zeros(3, dtype=torch.float64), torch.zeros(4, 1, dtype=torch.float64), 0.1)
    with pytest.raises(RuntimeError, match="t must lie"):
        ops.interp_weights(torch.zeros(3, dtype=torch.float64), torch.zeros(3, 1, dtype=torch.float64), 1.5)
    z = torch.zeros(3, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="indices outside"):
        ops.interp_score(z[None], torch.tensor([[0, 1, 5]]), z, 0.25)
    with pytest.raises(RuntimeError, match="same number of nodes"):
        ops.interp_eval(
            z, z, z[:2], torch.zeros(3, 1, dtype=torch.float64), torch.zeros(3, 1, dtype=torch.float64)
        )


def _valid_op_args(device):
    """Valid arguments of every op (sorted nodes, finite values), for the precondition tests."""
    f64 = dict(dtype=torch.float64, device=device)
    z = torch.tensor([-1.0, 0.5, 2.0], **f64)
    y = torch.tensor([[1.0], [-2.0], [0.5]], **f64)
    b, s = ops.interp_weights(z, y, BREAKPOINT_T)
    return z, y, b, s


@pytest.mark.parametrize("device", DEVICES)
def test_raw_ops_check_the_preconditions_they_rely_on(device):
    z, y, b, s = _valid_op_args(device)
    bad = z.clone()
    bad[2] = bad[1]
    with pytest.raises(RuntimeError, match=r"interp_weights: z must be strictly increasing, but z\[2\]"):
        ops.interp_weights(bad, y, BREAKPOINT_T)
    for name, value in [("z", float("nan")), ("y", float("inf"))]:
        args = {"z": z.clone(), "y": y.clone()}
        args[name].view(-1)[1] = value
        with pytest.raises(RuntimeError, match=rf"interp_weights: {name} must be finite"):
            ops.interp_weights(args["z"], args["y"], BREAKPOINT_T)
    zq = torch.linspace(-3, 3, 7, dtype=torch.float64, device=device)
    with pytest.raises(RuntimeError, match=r"interp_eval: b must be strictly increasing"):
        ops.interp_eval(zq, b.flip(0), z, y, s)
    with pytest.raises(RuntimeError, match=r"interp_eval: z must be strictly increasing"):
        ops.interp_eval(zq, b, z.flip(0), y, s)
    s_bad = s.clone()
    s_bad[0, 0] = float("inf")
    with pytest.raises(RuntimeError, match=r"interp_eval: s must be finite"):
        ops.interp_eval(zq, b, z, y, s_bad)
    order = torch.arange(3, device=device)[None]
    with pytest.raises(RuntimeError, match=r"interp_score: zs must be sorted ascending, but zs\[1\] = \S+ < zs\[0\] = "
                                           r"\S+ in row 0"):
        ops.interp_score(z.flip(0)[None], order, y[:, 0], BREAKPOINT_T)
    with pytest.raises(RuntimeError, match=r"interp_score: zs must be finite"):
        ops.interp_score(
            torch.full((1, 3), float("nan"), dtype=torch.float64, device=device), order, y[:, 0], 0.25
        )
    with pytest.raises(RuntimeError, match=r"interp_sort: z must be finite"):
        ops.interp_sort(torch.tensor([[0.0, float("nan")]], dtype=torch.float64, device=device))
    # NaN queries are allowed: they propagate
    assert bool(
        ops.interp_eval(torch.tensor([float("nan")], dtype=torch.float64, device=device), b, z, y, s)
        .isnan()
        .all()
    )


def test_ops_with_a_meta_argument_raise_instead_of_returning_garbage():
    """A meta tensor among real ones dispatches to the fake kernel: it must check devices
    (and everything else the real kernel checks without reading data)."""
    z, y, b, s = _valid_op_args("cpu")
    X, A = torch.randn(4, 3), torch.randn(2, 3, dtype=torch.float64)
    meta = lambda t: t.to("meta")  # noqa: E731
    cases = [
        ("interp_project", (X, meta(A))),
        ("interp_project", (meta(X), A)),
        ("interp_weights", (z, meta(y), BREAKPOINT_T)),
        ("interp_score", (z[None], meta(torch.arange(3)[None]), y[:, 0], BREAKPOINT_T)),
        ("interp_eval", (z, b, z, y, meta(s))),
        ("interp_eval", (meta(z), b, z, y, s)),
    ]
    for name, args in cases:
        with pytest.raises(RuntimeError, match=r"is on (meta|cpu) but \w+ is on (cpu|meta)"):
            getattr(ops, name)(*args)


@pytest.mark.parametrize(
    "name,args,match",
    [
        ("interp_project", lambda m: (m(4, 3), m(2, 5, f64=True)), "X has 3 columns but A has 5"),
        ("interp_project", lambda m: (m(4, 3), m(2, 3)), "A must be float64"),
        (
            "interp_weights",
            lambda m: (m(3, f64=True), m(4, 1, f64=True), 0.1),
            "z has 3 nodes but y has 4 rows",
        ),
        ("interp_weights", lambda m: (m(3, f64=True), m(3, 1, f64=True), 1.5), "t must lie in"),
        ("interp_sort", lambda m: (m(3, f64=True),), "z must be 2-D"),
        (
            "interp_score",
            lambda m: (m(2, 3, f64=True), m(2, 4, f64=True), m(3, f64=True), 0.25),
            "same shape",
        ),
        (
            "interp_eval",
            lambda m: (m(5, f64=True), m(3, f64=True), m(2, f64=True), m(3, 1, f64=True), m(3, 1, f64=True)),
            "same number of nodes",
        ),
    ],
)
def test_fake_kernels_check_shapes_like_the_real_ones(name, args, match):
    def on(device):
        def make(*shape, f64=False):
            return torch.zeros(*shape, dtype=torch.float64 if f64 else torch.float32, device=device)

        return make

    for device in ["cpu", "meta"]:  # the real kernel, then the fake one
        with pytest.raises(RuntimeError, match=match):
            getattr(ops, name)(*args(on(device)))


def test_fake_kernels_give_shapes_on_meta():
    f64 = dict(dtype=torch.float64, device="meta")
    Z = ops.interp_project(torch.empty(7, 3, device="meta"), torch.empty(2, 3, **f64))
    assert Z.shape == (7, 2) and Z.dtype == torch.float64 and Z.device.type == "meta"
    b, s = ops.interp_weights(torch.empty(5, **f64), torch.empty(5, 2, **f64), BREAKPOINT_T)
    assert b.shape == (5,) and s.shape == (5, 2)
    out = ops.interp_eval(torch.empty(9, **f64), b, torch.empty(5, **f64), s, s)
    assert out.shape == (9, 2)


# --- rethink.interpolate: extreme targets and scales --------------------------


def test_overflowing_slope_raises_naming_the_rows():
    X = torch.tensor([[0.0], [1e-10], [1.0]], dtype=torch.float64)
    Y = torch.tensor([1e300, -1e300, 1e300], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"slope between rows [01] and [01] of X overflows float64"):
        rethink.interpolate(X, Y)
    # the same gap with moderate targets is fine, and exact
    Y = torch.tensor([1e3, -1e3, 1e3], dtype=torch.float64)
    assert torch.equal(rethink.interpolate(X, Y)(X), Y)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(2, 12),
    st.integers(1, 3),
    st.sampled_from([-300, -150, -10, 0, 10, 150, 290, 300]),
    st.sampled_from([-300, -100, -12, 0, 12, 100, 300, 306]),
    st.integers(0, 2**32 - 1),
)
def test_property_extreme_scales_reproduce_or_raise(n, d, x_exp, y_exp, seed):
    """Finite X and Y at any scale: the net reproduces its targets or raises a ValueError that
    names the reason; it never outputs NaN or inf."""
    rng = np.random.default_rng(seed)
    pts = rng.standard_normal((n, d))
    pts[1] = pts[0] + 1e-9 * rng.standard_normal(d)  # a tiny gap
    X = torch.tensor(pts * 10.0**x_exp)
    assume(bool(torch.isfinite(X).all()) and torch.unique(X, dim=0).shape[0] == n)
    Y = torch.tensor(rng.choice([-1.0, 1.0], size=n) * 10.0**y_exp * rng.uniform(0.5, 1.0, size=n))
    try:
        net = rethink.interpolate(X, Y)
    except ValueError as e:
        assert re.search(r"overflow|too close|too large", str(e)), str(e)
        return
    out = net(X)
    assert bool(torch.isfinite(out).all())
    assert float((out - Y).abs().max()) <= 1e-9 * float(Y.abs().max())
    for t in (net.b, net.w, net.node_s):
        assert bool(torch.isfinite(t).all())


# --- rethink.interpolate: properties -----------------------------------------


def samples():
    """(X, Y): distinct points (Gaussian, integer grid, on a line, with near-duplicates) or
    exact duplicates sharing a target, and any targets."""
    return interpolation_samples(kinds=("gaussian", "grid", "line", "near_duplicates", "duplicates"))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)
@given(samples())
def test_property_reproduces_any_targets(sample):
    X, Y = sample
    n, d = X.shape
    net = rethink.interpolate(X, Y)
    T = targets_of(net, Y)
    k = 1 if T.dim() == 1 else T.shape[1]
    assert net.num_weights == (2 * n + d if T.dim() == 1 else d + n + n * k)
    assert net.a.dtype == net.b.dtype == net.w.dtype == torch.float64
    assert net.a.shape == (d,) and net.b.shape == (n,) and net.w.shape == T.shape
    assert bool((net.b[1:] >= net.b[:-1]).all())
    out = net(X)
    assert out.dtype == torch.float64 and out.shape == T.shape
    assert float((out - T).abs().max()) <= 1e-9 * float(T.abs().max())
    if not Y.is_floating_point():
        assert torch.equal(net.predict(X), Y)
    # the theorem's form, summed densely, gives the same function on the sample
    z = net.project(X)
    dense = ref_eval(z, net.b, net.w)
    tol = 1e-9 * float((net.w.abs() * (z.max() - net.b).reshape(n, *([1] * (net.w.dim() - 1)))).sum())
    assert float((dense - T).abs().max()) <= tol + 1e-12


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 30), st.integers(1, 5), st.data())
def test_property_conflicting_duplicates_name_both_rows(n, d, data):
    X = torch.randn(n, d, generator=torch.Generator().manual_seed(n * 7 + d), dtype=torch.float64)
    i, j = sorted(data.draw(st.lists(st.integers(0, n - 1), min_size=2, max_size=2, unique=True)))
    X[j] = X[i]
    Y = torch.arange(n, dtype=torch.float64)
    with pytest.raises(ValueError, match=rf"rows {i} and {j} of X are identical but their targets differ"):
        rethink.interpolate(X, Y)
    Y[j] = Y[i]  # identical rows with identical targets are fine
    net = rethink.interpolate(X, Y)
    assert torch.equal(net(X), Y)
    assert net.num_weights == 2 * n + d


@pytest.mark.parametrize(
    "X,Y,match",
    [
        (torch.randn(5), torch.randn(5), "2-D"),
        (torch.randn(2, 3, 4), torch.randn(2), "2-D"),
        (torch.randn(0, 3), torch.randn(0), "n = 0"),
        (torch.randn(4, 0), torch.randn(4), "d = 0"),
        (torch.randn(4, 3), torch.randn(5), "length mismatch"),
        (torch.randint(0, 3, (4, 3)), torch.randn(4), "float16, bfloat16, float32 or float64"),
        (torch.randn(4, 3), torch.randn(4, 2, 2), r"\(n,\) or \(n, k\)"),
        (torch.randn(4, 3), torch.tensor([0, 1, -1, 2]), "labels must be >= 0"),
        (torch.randn(4, 3), torch.tensor([True, False, True, True]), "floating targets or integer"),
    ],
)
def test_invalid_inputs_raise(X, Y, match):
    with pytest.raises(ValueError, match=match):
        rethink.interpolate(X, Y)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_nonfinite_values_are_named(bad):
    X = torch.randn(6, 4)
    X[3, 2] = bad
    with pytest.raises(ValueError, match=r"NaN or inf value: X\[3, 2\]"):
        rethink.interpolate(X, torch.randn(6))
    Y = torch.randn(6, 2)
    Y[4, 1] = bad
    with pytest.raises(ValueError, match=r"Y has a NaN or inf value \(row 4\)"):
        rethink.interpolate(torch.randn(6, 4), Y)


def test_other_bad_arguments():
    X = torch.randn(5, 3)
    with pytest.raises(ValueError, match="num_classes = 2 but the largest label is 3"):
        rethink.interpolate(X, torch.tensor([0, 1, 3, 1, 0]), num_classes=2)
    with pytest.raises(ValueError, match="only meaningful with integer class labels"):
        rethink.interpolate(X, torch.randn(5), num_classes=3)
    X64 = torch.zeros(2, 2, dtype=torch.float64)
    X64[0, 0], X64[1, 0] = 1.0, float(np.nextafter(1.0, 2.0))
    with pytest.raises(ValueError, match="rows 0 and 1 of X are distinct but too close"):
        rethink.interpolate(X64, torch.tensor([0.0, 1.0]))
    net = rethink.interpolate(X, torch.randn(5))
    with pytest.raises(ValueError, match="X has 4 columns but the net expects d = 3"):
        net(torch.randn(2, 4))
    with pytest.raises(ValueError, match="2-D"):
        net(torch.randn(3))
    with pytest.raises(ValueError, match="scalar"):
        net.predict(X)


@pytest.mark.parametrize("method, depth", [("projection", 1), ("projection", 2), ("slabs", 1)])
@pytest.mark.parametrize("kwargs, Y, match", [
    (dict(seed=2**64), torch.randn(6), r"seed must be an integer in \[0, 2\^63\), got 18446744073709551616"),
    (dict(seed=1.5), torch.randn(6), "seed must be an integer"),
    (dict(seed="0"), torch.randn(6), "seed must be an integer"),
    ({}, torch.randn(6, 0), "Y has no target columns"),
    (dict(num_classes=2**40), torch.zeros(6, dtype=torch.long), "num_classes must be an integer >= 1 and <= 1048576"),
    (dict(num_classes=2.0), torch.zeros(6, dtype=torch.long), "num_classes must be an integer"),
])
def test_every_construction_names_bad_seeds_targets_and_class_counts(method, depth, kwargs, Y, match):
    with pytest.raises(ValueError, match=match):
        rethink.interpolate(torch.randn(6, 3), Y, method=method, depth=depth, **kwargs)


def test_same_seed_same_net_and_seed_matters():
    g = torch.Generator().manual_seed(7)
    X, Y = torch.randn(500, 20, generator=g), torch.randint(0, 10, (500,), generator=g)
    a, b = rethink.interpolate(X, Y, seed=3), rethink.interpolate(X, Y, seed=3)
    for name in ["a", "b", "w", "node_z", "node_b", "node_y", "node_s"]:
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert not torch.equal(rethink.interpolate(X, Y, seed=4).a, a.a)


def test_to_sequential_is_the_literal_network():
    g = torch.Generator().manual_seed(8)
    X, Y = torch.randn(300, 7, generator=g, dtype=torch.float64), torch.randn(300, 2, generator=g)
    net = rethink.interpolate(X, Y)
    seq = net.to_sequential()
    assert [type(m) for m in seq] == [torch.nn.Linear, torch.nn.ReLU, torch.nn.Linear]
    assert seq[0].weight.shape == (300, 7) and seq[2].weight.shape == (2, 300) and seq[2].bias is None
    assert all(p.dtype == torch.float64 for p in seq.parameters())
    with torch.no_grad():
        out = seq(X)
        Xq = torch.randn(1000, 7, generator=g, dtype=torch.float64)
        ref_q = seq(Xq)
    T = Y.double()
    assert float((out - T).abs().max()) <= 1e-6 * float(T.abs().max())
    # between the sample points too: the same function
    torch.testing.assert_close(net(Xq), ref_q, rtol=0, atol=1e-6 * float(T.abs().max()))
    # scalar targets: k = 1 output column
    net1 = rethink.interpolate(X, Y[:, 0])
    with torch.no_grad():
        torch.testing.assert_close(net1.to_sequential()(X).squeeze(1), Y[:, 0].double(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_low_precision_X_is_read_exactly(dtype):
    g = torch.Generator().manual_seed(9)
    X = torch.randn(400, 30, generator=g).to(dtype)
    Y = torch.randint(0, 10, (400,), generator=g)
    net = rethink.interpolate(X, Y)
    assert torch.equal(net.predict(X), Y)
    # the projection is that of the exact float64 values of X
    torch.testing.assert_close(net.project(X), X.double() @ net.a, rtol=1e-13, atol=1e-13)


# --- CPU vs CUDA ---------------------------------------------------------------


@requires_cuda
def test_cuda_net_equals_cpu_net():
    g = torch.Generator().manual_seed(10)
    X, Y = torch.randn(3000, 50, generator=g), torch.randn(3000, 3, generator=g)
    cpu = rethink.interpolate(X, Y, seed=1)
    gpu = rethink.interpolate(X.cuda(), Y.cuda(), seed=1)
    assert gpu.a.is_cuda and gpu.w.is_cuda
    assert torch.equal(gpu.a.cpu(), cpu.a) and torch.equal(gpu.b.cpu(), cpu.b)
    torch.testing.assert_close(gpu.w.cpu(), cpu.w, rtol=1e-8, atol=1e-8 * float(cpu.w.abs().max()))
    assert torch.equal(gpu(X.cuda()).cpu(), Y.double())
    # a CPU-built net moved to the GPU projects with the same bits
    assert torch.equal(cpu.cuda()(X.cuda()).cpu(), Y.double())


@pytest.mark.parametrize("device", DEVICES)
def test_matches_dense_reference_small_n(device):
    g = torch.Generator().manual_seed(11)
    X, Y = torch.randn(64, 5, generator=g), torch.randn(64, generator=g)
    net = rethink.interpolate(X.to(device), Y.to(device)).cpu()
    z = net.project(X)
    order = torch.argsort(z)
    w_ref = ref_weights(z[order], Y.double()[order, None], net.b).squeeze(1)
    torch.testing.assert_close(net.w, w_ref, rtol=1e-7, atol=1e-9 * float(w_ref.abs().max()))


# --- exactness targets ---------------------------------------------------------


@pytest.mark.slow
def test_exact_on_50000_points_in_3072_dimensions():
    g = torch.Generator().manual_seed(12)
    n, d = 50_000, 3072
    X = torch.randn(n, d, generator=g)  # float32, 614 MB
    labels = torch.randint(0, 10, (n,), generator=g)
    net = rethink.interpolate(X, labels)
    assert net.num_weights == d + n + 10 * n
    assert torch.equal(net.predict(X), labels)
    Y = torch.randn(n, generator=g, dtype=torch.float64) * 100
    net = rethink.interpolate(X, Y)
    assert float((net(X) - Y).abs().max()) <= 1e-9 * float(Y.abs().max())


@pytest.mark.slow
@pytest.mark.parametrize("classes", [None, 10])
def test_to_sequential_within_1e6_at_n_10000(classes):
    g = torch.Generator().manual_seed(13)
    n, d = 10_000, 64
    X = torch.randn(n, d, generator=g)
    Y = (
        torch.randn(n, generator=g, dtype=torch.float64)
        if classes is None
        else torch.randint(0, classes, (n,), generator=g)
    )
    net = rethink.interpolate(X, Y)
    T = targets_of(net, Y)
    with torch.no_grad():
        out = net.to_sequential()(X.double())
    out = out.squeeze(1) if classes is None else out
    assert float((out - T).abs().max()) <= 1e-6 * float(T.abs().max())
