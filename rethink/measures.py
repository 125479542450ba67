"""Complexity measures of trained networks, and the study that ranks them by how well
they predict the generalization gap (Jiang et al. 2020, "Fantastic generalization
measures and where to find them"; Dziugaite et al. 2020).

Every measure works on any ``nn.Module`` whose weights live in ``nn.Linear`` and
``nn.Conv2d`` layers (with ReLU-type activations, pooling and batch norm in between).
Batch norm is first folded into the conv/linear layer that feeds it (:func:`fold_batchnorm`);
all measures are computed on the folded network, which computes the same function in
eval mode. Notation: ``W_i`` the weight of the i-th conv/linear layer (d layers), ``w``
all parameters (weights and biases) as one vector, ``w0`` the same at initialization,
``f_w(x)`` the logits, ``gamma`` the margin (:func:`margin`), ``S`` the training set
(with the labels the network was trained on).

Conv layers' spectral norms are computed by **power iteration** on the layer's actual
linear operator (its padding and stride, at the input size it sees in the network);
:func:`conv_spectral_norm_fft` gives the exact value for stride-1 circular convolution
(Sedghi et al. 2019) and is used to check the power iteration.

The perturbation measures (:func:`pacbayes_sigma`, :func:`sharpness_alpha`) search for the
largest perturbation that keeps the accuracy within ``deviation`` of the network's. Every
comparison of an accuracy with that target visits the examples in a random order and stops
as soon as the answer is decided (a sequential test that answers as the full evaluation
would except with probability at most 1e-4 per look); the sharpness search starts from a
search on a subset of the examples.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .perturbation import _batches, _check_data, _check_model, _trace, pacbayes_sigma, sharpness_alpha

__all__ = [
    "MEASURES",
    "GROUPS",
    "MeasureValues",
    "fold_batchnorm",
    "layers",
    "param_count",
    "l2_norm",
    "distance_from_init",
    "spectral_norms",
    "conv_spectral_norm_fft",
    "frobenius_norms",
    "path_norm",
    "margins",
    "margin",
    "pacbayes_sigma",
    "sharpness_alpha",
    "steps_to_loss",
    "adaptive_sharpness_worst",
    "adaptive_sharpness_avg",
    "layer_margins",
    "margin_signature",
    "binary_kl",
    "kl_inverse",
    "pacbayes_bound",
    "compute",
]

_BN = (nn.BatchNorm1d, nn.BatchNorm2d)
_WEIGHTED = (nn.Linear, nn.Conv2d)

#: Measure names, grouped by what computes them (the unit of timing and of selection).
GROUPS: dict[str, tuple[str, ...]] = {
    "params": ("params",),
    "l2": ("l2",),
    "dist_init": ("dist_init",),
    "margin": ("margin", "inverse_margin"),
    "spectral": ("log_prod_spec", "sum_spec", "log_prod_spec_over_margin", "sum_spec_over_margin"),
    "frobenius": ("log_prod_fro", "sum_fro", "log_prod_fro_over_margin", "sum_fro_over_margin"),
    "path_norm": ("path_norm", "path_norm_over_margin"),
    "pacbayes": ("pacbayes_sigma", "pacbayes_flatness"),
    "pacbayes_mag": ("pacbayes_mag_sigma", "pacbayes_mag_flatness"),
    "sharpness": ("sharpness_alpha", "sharpness"),
    "sharpness_mag": ("sharpness_mag_alpha", "sharpness_mag"),
    "optimization": ("steps_to_loss", "steps_to_fit"),
    "adaptive_sharpness": ("adaptive_sharpness_worst", "adaptive_sharpness_avg"),
    "margin_signature": tuple(f"margin_sig_l{k}_{st}" for k in range(4)
                              for st in ("q1", "median", "q3", "lower_fence", "upper_fence")),
    "pacbayes_bound": ("pacbayes_bound", "pacbayes_bound_kl", "pacbayes_bound_sigma", "pacbayes_bound_emp_error"),
}
#: Every measure name :func:`compute` can return, in report order.
MEASURES: tuple[str, ...] = tuple(m for g in GROUPS.values() for m in g)

#: The formula of every measure, one line each (the functions' docstrings give the details).
#: Most grow when a network is expected to generalize worse; ``margin``, ``*_sigma`` and
#: ``*_alpha`` shrink instead.
DOCS: dict[str, str] = {
    "params": "number of parameters",
    "l2": "||w||_2",
    "dist_init": "||w - w0||_2",
    "margin": "10th percentile over S of f(x)[y] - max_{j!=y} f(x)[j]",
    "inverse_margin": "1 / gamma^2",
    "log_prod_spec": "sum_i log ||W_i||_2^2",
    "sum_spec": "sum_i ||W_i||_2^2",
    "log_prod_spec_over_margin": "log(prod_i ||W_i||_2^2 / gamma^2)",
    "sum_spec_over_margin": "sum_i ||W_i||_2^2 / gamma^2",
    "log_prod_fro": "sum_i log ||W_i||_F^2",
    "sum_fro": "sum_i ||W_i||_F^2",
    "log_prod_fro_over_margin": "log(prod_i ||W_i||_F^2 / gamma^2)",
    "sum_fro_over_margin": "sum_i ||W_i||_F^2 / gamma^2",
    "path_norm": "sqrt(sum_k f_{w*w}(1)[k])",
    "path_norm_over_margin": "path_norm^2 / gamma^2",
    "pacbayes_sigma": "largest sigma: E acc(w + N(0, sigma^2)) >= acc(w) - 0.1",
    "pacbayes_flatness": "1 / pacbayes_sigma^2",
    "pacbayes_mag_sigma": "largest a: E acc(w + N(0, a^2 w^2 + 1e-6)) >= acc(w) - 0.1",
    "pacbayes_mag_flatness": "1 / pacbayes_mag_sigma^2",
    "sharpness_alpha": "largest a: acc(w + u*) >= acc(w) - 0.1, u* = worst |u_i| <= a",
    "sharpness": "1 / sharpness_alpha^2",
    "sharpness_mag_alpha": "largest a: acc(w + u*) >= acc(w) - 0.1, u* = worst |u_i| <= a|w_i| + 1e-3",
    "sharpness_mag": "1 / sharpness_mag_alpha^2",
    "steps_to_loss": "SGD steps until training cross-entropy <= 0.1",
    "steps_to_fit": "SGD steps until the run's target training accuracy (Result.steps_to_fit)",
    "adaptive_sharpness_worst": "mean over batches B of 128: max_{|delta| <= 0.002 |w|} L_B(w + delta) - L_B(w) "
                                "(20 APGD steps, Andriushchenko et al. 2023)",
    "adaptive_sharpness_avg": "E_{delta ~ N(0, 0.1^2 diag(w^2))} L(w + delta) - L(w) (Andriushchenko et al. 2023)",
    **{f"margin_sig_l{k}_{st}": f"{name} over correct x of d_l(x) / sqrt(tr Cov(x^l)), d_l the linearized "
                                f"distance to the boundary at {'the input' if k == 0 else f'hidden slot {k}'} "
                                f"(Jiang et al. 2019)"
       for k in range(4) for st, name in (("q1", "Q1"), ("median", "median"), ("q3", "Q3"),
                                          ("lower_fence", "Q1 - 1.5 IQR"), ("upper_fence", "Q3 + 1.5 IQR"))},
    "pacbayes_bound": "min over sigma of kl^-1(kl^-1(hat e, ln(2K/0.01)/samples), (KL + ln(2 sqrt(n) K/0.04))/n), "
                      "Q = N(w, sigma^2), P = N(w0, sigma^2)",
    "pacbayes_bound_kl": "KL(Q || P) = ||w - w0||^2 / (2 sigma^2) at the bound's sigma",
    "pacbayes_bound_sigma": "the bound's sigma, from the grid 10^(-4 + j/4), j = 0..20",
    "pacbayes_bound_emp_error": "Monte-Carlo training error of Q at the bound's sigma",
}


class MeasureValues(dict):
    """A dict of measure name -> float, plus ``seconds``: group name -> wall time spent."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seconds: dict[str, float] = {}


# ---------------------------------------------------------------------------- structure


def fold_batchnorm(model: nn.Module, example_input: torch.Tensor) -> nn.Module:
    """A copy of ``model`` in eval mode with every batch norm folded into the conv/linear
    layer whose output it normalizes, and replaced by ``nn.Identity``.

    For a layer ``z = W x + b`` followed by batch norm with running mean ``mu``, variance
    ``v``, ``eps`` and affine ``g``, ``beta`` (1 and 0 without affine), the folded layer is
    ``W' = W * s``, ``b' = (b - mu) * s + beta`` with ``s = g / sqrt(v + eps)`` per output
    channel, so the folded network computes the eval-mode function of ``model``.
    Which layer feeds which batch norm is found by running ``example_input`` (a batch of
    inputs on the model's device) through the network.

    Raises:
        ValueError: a batch norm whose input is not the direct output of a conv/linear layer
            (or has no running statistics), so it cannot be folded.
    """
    _check_model(model)
    m = copy.deepcopy(model).eval()
    producers: dict[int, str] = {}
    keep: list[torch.Tensor] = []  # keep outputs alive so their ids stay unique
    pairs: list[tuple[str, str | None]] = []

    def hook(name, mod, inp, out):
        if isinstance(mod, _BN):
            pairs.append((name, producers.get(id(inp[0]))))
        elif isinstance(mod, _WEIGHTED) and isinstance(out, torch.Tensor):
            producers[id(out)] = name
            keep.append(out)

    _trace(m, example_input[:1], hook)
    modules = dict(m.named_modules())
    for bn_name, src in pairs:
        bn = modules[bn_name]
        if src is None:
            raise ValueError(f"batch norm {bn_name!r} does not directly follow a conv/linear layer: cannot fold it")
        if bn.running_mean is None or bn.running_var is None:
            raise ValueError(f"batch norm {bn_name!r} has no running statistics: cannot fold it")
        layer = modules[src]
        with torch.no_grad():
            s = 1.0 / torch.sqrt(bn.running_var.double() + bn.eps)
            shift = -bn.running_mean.double() * s
            if bn.affine:
                s = s * bn.weight.double()
                shift = shift * bn.weight.double() + bn.bias.double()
            shape = (-1,) + (1,) * (layer.weight.dim() - 1)
            new_w = (layer.weight.double() * s.reshape(shape)).to(layer.weight.dtype)
            b = layer.bias.double() if layer.bias is not None else torch.zeros_like(s)
            new_b = (b * s + shift).to(layer.weight.dtype)
            layer.weight.copy_(new_w)
            if layer.bias is None:
                layer.bias = nn.Parameter(new_b)
            else:
                layer.bias.copy_(new_b)
        parent_name, _, child = bn_name.rpartition(".")
        parent = modules[parent_name] if parent_name else m
        setattr(parent, child, nn.Identity())
    return m


def layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The (name, module) of every ``nn.Linear`` and ``nn.Conv2d`` layer, in registration order."""
    return [(n, mod) for n, mod in model.named_modules() if isinstance(mod, _WEIGHTED)]


def param_count(model: nn.Module) -> int:
    """Number of parameters ``omega = sum over parameter tensors of numel`` (of the model as given)."""
    _check_model(model)
    return sum(p.numel() for p in model.parameters())


def _flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().double().reshape(-1) for p in model.parameters()])


def l2_norm(model: nn.Module) -> float:
    """``||w||_2 = sqrt(sum over all parameters of w^2)``."""
    _check_model(model)
    return float(torch.linalg.vector_norm(_flat(model)))


def distance_from_init(model: nn.Module, init_model: nn.Module) -> float:
    """``||w - w0||_2`` between two networks of the same architecture (parameters in the same order).

    Raises ValueError when their parameter shapes differ."""
    _check_model(model)
    a, b = list(model.parameters()), list(init_model.parameters())
    if [p.shape for p in a] != [p.shape for p in b]:
        raise ValueError("the model and its initialization have different parameter shapes")
    return float(torch.sqrt(sum(((p.detach().double() - q.detach().double().to(p.device)) ** 2).sum()
                                for p, q in zip(a, b))))


def conv_spectral_norm_fft(weight: torch.Tensor, input_hw: tuple[int, int]) -> float:
    """Exact spectral norm of a stride-1 **circular** 2-D convolution with kernel ``weight``
    (C_out, C_in, kh, kw) on inputs of size ``input_hw`` (Sedghi et al. 2019): the largest
    singular value over frequencies of the C_out x C_in matrices ``FFT2(weight, input_hw)[:, :, u, v]``.
    Raises ValueError when the kernel is larger than the input."""
    h, w = input_hw
    if weight.dim() != 4 or weight.shape[2] > h or weight.shape[3] > w:
        raise ValueError(f"need a (C_out, C_in, kh, kw) kernel no larger than the input {input_hw}, got {tuple(weight.shape)}")
    t = torch.fft.fft2(weight.detach().double(), s=(h, w))  # C_out, C_in, h, w
    return float(torch.linalg.matrix_norm(t.permute(2, 3, 0, 1), ord=2).max())


def _power_iteration(op: Callable, shape, device, dtype, iters: int, tol: float, seed: int) -> float:
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(shape, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)
    v = v / torch.linalg.vector_norm(v)
    sigma = 0.0
    for _ in range(iters):
        x = v.detach().requires_grad_(True)
        with torch.enable_grad():
            u = op(x)
            new_sigma = float(torch.linalg.vector_norm(u.detach()))
            if new_sigma == 0.0:
                return 0.0
            (grad,) = torch.autograd.grad(u, x, u / new_sigma)
        v = grad / torch.linalg.vector_norm(grad)
        if abs(new_sigma - sigma) <= tol * new_sigma:
            return new_sigma
        sigma = new_sigma
    return sigma


def spectral_norms(model: nn.Module, example_input: torch.Tensor, iters: int = 200, tol: float = 1e-7,
                   seed: int = 0) -> list[float]:
    """``||W_i||_2`` of every conv/linear layer (in :func:`layers` order).

    Linear layers: the largest singular value of W (exact, float64 SVD). Conv layers: power
    iteration in float64 (``iters`` steps or relative change < ``tol``; seeded start) on the bias-free
    operator ``x -> conv(x)`` with the layer's padding, stride, dilation and groups, at the
    input size the layer sees when ``example_input`` (a batch on the model's device) is run:
    a lower bound that converges to the operator norm."""
    _check_model(model)
    shapes: dict[str, tuple[int, ...]] = {}

    def hook(name, mod, inp, out):
        if isinstance(mod, nn.Conv2d):
            shapes.setdefault(name, (1, *inp[0].shape[1:]))

    _trace(model, example_input[:1], hook)
    out = []
    for i, (name, mod) in enumerate(layers(model)):
        w = mod.weight.detach()
        if isinstance(mod, nn.Linear):
            out.append(float(torch.linalg.matrix_norm(w.double(), ord=2)))
        elif name not in shapes:
            raise ValueError(f"conv layer {name!r} is not used by the forward pass: its input size is unknown")
        else:
            w64 = w.double()

            def op(x, mod=mod, w=w64):
                return mod._conv_forward(x, w, None)

            out.append(_power_iteration(op, shapes[name], w.device, torch.float64, iters, tol, seed + i))
    return out


def frobenius_norms(model: nn.Module) -> list[float]:
    """``||W_i||_F`` of every conv/linear layer: the Frobenius norm of the weight tensor
    (for a conv, of its C_out x C_in x kh x kw kernel, as in Jiang et al.)."""
    return [float(torch.linalg.vector_norm(m.weight.detach().double())) for _, m in layers(model)]


def path_norm(model: nn.Module, input_shape: Sequence[int]) -> float:
    """L2 path-norm ``sqrt(sum_k f_{w*w}(1)[k])``: the network with every parameter squared,
    run in float64 on one all-ones input of shape ``input_shape``, outputs summed.

    For a network of linear/conv layers and ReLUs this is exactly ``sqrt(sum over input-output
    paths of prod_edges w_e^2)`` (biases count as edges from a constant-1 unit): with
    non-negative weights and inputs every ReLU is the identity. With max-pooling or local
    response normalization it is Jiang et al.'s definition rather than a sum over paths.
    The measure is invariant to scaling one layer's weights and biases by c > 0 and the
    next layer's weights by 1/c."""
    _check_model(model)
    m = copy.deepcopy(model).eval().double()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(p * p)
        dev = next(m.parameters()).device
        out = m(torch.ones((1, *input_shape), dtype=torch.float64, device=dev))
    return float(torch.sqrt(out.sum()))


# ---------------------------------------------------------------------------- data-dependent


def margins(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Per-example margins ``f(x)[y] - max_{j != y} f(x)[j]`` (float64 (n,), CPU) of ``model``
    in eval mode on inputs ``x`` (n, ...) and int64 labels ``y`` (n,) (moved to the model's device)."""
    _check_data(x, y)
    dev = next(model.parameters()).device
    model.eval()
    out = []
    with torch.no_grad():
        for s in _batches(len(x), batch_size):
            logits = model(x[s].to(dev)).double()
            yy = y[s].to(dev)
            correct = logits.gather(1, yy[:, None])[:, 0]
            other = logits.scatter(1, yy[:, None], -math.inf).amax(1)
            out.append((correct - other).cpu())
    return torch.cat(out)


def margin(model: nn.Module, x: torch.Tensor, y: torch.Tensor, q: float = 0.1, batch_size: int = 1024) -> float:
    """``gamma``: the ``q``-quantile (default 10th percentile, linear interpolation as
    ``torch.quantile``) over the examples of :func:`margins`."""
    return float(torch.quantile(margins(model, x, y, batch_size), q))


def steps_to_loss(history: Sequence[dict], threshold: float = 0.1) -> float:
    """Optimization speed: the ``step`` of the first history entry (one per epoch) whose
    ``train_loss`` is <= ``threshold`` (cross-entropy 0.1 by default); NaN if none is."""
    for h in history:
        loss = h.get("train_loss")
        if loss is not None and loss <= threshold:
            return float(h["step"])
    return math.nan



# ---------------------------------------------------------------------------- adaptive sharpness
# Andriushchenko, Croce, Mueller, Hein, Flammarion, "A modern look at the relationship between
# sharpness and generalization", ICML 2023; their code github.com/tml-epfl/sharpness-vs-generalization
# (sharpness.py: eval_APGD_sharpness, weight_ascent_step_momentum, eval_average_sharpness,
# random_init_lw; eval_sharpness.py; sh/eval_sharpness_final.sh).

#: rho of the worst-case adaptive l_inf sharpness: their code has one argparse default (rho=0.1)
#: for every algorithm; their final experiments run adaptive m_apgd_linf at rho in
#: {0.001, 0.002, 0.004, 0.008} (ResNet-18, CIFAR-10) and we take 0.002 from that grid.
ADAPTIVE_WORST_RHO = 0.002
#: rho of the average-case adaptive sharpness: their argparse default 0.1, also in the grid
#: {0.05, 0.1, 0.2, 0.4} of their adaptive avg_l2 experiments (ResNet-18, CIFAR-10).
ADAPTIVE_AVG_RHO = 0.1
#: m of m-sharpness: the worst case is found for every batch of m examples separately and the
#: values averaged (their --bs_sharpness default 128, over --n_eval_sharpness 1024 examples).
ADAPTIVE_M = 128
#: projected gradient-ascent steps of the worst case (their --n_iters default 20).
ADAPTIVE_STEPS = 20


def _apgd_checkpoints(n_iters: int) -> list[int]:
    """The iterations at which their APGD checks whether to halve the step size
    (``eval_APGD_sharpness``, version 'default': checkpoints at p_j n_iters with p_0 = 0, p_1 = 0.22,
    p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06), rounded up; the one at 0 dropped)."""
    p, w = [0.0, 0.22], [0, math.ceil(n_iters * 0.22)]
    while w[-1] < n_iters and w[-1] != w[-2]:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
        w.append(math.ceil(p[-1] * n_iters))
    return w[1:]


def _functional(model: nn.Module):
    names = [n for n, _ in model.named_parameters()]
    params = [p.detach() for _, p in model.named_parameters()]

    def call(ps, x):
        return torch.func.functional_call(model, dict(zip(names, ps)), (x,))

    return params, call


def adaptive_sharpness_worst(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, rho: float = ADAPTIVE_WORST_RHO,
                             steps: int = ADAPTIVE_STEPS, m: int = ADAPTIVE_M) -> float:
    """Worst-case adaptive l_inf m-sharpness (Andriushchenko et al. 2023, eq. (1) with
    ``T_w = diag(|w|)``): the mean over batches B of m consecutive examples of
    ``max_{||delta / |w| ||_inf <= rho} L_B(w + delta) - L_B(w)``, L_B the mean cross-entropy on B.

    The maximum is approximated with their method (``eval_APGD_sharpness`` with
    ``adaptive=True, norm='linf', rand_init=False``): ``steps`` steps of sign-gradient ascent
    with step ``s |w|`` from delta = 0, s = 2 rho at first, projected on the box
    ``|delta_i| <= rho |w_i|``, momentum 0.75 (delta <- 0.75 delta + 0.25 delta_prev), and the
    step halved at the APGD checkpoints (:func:`_apgd_checkpoints`) when fewer than 75% of the
    steps since the last one raised the loss or the loss did not move; each batch keeps the
    largest loss seen. As in their code, halving the step moves the point where the next gradient
    is taken to the best point so far while the perturbation being updated stays where it was.
    Every parameter is perturbed, the last layer included (their ``layer_name_pattern='all'``);
    they keep batch norm in eval mode and perturb its affine parameters, here batch norm is folded
    first (:func:`fold_batchnorm`) and the folded weights and biases are perturbed (a deviation:
    the multiplicative perturbation of a folded weight is not the product of the two they apply).
    Their ``normalize_logits`` option is off (their default). ``rho = 0`` gives 0.
    Deterministic (no random start). The examples ``x, y`` are taken in the order given."""
    _check_model(model)
    _check_data(x, y)
    model.eval()
    w, call = _functional(model)
    scale = [p.abs() for p in w]
    checks = set(_apgd_checkpoints(steps))

    def loss_grad(ps, xb, yb):
        ps = [p.detach().requires_grad_(True) for p in ps]
        with torch.enable_grad():
            loss = F.cross_entropy(call(ps, xb), yb)
            grads = torch.autograd.grad(loss, ps)
        return float(loss.detach()), grads

    total = 0.0
    for s in _batches(len(x), m):
        xb, yb = x[s], y[s]
        init_loss, grads = loss_grad(w, xb, yb)
        delta = [torch.zeros_like(p) for p in w]
        prev = [torch.zeros_like(p) for p in w]
        worst_loss, worst_delta = init_loss, [d.clone() for d in delta]
        prev_worst, step, prev_step, prev_cp, updates = init_loss, 2 * rho, 2 * rho, 0, 0
        for i in range(steps):
            backup = [d.clone() for d in delta]
            delta = [torch.clamp(d + step * g.sign() * a, -rho * a, rho * a) for d, g, a in zip(delta, grads, scale)]
            delta = [0.75 * d + 0.25 * q for d, q in zip(delta, prev)]
            prev = backup
            loss, grads = loss_grad([p + d for p, d in zip(w, delta)], xb, yb)
            if loss > worst_loss:
                worst_loss, worst_delta, updates = loss, [d.clone() for d in delta], updates + 1
            if i in checks:
                cond1 = updates < 0.75 * (i - prev_cp)
                cond2 = prev_step == step and prev_worst == worst_loss
                prev_step, prev_worst, prev_cp, updates = step, worst_loss, i, 0
                if cond1 or cond2:
                    step *= 0.5
                    _, grads = loss_grad([p + d for p, d in zip(w, worst_delta)], xb, yb)
        total += (worst_loss - init_loss) * (s.stop - s.start)
    return total / len(x)


def adaptive_sharpness_avg(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, rho: float = ADAPTIVE_AVG_RHO,
                           samples: int = 8, seed: int = 0, batch_size: int = 1024) -> float:
    """Average-case adaptive sharpness (Andriushchenko et al. 2023, eq. (2) with ``T_w = diag(|w|)``
    and Gaussian noise, their ``eval_average_sharpness(adaptive=True, norm='l2')``):
    ``E_{delta ~ N(0, rho^2 diag(w^2))} L_S(w + delta) - L_S(w)``, L_S the mean cross-entropy on
    ``x, y``; every parameter perturbed (last layer included; batch norm folded first, see
    :func:`adaptive_sharpness_worst`).

    Monte-Carlo with ``samples`` draws: draw j is ``delta = rho |w| z`` with z drawn in float32,
    parameter by parameter in ``named_parameters`` order, from ``torch.Generator`` seeded
    ``seed * 1_000_003 + j`` on the CPU (the same draws on every device). Deviation: their code
    draws fresh noise for every batch of 128; here each draw is evaluated on all examples
    (the same expectation)."""
    _check_model(model)
    _check_data(x, y)
    model.eval()
    w, call = _functional(model)

    def loss(ps):
        total = 0.0
        with torch.no_grad():
            for s in _batches(len(x), batch_size):
                total += float(F.cross_entropy(call(ps, x[s]), y[s], reduction="sum"))
        return total / len(x)

    base = loss(w)
    acc = 0.0
    for j in range(samples):
        g = torch.Generator().manual_seed(seed * 1_000_003 + j)
        z = [torch.randn(p.shape, generator=g, dtype=torch.float32).to(device=p.device, dtype=p.dtype) for p in w]
        acc += loss([p + rho * p.abs() * zi for p, zi in zip(w, z)])
    return acc / samples - base


# ---------------------------------------------------------------------------- margin signature
# Jiang, Krishnan, Mobahi, Bengio, "Predicting the generalization gap in deep networks with margin
# distributions", ICLR 2019; their code google-research/demogen/margin_utils.py (``margin``).

#: The hidden layers of the signature: the input and three hidden layers (as in the paper).
SIGNATURE_LAYERS = 4
#: The statistics of each layer's normalized margin distribution (the paper's signature).
SIGNATURE_STATS = ("q1", "median", "q3", "lower_fence", "upper_fence")


def _signature_slots(hidden: int) -> list[int]:
    """Which of the ``hidden`` representations 1..hidden fill the slots l1..l3: all of them when
    there are at most 3, else 3 evenly spaced ones, 1 + floor(k (hidden - 1) / 2) for k = 0, 1, 2
    (the first, the middle and the last)."""
    if hidden <= SIGNATURE_LAYERS - 1:
        return list(range(1, hidden + 1))
    return [1 + (k * (hidden - 1)) // 2 for k in range(SIGNATURE_LAYERS - 1)]


def layer_margins(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024,
                  epsilon: float = 1e-6) -> tuple[list[torch.Tensor], list[float]]:
    """Linearized distances to the decision boundary at every layer's input (Jiang et al. 2019, eq. (3);
    demogen ``margin`` with ``dist_norm=2``), and the total variation of each layer's input.

    For layer l (the l-th conv/linear layer in call order, l = 0 the network's input as the first
    layer sees it, l >= 1 the hidden representation the l-th layer after it receives, after the
    ReLU, pooling and flattening before it), example x with label i and j the highest-scoring
    other class: ``d_l(x) = (f_i(x) - f_j(x)) / sqrt(epsilon + ||grad_{x^l} (f_i - f_j)||_2^2)``
    (demogen's epsilon = 1e-6; negative for a misclassified example), and
    ``nu_l = sqrt(tr Cov(x^l))``, the square root of the summed per-coordinate variance
    (population variance, float64) of x^l over the examples.

    Returns ``(d, nu)``: ``d[l]`` float64 (n,) on the CPU, ``nu[l]`` a float."""
    _check_model(model)
    _check_data(x, y)
    model.eval()
    dev = next(model.parameters()).device
    d: list[list[torch.Tensor]] = []
    sums: list[torch.Tensor] = []
    sq: list[torch.Tensor] = []
    shift: list[torch.Tensor] = []
    for s in _batches(len(x), batch_size):
        acts: list[torch.Tensor] = []

        def pre(mod, inp, acts=acts):
            acts.append(inp[0])

        handles = [mod.register_forward_pre_hook(pre) for _, mod in layers(model)]
        try:
            with torch.enable_grad():
                logits = model(x[s].to(dev).detach().requires_grad_(True))
                yy = y[s].to(dev)
                other = logits.detach().scatter(1, yy[:, None], -math.inf).argmax(1)
                diff = logits.gather(1, yy[:, None])[:, 0] - logits.gather(1, other[:, None])[:, 0]
                grads = torch.autograd.grad(diff.sum(), acts)
        finally:
            for h in handles:
                h.remove()
        if not d:
            d = [[] for _ in acts]
            shift = [a.detach().double().mean(0) for a in acts]
            sums = [torch.zeros_like(c) for c in shift]
            sq = [torch.zeros_like(c) for c in shift]
        num = diff.detach().double()
        for k, (a, g) in enumerate(zip(acts, grads)):
            gn = torch.sqrt(epsilon + g.double().reshape(len(g), -1).pow(2).sum(1))
            d[k].append((num / gn).cpu())
            c = a.detach().double() - shift[k]
            sums[k] += c.sum(0)
            sq[k] += (c * c).sum(0)
    n = len(x)
    nu = [float(torch.sqrt((q / n - (s / n) ** 2).clamp_min(0).sum())) for s, q in zip(sums, sq)]
    return [torch.cat(v) for v in d], nu


def margin_signature(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> dict[str, float]:
    """The margin-distribution signature (Jiang et al. 2019, sections 3.1-3.2): for the input and three
    hidden layers (slots l0..l3: l0 the input, l1..l3 from :func:`_signature_slots`), the
    quartiles Q1, median, Q3 and the fences ``Q1 - 1.5 IQR``, ``Q3 + 1.5 IQR`` of the normalized
    margins ``d_l(x) / nu_l`` (:func:`layer_margins`) over the correctly classified examples
    (the paper ignores the misclassified ones, whose distance is negative). Quantiles by linear
    interpolation (``torch.quantile``, as ``np.percentile``).

    Names ``margin_sig_l{k}_{stat}`` (stat in :data:`SIGNATURE_STATS`), the same for every network.
    NaN: a slot the network has no layer for (a network with fewer than 3 hidden layers, e.g.
    mlp1x512 has l0 and l1 only), or no correctly classified example; inf or NaN when a layer's
    input does not vary over the examples (nu_l = 0). The paper regresses on the log of these
    values; they are reported as they are."""
    d, nu = layer_margins(model, x, y, batch_size)
    slots = [0] + _signature_slots(len(d) - 1)
    out = {}
    for k in range(SIGNATURE_LAYERS):
        vals = [math.nan] * len(SIGNATURE_STATS)
        if k < len(slots):
            l = slots[k]  # noqa: E741
            keep = d[l][d[l] > 0]
            if len(keep):
                q = torch.quantile(keep / nu[l], torch.tensor([0.25, 0.5, 0.75], dtype=keep.dtype)).tolist()
                iqr = q[2] - q[0]
                vals = [q[0], q[1], q[2], q[0] - 1.5 * iqr, q[2] + 1.5 * iqr]
        out.update({f"margin_sig_l{k}_{st}": v for st, v in zip(SIGNATURE_STATS, vals)})
    return out


# ---------------------------------------------------------------------------- PAC-Bayes bound
# Dziugaite & Roy, "Computing nonvacuous generalization bounds for deep (stochastic) neural networks
# with many more parameters than training data", UAI 2017; McAllester 1999; Langford & Seeger 2001;
# Maurer 2004 (the 2 sqrt(n) / delta form); Langford & Caruana 2002 (the Monte-Carlo bound).

#: The sigma grid of :func:`pacbayes_bound`: 10^(-4 + j/4), j = 0..20 (1e-4 to 10, 21 values),
#: fixed before the data are seen, paid for by a union bound.
PACBAYES_SIGMAS = tuple(10.0 ** (-4 + j / 4) for j in range(21))
#: The confidence of :func:`pacbayes_bound`: 0.04 for the PAC-Bayes bound and 0.01 for the
#: Monte-Carlo estimate of the posterior's error, each split evenly over the sigma grid.
PACBAYES_DELTA = 0.05
PACBAYES_DELTA_MC = 0.01


def binary_kl(q: float, p: float) -> float:
    """``kl(q || p) = q log(q/p) + (1-q) log((1-q)/(1-p))`` (nats; 0 log 0 = 0)."""
    out = 0.0
    if q > 0:
        out += q * math.log(q / p) if p > 0 else math.inf
    if q < 1:
        out += (1 - q) * math.log((1 - q) / (1 - p)) if p < 1 else math.inf
    return out


def kl_inverse(q: float, c: float, iters: int = 200) -> float:
    """``kl^{-1}(q, c) = sup {p in [q, 1] : kl(q || p) <= c}`` by bisection on [q, 1] (where
    kl(q || .) increases), returning the upper end of the final bracket (never below the
    supremum; width < 1e-15 or ``iters`` halvings). 1 for ``c = inf`` or ``q >= 1``; NaN for a NaN
    argument. Raises ValueError for q outside [0, 1] or c < 0."""
    if math.isnan(q) or math.isnan(c):
        return math.nan
    if not 0.0 <= q <= 1.0 or c < 0:
        raise ValueError(f"kl_inverse needs q in [0, 1] and c >= 0, got q={q!r}, c={c!r}")
    if q >= 1.0 or c == math.inf:
        return 1.0
    lo, hi = q, 1.0
    for _ in range(iters):
        if hi - lo < 1e-15:
            break
        mid = (lo + hi) / 2
        if binary_kl(q, mid) <= c:
            lo = mid
        else:
            hi = mid
    return hi


def pacbayes_bound(model: nn.Module, init_model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                   samples: int = 8, seed: int = 0, sigmas: Sequence[float] = PACBAYES_SIGMAS,
                   delta: float = PACBAYES_DELTA, delta_mc: float = PACBAYES_DELTA_MC,
                   memory_budget: int = 1 << 30, batch_size: int = 1024) -> dict[str, float]:
    """A PAC-Bayes bound on the test error of the stochastic classifier ``Q = N(w, sigma^2 I)``
    (Dziugaite & Roy 2017; the kl form of Langford & Seeger 2001 with Maurer's 2 sqrt(n)), with
    prior ``P = N(w0, sigma^2 I)`` centred at the initialization ``init_model`` (data-independent):
    with probability >= 1 - ``delta`` over the n training examples ``x, y`` and the Monte-Carlo
    draws, for every sigma of the grid ``sigmas`` (K values) at once,

        e_Q <= kl^{-1}( kl^{-1}(hat e, ln(2K / delta_mc) / samples),
                        (KL + ln(2 sqrt(n) K / (delta - delta_mc))) / n ),

    ``KL = ||w - w0||^2 / (2 sigma^2)``, hat e the mean training error over ``samples`` draws
    ``w + sigma z_j`` (z_j from :meth:`rethink.perturbation._Perturber.normal`, the same z at every
    sigma; each draw evaluated on all n examples), the inner kl^{-1} the bound of Langford & Caruana
    on the posterior's training error from hat e (Dziugaite & Roy's treatment of the Monte-Carlo
    error). The reported bound is the smallest over the grid (the union bound pays for the
    choice); the grid is scanned from the largest sigma down and stops once ``kl^{-1}(0, .)`` of
    the next KL term is no better than the best bound (KL only grows as sigma falls).

    Errors are 0-1 errors against the labels given (for a run on corrupted labels: the labels
    it was trained on). Returns ``pacbayes_bound`` (in [0, 1]), ``pacbayes_bound_kl`` (KL in nats
    at the chosen sigma), ``pacbayes_bound_sigma`` and ``pacbayes_bound_emp_error`` (hat e there).
    All NaN when n < 8 (Maurer's bound needs n >= 8). Raises ValueError when the two networks'
    parameter shapes differ."""
    from .perturbation import _Perturber

    _check_model(model)
    _check_data(x, y)
    a, b = list(model.parameters()), list(init_model.parameters())
    if [p.shape for p in a] != [p.shape for p in b]:
        raise ValueError("the model and its initialization have different parameter shapes")
    n, k = len(x), len(sigmas)
    nan = dict(pacbayes_bound=math.nan, pacbayes_bound_kl=math.nan, pacbayes_bound_sigma=math.nan,
               pacbayes_bound_emp_error=math.nan)
    if n < 8:
        return nan
    d2 = float(sum(((p.detach().double() - q.detach().double().to(p.device)) ** 2).sum() for p, q in zip(a, b)))
    pert = _Perturber(model, x, y, memory_budget, batch_size, seed=seed)
    z = pert.normal(samples, seed)
    mc_c = math.log(2 * k / delta_mc) / samples
    pb_log = math.log(2 * math.sqrt(n) * k / (delta - delta_mc))
    best = dict(nan, pacbayes_bound=math.inf)
    for sigma in sorted(sigmas, reverse=True):
        kl = d2 / (2 * sigma * sigma)
        c = (kl + pb_log) / n
        if kl_inverse(0.0, c) >= best["pacbayes_bound"]:
            break
        stacked = [p.unsqueeze(0) + sigma * zi for p, zi in zip(pert.params, z)]
        err = 1.0 - pert._correct(stacked, pert.x, pert.y) / (samples * n)
        bound = kl_inverse(kl_inverse(err, mc_c), c)
        if bound < best["pacbayes_bound"]:
            best = dict(pacbayes_bound=bound, pacbayes_bound_kl=kl, pacbayes_bound_sigma=sigma,
                        pacbayes_bound_emp_error=err)
    return best


# ---------------------------------------------------------------------------- compute


def _select(measures) -> tuple[list[str], bool]:
    """Groups to compute, and whether they were named explicitly (else 'all')."""
    if measures == "all" or measures is None:
        return list(GROUPS), False
    if isinstance(measures, str):
        measures = [measures]
    if not isinstance(measures, (list, tuple)) or not all(isinstance(m, str) for m in measures) or not measures:
        raise ValueError(f"measures must be 'all', a measure name or a non-empty list of names, got {measures!r:.60}")
    groups = []
    for m in measures:
        g = m if m in GROUPS else next((k for k, v in GROUPS.items() if m in v), None)
        if g is None:
            raise ValueError(f"unknown measure {m!r}; known: {', '.join(MEASURES)} (or groups {', '.join(GROUPS)})")
        if g not in groups:
            groups.append(g)
    return groups, True


def _resolve_run(model, dataset, corruption, init_state, history, normalize, crop, steps_to_fit) -> dict:
    """What ``compute`` needs, from a network and data given separately, or from a Result (or
    the path of its JSON), whose spec supplies the dataset, corruption, training subset,
    crop, normalization, initial weights and history unless given."""
    import os

    from .results import Result, load_model

    info = dict(model=model, dataset=dataset, corruption=corruption, init_state=init_state, history=history,
                normalize=normalize, crop=crop, steps_to_fit=steps_to_fit, spec=None)
    if isinstance(model, (str, os.PathLike)):
        model = Result.load(model)
    if not isinstance(model, Result):
        return info
    res, spec = model, model.spec
    if res.model is None and res.path is None:
        raise ValueError("the Result holds no model in memory; pass the path of its JSON file instead")
    net, init = load_model(res)
    info.update(model=net, spec=spec, normalize=spec.normalize, crop=spec.crop)
    if dataset is None:
        if spec.dataset_fingerprint is not None:
            raise ValueError(f"run {res.run_name!r} trained on a user dataset ({spec.dataset!r}): pass it as dataset=")
        info["dataset"] = spec.dataset
    info["own_view"] = corruption is None and not _model_ready(info["dataset"])
    if corruption is None and not isinstance(info["dataset"], (tuple, list)):
        info["corruption"] = spec.corruption_object()
    info["init_state"] = init if init_state is None else init_state
    info["history"] = res.history if history is None else history
    if steps_to_fit is None:
        info["steps_to_fit"] = res.steps_to_fit if res.steps_to_fit is not None else math.nan
    return info


def training_tensors(dataset, corruption=None, normalize="per_image", crop=None, device="cpu", subset=None):
    """The training set as the network saw it: ``(x, y)`` with x float32 (N, C, H', W') after
    the corruption, crop and normalization of the loader, and y the (corrupted) int64 labels.

    ``dataset`` is a pair ``(x, y)`` of float tensors already as the network takes them,
    returned as they are (then ``corruption`` must be None), or anything else
    :func:`rethink.fit_random` takes as a dataset (a name, a Dataset, uint8 ``(X, y)``,
    ``(X, y, X_test, y_test)``, a torch dataset; :mod:`rethink.inputs`). ``subset``: int64 indices of the
    training images the run used (None: all). Prepared by the loader's fused op on the CPU,
    then moved to ``device``. Raises ValueError for an empty training set."""
    if _model_ready(dataset):
        if corruption not in (None, "none"):
            raise ValueError("a corruption applies to a Dataset, not to (x, y) tensors")
        x, y = dataset
        _check_data(x, y)
        if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool or y.dim() != 1:
            raise ValueError(f"training labels must be an integer tensor (N,), got {y.dtype} of shape "
                             f"{tuple(y.shape)}")
        return x.to(device), y.to(device).long()
    if dataset is None:
        raise ValueError("no training data: pass dataset (a name, a Dataset or an (x, y) pair)")
    from .inputs import as_dataset
    from .loader import RandomizedLoader

    ds = as_dataset(dataset)[0]
    if len(ds.train.labels) == 0:
        raise ValueError(f"no training data: dataset {ds.name!r} has an empty training split")
    loader = RandomizedLoader(ds, corruption if corruption is not None else "none", split="train", batch_size=1024,
                              shuffle=False, crop=crop, normalize=normalize, device="cpu", subset=subset)
    x, y = loader.materialize()
    return x.to(device), y.long().to(device)


def _model_ready(dataset) -> bool:
    """Whether ``dataset`` is an ``(x, y)`` pair of float tensors already as the network takes them."""
    return (isinstance(dataset, (tuple, list)) and len(dataset) == 2 and isinstance(dataset[0], torch.Tensor)
            and dataset[0].is_floating_point())


def _data(info: dict, dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The training tensors of a resolved run: a Result's own view (its subset, corruption,
    crop and normalization, :meth:`rethink.run.Run.training_tensors`), else ``dataset`` as given."""
    if info["spec"] is not None and info.get("own_view"):
        from .inputs import as_dataset
        from .run import Run

        return Run(info["spec"], as_dataset(info["dataset"])[0]).training_tensors(dev)
    return training_tensors(info["dataset"], info["corruption"], normalize=info["normalize"], crop=info["crop"],
                            device=dev)


def _products(prefix: str, norms: list[float], g2: float) -> dict[str, float]:
    logp = sum(2 * math.log(v) if v > 0 else -math.inf for v in norms)
    s = sum(v * v for v in norms)
    return {f"log_prod_{prefix}": logp, f"sum_{prefix}": s,
            f"log_prod_{prefix}_over_margin": logp - math.log(g2) if g2 == g2 else math.nan,
            f"sum_{prefix}_over_margin": s / g2}


def _inverse_square(v: float) -> float:
    """1 / v^2 for a largest perturbation v: inf when nothing was tolerated, 0 when everything was."""
    if v == math.inf:
        return 0.0
    return 1.0 / v**2 if v > 0 else math.inf


def _group(g: str, c: dict) -> dict[str, float]:
    """The values of measure group ``g`` from the context ``c`` that :func:`compute` builds."""
    folded, x = c["folded"], c["x"]
    if g == "params":
        return {"params": float(param_count(c["net"]))}
    if g == "l2":
        return {"l2": l2_norm(folded)}
    if g == "dist_init":
        if c["init_state"] is None:
            return {"dist_init": math.nan}
        init = copy.deepcopy(c["model"])
        init.load_state_dict(c["init_state"])
        return {"dist_init": distance_from_init(folded, fold_batchnorm(init.to(c["dev"]), x[:1]))}
    if g == "margin":
        gamma = c["gamma"]
        return {"margin": gamma, "inverse_margin": 1.0 / gamma**2 if gamma > 0 else math.nan}
    if g == "spectral":
        return _products("spec", spectral_norms(folded, x[:1], seed=c["seed"]), c["g2"])
    if g == "frobenius":
        return _products("fro", frobenius_norms(folded), c["g2"])
    if g == "path_norm":
        pn = path_norm(folded, tuple(x.shape[1:]))
        return {"path_norm": pn, "path_norm_over_margin": pn * pn / c["g2"]}
    if g in ("pacbayes", "pacbayes_mag"):
        s = pacbayes_sigma(folded, c["xs"], c["ys"], magnitude_aware=g == "pacbayes_mag", samples=c["samples"],
                           seed=c["seed"], memory_budget=c["memory_budget"], batch_size=c["batch_size"])
        return {f"{g}_sigma": s, f"{g}_flatness": _inverse_square(s)}
    if g in ("sharpness", "sharpness_mag"):
        a = sharpness_alpha(folded, c["xs"], c["ys"], magnitude_aware=g == "sharpness_mag", seed=c["seed"],
                            batch_size=c["batch_size"], steps=c["sharpness_steps"])
        return {f"{g}_alpha": a, g: _inverse_square(a)}
    if g == "adaptive_sharpness":
        return {"adaptive_sharpness_worst": adaptive_sharpness_worst(folded, c["xs"], c["ys"]),
                "adaptive_sharpness_avg": adaptive_sharpness_avg(folded, c["xs"], c["ys"],
                                                                 samples=c["samples"], seed=c["seed"],
                                                                 batch_size=c["batch_size"])}
    if g == "margin_signature":
        return margin_signature(folded, x, c["y"], batch_size=c["batch_size"])
    if g == "pacbayes_bound":
        if c["init_state"] is None:
            return dict.fromkeys(GROUPS["pacbayes_bound"], math.nan)
        init = copy.deepcopy(c["model"])
        init.load_state_dict(c["init_state"])
        return pacbayes_bound(folded, fold_batchnorm(init.to(c["dev"]), x[:1]), x, c["y"], samples=c["samples"],
                              seed=c["seed"], memory_budget=c["memory_budget"], batch_size=c["batch_size"])
    if g == "optimization":
        h, fit = c["history"], c["steps_to_fit"]
        return {"steps_to_loss": steps_to_loss(h) if h is not None else math.nan,
                "steps_to_fit": float(fit) if fit is not None else math.nan}
    raise ValueError(f"unknown measure group {g!r}")


#: The settings of :func:`compute` that say how the measures are computed (the rest, model,
#: dataset, corruption, init_state, history, steps_to_fit, normalize, crop, device, say on what).
SETTINGS = ("measures", "seed", "max_examples", "samples", "memory_budget", "batch_size", "sharpness_steps")
#: The groups computed on a subsample of at most ``max_examples`` training examples, and those
#: that pass over every training example (the others need no examples, or one).
SUBSAMPLED_GROUPS = ("pacbayes", "pacbayes_mag", "sharpness", "sharpness_mag", "adaptive_sharpness")
FULL_DATA_GROUPS = ("margin", "margin_signature", "pacbayes_bound")


def check_settings(settings: dict) -> None:
    """Raise ValueError naming the setting for an unknown key of ``settings`` (names from
    :data:`SETTINGS`) or a bad value (counts are integers >= 1, seed in [0, 2^63), measures
    known), so that a bad setting is refused before any run is trained or measured."""
    from ._check import check_int, check_seed

    if not isinstance(settings, dict):
        raise ValueError(f"measure settings must be a dict of {', '.join(SETTINGS)}, got {settings!r:.60}")
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise ValueError(f"unknown measure setting(s) {', '.join(map(repr, unknown))}; "
                         f"expected some of: {', '.join(SETTINGS)}")
    for k, v in settings.items():
        if k == "measures":
            _select(list(v) if isinstance(v, tuple) else v)
        elif k == "seed":
            check_seed("seed", v)
        elif not (k == "memory_budget" and v is None):
            check_int(k, v, low=1)


def _check_labels(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    """Labels must be integer classes in [0, number of the network's outputs)."""
    with torch.no_grad():
        width = net(x[:1]).shape[-1]
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= width:
        raise ValueError(f"training labels must be in [0, {width}) (the network's {width} outputs), "
                         f"got labels in [{lo}, {hi}]")


def compute(model, dataset=None, corruption=None, init_state=None, measures="all", device="auto", seed=0, *,
            history=None, steps_to_fit=None, normalize="per_image", crop=None, max_examples: int = 2048,
            samples: int = 8, memory_budget: int | None = None, batch_size: int = 1024,
            sharpness_steps: int = 5) -> MeasureValues:
    """Complexity measures of a trained network on its training set.

    Args:
        model: an ``nn.Module``, or a ``rethink.Result`` (with its model in memory, or read from
            a file), or the path of a result JSON; a Result's spec supplies the dataset,
            corruption, training subset, init_state, history, normalize and crop unless given.
        dataset: training data: a dataset name, a Dataset, or ``(x, y)`` tensors already
            preprocessed as the model expects.
        corruption: the corruption the model was trained with (labels as trained on).
        init_state: the model's ``state_dict`` at initialization (for ``dist_init`` and the
            prior of ``pacbayes_bound``).
        measures: "all", or names from :data:`MEASURES` / groups from :data:`GROUPS`.
        device: "auto" (CUDA when available), "cpu" or "cuda".
        seed: seeds the Monte-Carlo noise, the sharpness start, the power iteration and the
            subsample of ``max_examples`` training examples used by the PAC-Bayes flatness and
            sharpness measures and by adaptive sharpness (margin, the margin signature and
            ``pacbayes_bound`` use every training example).
        history: per-epoch dicts with "step" and "train_loss" (for ``steps_to_loss``).
        steps_to_fit: the run's ``Result.steps_to_fit`` (None: not fitted, NaN).
        samples: Monte-Carlo draws per PAC-Bayes evaluation, for average adaptive sharpness
            and per sigma of ``pacbayes_bound``.
        sharpness_steps: projected gradient-ascent steps per sharpness evaluation.
        memory_budget: bytes for one batched PAC-Bayes pass (default 1 GiB, or a quarter of
            the free GPU memory).

    Returns:
        :class:`MeasureValues`: measure name -> float (the definitions are in :data:`DOCS` and
        in each function's docstring), with ``.seconds`` (group -> wall seconds). Under
        ``measures="all"``, ``dist_init`` without ``init_state`` and ``steps_to_loss`` without
        ``history`` are NaN (and ``steps_to_fit`` is NaN for a run that did not fit);
        ``*_over_margin`` and ``inverse_margin`` are NaN when the margin is <= 0;
        ``pacbayes_bound*`` are NaN without ``init_state`` (under "all") or with fewer than 8
        training examples; ``margin_sig_l{k}_*`` are NaN for a slot the network has no hidden
        layer for or when no training example is classified correctly (and inf/NaN for a layer
        whose input does not vary). Nothing is clipped: an infinite or NaN value is reported as such.

    Raises:
        TypeError/ValueError: not a module, a model without parameters, no training data,
            an unknown measure, a named measure whose input (init_state, history) is missing.
    """
    from ._build import resolve_device

    check_settings(dict(measures=measures, seed=seed, max_examples=max_examples, samples=samples,
                        memory_budget=memory_budget, batch_size=batch_size, sharpness_steps=sharpness_steps))
    info = _resolve_run(model, dataset, corruption, init_state, history, normalize, crop, steps_to_fit)
    _check_model(info["model"])
    groups, explicit = _select(measures)
    for g in ("dist_init", "pacbayes_bound"):
        if explicit and g in groups and info["init_state"] is None:
            raise ValueError(f"measure {g} needs init_state (the model's state_dict at initialization)")
    if explicit and "optimization" in groups and info["history"] is None:
        raise ValueError("measure steps_to_loss needs history (per-epoch dicts with step and train_loss)")
    dev = resolve_device(device, kernels=False)
    if memory_budget is None:
        memory_budget = (torch.cuda.mem_get_info(dev)[0] // 4) if dev.type == "cuda" else 1 << 30
    x, y = _data(info, dev)
    if x.dim() < 2:
        raise ValueError(f"training inputs must be (N, ...) with N examples, got shape {tuple(x.shape)}")
    net = copy.deepcopy(info["model"]).to(dev).eval()
    _check_labels(net, x, y)
    c = dict(info, net=net, folded=fold_batchnorm(net, x[:1]), x=x, y=y, dev=dev, seed=seed, samples=samples,
             memory_budget=memory_budget, batch_size=batch_size, sharpness_steps=sharpness_steps, xs=x, ys=y,
             gamma=math.nan, g2=math.nan)
    if any(g in SUBSAMPLED_GROUPS for g in groups) and len(x) > max_examples:
        idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:max_examples].to(dev)
        c["xs"], c["ys"] = x[idx], y[idx]
    out = MeasureValues()
    order = list(groups)
    if any(g in groups for g in ("spectral", "frobenius", "path_norm")) and "margin" not in groups:
        order.insert(0, "margin")  # the margin enters the *_over_margin values
    elif "margin" in order:
        order.insert(0, order.pop(order.index("margin")))
    for g in order:
        t0 = time.perf_counter()
        if g == "margin":
            c["gamma"] = margin(c["folded"], x, y, batch_size=batch_size)
            c["g2"] = c["gamma"] ** 2 if c["gamma"] > 0 else math.nan
        values = _group(g, c)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        out.seconds[g] = out.seconds.get(g, 0.0) + time.perf_counter() - t0
        if g in groups:
            out.update(values)
    ordered = MeasureValues({k: out[k] for k in MEASURES if k in out})
    ordered.seconds = out.seconds
    return ordered
