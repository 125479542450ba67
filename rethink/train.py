"""``fit_random``: train a model with SGD on (randomized) data and record the run.

This is the experiment of Zhang et al. 2017: a model is trained with plain SGD on a
copy of the data whose labels or pixels were randomized, until it fits the training
set; the per-epoch training and test metrics are recorded in a :class:`rethink.Result`.

The loop keeps the data, labels and metrics on the device: each batch comes from
:class:`rethink.RandomizedLoader` (one fused kernel per batch, no DataLoader worker
processes), per-step losses are written into a device tensor, and the host reads the
metrics once per epoch.

Learning-rate decay is expressed per training example seen: the paper multiplies the
learning rate by 0.95 after every CIFAR-10 epoch (50,000 images), so the default is
``lr_decay=0.95`` per ``lr_decay_examples=50_000`` examples, applied at every epoch
boundary as ``lr * lr_decay ** (examples_seen / lr_decay_examples)``. On CIFAR-10 this
is exactly the paper's schedule; on a small dataset such as digits (1,437 training
images) it decays as slowly per example as the paper did, instead of starving
training by decaying 35 times faster.
"""

from __future__ import annotations

import copy
import itertools
import math
import os
import platform
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import models as _models
from ._io import atomic_torch_save
from .results import Result

__all__ = ["fit_random", "sweep", "load_model", "load_results", "default_run_name", "TrainingFailed", "add_cli"]

#: Default ``max_epochs`` per dataset name. Digits with random labels needs about 600
#: epochs with MLP 1x512 under the default schedule; CIFAR-10 and MNIST fit in far fewer.
DEFAULT_MAX_EPOCHS = {"digits": 1000, "cifar10": 200, "mnist": 200, "fashion_mnist": 200}

#: Settings a resumed run must share with its checkpoint.
_RESUME_KEYS = ("model", "dataset", "corruption", "corruption_seed", "seed", "lr", "momentum", "lr_decay",
                "lr_decay_examples", "weight_decay", "batch_size", "augment", "crop", "normalize")

_EVAL_BATCH = 1024

#: The checkpoint and the "running" result are written after an epoch when at least this many
#: seconds passed since they were last written (every epoch of a run whose epochs take longer);
#: at most this much work is lost to an interruption. Tiny runs (digits: ~40 ms per epoch)
#: would otherwise spend a third of their time writing files.
_CHECKPOINT_SECONDS = 2.0

#: Splits whose prepared images (corrupted, cropped, normalized, in the training dtype)
#: take at most this many bytes are prepared once per run and kept on the device.
_CACHE_BYTES = 2 * 2**30


class TrainingFailed(RuntimeError):
    """A run that could not go on (e.g. the loss became NaN). ``.result`` holds the run so far
    (status ``"failed"``), which was also written to ``out_dir`` when one was given."""

    def __init__(self, message: str, result: Result):
        super().__init__(message)
        self.result = result


class _ExampleDecay:
    """Learning-rate factor after ``epoch`` epochs: ``decay ** (epoch * per_epoch / every)``."""

    def __init__(self, decay: float, per_epoch: int, every: int):
        self.decay, self.per_epoch, self.every = decay, per_epoch, every

    def __call__(self, epoch: int) -> float:
        return self.decay ** (epoch * self.per_epoch / self.every)


def default_run_name(model: str, dataset: str, corruption: str, weight_decay: float, augment: str | None,
                     seed: int) -> str:
    """``{model}_{dataset}_{corruption}_wd{weight_decay:g}_{augment or 'noaug'}_s{seed}`` with every
    character outside ``[A-Za-z0-9._-]`` replaced by ``-``."""
    name = f"{model}_{dataset}_{corruption}_wd{weight_decay:g}_{augment or 'noaug'}_s{seed}"
    return re.sub(r"[^A-Za-z0-9._-]", "-", name)


# ----------------------------------------------------------------------------- helpers


def _check_number(name: str, value: Any, *, low: float | None = None, high: float | None = None,
                  low_open: bool = False, integer: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and integer:
        ok = isinstance(value, int) or float(value).is_integer()
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        rng = []
        if low is not None:
            rng.append(f"{'>' if low_open else '>='} {low:g}")
        if high is not None:
            rng.append(f"<= {high:g}")
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{name} must be {kind}{' ' + ' and '.join(rng) if rng else ''}, got {value!r}")


def _resolve_device(device: str | torch.device, local_rank: int) -> torch.device:
    if isinstance(device, str) and device == "auto":
        from ._build import cuda_kernels_available

        if cuda_kernels_available():  # a GPU and an extension built with its CUDA kernels
            return torch.device("cuda", local_rank if local_rank >= 0 else torch.cuda.current_device())
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"unknown device {device!r} (use 'auto', 'cpu', 'cuda' or 'cuda:N')") from e
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available")
        if dev.index is None:
            dev = torch.device("cuda", local_rank if local_rank >= 0 else torch.cuda.current_device())
    elif dev.type != "cpu":
        raise ValueError(f"unsupported device {device!r} (use 'auto', 'cpu', 'cuda' or 'cuda:N')")
    return dev


def _resolve_dtype(dtype: Any) -> torch.dtype | None:
    """The autocast dtype, or None for float32."""
    names = {"float32": None, "fp32": None, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    if dtype is None or dtype is torch.float32:
        return None
    if dtype is torch.bfloat16:
        return torch.bfloat16
    if isinstance(dtype, str) and dtype in names:
        return names[dtype]
    raise ValueError(f"unsupported dtype {dtype!r}: use None/'float32' or 'bfloat16' (bf16 autocast)")


def _versions(device: torch.device) -> dict[str, Any]:
    from . import __version__

    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine()
    return {"rethink": __version__, "torch": torch.__version__, "cuda": torch.version.cuda, "device_name": name,
            "python": platform.python_version()}


def _dist_context() -> tuple[int, int, int, bool]:
    """(rank, world_size, local_rank, created_group). Initializes the process group under
    torchrun (environment RANK/WORLD_SIZE) when it is not initialized yet."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", -1)), False
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, -1, False
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but torch.distributed is not available")
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    return rank, world, local_rank, True


def _state_to_cpu(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v.detach().to("cpu", copy=True) if torch.is_tensor(v) else copy.deepcopy(v) for k, v in state.items()}


def _prepare(loader: Any, n: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The whole split as prepared by ``loader`` (one fused kernel call), or None if too large.

    Without augmentation a split's prepared images are the same in every epoch (every
    corruption is drawn once), so they are made once and batches are gathered from them.
    """
    itemsize = torch.empty((), dtype=loader.dtype).element_size()
    if n == 0 or n * math.prod(loader.output_shape) * itemsize > _CACHE_BYTES:
        return None
    return loader.materialize(0)


def _chunks(data: tuple[torch.Tensor, torch.Tensor], size: int):
    x, y = data
    for start in range(0, y.shape[0], size):
        yield x[start:start + size], y[start:start + size]


def _shard_batches(data: tuple[torch.Tensor, torch.Tensor], order: torch.Tensor, loader: Any):
    """This rank's batches of one epoch gathered from the prepared split, in the loader's order
    and with the loader's sharding (every global batch cut into world_size equal shards)."""
    x, y = data
    n, bs, world, rank = order.shape[0], loader.batch_size, loader.world_size, loader.rank
    shard = bs // world
    full, rem = divmod(n, bs)
    last = 0 if loader.drop_last else rem // world
    count = full + (1 if last else 0)
    if count != len(loader):
        raise RuntimeError(f"internal: {count} batches from the prepared split but the loader has {len(loader)}")
    for k in range(count):
        size = shard if (k + 1) * bs <= n else last
        idx = order[k * bs + rank * size:k * bs + rank * size + size]
        xb = x.index_select(0, idx)
        if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
            xb = xb.contiguous(memory_format=torch.channels_last)
        yield xb, y.index_select(0, idx)


@torch.no_grad()
def _evaluate(model: nn.Module, batches: Any, device: torch.device, amp: torch.dtype | None) -> torch.Tensor:
    """Sum of cross-entropy losses, number correct and count over ``batches``, as a device tensor."""
    acc = torch.zeros(3, dtype=torch.float64, device=device)
    for x, y in batches:
        with torch.autocast(device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
            out = model(x)
        out = out.float()
        acc[0] += F.cross_entropy(out, y, reduction="sum").double()
        acc[1] += (out.argmax(1) == y).sum()
        acc[2] += y.numel()
    return acc


def _after_epoch(epoch: int) -> None:
    """Called after every epoch's checkpoint (a hook for tests that interrupt a run)."""


# ----------------------------------------------------------------------------- fit_random


def fit_random(
    model: str | nn.Module = "mlp1x512",
    dataset: Any = "digits",
    corruption: Any = "random_labels",
    *,
    root: str | os.PathLike | None = None,
    lr: float | None = None,
    momentum: float = 0.9,
    lr_decay: float = 0.95,
    lr_decay_examples: int = 50_000,
    weight_decay: float = 0.0,
    batch_size: int = 128,
    max_epochs: int | None = None,
    stop_at_train_acc: float = 1.0,
    augment: str | None = None,
    crop: int | None = None,
    normalize: str | None = "per_image",
    device: str | torch.device = "auto",
    dtype: Any = None,
    seed: int = 0,
    out_dir: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    run_name: str | None = None,
    compile: bool = False,
) -> Result:
    """Train ``model`` with SGD (momentum, no weight decay by default, cross-entropy) on
    ``dataset`` under ``corruption`` until the training accuracy reaches ``stop_at_train_acc``
    or ``max_epochs`` epochs have run; return the :class:`rethink.Result`.

    Args:
        model: a name from :func:`rethink.models.names` (built for the loader's output shape,
            initialized from ``seed``) or any ``nn.Module`` mapping ``B x C x H x W`` float
            images to ``B x num_classes`` logits.
        dataset: a name for :func:`rethink.datasets.load` (with ``root``) or a Dataset.
        corruption: a :class:`rethink.Corruption` (used as is) or its string form such as
            ``"random_labels"`` or ``"labels:0.4"`` (drawn with ``seed``).
        lr: initial learning rate; default the paper's: 0.1 for the Inception models, else 0.01.
        momentum, weight_decay: SGD settings (paper: 0.9, 0).
        lr_decay, lr_decay_examples: the learning rate is multiplied by ``lr_decay`` per
            ``lr_decay_examples`` training examples seen, applied at each epoch boundary
            (default 0.95 per 50,000: the paper's 0.95 per CIFAR-10 epoch).
        batch_size: global batch size (split across ranks under torchrun).
        max_epochs: default per dataset (:data:`DEFAULT_MAX_EPOCHS`; 1000 for other datasets
            under 10,000 training images, else 200).
        stop_at_train_acc: stop once the accuracy on the whole corrupted training split
            (eval mode, no augmentation) reaches this value, in (0, 1].
        augment, crop, normalize: passed to :class:`rethink.RandomizedLoader`.
        device: ``"auto"`` (CUDA when a GPU is visible and rethink was built with its CUDA
            kernels, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        dtype: None/``"float32"``, or ``"bfloat16"`` for bf16 autocast (batches in bf16).
        seed: model initialization, batch order and augmentation (and the corruption's draw
            when ``corruption`` is a string).
        out_dir: when given, ``<run_name>.json`` (the Result, rewritten atomically with status
            ``"running"`` together with the checkpoint), ``<run_name>.ckpt.pt`` (checkpoint after
            an epoch: model, optimizer, schedule, epoch, RNG state, history; written after every
            epoch, or every 2 s when epochs are shorter; removed at the end) and
            ``<run_name>.pt`` (final and initial weights). Every file is written atomically.
        resume: continue from ``<run_name>.ckpt.pt`` if present; a completed result is
            returned as it is.
        progress: a tqdm bar with live train/test accuracy.
        run_name: file stem in ``out_dir``; default :func:`default_run_name`.
        compile: run the model through ``torch.compile``.

    On a GPU, models with convolutions use channels_last. Under ``torchrun`` (environment
    ``WORLD_SIZE`` > 1) the model is wrapped in DistributedDataParallel, each rank loads its
    shard of every batch, and only rank 0 writes files.

    Raises:
        ValueError: an unknown model, dataset, corruption, device or dtype; a model whose
            output size is not the number of classes; lr <= 0, batch_size < 1 and other
            out-of-range settings; an ``out_dir`` that is a file; a result or checkpoint
            from another run or a newer format.
        TrainingFailed: the loss became NaN or infinite (the message names the step); the
            result so far is saved with status ``"failed"``.
    """
    import rethink

    # ---- validate settings (before anything is loaded or written)
    if lr is not None:
        _check_number("lr", lr, low=0, low_open=True)
    _check_number("momentum", momentum, low=0)
    _check_number("lr_decay", lr_decay, low=0, high=1, low_open=True)
    _check_number("lr_decay_examples", lr_decay_examples, low=1, integer=True)
    _check_number("weight_decay", weight_decay, low=0)
    _check_number("batch_size", batch_size, low=1, integer=True)
    if max_epochs is not None:
        _check_number("max_epochs", max_epochs, low=1, integer=True)
    _check_number("stop_at_train_acc", stop_at_train_acc, low=0, high=1, low_open=True)
    _check_number("seed", seed, low=0, integer=True)
    if isinstance(model, str) and model not in _models.names():
        raise ValueError(f"unknown model {model!r}; choose one of: {', '.join(_models.names())}")
    if not isinstance(model, (str, nn.Module)):
        raise ValueError(f"model must be a name or an nn.Module, got {model!r}")
    amp = _resolve_dtype(dtype)
    out_path = None
    if out_dir is not None:
        out_path = Path(out_dir)
        if out_path.exists() and not out_path.is_dir():
            raise ValueError(f"out_dir {str(out_dir)!r} is a file, not a folder")
    batch_size, seed = int(batch_size), int(seed)

    rank, world, local_rank, created_group = _dist_context()
    dev = _resolve_device(device, local_rank)
    if created_group:
        import torch.distributed as dist

        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    try:
        return _fit(rethink, model, dataset, corruption, root, lr, momentum, lr_decay, int(lr_decay_examples),
                    weight_decay, batch_size, max_epochs, stop_at_train_acc, augment, crop, normalize, dev, amp,
                    seed, out_path, resume, progress, run_name, compile, rank, world)
    finally:
        if created_group:
            import torch.distributed as dist

            dist.destroy_process_group()


def _fit(rethink, model, dataset, corruption, root, lr, momentum, lr_decay, lr_decay_examples, weight_decay,
         batch_size, max_epochs, stop_at_train_acc, augment, crop, normalize, dev, amp, seed, out_path, resume,
         progress, run_name, compile_model, rank, world) -> Result:
    # ---- data
    ds = rethink.datasets.load(dataset, root=root) if isinstance(dataset, str) else dataset
    if not hasattr(ds, "train") or not hasattr(ds, "num_classes"):
        raise ValueError(f"dataset must be a name or a rethink Dataset, got {dataset!r}")
    if isinstance(corruption, str):
        parsed = rethink.Corruption.parse(corruption)
        corr = rethink.Corruption(parsed.kind, p=parsed.p, seed=seed, keep_true=parsed.keep_true,
                                  unit=parsed.unit, corrupt_test_labels=parsed.corrupt_test_labels)
    elif isinstance(corruption, rethink.Corruption):
        corr = corruption
    else:
        raise ValueError(f"corruption must be a Corruption or its string form, got {corruption!r}")
    num_classes = int(ds.num_classes)
    num_train = int(ds.train.labels.shape[0])
    model_name = model if isinstance(model, str) else type(model).__name__
    if max_epochs is None:
        max_epochs = DEFAULT_MAX_EPOCHS.get(ds.name, 1000 if num_train < 10_000 else 200)
    if lr is None:
        lr = _models.DEFAULT_LR.get(model_name, 0.01) if isinstance(model, str) else 0.01
    if world > 1 and batch_size % world:
        raise ValueError(f"batch_size {batch_size} is not divisible by the world size {world}")
    conv = (model_name in _models.CONVOLUTIONAL if isinstance(model, str)
            else any(isinstance(m, nn.Conv2d) for m in model.modules()))
    channels_last = dev.type == "cuda" and conv
    loader_dtype = amp or torch.float32
    common = dict(augment=None, crop=crop, normalize=normalize, device=str(dev), dtype=loader_dtype,
                  channels_last=channels_last)
    train_loader = rethink.RandomizedLoader(ds, corr, split="train", batch_size=batch_size, shuffle=True, seed=seed,
                                            **{**common, "augment": augment}, rank=rank, world_size=world)
    eval_batch = max(batch_size, _EVAL_BATCH)
    train_eval = rethink.RandomizedLoader(ds, corr, split="train", batch_size=eval_batch, shuffle=False, seed=seed,
                                          **common)
    has_test = getattr(ds, "test", None) is not None and int(ds.test.labels.shape[0]) > 0
    test_eval = (rethink.RandomizedLoader(ds, corr, split="test", batch_size=eval_batch, shuffle=False, seed=seed,
                                          **common) if has_test else None)
    input_shape = tuple(int(v) for v in train_eval.output_shape)
    train_data = _prepare(train_eval, num_train)
    test_data = _prepare(test_eval, int(ds.test.labels.shape[0])) if has_test else None

    # ---- model
    net = _models.create(model, input_shape, num_classes, seed=seed) if isinstance(model, str) else model
    net = net.to(dev)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    was_training = net.training
    net.eval()
    with torch.no_grad():
        probe = net(torch.zeros((2, *input_shape), device=dev))
    net.train(was_training)
    if probe.dim() != 2 or probe.shape[1] != num_classes:
        raise ValueError(f"model {model_name!r} outputs shape {tuple(probe.shape[1:])} per image but dataset "
                         f"{ds.name!r} has {num_classes} classes")
    init_state = _state_to_cpu(net.state_dict())

    corr_str = str(corr)
    ds_name = str(ds.name)
    if run_name is None:
        run_name = default_run_name(model_name, ds_name, corr_str, weight_decay, augment, seed)
    elif not re.fullmatch(r"[A-Za-z0-9._-]+", run_name):
        raise ValueError(f"run_name {run_name!r} may use only the characters A-Z a-z 0-9 . _ -")
    config: dict[str, Any] = {
        "model": model_name, "dataset": ds_name, "corruption": corr_str, "corruption_seed": int(corr.seed),
        "seed": seed, "lr": float(lr), "momentum": float(momentum), "lr_decay": float(lr_decay),
        "lr_decay_examples": lr_decay_examples, "weight_decay": float(weight_decay), "batch_size": batch_size,
        "max_epochs": int(max_epochs), "stop_at_train_acc": float(stop_at_train_acc), "augment": augment,
        "crop": crop, "normalize": normalize, "device": str(dev), "dtype": "bfloat16" if amp else "float32",
        "compile": bool(compile_model), "world_size": world, "num_train": num_train,
        "num_test": int(ds.test.labels.shape[0]) if has_test else 0, "num_classes": num_classes,
        "input_shape": list(input_shape), "num_parameters": _models.num_parameters(net), "run_name": run_name,
        "out_dir": str(out_path.resolve()) if out_path is not None else None, "versions": _versions(dev),
    }

    json_path = ckpt_path = pt_path = None
    writer = out_path is not None and rank == 0
    if out_path is not None:
        json_path = out_path / f"{run_name}.json"
        ckpt_path = out_path / f"{run_name}.ckpt.pt"
        pt_path = out_path / f"{run_name}.pt"
        if resume and json_path.exists():
            done = Result.load(json_path)
            if done.status == "completed" and pt_path.exists():
                done.model, done.init_state = load_model(json_path, device=dev)
                return done

    # ---- optimizer, schedule, state
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay,
                                fused=True if dev.type == "cuda" else None)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _ExampleDecay(lr_decay, num_train, lr_decay_examples))
    history: list[dict[str, Any]] = []
    epoch = step = 0
    steps_to_fit = epochs_to_fit = None
    elapsed0 = 0.0
    if resume and ckpt_path is not None and ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        for key in _RESUME_KEYS:
            if ckpt["config"].get(key) != config[key]:
                raise ValueError(f"checkpoint {str(ckpt_path)!r} is from another run: {key} is "
                                 f"{ckpt['config'].get(key)!r} there but {config[key]!r} here")
        net.load_state_dict(ckpt["model_state"])
        optimizer.load_state_dict(ckpt["optimizer_state"])
        scheduler.load_state_dict(ckpt["scheduler_state"])
        init_state = ckpt["init_state"]
        history = list(ckpt["history"])
        epoch, step = int(ckpt["epoch"]), int(ckpt["step"])
        steps_to_fit, epochs_to_fit = ckpt["steps_to_fit"], ckpt["epochs_to_fit"]
        elapsed0 = float(ckpt["elapsed"])
        torch.set_rng_state(ckpt["rng_state"])
        if dev.type == "cuda" and ckpt.get("cuda_rng_state") is not None:
            torch.cuda.set_rng_state(ckpt["cuda_rng_state"], dev)

    train_net: nn.Module = net
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_net = DDP(net, device_ids=[dev.index] if dev.type == "cuda" else None)
    fwd = torch.compile(train_net) if compile_model else train_net
    eval_fwd = torch.compile(net) if compile_model else net

    result = Result(history=history, steps_to_fit=steps_to_fit, epochs_to_fit=epochs_to_fit, config=config,
                    status="running", model=net, init_state=init_state)

    def write(status: str, error: str | None = None) -> None:
        result.status, result.error = status, error
        if writer:
            result.save(json_path)

    def checkpoint() -> None:
        if not writer:
            return
        atomic_torch_save({
            "config": config, "model_state": _state_to_cpu(net.state_dict()),
            "optimizer_state": optimizer.state_dict(), "scheduler_state": scheduler.state_dict(),
            "init_state": init_state, "history": history, "epoch": epoch, "step": step,
            "steps_to_fit": result.steps_to_fit, "epochs_to_fit": result.epochs_to_fit,
            "elapsed": elapsed0 + time.perf_counter() - t0, "rng_state": torch.get_rng_state(),
            "cuda_rng_state": torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None,
        }, ckpt_path)

    bar = None
    if progress and rank == 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=max_epochs, initial=min(epoch, max_epochs), desc=run_name, unit="epoch",
                   dynamic_ncols=True, leave=True, file=sys.stderr)
        if history:
            bar.set_postfix(train_acc=f"{history[-1]['train_acc']:.3f}", test_acc=f"{history[-1]['test_acc']:.3f}")

    fitted = result.epochs_to_fit is not None and history and history[-1]["train_acc"] >= stop_at_train_acc
    t0 = last_save = time.perf_counter()
    steps_per_epoch = len(train_loader)
    try:
        while epoch < max_epochs and not fitted:
            train_loader.set_epoch(epoch)
            if augment is None and train_data is not None:
                batches = _shard_batches(train_data, train_loader.order(epoch), train_loader)
            else:
                batches = iter(train_loader)
            train_net.train()
            losses = torch.zeros(steps_per_epoch, device=dev)
            n_steps = 0
            for i, (x, y) in enumerate(batches):
                with torch.autocast(dev.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
                    out = fwd(x)
                loss = F.cross_entropy(out.float(), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses[i] = loss.detach()
                n_steps += 1
            lr_used = optimizer.param_groups[0]["lr"]
            scheduler.step()
            epoch += 1
            net.eval()
            tr = _evaluate(eval_fwd, _chunks(train_data, eval_batch) if train_data else train_eval, dev, amp)
            te = None
            if test_eval is not None:
                te = _evaluate(eval_fwd, _chunks(test_data, eval_batch) if test_data else test_eval, dev, amp)
            bad = ~torch.isfinite(losses[:n_steps])
            first_bad = torch.where(bad.any(), bad.to(torch.int64).argmax(), torch.tensor(-1, device=dev))
            parts = [tr, te if te is not None else torch.full((3,), math.nan, dtype=torch.float64, device=dev),
                     first_bad.to(torch.float64).reshape(1)]
            vals = torch.cat(parts).tolist()  # the one host sync of the epoch
            if vals[6] >= 0:
                bad_step = step + int(vals[6]) + 1
                step += n_steps
                msg = f"loss became non-finite at step {bad_step} (epoch {epoch}); training stopped"
                write("failed", msg)
                raise TrainingFailed(msg, result)
            step += n_steps
            entry = {
                "epoch": epoch, "step": step, "lr": float(lr_used),
                "train_loss": vals[0] / vals[2], "train_acc": vals[1] / vals[2],
                "test_loss": vals[3] / vals[5] if te is not None else math.nan,
                "test_acc": vals[4] / vals[5] if te is not None else math.nan,
                "seconds": elapsed0 + time.perf_counter() - t0,
            }
            history.append(entry)
            if entry["train_acc"] >= stop_at_train_acc:
                fitted = True
                result.steps_to_fit, result.epochs_to_fit = step, epoch
            now = time.perf_counter()
            if not fitted and epoch < max_epochs and now - last_save >= _CHECKPOINT_SECONDS:
                checkpoint()
                write("running")
                last_save = now
            if bar is not None:
                bar.update(1)
                bar.set_postfix(train_acc=f"{entry['train_acc']:.3f}", test_acc=f"{entry['test_acc']:.3f}",
                                loss=f"{entry['train_loss']:.3g}")
            _after_epoch(epoch)
    finally:
        if bar is not None:
            bar.close()

    result.status = "completed"
    if writer:
        atomic_torch_save({"model_state": _state_to_cpu(net.state_dict()), "init_state": init_state,
                           "model": model_name, "input_shape": list(input_shape), "num_classes": num_classes},
                          pt_path)
        write("completed")
        ckpt_path.unlink(missing_ok=True)
    return result


# ----------------------------------------------------------------------------- loading


def load_model(result_or_path: Result | str | os.PathLike, device: str | torch.device = "cpu"
               ) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """Rebuild the trained model of a run: ``(model in eval mode, init_state)``.

    Accepts a Result (its in-memory model when present, else the ``.pt`` file in its
    ``config["out_dir"]``), or the path of a result JSON (the ``.pt`` beside it).
    Raises FileNotFoundError when the weights file is missing and ValueError when the run
    used a model that is not in :func:`rethink.models.names`.
    """
    if isinstance(result_or_path, Result):
        if result_or_path.model is not None:
            return result_or_path.model, result_or_path.init_state
        out_dir = result_or_path.config.get("out_dir")
        if not out_dir:
            raise ValueError("result has no model in memory and no out_dir to load its weights from")
        pt = Path(out_dir) / f"{result_or_path.config['run_name']}.pt"
    else:
        p = Path(result_or_path)
        pt = p.with_suffix(".pt") if p.suffix == ".json" else p
    if not pt.exists():
        raise FileNotFoundError(f"weights file {str(pt)!r} not found")
    saved = torch.load(pt, map_location="cpu", weights_only=False)
    name = saved["model"]
    if name not in _models.names():
        raise ValueError(f"run used model {name!r}, which rethink.models cannot rebuild; load "
                         f"{str(pt)!r} with torch.load and apply 'model_state' to your module")
    net = _models.create(name, tuple(saved["input_shape"]), int(saved["num_classes"]))
    net.load_state_dict(saved["model_state"])
    return net.to(device).eval(), saved["init_state"]


def load_results(out_dir: str | os.PathLike) -> list[Result]:
    """Every result JSON in ``out_dir`` (sorted by file name); JSON files that are not rethink
    results are skipped. Raises ValueError for a result from a newer format."""
    results = []
    for path in sorted(Path(out_dir).glob("*.json")):
        try:
            results.append(Result.load(path))
        except ValueError as e:
            if "newer" in str(e):
                raise
    return results


# ----------------------------------------------------------------------------- sweep


def _as_list(v: Any) -> list[Any]:
    return list(v) if isinstance(v, (list, tuple)) else [v]


def _sweep_runs(models: Sequence[Any], corruptions: Sequence[Any], seeds: Sequence[int],
                fit_kwargs: dict[str, Any]) -> list[dict[str, Any]]:
    expand = {k: v for k, v in fit_kwargs.items() if isinstance(v, (list, tuple))}
    fixed = {k: v for k, v in fit_kwargs.items() if k not in expand}
    named = {"dataset", "weight_decay", "augment"}  # already in the default run name
    runs = []
    keys = list(expand)
    for m, c, s, *vals in itertools.product(models, corruptions, seeds, *expand.values()):
        kw = dict(fixed, model=m, corruption=c, seed=s, **dict(zip(keys, vals)))
        if "run_name" not in fixed:
            name = default_run_name(m if isinstance(m, str) else type(m).__name__,
                                    kw.get("dataset", "digits") if isinstance(kw.get("dataset", "digits"), str)
                                    else kw["dataset"].name, str(c), kw.get("weight_decay", 0.0),
                                    kw.get("augment"), s)
            extra = "".join(f"_{k}{v}" for k, v in zip(keys, vals) if k not in named)
            kw["run_name"] = re.sub(r"[^A-Za-z0-9._-]", "-", name + extra)
        runs.append(kw)
    names = [r.get("run_name") for r in runs]
    if "run_name" in fixed and len(runs) > 1:
        raise ValueError("run_name cannot be fixed for a sweep of several runs")
    if len(set(names)) != len(names):
        raise ValueError("sweep runs would share result files; give settings that differ in the run name")
    return runs


def _is_done(out_dir: Path, run_name: str) -> Result | None:
    p = out_dir / f"{run_name}.json"
    if p.exists():
        r = Result.load(p)
        if r.status == "completed":
            return r
    return None


def _sweep_worker(runs: list[dict[str, Any]], out_dir: str, device: str, workers: int) -> None:
    if torch.device(device).type == "cuda":
        if torch.device(device).index is not None:
            torch.cuda.set_device(torch.device(device))
    else:  # CPU workers share the cores
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    for kw in runs:
        try:
            fit_random(**dict(kw, device=device, out_dir=out_dir, resume=True, progress=False))
        except TrainingFailed:
            pass


def sweep(models: Sequence[Any] = ("mlp1x512",), corruptions: Sequence[Any] = ("none", "random_labels"),
          seeds: Sequence[int] = (0,), out_dir: str | os.PathLike = "results", *,
          devices: Sequence[str] | None = None, progress: bool = True, **fit_kwargs: Any) -> list[Result]:
    """Run :func:`fit_random` for every combination of ``models`` x ``corruptions`` x ``seeds``
    (and of any other fit_random setting given as a list, e.g. ``weight_decay=[0, 5e-4]``),
    one result file per run in ``out_dir``. Runs whose result JSON exists with status
    ``"completed"`` are skipped (their stored Result is returned); unfinished runs resume
    from their checkpoint. A run that fails (NaN loss) is recorded with status ``"failed"``
    and the sweep goes on.

    ``devices``: run on these devices, one worker process per device, runs spread over
    them (e.g. ``["cuda:0", "cuda:1"]``); default: one process per visible GPU when
    ``device`` is ``"auto"`` and several GPUs are visible, else all runs in this process.
    Results of worker processes are read back from ``out_dir`` (without models in memory).

    Returns the Results in product order. Raises ValueError for bad settings (before any
    run starts) and for an ``out_dir`` that is a file.
    """
    if out_dir is None:
        raise ValueError("sweep needs an out_dir for its result files")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {str(out_dir)!r} is a file, not a folder")
    for bad in ("model", "corruption", "seed", "out_dir", "resume"):
        if bad in fit_kwargs:
            raise ValueError(f"sweep takes models=, corruptions=, seeds= and out_dir=; not {bad}=")
    models, corruptions, seeds = _as_list(models), _as_list(corruptions), _as_list(seeds)
    for m in models:
        if isinstance(m, str) and m not in _models.names():
            raise ValueError(f"unknown model {m!r}; choose one of: {', '.join(_models.names())}")
    if not models or not corruptions or not seeds:
        raise ValueError("sweep needs at least one model, corruption and seed")
    runs = _sweep_runs(models, corruptions, seeds, fit_kwargs)
    out.mkdir(parents=True, exist_ok=True)

    device = fit_kwargs.get("device", "auto")
    if devices is None and device == "auto" and torch.cuda.device_count() > 1 and int(
            os.environ.get("WORLD_SIZE", "1")) == 1:
        devices = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    todo = [kw for kw in runs if _is_done(out, kw["run_name"]) is None]
    if devices is not None and len(devices) > 1 and len(todo) > 1:
        if any(not isinstance(kw["model"], str) for kw in todo):
            raise ValueError("sweeps over several devices need model names, not nn.Module objects")
        import torch.multiprocessing as mp

        ctx = mp.get_context("spawn")
        procs = []
        for i, d in enumerate(devices):
            part = todo[i::len(devices)]
            if part:
                p = ctx.Process(target=_sweep_worker, args=(part, str(out), d, len(devices)))
                p.start()
                procs.append(p)
        for p in procs:
            p.join()
        results = []
        for kw in runs:
            path = out / f"{kw['run_name']}.json"
            if not path.exists():
                raise RuntimeError(f"sweep worker left no result for run {kw['run_name']!r}")
            results.append(Result.load(path))
        return results

    results = []
    for kw in runs:
        done = _is_done(out, kw["run_name"])
        if done is not None:
            results.append(done)
            continue
        if devices:
            kw = dict(kw, device=devices[0])
        try:
            results.append(fit_random(**kw, out_dir=out, resume=True, progress=progress))
        except TrainingFailed as e:
            results.append(e.result)
    return results


# ----------------------------------------------------------------------------- command line


def _table(results: Sequence[Result]) -> str:
    head = "| run | status | epochs | steps to fit | train acc | test acc | gap |"
    lines = [head, "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        f = r.final
        lines.append(
            f"| {r.config.get('run_name', '?')} | {r.status} | {f.get('epoch', 0)} | "
            f"{r.steps_to_fit if r.steps_to_fit is not None else '-'} | {f.get('train_acc', math.nan):.4f} | "
            f"{f.get('test_acc', math.nan):.4f} | {f.get('gap', math.nan):+.4f} |")
    return "\n".join(lines)


def _integer(s: str) -> int:
    import argparse

    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {s!r}") from None
    return v


def _add_fit_options(p, sweep_mode: bool) -> None:
    lst = "+" if sweep_mode else None
    p.add_argument("--dataset", default="digits", nargs=lst,
                   help="dataset name: digits (embedded), cifar10, mnist, fashion_mnist (default digits)")
    p.add_argument("--root", default=None, help="folder holding the dataset files (cifar10, mnist)")
    p.add_argument("--lr", type=float, default=None, nargs=lst,
                   help="initial learning rate (default: 0.1 Inception, 0.01 others)")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9)")
    p.add_argument("--lr-decay", type=float, default=0.95, help="decay factor per --lr-decay-examples (0.95)")
    p.add_argument("--lr-decay-examples", type=int, default=50_000,
                   help="training examples per decay step (default 50000, one CIFAR-10 epoch)")
    p.add_argument("--weight-decay", type=float, default=0.0, nargs=lst, help="L2 weight decay (default 0)")
    p.add_argument("--batch-size", type=_integer, default=128, help="batch size (default 128)")
    p.add_argument("--max-epochs", type=int, default=None, help="epoch limit (default per dataset)")
    p.add_argument("--stop-at-train-acc", type=float, default=1.0, help="stop at this train accuracy (1.0)")
    p.add_argument("--augment", default=None, nargs=lst, help="augmentation: none (default) or crop_flip")
    p.add_argument("--crop", type=int, default=None, help="center crop size, e.g. 28 (the paper's)")
    p.add_argument("--normalize", default="per_image", help="per_image (paper), per_channel or none")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--dtype", default=None, help="float32 (default) or bfloat16 (autocast)")
    p.add_argument("--out-dir", default=None if not sweep_mode else "results",
                   help="folder for result files" + (" (default results)" if sweep_mode else ""))
    p.add_argument("--compile", action="store_true", help="use torch.compile")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _fit_kwargs(args) -> dict[str, Any]:
    norm = None if args.normalize in ("none", "None") else args.normalize
    return dict(root=args.root, momentum=args.momentum, lr_decay=args.lr_decay,
                lr_decay_examples=args.lr_decay_examples, batch_size=args.batch_size, max_epochs=args.max_epochs,
                stop_at_train_acc=args.stop_at_train_acc, crop=args.crop, normalize=norm, device=args.device,
                dtype=args.dtype, compile=args.compile)


def _none(v: Any) -> Any:
    if isinstance(v, list):
        return [_none(x) for x in v]
    return None if v in ("none", "None") else v


def _cmd_fit_random(args) -> int:
    kw = _fit_kwargs(args)
    args.augment = _none(args.augment)
    try:
        result = fit_random(args.model, args.dataset, args.corruption, lr=args.lr, weight_decay=args.weight_decay,
                            augment=args.augment, seed=args.seed, out_dir=args.out_dir, resume=args.resume,
                            progress=not args.no_progress, run_name=args.run_name, **kw)
    except TrainingFailed as e:
        print(_table([e.result]))
        raise
    print(_table([result]))
    if args.out_dir:
        print(f"result: {Path(args.out_dir) / (result.config['run_name'] + '.json')}")
    return 0


def _cmd_sweep(args) -> int:
    kw = _fit_kwargs(args)
    args.augment = _none(args.augment)
    for key in ("dataset", "lr", "weight_decay", "augment"):
        v = getattr(args, key)
        if isinstance(v, list):
            kw[key] = v if len(v) > 1 else v[0]
        elif v is not None:
            kw[key] = v
    results = sweep(args.models, args.corruptions, args.seeds, args.out_dir,
                    devices=args.devices, progress=not args.no_progress, **kw)
    print(_table(results))
    failed = [r for r in results if r.status != "completed"]
    print(f"results: {args.out_dir} ({len(results)} runs, {len(failed)} failed)")
    if failed:
        raise RuntimeError(f"{len(failed)} run(s) failed, e.g. {failed[0].config.get('run_name')}: {failed[0].error}")
    return 0


def add_cli(subparsers) -> None:
    """Register the ``fit-random`` and ``sweep`` subcommands."""
    p = subparsers.add_parser("fit-random", help="train one model on (randomized) data",
                              description="Train a model with SGD on randomized data until it fits the "
                                          "training set; print the final metrics.")
    p.add_argument("--model", default="mlp1x512", help=f"model name: {', '.join(_models.names())}")
    p.add_argument("--corruption", default="random_labels",
                   help="none, labels:P, random_labels, shuffled_pixels, random_pixels, gaussian")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--run-name", default=None, help="result file stem (default from the settings)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out-dir")
    _add_fit_options(p, sweep_mode=False)
    p.set_defaults(func=_cmd_fit_random)

    s = subparsers.add_parser("sweep", help="train every combination of models, corruptions and seeds",
                              description="Run fit-random for the product of the given settings, one result "
                                          "file per run; finished runs are skipped on a rerun.")
    s.add_argument("--models", nargs="+", default=["mlp1x512"], help="model names")
    s.add_argument("--corruptions", nargs="+", default=["none", "random_labels"], help="corruptions")
    s.add_argument("--seeds", nargs="+", type=int, default=[0], help="seeds")
    s.add_argument("--devices", nargs="+", default=None, help="one worker per device, e.g. cuda:0 cuda:1")
    _add_fit_options(s, sweep_mode=True)
    s.set_defaults(func=_cmd_sweep)
