"""The depth-k network (rethink.depth): the same function as Theorem 1's, in k hidden layers."""

import pytest
import torch
from conftest import DEVICES, interpolation_samples, requires_cuda
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import rethink
from rethink.depth import DeepInterpolatingNet


def targets_of(net, Y):
    if not Y.is_floating_point():
        return torch.nn.functional.one_hot(Y.long(), net.num_classes).double()
    return Y.double()


def expected_sizes(m, k, K, d):
    """hidden widths and num_weights from the block sizes m (list of k), counted from the
    unit layout independently of the module's code: (widths, weights)."""
    widths, entries = [], 0
    for layer in range(1, k + 1):
        ml = m[layer - 1]
        if layer == 1:
            widths.append(ml + 1 + 2 + (k >= 3))  # block + hi unit, relu(z), relu(-z), M_2
            continue
        prev_block = m[layer - 2] + (layer == 2)  # block 1 also has its hi unit
        prev_r = 2 if layer >= 3 else 0  # relu(r), relu(-r) of the previous layer
        r_entries = 2 * K * (prev_block + prev_r)
        if layer < k:
            has_m = layer <= k - 2
            widths.append(ml + 2 * K + 2 + has_m)
            entries += ml + r_entries + 4 + 2 * has_m
        else:
            widths.append(ml + 2 * K)
            entries += 2 * ml + r_entries
    entries += K * (m[-1] + 2)
    return widths, d + sum(widths) + entries


@st.composite
def samples(draw):
    """(X, Y, depth): Gaussian, grid or collinear points in float64, optionally with duplicate
    rows sharing their targets; scalar, multi-column or class targets; 2 <= depth <= m."""
    X, Y = draw(interpolation_samples(kinds=("gaussian", "grid", "line", "duplicates"), min_n=2, max_d=5,
                                      dtypes=(torch.float64,)))
    m = torch.unique(X, dim=0).shape[0]
    assume(m >= 2)
    depth = draw(st.integers(2, min(m, 12)))
    return X, Y, depth


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(samples())
def test_property_same_function_as_theorem1_and_literal_network_fits(sample):
    X, Y, depth = sample
    n, d = X.shape
    net = rethink.interpolate(X, Y, depth=depth)
    shallow = rethink.interpolate(X, Y)
    assert isinstance(net, DeepInterpolatingNet) and net.depth == depth
    T = targets_of(net, Y)
    # the segment form is Theorem 1's, bit for bit: exact at the training points
    out = net(X)
    assert torch.equal(out, shallow(X))
    assert float((out - T).abs().max()) <= 1e-9 * float(T.abs().max())
    if not Y.is_floating_point():
        assert torch.equal(net.predict(X), Y)
    # sizes: the formulas, counted independently
    m = net.block_sizes()
    assert len(m) == depth and sum(m) == net.shallow.node_z.numel() and min(m) >= 1
    K = 1 if T.dim() == 1 else T.shape[1]
    widths, weights = expected_sizes(m, depth, K, d)
    assert net.hidden_widths == widths and net.num_weights == weights
    # the literal network, layer by layer and as nn.Sequential, fits within the tolerance
    scale = float(T.abs().max())
    lay = net.forward_layers(X)
    assert lay.shape == T.shape and float((lay - T).abs().max()) <= 1e-6 * scale
    seq = net.to_sequential()
    linears = [mod for mod in seq if isinstance(mod, torch.nn.Linear)]
    assert [mod.out_features for mod in linears] == widths + [K]
    assert all(isinstance(seq[i], torch.nn.ReLU) for i in range(1, len(seq), 2))
    with torch.no_grad():
        so = seq(X.double())
    so = so.squeeze(1) if T.dim() == 1 else so
    assert float((so - T).abs().max()) <= 1e-6 * scale


@pytest.mark.parametrize("depth", [2, 3, 4, 16])
@pytest.mark.parametrize("target", ["scalar", "labels"])
def test_literal_network_between_the_points_and_at_n_3000(depth, target):
    g = torch.Generator().manual_seed(depth)
    n, d = 3000, 20
    X = torch.randn(n, d, generator=g)
    Y = (
        torch.randn(n, generator=g, dtype=torch.float64)
        if target == "scalar"
        else torch.randint(0, 10, (n,), generator=g)
    )
    net = rethink.interpolate(X, Y, depth=depth)
    T = targets_of(net, Y)
    scale = float(T.abs().max())
    assert float((net.forward_layers(X) - T).abs().max()) <= 1e-6 * scale
    # between the points: the same function as the segment form, up to rounding
    Xq = 2 * torch.randn(2000, d, generator=g)
    torch.testing.assert_close(net.forward_layers(Xq), net(Xq), rtol=0, atol=1e-6 * scale)
    assert max(net.hidden_widths) <= n // depth + 2 * (n // (32 * depth)) + 2 * T.reshape(n, -1).shape[1] + 5
    if target == "labels":
        assert torch.equal(net.predict(X), Y)


def test_to_sequential_equals_forward_layers_and_counts_its_nonzeros():
    g = torch.Generator().manual_seed(1)
    X, Y = torch.randn(400, 6, generator=g, dtype=torch.float64), torch.randn(400, generator=g)
    net = rethink.interpolate(X, Y, depth=5)
    seq = net.to_sequential()
    Xq = torch.randn(300, 6, generator=g, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(seq(Xq).squeeze(1), net.forward_layers(Xq), rtol=0, atol=1e-8)
    linears = [mod for mod in seq if isinstance(mod, torch.nn.Linear)]
    assert linears[-1].bias is None and all(p.dtype == torch.float64 for p in seq.parameters())
    # every first-layer row is +a or -a; later weights are the construction's entries
    W1 = linears[0].weight
    assert bool(((W1 == net.shallow.a) | (W1 == -net.shallow.a)).all())
    nnz = sum(int((mod.weight != 0).sum()) for mod in linears[1:])
    assert net.num_weights == 6 + sum(net.hidden_widths) + nnz


def test_duplicates_share_a_node():
    g = torch.Generator().manual_seed(2)
    X = torch.randn(50, 4, generator=g)
    Y = torch.randint(0, 3, (50,), generator=g)
    X2, Y2 = torch.cat([X, X[:10]]), torch.cat([Y, Y[:10]])
    net = rethink.interpolate(X2, Y2, depth=4)
    assert sum(net.block_sizes()) == 50
    assert torch.equal(net.predict(X2), Y2)
    Y2[55] = (Y2[55] + 1) % 3
    with pytest.raises(ValueError, match="rows 5 and 55 of X are identical but their targets differ"):
        rethink.interpolate(X2, Y2, depth=4)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(depth=0), r"depth \(the number of hidden layers\) must be an integer >= 1"),
        (dict(depth=-2), r"depth \(the number of hidden layers\) must be an integer >= 1"),
        (dict(depth=2.0), r"depth \(the number of hidden layers\) must be an integer >= 1"),
        (dict(depth=True), r"depth \(the number of hidden layers\) must be an integer >= 1"),
        (dict(depth=6), "depth = 6 hidden layers need at least 6 distinct rows of X"),
        (dict(method="deep"), "method must be 'projection' or 'slabs'"),
        (dict(method="slabs", depth=3), "depth must be 1"),
    ],
)
def test_bad_depth_or_method_raise(kwargs, match):
    X = torch.randn(5, 3)
    with pytest.raises(ValueError, match=match):
        rethink.interpolate(X, torch.randn(5), **kwargs)


def test_bad_queries_and_sizes_raise():
    X = torch.randn(30, 3)
    net = rethink.interpolate(X, torch.randn(30), depth=3)
    with pytest.raises(ValueError, match="X has 4 columns but the net expects d = 3"):
        net.forward_layers(torch.randn(2, 4))
    with pytest.raises(ValueError, match="scalar"):
        net.predict(X)
    with pytest.raises(ValueError, match=r"to_sequential would hold .* GiB"):
        net.to_sequential(max_bytes=1000)


def test_same_seed_same_net():
    g = torch.Generator().manual_seed(3)
    X, Y = torch.randn(200, 10, generator=g), torch.randint(0, 10, (200,), generator=g)
    a, b = rethink.interpolate(X, Y, depth=4, seed=5), rethink.interpolate(X, Y, depth=4, seed=5)
    assert torch.equal(a.block_starts, b.block_starts) and torch.equal(a.shallow.a, b.shallow.a)
    assert torch.equal(a.forward_layers(X), b.forward_layers(X))


@pytest.mark.parametrize("device", DEVICES)
def test_runs_on_device(device):
    g = torch.Generator().manual_seed(4)
    X, Y = torch.randn(500, 8, generator=g).to(device), torch.randn(500, 2, generator=g).to(device)
    net = rethink.interpolate(X, Y, depth=3)
    assert net.block_starts.device.type == torch.device(device).type
    assert torch.equal(net(X), Y.double())
    assert float((net.forward_layers(X) - Y.double()).abs().max()) <= 1e-6 * float(Y.abs().max())


@requires_cuda
def test_cuda_net_matches_cpu_net():
    g = torch.Generator().manual_seed(5)
    X, Y = torch.randn(2000, 30, generator=g), torch.randint(0, 10, (2000,), generator=g)
    cpu = rethink.interpolate(X, Y, depth=4, seed=1)
    gpu = rethink.interpolate(X.cuda(), Y.cuda(), depth=4, seed=1)
    assert torch.equal(cpu.block_starts, gpu.block_starts.cpu())
    assert torch.equal(gpu.predict(X.cuda()).cpu(), Y)
