"""rethink.nn / rethink.ops conv-net blocks: values and gradients against torch's modules on
every device (CUDA skipped with a reason when absent), float64 gradcheck, opcheck, layouts,
reduced precision and bad input."""

import pytest
import torch
from conftest import DEVICES
from torch import nn

import rethink.nn as rnn
from rethink import models, ops

LRN = dict(size=9, alpha=0.001, beta=0.75, k=1.0)


def torch_block(kernel=3, stride=2, padding=1, relu=True, **lrn):
    return nn.Sequential(*([nn.ReLU()] if relu else []), nn.MaxPool2d(kernel, stride, padding),
                         nn.LocalResponseNorm(**lrn))


def values_and_grads(module, x, g):
    x = x.clone().requires_grad_()
    y = module(x)
    (y * g).sum().backward()
    return y.detach(), x.grad


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("window", [(3, 2, 1), (2, 2, 0), (3, 1, 1), (5, 3, 2)])
@pytest.mark.parametrize("relu", [True, False])
def test_relu_max_pool_lrn_matches_torch(device, channels_last, window, relu):
    torch.manual_seed(0)
    lrn = dict(size=5, alpha=0.3, beta=0.75, k=2.0)
    x = torch.randn(3, 12, 11, 9, dtype=torch.float64, device=device)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    g = torch.randn_like(torch_block(*window, relu=relu, **lrn)(x))
    y_ref, gx_ref = values_and_grads(torch_block(*window, relu=relu, **lrn), x, g)
    y, gx = values_and_grads(rnn.ReLUMaxPoolLRN(*window, relu=relu, **lrn), x, g)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-12, atol=1e-12)
    assert y.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    assert gx.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(4, 7, 5, 6), (2, 3, 10), (2, 16, 3, 2, 2)])
@pytest.mark.parametrize("size", [1, 2, 4, 9])
@pytest.mark.parametrize("beta", [0.75, 0.5, 0.6])
def test_local_response_norm_matches_torch(device, shape, size, beta):
    torch.manual_seed(1)
    x = torch.randn(shape, dtype=torch.float64, device=device)
    g = torch.randn(shape, dtype=torch.float64, device=device)
    y_ref, gx_ref = values_and_grads(nn.LocalResponseNorm(size, 0.4, beta, 1.5), x, g)
    y, gx = values_and_grads(rnn.LocalResponseNorm(size, 0.4, beta, 1.5), x, g)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-12, atol=1e-12)
    assert repr(rnn.LocalResponseNorm(size, 0.4, beta, 1.5)) == repr(nn.LocalResponseNorm(size, 0.4, beta, 1.5))


@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck_float64(device):
    x = torch.randn(2, 6, 7, 7, dtype=torch.float64, device=device, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: ops.pool_lrn(t, 3, 2, 1, 5, 0.5, 0.75, 1.0), (x,))
    assert torch.autograd.gradcheck(lambda t: ops.pool_lrn(t, 3, 2, 1, 4, 0.5, 0.6, 1.0, relu=False), (x,))
    assert torch.autograd.gradcheck(lambda t: ops.local_response_norm(t, 3, 0.5, 0.6, 1.0), (x,))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("channels_last", [False, True])
def test_opcheck(device, channels_last):
    x = torch.randn(2, 6, 7, 7, device=device)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    x.requires_grad_()
    torch.library.opcheck(torch.ops.rethink.pool_lrn.default, (x, 3, 2, 1, True, 5, 0.5, 0.75, 1.0))
    torch.library.opcheck(torch.ops.rethink.lrn.default, (x, 5, 0.5, 0.75, 1.0))
    y, pooled, scale, argmax = torch.ops.rethink.pool_lrn(x.detach(), 3, 2, 1, True, 5, 0.5, 0.75, 1.0)
    torch.library.opcheck(torch.ops.rethink.pool_lrn_backward.default,
                          (torch.randn_like(y), pooled, scale, argmax, list(x.shape), 3, 2, 1, 5, 0.5, 0.75, 1.0))
    y, scale = torch.ops.rethink.lrn(x.detach(), 5, 0.5, 0.75, 1.0)
    torch.library.opcheck(torch.ops.rethink.lrn_backward.default,
                          (torch.randn_like(y), x.detach(), scale, 5, 0.5, 0.75, 1.0))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_reduced_precision_close_to_float64(device, dtype):
    torch.manual_seed(2)
    # the reference sees the rounded input, so both pick the same maximum of each window
    x = torch.randn(4, 16, 12, 12, dtype=torch.float64, device=device).to(dtype).double()
    g = torch.randn(4, 16, 6, 6, dtype=torch.float64, device=device).to(dtype).double()
    y_ref, gx_ref = values_and_grads(torch_block(**LRN), x, g)
    y, gx = values_and_grads(rnn.ReLUMaxPoolLRN(3, 2, 1, **LRN), x.to(dtype), g.to(dtype))
    assert y.dtype == gx.dtype == dtype
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(y.double(), y_ref, rtol=tol, atol=tol)
    torch.testing.assert_close(gx.double(), gx_ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("device", DEVICES)
def test_nan_propagates_and_relu_zero_passes_no_gradient(device):
    x = torch.full((1, 2, 4, 4), -1.0, device=device)
    x[0, 0, 1, 1] = float("nan")
    x = x.requires_grad_()
    y = ops.pool_lrn(x, 2, 2, 0, 1, 0.1, 0.75, 1.0)
    assert torch.isnan(y[0, 0, 0, 0]) and not torch.isnan(y[0, 0, 1:]).any()
    assert (y[0, 1] == 0).all()  # every value negative: the ReLU gives 0
    y[0, 1].sum().backward()
    assert (x.grad[0, 1] == 0).all()
    # as torch's chain: a NaN input value gets a NaN gradient, the others none
    xr = x.detach().clone().requires_grad_()
    torch_block(2, 2, 0, size=1, alpha=0.1, beta=0.75, k=1.0)(xr)[0, 1].sum().backward()
    torch.testing.assert_close(x.grad, xr.grad, equal_nan=True)


def test_ties_go_to_the_first_position_in_row_major_order():
    x = torch.zeros(1, 1, 3, 3)
    x[0, 0, 0, 2] = x[0, 0, 1, 0] = x[0, 0, 2, 2] = 5.0
    _, _, _, argmax = torch.ops.rethink.pool_lrn(x, 3, 1, 0, True, 1, 0.0, 0.75, 1.0)
    assert argmax.item() == 2  # (0, 2) comes before (1, 0) and (2, 2)
    x_cl = x.expand(1, 2, 3, 3).contiguous().to(memory_format=torch.channels_last)
    _, _, _, argmax = torch.ops.rethink.pool_lrn(x_cl, 3, 1, 0, True, 1, 0.0, 0.75, 1.0)
    assert argmax.flatten().tolist() == [2, 2]


def test_non_standard_strides_are_made_contiguous():
    x = torch.randn(2, 8, 10, 10).transpose(2, 3)  # neither contiguous nor channels-last
    torch.testing.assert_close(rnn.ReLUMaxPoolLRN(3, 2, 1, **LRN)(x), torch_block(**LRN)(x))
    torch.testing.assert_close(rnn.LocalResponseNorm(**LRN)(x), nn.LocalResponseNorm(**LRN)(x))


@pytest.mark.parametrize("kwargs, match", [
    (dict(kernel_size=0, stride=1, padding=0, size=3), "kernel_size"),
    (dict(kernel_size=3, stride=1, padding=2, size=3), "padding"),
    (dict(kernel_size=3, stride=1, padding=1, size=0), "size"),
    (dict(kernel_size=3, stride=True, padding=1, size=3), "stride"),
    (dict(kernel_size=3, stride=1, padding=1, size=3, k=0.0), "k > 0"),
])
def test_module_arguments_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        rnn.ReLUMaxPoolLRN(**kwargs)


def test_op_inputs_checked():
    with pytest.raises(RuntimeError, match="must be .N, C, H, W."):
        ops.pool_lrn(torch.randn(3, 4, 5), 3, 2, 1, 5)
    with pytest.raises(RuntimeError, match="floating-point"):
        ops.pool_lrn(torch.ones(1, 2, 4, 4, dtype=torch.int64), 3, 2, 1, 5)
    with pytest.raises(RuntimeError, match="smaller than"):
        ops.pool_lrn(torch.randn(1, 2, 1, 1), 5, 1, 1, 5)
    with pytest.raises(RuntimeError, match="at least 3 dims"):
        ops.local_response_norm(torch.randn(3, 4), 3)
    y, pooled, scale, argmax = torch.ops.rethink.pool_lrn(torch.randn(1, 2, 6, 6), 3, 2, 1, True, 5, 1e-3, 0.75, 1.0)
    with pytest.raises(RuntimeError, match=r"input_size \[1, 2, 9, 9\] does not pool to \[1, 2, 3, 3\] \(kernel_size 3"):
        torch.ops.rethink.pool_lrn_backward(y, pooled, scale, argmax, [1, 2, 9, 9], 3, 2, 1, 5, 1e-3, 0.75, 1.0)


@pytest.mark.parametrize("device", DEVICES)
def test_small_alexnet_fused_equals_torch_modules(device):
    torch.manual_seed(3)
    a = models.SmallAlexNet((1, 24, 24), 10, fused=True).double().to(device)
    b = models.SmallAlexNet((1, 24, 24), 10, fused=False).double().to(device)
    b.load_state_dict(a.state_dict())  # the same keys: checkpoints of either load into the other
    x = torch.randn(5, 1, 24, 24, dtype=torch.float64, device=device)
    ya, yb = a(x), b(x)
    torch.testing.assert_close(ya, yb, rtol=1e-12, atol=1e-12)
    ya.sum().backward()
    yb.sum().backward()
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, rtol=1e-10, atol=1e-12, msg=name)
    assert any(isinstance(m, rnn.ReLUMaxPoolLRN) for m in a.modules())
