"""The trainer: :func:`fit` trains one :class:`rethink.spec.RunSpec` with SGD and records it.

This is the experiment of Zhang et al. 2017: a model is trained with plain SGD on a copy
of the data whose labels or pixels were randomized, until it fits the training set (and,
optionally, for a fixed number of epochs past the fit); the per-epoch training and test
metrics and the windowed training loss are recorded in a :class:`rethink.Result`.
:func:`fit_random` is the keyword front end: it builds the spec from names (or from a
user module / Dataset) and calls :func:`fit`.

The loop keeps the data, labels and metrics on the device: each batch comes from
:class:`rethink.RandomizedLoader` (one fused kernel per batch, or an index gather from the
split prepared once when nothing changes per epoch), per-step losses are written into a
device tensor, and the host reads the metrics once per epoch.

Learning-rate decay is expressed per training example seen: the paper multiplies the
learning rate by 0.95 after every CIFAR-10 epoch (50,000 images), so the default is
``lr_decay=0.95`` per ``lr_decay_examples=50_000`` examples, applied at every epoch
boundary as ``lr * lr_decay ** (examples_seen / lr_decay_examples)``. On CIFAR-10 this
is exactly the paper's schedule; on a small dataset such as digits (1,437 training
images) it decays as slowly per example as the paper did.
"""

from __future__ import annotations

import copy
import math
import os
import platform
import re
import time
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import datasets as _datasets
from . import models as _models
from ._build import resolve_device
from ._io import REUSE_NOTE, atomic_torch_save, check_writable, note, progress_bar
from .corruption import Corruption
from .inputs import ModelSource, as_dataset, as_model
from .loader import RandomizedLoader
from .results import Result, load_model
from .run import Run, check_same_spec, set_aside_file
from .spec import RunSpec, Subject

__all__ = ["fit", "fit_random", "make_spec", "load_model", "TrainingFailed"]

#: The checkpoint and the "running" result are written after an epoch when at least this many
#: seconds passed since they were last written (every epoch of a run whose epochs take longer);
#: at most this much work is lost to an interruption. Tiny runs (digits: ~40 ms per epoch)
#: would otherwise spend a third of their time writing files.
_CHECKPOINT_SECONDS = 2.0


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


def _after_epoch(epoch: int) -> None:
    """Called after every epoch's checkpoint (a hook for tests that interrupt a run)."""


# ----------------------------------------------------------------------------- specs


def make_spec(model: Any = "mlp1x512", dataset: Any = "digits", corruption: Any = "random_labels", *,
              root: str | os.PathLike | None = None, **settings: Any
              ) -> tuple[RunSpec, ModelSource | None, _datasets.Dataset | None]:
    """The :class:`RunSpec` of a fit given as :func:`fit_random` takes it, with the user
    model source and Dataset (None for names) that :func:`fit` needs besides the spec.

    ``model`` and ``dataset`` are anything :func:`rethink.inputs.as_model` /
    :func:`rethink.inputs.as_dataset` take (names, modules, classes, factories; names,
    Datasets, tensor tuples, torch datasets). ``settings`` are RunSpec fields (``lr``,
    ``weight_decay``, ``max_epochs``, ...). A :class:`rethink.Corruption` object gives
    ``corruption_seed`` unless it is set.

    Raises:
        ValueError: an unknown setting (the message lists the known ones) or a bad value.
    """
    known = {f.name for f in fields(RunSpec)} - {"model", "dataset", "corruption", "model_fingerprint",
                                                  "dataset_fingerprint"}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(f"unknown setting(s) {', '.join(unknown)}; the settings of a run are: "
                         f"{', '.join(sorted(known))}")
    subject = Subject.of(model, dataset, root)
    if isinstance(corruption, Corruption):
        settings.setdefault("corruption_seed", corruption.seed)
        corruption = str(corruption)
    elif not isinstance(corruption, str):
        raise ValueError(f"corruption must be a Corruption or its string form, got {corruption!r}")
    spec = subject.spec(corruption=corruption, **settings)
    return spec, (subject.model if subject.model.is_user else None), subject.data


# ----------------------------------------------------------------------------- fit


def fit_random(model: Any = "mlp1x512", dataset: Any = "digits", corruption: Any = "random_labels",
               *, root: str | os.PathLike | None = None, device: str | torch.device = "auto",
               out_dir: str | os.PathLike | None = None, resume: bool = True, progress: bool = True,
               run_name: str | None = None, compile: bool = False, execution: Any = None,
               **settings: Any) -> Result:
    """Train ``model`` with SGD on ``dataset`` under ``corruption`` and return the Result.

    Args:
        model: a name from :func:`rethink.models.names` (built for the loader's output shape,
            initialized from ``seed``), an ``nn.Module`` class or factory (called under
            ``torch.manual_seed(seed)``, with ``input_shape`` / ``num_classes`` when it takes
            them), or an ``nn.Module`` instance (copied: the caller's module is not trained).
            The network maps float ``B x C x H x W`` images to ``B x num_classes`` logits.
        dataset: a name for :func:`rethink.datasets.load` (with ``root``), a Dataset, an
            ``(X, y)`` or ``(X, y, X_test, y_test)`` tuple of tensors/arrays, a torch Dataset
            of (image, label) pairs or a torchvision-style object (see :mod:`rethink.inputs`
            for the image conversion rule).
        corruption: a :class:`rethink.Corruption` (used with its seed) or its string form
            such as ``"random_labels"`` or ``"labels:0.4"`` (drawn with ``seed``).
        **settings: the run's settings, :class:`rethink.spec.RunSpec` fields: ``seed``,
            ``lr``, ``momentum``, ``weight_decay``, ``lr_decay``, ``lr_decay_examples``,
            ``batch_size``, ``max_epochs``, ``stop_at_train_acc``, ``stop_at_train_loss``,
            ``epochs_after_fit``, ``augment``, ``crop``, ``max_rotation``, ``normalize``,
            ``dropout``, ``train_size``, ``dtype``, ``loss_window`` ... (defaults: the paper's).
        root, device, out_dir, resume, progress, run_name, compile: see :func:`fit`.
        execution: a :class:`rethink.runner.Execution` giving root, device, out_dir, resume
            and progress at once (as every command takes it; then those keywords are unused).

    Raises:
        ValueError: an unknown model, dataset, corruption, setting, device or dtype; a
            value out of range (the message names it); see :func:`fit`.
        TrainingFailed: the loss became NaN or infinite (the message names the step).
    """
    if execution is not None:
        if execution.devices or execution.executor is not None:
            raise ValueError("fit_random trains one run in this process: give devices / an executor to sweep")
        root, device, out_dir = execution.root, execution.device, execution.out_dir
        resume, progress = execution.resume, execution.progress
    spec, module, data = make_spec(model, dataset, corruption, root=root, **settings)
    return fit(spec, model=module, dataset=data, root=root, device=device, out_dir=out_dir, resume=resume,
               progress=progress, run_name=run_name, compile=compile)


def fit(spec: RunSpec, *, model: Any = None, dataset: Any = None,
        root: str | os.PathLike | None = None, device: str | torch.device = "auto",
        out_dir: str | os.PathLike | None = None, resume: bool = True, progress: bool = True,
        run_name: str | None = None, compile: bool = False) -> Result:
    """Train the run ``spec`` with SGD (cross-entropy) until its stopping rule, and return it.

    The run stops when the accuracy on the whole corrupted training set (eval mode, no
    augmentation) reaches ``spec.stop_at_train_acc`` (or its loss falls to
    ``spec.stop_at_train_loss``), plus ``spec.epochs_after_fit`` epochs, or after
    ``spec.max_epochs`` epochs.

    Args:
        spec: the run's settings (its model and dataset names must match the ``model`` /
            ``dataset`` objects when those are given).
        model: the user model (module, class, factory or :class:`rethink.inputs.ModelSource`)
            when ``spec.model`` is not a rethink model name; its fingerprint must be the spec's.
        dataset: the user data (anything :func:`rethink.inputs.as_dataset` takes) when
            ``spec.dataset`` is not a dataset name; its fingerprint must be the spec's.
        root: folder of the dataset files (default: $RETHINK_DATA, ./data, the system's).
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        out_dir: when given, ``<run_name>.json`` (the Result, rewritten atomically with
            status ``"running"`` together with the checkpoint), ``<run_name>.ckpt.pt``
            (checkpoint, removed at the end) and ``<run_name>.pt`` (final and initial
            weights). The folder must be writable: that is checked before anything runs.
        resume: (the default, as in every command) a completed result of the same spec is
            returned as it is and an interrupted run continues from ``<run_name>.ckpt.pt``;
            False trains anew (never over a run of other settings). A damaged (e.g. truncated) result or checkpoint
            file is renamed to ``<file>.damaged`` with a warning and the run starts over.
        progress: a tqdm bar with live train/test accuracy.
        run_name: file stem in ``out_dir``; default ``spec.run_name()`` (readable settings and
            a hash of all of them).
        compile: run the model through ``torch.compile``.

    On a GPU, models with convolutions use channels_last; on a CPU those whose class sets
    ``channels_last_cpu`` (small Inception) do. Under ``torchrun`` (environment
    ``WORLD_SIZE`` > 1) the model is wrapped in DistributedDataParallel, each rank loads its
    shard of every batch, and only rank 0 writes files.

    Raises:
        ValueError: a bad device or run_name; a model whose input or output does not fit the
            data (the message names model, input shape and dataset); an ``out_dir`` that is a
            file; a result or checkpoint of the same name but another spec (the message names
            the settings that differ) or of a newer format.
        PermissionError: ``out_dir`` cannot be written.
        TrainingFailed: the loss became NaN or infinite; the result so far is saved.
    """
    if not isinstance(spec, RunSpec):
        raise ValueError(f"spec must be a rethink.spec.RunSpec, got {type(spec).__name__}")
    if run_name is not None and not (isinstance(run_name, str) and re.fullmatch(r"[A-Za-z0-9._-]+", run_name)):
        raise ValueError(f"run_name {run_name!r} may use only the characters A-Z a-z 0-9 . _ -")
    if (model is None) != (spec.model_fingerprint is None) or (dataset is None) != (spec.dataset_fingerprint is None):
        raise ValueError("pass the model / dataset objects exactly when the spec names a user module / Dataset")
    source = as_model(model) if model is not None else as_model(spec.model)
    if source.fingerprint != spec.model_fingerprint:
        raise ValueError(f"the model given is not the spec's: fingerprint {source.fingerprint} but the spec has "
                         f"{spec.model_fingerprint}")
    if dataset is not None:
        dataset, fp = as_dataset(dataset)
        if fp != spec.dataset_fingerprint:
            raise ValueError(f"the dataset given is not the spec's: fingerprint {fp} but the spec has "
                             f"{spec.dataset_fingerprint}")
    out_path = check_writable(out_dir, "out_dir") if out_dir is not None else None
    rank, world, local_rank, created_group = _dist_context()
    dev = resolve_device(device, local_rank=local_rank)
    if created_group:
        import torch.distributed as dist

        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    try:
        run = Run.of(spec, dataset, root=root, out_dir=out_path, name=run_name)
        threads = torch.get_num_threads()
        if spec.threads is not None:
            torch.set_num_threads(spec.threads)
        try:
            return _Trainer(run, source, dev, rank, world, compile).run(resume, progress)
        finally:
            torch.set_num_threads(threads)
    finally:
        if created_group:
            import torch.distributed as dist

            dist.destroy_process_group()


# ----------------------------------------------------------------------------- helpers


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
    return rank, world, int(os.environ.get("LOCAL_RANK", rank)), True


def _versions(device: torch.device) -> dict[str, Any]:
    from ._build import cpu_model
    from ._version import __version__

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()
    return {"rethink": __version__, "torch": torch.__version__, "cuda": torch.version.cuda, "device_name": name,
            "cpu": cpu_model(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version()}


def _state_to_cpu(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v.detach().to("cpu", copy=True) if torch.is_tensor(v) else copy.deepcopy(v) for k, v in state.items()}


@torch.no_grad()
def _evaluate(model: nn.Module, loader: RandomizedLoader, device: torch.device, amp: torch.dtype | None
              ) -> torch.Tensor:
    """Sum of cross-entropy losses, number correct and count over one pass of ``loader``, as a
    device tensor (no host sync)."""
    acc = torch.zeros(3, dtype=torch.float64, device=device)
    for x, y in loader:
        with torch.autocast(device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
            out = model(x)
        out = out.float()
        acc[0] += F.cross_entropy(out, y, reduction="sum").double()
        acc[1] += (out.argmax(1) == y).sum()
        acc[2] += y.numel()
    return acc


@dataclass
class _Progress:
    """What changes during a run (and what a checkpoint restores)."""

    history: list
    loss_log: list
    pending: torch.Tensor  # per-step losses of the window not yet complete (CPU)
    epoch: int = 0
    step: int = 0
    steps_to_fit: int | None = None
    epochs_to_fit: int | None = None
    elapsed: float = 0.0


class _Trainer:
    """One run: data, model, optimizer, files. Built by :func:`fit`."""

    def __init__(self, run: Run, source: ModelSource, dev, rank, world, compile_model):
        spec, ds = run.spec, run.dataset
        self.the_run, self.spec, self.ds, self.dev, self.rank, self.world = run, spec, ds, dev, rank, world
        self.run_name, self.files = run.name, run.files
        if world > 1 and spec.batch_size % world:
            raise ValueError(f"batch_size {spec.batch_size} is not divisible by the world size {world}")
        self.amp = torch.bfloat16 if spec.dtype == "bfloat16" else None
        self.source, self.input_shape = source, run.input_shape
        net = source.build(spec.seed, self.input_shape, int(ds.num_classes), spec.dropout)
        conv = any(isinstance(m, nn.Conv2d) for m in net.modules())
        self.channels_last = conv and (dev.type == "cuda" or getattr(net, "channels_last_cpu", False))
        self._make_loaders()
        self._make_model(net)
        if compile_model:
            self.fwd, self.eval_fwd = torch.compile(self.train_net), torch.compile(self.net)
        else:
            self.fwd, self.eval_fwd = self.train_net, self.net
        self.config = self._config(compile_model)

    # -- set-up ----------------------------------------------------------------------
    def _make_loaders(self) -> None:
        data = self.the_run.data(self.dev, dtype=self.amp or torch.float32, channels_last=self.channels_last,
                              rank=self.rank, world_size=self.world)
        self.train_loader, self.train_eval, self.test_eval = data.train, data.train_eval, data.test_eval

    def _make_model(self, net: nn.Module) -> None:
        spec, dev, ds = self.spec, self.dev, self.ds
        net = net.to(dev)
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last)
        was_training = net.training
        net.eval()
        try:
            with torch.no_grad():
                probe = net(torch.zeros((2, *self.input_shape), device=dev))
        except RuntimeError as e:
            raise ValueError(f"model {spec.model!r} cannot take the images of dataset {ds.name!r}: input shape "
                             f"{self.input_shape} (C, H, W) per image (after crop={spec.crop}); torch says: "
                             f"{' '.join(str(e).split())[:300]}") from None
        net.train(was_training)
        if probe.dim() != 2 or probe.shape[1] != ds.num_classes:
            raise ValueError(f"model {spec.model!r} outputs shape {tuple(probe.shape[1:])} per image but dataset "
                             f"{ds.name!r} has {ds.num_classes} classes")
        self.net = net
        self.init_state = _state_to_cpu(net.state_dict())
        self.train_net = net
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            self.train_net = DDP(net, device_ids=[dev.index] if dev.type == "cuda" else None)
        self.optimizer = torch.optim.SGD(net.parameters(), lr=spec.lr, momentum=spec.momentum,
                                         weight_decay=spec.weight_decay, fused=True if dev.type == "cuda" else None)
        n_seen = self.the_run.num_train
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, _ExampleDecay(spec.lr_decay, n_seen, spec.lr_decay_examples))

    def _config(self, compile_model: bool) -> dict[str, Any]:
        ds = self.ds
        return {**self.spec.to_dict(), "run_name": self.run_name, "device": str(self.dev), "compile": bool(compile_model),
                "world_size": self.world,
                "num_train": self.the_run.num_train, "num_test": self.the_run.num_test,
                "num_classes": int(ds.num_classes),
                "input_shape": list(self.input_shape), "channels_last": bool(self.channels_last),
                "num_parameters": _models.num_parameters(self.net),
                "out_dir": str(self.files.out_dir) if self.files is not None else None,  # as given, not resolved
                "versions": _versions(self.dev)}

    # -- files -----------------------------------------------------------------------
    def _finished(self) -> Result | None:
        """A completed result of this spec in out_dir, or None; a damaged one is set aside."""
        done = self.files.finished(self.spec)
        if done is not None:
            done.model, done.init_state = load_model(self.files.json, device=self.dev)
        return done

    def _restore(self, state: _Progress) -> _Progress:
        path = self.files.ckpt
        if not path.exists():
            return state
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=False)
            spec_dict = ckpt["spec"] if "spec" in ckpt else ckpt["config"]  # rethink 0.1: "config"
        except Exception as e:  # noqa: BLE001 - any failure to read it means a damaged file
            set_aside_file(path, e)
            return state
        check_same_spec(self.spec, spec_dict, path)
        self.net.load_state_dict(ckpt["model_state"])
        self.optimizer.load_state_dict(ckpt["optimizer_state"])
        self.scheduler.load_state_dict(ckpt["scheduler_state"])
        self.init_state = ckpt["init_state"]
        torch.set_rng_state(ckpt["rng_state"])
        if self.dev.type == "cuda" and ckpt.get("cuda_rng_state") is not None:
            torch.cuda.set_rng_state(ckpt["cuda_rng_state"], self.dev)
        return _Progress(list(ckpt["history"]), list(ckpt.get("loss_log", [])), ckpt.get("pending", torch.zeros(0)),
                         int(ckpt["epoch"]),
                         int(ckpt["step"]), ckpt["steps_to_fit"], ckpt["epochs_to_fit"], float(ckpt["elapsed"]))

    def _checkpoint(self, state: _Progress, elapsed: float) -> None:
        atomic_torch_save({
            "spec": self.spec.to_dict(), "model_state": _state_to_cpu(self.net.state_dict()),
            "optimizer_state": self.optimizer.state_dict(), "scheduler_state": self.scheduler.state_dict(),
            "init_state": self.init_state, "history": state.history, "loss_log": state.loss_log,
            "pending": state.pending, "epoch": state.epoch, "step": state.step,
            "steps_to_fit": state.steps_to_fit, "epochs_to_fit": state.epochs_to_fit, "elapsed": elapsed,
            "rng_state": torch.get_rng_state(),
            "cuda_rng_state": torch.cuda.get_rng_state(self.dev) if self.dev.type == "cuda" else None,
        }, self.files.ckpt)

    # -- the loop --------------------------------------------------------------------
    def run(self, resume: bool, progress: bool) -> Result:
        """Train (or read back) the run. The global torch RNG, which dropout draws from, is
        seeded from the spec's seed inside a fork: the caller's RNG state is left as it was."""
        devices = [self.dev] if self.dev.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.spec.seed)
            return self._run(resume, progress)

    def _run(self, resume: bool, progress: bool) -> Result:
        spec, writer = self.spec, self.files is not None and self.rank == 0
        if self.files is not None and resume:
            done = self._finished()
            if done is not None:
                if progress and self.rank == 0:
                    note(f"{self.files.json} {REUSE_NOTE}")
                return done
        elif self.files is not None:  # starting over: never over a run of other settings
            self.files.result(self.spec)
        state = _Progress([], [], torch.zeros(0))
        if self.files is not None and resume:
            state = self._restore(state)
        result = Result(history=state.history, loss_log=state.loss_log, steps_to_fit=state.steps_to_fit,
                        epochs_to_fit=state.epochs_to_fit, config=self.config, status="running", model=self.net,
                        init_state=self.init_state)

        def write(status: str, error: str | None = None) -> None:
            result.status, result.error = status, error
            result.steps_to_fit, result.epochs_to_fit = state.steps_to_fit, state.epochs_to_fit
            if writer:
                result.save(self.files.json)

        bar = self._bar(progress, state)
        self._elapsed0 = state.elapsed
        t0 = last_save = time.perf_counter()
        # training and evaluation see the same training samples when nothing is drawn per epoch:
        # prepare them once for both (inside the timed part, as the first epoch did before)
        self.train_eval.share_prepared(self.train_loader)
        try:
            while not self._done(state):
                error = self._epoch(state, t0)
                if error is not None:
                    write("failed", error)
                    raise TrainingFailed(error, result)
                now = time.perf_counter()
                if writer and not self._done(state) and now - last_save >= _CHECKPOINT_SECONDS:
                    self._checkpoint(state, state.elapsed)
                    write("running")
                    last_save = now
                if bar is not None:
                    h = state.history[-1]
                    bar.update(1)
                    bar.set_postfix(train_acc=f"{h['train_acc']:.3f}", test_acc=f"{h['test_acc']:.3f}",
                                    loss=f"{h['train_loss']:.3g}")
                _after_epoch(state.epoch)
        except KeyboardInterrupt:  # the last checkpoint (at most _CHECKPOINT_SECONDS old) resumes it
            if writer:  # no checkpoint here: the interrupt may have come in the middle of an epoch
                write("interrupted", "interrupted (KeyboardInterrupt); resume=True continues from the last "
                                     "checkpoint")
            raise
        finally:
            if bar is not None:
                bar.close()
        if state.pending.numel():  # the last, partial window of the loss log
            state.loss_log.append([state.step, float(state.pending.double().mean())])
            state.pending = torch.zeros(0)
        if writer:
            atomic_torch_save({"model_state": _state_to_cpu(self.net.state_dict()), "init_state": self.init_state,
                               "model": spec.model, "input_shape": list(self.input_shape),
                               "num_classes": int(self.ds.num_classes), "dropout": spec.dropout,
                               **self.source.rebuild_record()}, self.files.pt)
        write("completed")
        if writer:
            self.files.ckpt.unlink(missing_ok=True)
        return result

    def _bar(self, progress: bool, state: _Progress):
        bar = progress_bar(progress and self.rank == 0, total=self.spec.max_epochs,
                           initial=min(state.epoch, self.spec.max_epochs), desc=self.run_name, unit="epoch",
                           dynamic_ncols=True, leave=True)
        if bar is not None and state.history:
            h = state.history[-1]
            bar.set_postfix(train_acc=f"{h['train_acc']:.3f}", test_acc=f"{h['test_acc']:.3f}")
        return bar

    def _done(self, state: _Progress) -> bool:
        if state.epoch >= self.spec.max_epochs:
            return True
        return state.epochs_to_fit is not None and state.epoch >= state.epochs_to_fit + self.spec.epochs_after_fit

    def _reached(self, entry: dict) -> bool:
        spec = self.spec
        acc = spec.stop_at_train_acc is not None and entry["train_acc"] >= spec.stop_at_train_acc
        loss = spec.stop_at_train_loss is not None and entry["train_loss"] <= spec.stop_at_train_loss
        return acc or loss

    def _epoch(self, state: _Progress, t0: float) -> str | None:
        """One epoch of SGD, the evaluation, and the one host sync that reads its numbers.
        Returns None, or the error when the loss became non-finite."""
        dev, amp = self.dev, self.amp
        loader = self.train_loader
        loader.set_epoch(state.epoch)
        self.train_net.train()
        losses = torch.zeros(len(loader), device=dev)
        n_steps = 0
        for i, (x, y) in enumerate(loader):
            with torch.autocast(dev.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
                out = self.fwd(x)
            loss = F.cross_entropy(out.float(), y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            losses[i] = loss.detach()
            n_steps += 1
        lr_used = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        self.net.eval()
        tr = _evaluate(self.eval_fwd, self.train_eval, dev, amp)
        te = (_evaluate(self.eval_fwd, self.test_eval, dev, amp) if self.test_eval is not None
              else torch.full((3,), math.nan, dtype=torch.float64, device=dev))
        bad = ~torch.isfinite(losses[:n_steps])
        first_bad = torch.where(bad.any(), bad.to(torch.int64).argmax(), torch.tensor(-1, device=dev))
        window = self.spec.loss_window
        steps = torch.cat([state.pending.to(dev), losses[:n_steps]])
        full = steps.numel() // window
        means = steps[:full * window].double().reshape(full, window).mean(1) if full else steps.new_zeros(0).double()
        vals = torch.cat([tr, te, first_bad.to(torch.float64).reshape(1), means]).tolist()  # the one host sync
        start = state.step - state.pending.numel()
        state.pending = steps[full * window:].detach().cpu()
        state.epoch += 1
        if vals[6] >= 0:
            bad_step = state.step + int(vals[6]) + 1
            state.step += n_steps
            return f"loss became non-finite at step {bad_step} (epoch {state.epoch}); training stopped"
        state.step += n_steps
        state.loss_log.extend([start + (k + 1) * window, v] for k, v in enumerate(vals[7:]))
        entry = {
            "epoch": state.epoch, "step": state.step, "lr": float(lr_used),
            "train_loss": vals[0] / vals[2], "train_acc": vals[1] / vals[2],
            "test_loss": vals[3] / vals[5] if self.test_eval is not None else math.nan,
            "test_acc": vals[4] / vals[5] if self.test_eval is not None else math.nan,
            "seconds": self._elapsed0 + time.perf_counter() - t0,
        }
        state.history.append(entry)
        if state.epochs_to_fit is None and self._reached(entry):
            state.steps_to_fit, state.epochs_to_fit = state.step, state.epoch
        state.elapsed = entry["seconds"]
        return None
