"""rethink's torch ops (``torch.ops.rethink.*``, compiled in ``rethink._C``): their fake (meta)
kernels, their autograd formulas and the Python wrappers of the conv-net blocks, in one place.

The C++ schemas live beside the CPU kernels (``TORCH_LIBRARY_FRAGMENT`` in csrc/cpu/*.cpp), the
CUDA twins in csrc/cuda/*.cu. A fake kernel checks what the real kernel checks without reading
data (ranks, dtypes, sizes, devices) and returns empty tensors of the real outputs' shapes,
dtypes and memory formats, so the ops work under ``torch.compile`` and on the meta device.

The conv-net blocks (csrc/conv_blocks.h for their exact semantics):

- :func:`local_response_norm` (``rethink::lrn``): torch's cross-channel local response
  normalization, for inputs (N, C, *), with a fused backward.
- :func:`pool_lrn` (``rethink::pool_lrn``): small AlexNet's block tail, ReLU -> max-pool ->
  local response normalization, in one pass forward and one backward.

Both take float16, bfloat16, float32 or float64 inputs in contiguous or channels-last layout
(outputs keep it; other strides are made contiguous), accumulate reduced precision in float32,
and have CPU and CUDA kernels with the same semantics.
"""

from __future__ import annotations

import torch

from . import _build  # noqa: F401  (loads the extension and registers the ops)

#: Names of the integers in ``randomized_batch``'s config argument, in order (csrc/randomized_batch.h).
BATCH_FIELDS = tuple(_build._C.batch_fields())
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


# --- the randomized batch (rethink.loader) -----------------------------------


@torch.library.register_fake("rethink::randomized_batch")
def _randomized_batch_fake(images, labels, indices, config, stats, dtype):
    torch._check(images.dim() == 4 and indices.dim() == 1 and labels.dim() == 1,
                 lambda: "randomized_batch: images must be 4-D, labels and indices 1-D")
    torch._check(images.device == labels.device == indices.device,
                 lambda: f"randomized_batch: images, labels and indices must be on one device, got "
                         f"{images.device}, {labels.device}, {indices.device}")
    torch._check(len(config) == len(BATCH_FIELDS),
                 lambda: f"randomized_batch: config must hold {len(BATCH_FIELDS)} integers")
    cfg = dict(zip(BATCH_FIELDS, config))
    b, c = indices.shape[0], images.shape[1]
    fmt = torch.channels_last if cfg["channels_last"] else torch.contiguous_format
    x = torch.empty((b, c, cfg["out_h"], cfg["out_w"]), dtype=dtype, device=images.device, memory_format=fmt)
    return x, labels.new_empty((b,))


@torch.library.register_fake("rethink::feistel_permutation")
def _feistel_permutation_fake(n, seed, image, split, shared):
    return torch.empty((n,), dtype=torch.int64)


# --- Theorem 1's construction (rethink.expressivity) -------------------------


# The fake (meta) kernels check what the real kernels check without reading data: ranks,
# dtypes, sizes and devices (a call mixing a meta tensor with a real one lands here).
def _require(cond, msg: str) -> None:
    torch._check(cond, lambda: msg)


def _same_device(op: str, **tensors: torch.Tensor) -> None:
    (first, t0), *rest = tensors.items()
    for name, t in rest:
        _require(t.device == t0.device, f"{op}: {name} is on {t.device} but {first} is on {t0.device}")


def _float64(op: str, **tensors: torch.Tensor) -> None:
    for name, t in tensors.items():
        _require(t.dtype == torch.float64, f"{op}: {name} must be float64, got {t.dtype}")


@torch.library.register_fake("rethink::interp_project")
def _(X, A):
    _require(X.dim() == 2, f"interp_project: X must be 2-D (n, d), got {X.dim()}-D")
    _require(A.dim() == 2, f"interp_project: A must be 2-D (C, d), got {A.dim()}-D")
    _float64("interp_project", A=A)
    _require(
        X.dtype in FLOAT_DTYPES,
        f"interp_project: X must be float16, bfloat16, float32 or float64, got {X.dtype}",
    )
    _require(X.shape[1] == A.shape[1], f"interp_project: X has {X.shape[1]} columns but A has {A.shape[1]}")
    _same_device("interp_project", X=X, A=A)
    return X.new_empty((X.shape[0], A.shape[0]), dtype=torch.float64)


@torch.library.register_fake("rethink::interp_sort")
def _(z):
    _require(z.dim() == 2, f"interp_sort: z must be 2-D (C, n), got {z.dim()}-D")
    _float64("interp_sort", z=z)
    return z.new_empty(z.shape), z.new_empty(z.shape, dtype=torch.int64)


@torch.library.register_fake("rethink::interp_weights")
def _(z, y, t):
    _require(z.dim() == 1, f"interp_weights: z must be 1-D (m,), got {z.dim()}-D")
    _require(y.dim() == 2, f"interp_weights: y must be 2-D (m, k), got {y.dim()}-D")
    _float64("interp_weights", z=z, y=y)
    _require(
        y.shape[0] == z.shape[0], f"interp_weights: z has {z.shape[0]} nodes but y has {y.shape[0]} rows"
    )
    _same_device("interp_weights", z=z, y=y)
    _require(0.0 < t < 1.0, f"interp_weights: t must lie in (0, 1), got {t}")
    return z.new_empty(z.shape), y.new_empty(y.shape)


@torch.library.register_fake("rethink::interp_score")
def _(zs, order, y, t):
    _require(zs.dim() == 2 and order.dim() == 2, "interp_score: zs and order must be 2-D (R, n)")
    _require(zs.shape == order.shape, "interp_score: zs and order must have the same shape")
    _float64("interp_score", zs=zs, y=y)
    _require(order.dtype == torch.int64, f"interp_score: order must be int64, got {order.dtype}")
    _require(
        y.dim() == 1 and y.shape[0] == zs.shape[1],
        f"interp_score: y must be 1-D with n = {zs.shape[1]} values",
    )
    _same_device("interp_score", zs=zs, order=order, y=y)
    _require(0.0 < t < 1.0, f"interp_score: t must lie in (0, 1), got {t}")
    return zs.new_empty(zs.shape[:1])


@torch.library.register_fake("rethink::interp_eval")
def _(zq, b, z, y, s):
    _require(zq.dim() == 1 and b.dim() == 1 and z.dim() == 1, "interp_eval: zq, b and z must be 1-D")
    _require(y.dim() == 2 and s.dim() == 2, "interp_eval: y and s must be 2-D (m, k)")
    _float64("interp_eval", zq=zq, b=b, z=z, y=y, s=s)
    _same_device("interp_eval", zq=zq, b=b, z=z, y=y, s=s)
    m = b.shape[0]
    _require(
        z.shape[0] == m and y.shape[0] == m and s.shape[0] == m,
        "interp_eval: b, z, y and s must have the same number of nodes",
    )
    _require(s.shape[1] == y.shape[1], "interp_eval: y and s must have the same number of columns")
    return zq.new_empty((zq.shape[0], y.shape[1]))


# --- the conv-net blocks (rethink.nn) -----------------------------------------


def _layout(x: torch.Tensor) -> torch.memory_format:
    """The memory format the kernels keep: channels-last for a 4-D channels-last (and not also
    contiguous) tensor, else contiguous (csrc/cpu/conv_blocks.cpp's ``format_of``)."""
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def _empty(x: torch.Tensor, shape, dtype=None) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype or x.dtype, device=x.device, memory_format=_layout(x))


def _check_lrn_args(op: str, size, alpha, beta, k) -> None:
    _require(size >= 1, f"{op}: size must be >= 1, got {size}")
    _require(alpha >= 0 and beta >= 0 and k > 0, f"{op}: alpha, beta must be >= 0 and k > 0, got {alpha}, {beta}, {k}")


def _pool_out(n: int, kernel: int, stride: int, padding: int) -> int:
    return (n + 2 * padding - kernel) // stride + 1


@torch.library.register_fake("rethink::lrn")
def _lrn_fake(input, size, alpha, beta, k):
    _require(input.dim() >= 3, f"lrn: input must be (N, C, *) with at least 3 dims, got {input.dim()}-D")
    _require(input.dtype in FLOAT_DTYPES, f"lrn: input must be a floating-point tensor, got {input.dtype}")
    _check_lrn_args("lrn", size, alpha, beta, k)
    return _empty(input, input.shape), _empty(input, input.shape)


@torch.library.register_fake("rethink::lrn_backward")
def _lrn_backward_fake(grad, input, scale, size, alpha, beta, k):
    _require(grad.shape == input.shape == scale.shape, "lrn_backward: grad, input and scale must have one shape")
    _require(grad.dtype == input.dtype == scale.dtype, "lrn_backward: grad, input and scale must have one dtype")
    _check_lrn_args("lrn_backward", size, alpha, beta, k)
    return _empty(input, input.shape)


@torch.library.register_fake("rethink::pool_lrn")
def _pool_lrn_fake(input, kernel_size, stride, padding, relu, size, alpha, beta, k):
    _require(input.dim() == 4, f"pool_lrn: input must be (N, C, H, W), got {input.dim()}-D")
    _require(input.dtype in FLOAT_DTYPES, f"pool_lrn: input must be a floating-point tensor, got {input.dtype}")
    _require(kernel_size >= 1 and stride >= 1 and 0 <= 2 * padding <= kernel_size,
             f"pool_lrn: bad window (kernel_size {kernel_size}, stride {stride}, padding {padding})")
    _check_lrn_args("pool_lrn", size, alpha, beta, k)
    n, c, h, w = input.shape
    _require(h + 2 * padding >= kernel_size and w + 2 * padding >= kernel_size,
             f"pool_lrn: input of {h}x{w} is smaller than the {kernel_size}x{kernel_size} window")
    shape = (n, c, _pool_out(h, kernel_size, stride, padding), _pool_out(w, kernel_size, stride, padding))
    return _empty(input, shape), _empty(input, shape), _empty(input, shape), _empty(input, shape, torch.int32)


@torch.library.register_fake("rethink::pool_lrn_backward")
def _pool_lrn_backward_fake(grad, pooled, scale, argmax, input_size, kernel_size, stride, padding, size, alpha,
                            beta, k):
    _require(grad.shape == pooled.shape == scale.shape == argmax.shape and grad.dim() == 4,
             "pool_lrn_backward: grad, pooled, scale and argmax must have one 4-D shape")
    _require(argmax.dtype == torch.int32, f"pool_lrn_backward: argmax must be int32, got {argmax.dtype}")
    _require(len(input_size) == 4, f"pool_lrn_backward: input_size must hold 4 sizes, got {len(input_size)}")
    _check_lrn_args("pool_lrn_backward", size, alpha, beta, k)
    return _empty(pooled, tuple(input_size))


def _lrn_setup(ctx, inputs, output):
    x, size, alpha, beta, k = inputs
    ctx.save_for_backward(x, output[1])
    ctx.args = (size, alpha, beta, k)


def _lrn_backward(ctx, grad_y, grad_scale):
    x, scale = ctx.saved_tensors
    return torch.ops.rethink.lrn_backward(grad_y, x, scale, *ctx.args), None, None, None, None


torch.library.register_autograd("rethink::lrn", _lrn_backward, setup_context=_lrn_setup)


def _pool_lrn_setup(ctx, inputs, output):
    x, kernel_size, stride, padding, relu, size, alpha, beta, k = inputs
    _, pooled, scale, argmax = output
    ctx.save_for_backward(pooled, scale, argmax)
    ctx.input_size = tuple(x.shape)
    ctx.window = (kernel_size, stride, padding)
    ctx.args = (size, alpha, beta, k)


def _pool_lrn_backward(ctx, grad_y, *unused):
    pooled, scale, argmax = ctx.saved_tensors
    dx = torch.ops.rethink.pool_lrn_backward(grad_y, pooled, scale, argmax, list(ctx.input_size), *ctx.window,
                                             *ctx.args)
    return (dx,) + (None,) * 8


torch.library.register_autograd("rethink::pool_lrn", _pool_lrn_backward, setup_context=_pool_lrn_setup)


def local_response_norm(input: torch.Tensor, size: int, alpha: float = 1e-4, beta: float = 0.75,
                        k: float = 1.0) -> torch.Tensor:
    """Cross-channel local response normalization, ``torch.nn.functional.local_response_norm``'s
    semantics: ``y = x * (k + alpha / size * sum of x^2 over `size` neighbouring channels)^-beta``.

    input: (N, C, *) floating point, contiguous or channels-last; returns the same shape, dtype
    and layout. Differentiable (a fused backward kernel).
    """
    return torch.ops.rethink.lrn(input, int(size), float(alpha), float(beta), float(k))[0]


def pool_lrn(input: torch.Tensor, kernel_size: int, stride: int, padding: int, size: int, alpha: float = 1e-4,
             beta: float = 0.75, k: float = 1.0, relu: bool = True) -> torch.Tensor:
    """ReLU (if ``relu``) -> ``max_pool2d(kernel_size, stride, padding)`` -> local response
    normalization, in one fused op.

    input: (N, C, H, W) floating point, contiguous or channels-last; returns
    (N, C, (H + 2 padding - kernel_size) // stride + 1, likewise for W), same dtype and layout.
    Equal to ``local_response_norm(max_pool2d(relu(input), kernel_size, stride, padding), size,
    alpha, beta, k)``, gradients included (a pooled value the ReLU made zero passes none).
    """
    return torch.ops.rethink.pool_lrn(input, int(kernel_size), int(stride), int(padding), bool(relu), int(size),
                                      float(alpha), float(beta), float(k))[0]
