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
    if g == "optimization":
        h, fit = c["history"], c["steps_to_fit"]
        return {"steps_to_loss": steps_to_loss(h) if h is not None else math.nan,
                "steps_to_fit": float(fit) if fit is not None else math.nan}
    raise ValueError(f"unknown measure group {g!r}")


#: The settings of :func:`compute` that say how the measures are computed (the rest, model,
#: dataset, corruption, init_state, history, steps_to_fit, normalize, crop, device, say on what).
SETTINGS = ("measures", "seed", "max_examples", "samples", "memory_budget", "batch_size", "sharpness_steps")


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
        init_state: the model's ``state_dict`` at initialization (for ``dist_init``).
        measures: "all", or names from :data:`MEASURES` / groups from :data:`GROUPS`.
        device: "auto" (CUDA when available), "cpu" or "cuda".
        seed: seeds the Monte-Carlo noise, the sharpness start, the power iteration and the
            subsample of ``max_examples`` training examples used by the PAC-Bayes and
            sharpness measures (margin uses every training example).
        history: per-epoch dicts with "step" and "train_loss" (for ``steps_to_loss``).
        steps_to_fit: the run's ``Result.steps_to_fit`` (None: not fitted, NaN).
        samples: Monte-Carlo draws per PAC-Bayes evaluation.
        sharpness_steps: projected gradient-ascent steps per sharpness evaluation.
        memory_budget: bytes for one batched PAC-Bayes pass (default 1 GiB, or a quarter of
            the free GPU memory).

    Returns:
        :class:`MeasureValues`: measure name -> float (the definitions are in :data:`DOCS` and
        in each function's docstring), with ``.seconds`` (group -> wall seconds). Under
        ``measures="all"``, ``dist_init`` without ``init_state`` and ``steps_to_loss`` without
        ``history`` are NaN (and ``steps_to_fit`` is NaN for a run that did not fit);
        ``*_over_margin`` and ``inverse_margin`` are NaN when the margin is <= 0.

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
    if explicit and "dist_init" in groups and info["init_state"] is None:
        raise ValueError("measure dist_init needs init_state (the model's state_dict at initialization)")
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
    if any(g.startswith(("pacbayes", "sharpness")) for g in groups) and len(x) > max_examples:
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
