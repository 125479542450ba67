"""The one runner: many jobs (fits, measures, predictions) into one results folder.

Every loop over runs in rethink goes through :func:`run_jobs`: :func:`sweep`,
:func:`rethink.randomization_test`, :func:`rethink.rademacher`, the measures study, the
model zoo and memorization scores. A job knows its output file; the runner skips jobs
whose output is there (a fit only when the result's spec equals the job's), resumes
interrupted fits from their checkpoint, and runs the rest

- in this process (the default),
- in one worker process per device (``devices=["cuda:0", "cuda:1"]``, or ``["cpu", "cpu"]``
  to split a small machine's cores), each worker taking the next job when it is free, or
- on a cluster through an executor with ``submit(fn, *args)``, e.g. submitit's
  ``AutoExecutor`` for Slurm (``rethink.runner.slurm_executor``) or its ``LocalExecutor``.

Outputs are read back from the folder, so a job run anywhere counts the same.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._io import REUSE_NOTE, check_writable, note, progress_bar
from .results import Result
from .spec import RunSpec

__all__ = ["Execution", "FitJob", "run_jobs", "run_fits", "run_specs", "sweep", "slurm_executor"]


@dataclass(frozen=True)
class FitJob:
    """Train one :class:`RunSpec` into ``<out_dir>/<run_name>.json`` (and its weights)."""

    spec: RunSpec
    root: str | None = None
    #: continue an interrupted run from its checkpoint (else it starts over)
    resume: bool = field(default=True, compare=False)
    #: the user module / Dataset when the spec names one (see :func:`rethink.train.fit`)
    module: Any = field(default=None, compare=False, hash=False, repr=False)
    data: Any = field(default=None, compare=False, hash=False, repr=False)
    #: a finished result counts only with its weights file (what measures and predictions read);
    #: False: its result file suffices (jobs whose results are read, never their networks, e.g.
    #: a randomization test's), so results stored without weights are not trained again
    weights: bool = field(default=True, compare=False)

    @classmethod
    def of(cls, subject: Any, spec: RunSpec, root: str | os.PathLike | None = None, resume: bool = True,
           weights: bool = True) -> FitJob:
        """The job training ``spec``, a spec of ``subject`` (a :class:`rethink.spec.Subject`),
        carrying its user model and data."""
        return cls(spec, str(root) if root is not None else None, resume=resume,
                   module=subject.model if subject.model.is_user else None, data=subject.data, weights=weights)

    @property
    def name(self) -> str:
        return self.spec.run_name()

    def finished(self, out_dir: Path) -> Result | None:
        """The completed result of this spec in ``out_dir`` (with its weights unless
        ``weights`` is False), else None. A damaged file is left for the fit to set aside; a
        result of another spec under this name raises :class:`rethink.run.OtherRun`."""
        from .run import RunFiles

        return RunFiles(Path(out_dir), self.name).finished(self.spec, set_aside=False, weights=self.weights)

    def __call__(self, out_dir: Path | None, device: str, progress: bool = False) -> Result:
        from .train import TrainingFailed, fit

        try:
            r = fit(self.spec, model=self.module, dataset=self.data, root=self.root, device=device, out_dir=out_dir,
                    resume=self.resume, progress=progress)
        except TrainingFailed as e:
            return e.result
        if out_dir is not None:  # do not hold every trained network in memory: it is on disk
            r.model = r.init_state = None
        return r


def _worker(jobs: list, out_dir: str, device: str, workers: int, queue) -> None:
    import torch

    if device.startswith("cuda"):  # "cuda" without an index is the current device, as in torch
        d = torch.device(device)
        torch.cuda.set_device(d if d.index is not None else torch.cuda.current_device())
    else:  # CPU workers share the cores
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    while True:
        i = queue.get()
        if i is None:
            return
        try:
            jobs[i](Path(out_dir), device)
        except Exception as e:  # noqa: BLE001 - one failing job must not stop the others
            _record_failure(jobs[i], Path(out_dir), e)


def _record_failure(job, out_dir: Path, error: Exception) -> None:
    """A failed fit leaves a result with status "failed" and the error, so the folder says why."""
    if isinstance(job, FitJob):
        msg = f"{type(error).__name__}: {' '.join(str(error).split())}"
        Result(config={**job.spec.to_dict(), "run_name": job.name}, status="failed", error=msg).save(
            out_dir / f"{job.name}.json")
    print(f"rethink: job {job.name} failed: {type(error).__name__}: {error}", file=sys.stderr)


def _run_in_workers(jobs: list, todo: list[int], out: Path, devices: Sequence[str]) -> None:
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    for i in todo:
        queue.put(i)
    workers = min(len(devices), len(todo))
    for _ in range(workers):
        queue.put(None)
    procs = [ctx.Process(target=_worker, args=(jobs, str(out), str(d), workers, queue)) for d in devices[:workers]]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    bad = [p.exitcode for p in procs if p.exitcode != 0]
    if bad:
        raise RuntimeError(f"{len(bad)} worker process(es) died (exit codes {bad}); rerun: finished jobs are kept")


def _run_with_executor(jobs: list, todo: list[int], out: Path, executor: Any, device: str) -> None:
    submitted = [(i, executor.submit(_run_one, jobs[i], str(out), device)) for i in todo]
    errors = []
    for i, job in submitted:
        try:
            job.result()
        except Exception as e:  # noqa: BLE001 - report every failed job, keep the others
            errors.append(f"{jobs[i].name}: {type(e).__name__}: {e}")
    if errors:
        print("rethink: " + "; ".join(errors), file=sys.stderr)


def _run_one(job, out_dir: str, device: str):
    """What an executor runs for one job (a module-level function, so it pickles)."""
    try:
        return job(Path(out_dir), device)
    except Exception as e:
        _record_failure(job, Path(out_dir), e)
        raise


def run_jobs(jobs: Sequence[Any], out_dir: str | os.PathLike | None, *, device: str = "auto",
             devices: Sequence[str] | None = None, executor: Any = None, progress: bool = True,
             desc: str = "runs", rerun: bool = False) -> list[Any]:
    """Run every job whose output is not in ``out_dir`` yet; return every job's output, in order.

    Args:
        jobs: objects with ``name``, ``finished(out_dir) -> output or None`` and
            ``__call__(out_dir, device) -> output`` (e.g. :class:`FitJob`); picklable for
            workers and executors.
        out_dir: the results folder (checked writable before anything runs); None runs
            every job in this process and keeps nothing on disk.
        device: the device of in-process jobs and executor jobs ("auto", "cpu", "cuda:N").
        devices: one worker process per entry (several entries may repeat "cpu"); default:
            one per visible GPU when ``device`` is "auto" and several GPUs are visible.
        executor: an object with ``submit(fn, *args) -> job`` whose jobs have ``result()``,
            e.g. a submitit executor (:func:`slurm_executor`); every job is submitted
            separately and the outputs are read back from ``out_dir``.
        progress: an overall progress bar, and the per-fit bars of in-process fits.
        rerun: run every job, even those whose output is in ``out_dir``.

    Raises:
        ValueError: ``out_dir`` is a file or missing where workers or an executor need it.
        PermissionError: ``out_dir`` cannot be written.
        RuntimeError: a worker died, or a job left no output (the message names it).
    """
    import torch

    jobs = list(jobs)
    out = check_writable(out_dir, "out_dir") if out_dir is not None else None
    if out is None and (executor is not None or (devices and len(devices) > 1)):
        raise ValueError("worker processes and executors need an out_dir to leave their results in")
    if devices is None and executor is None and device == "auto" and torch.cuda.device_count() > 1 \
            and out is not None and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        devices = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    outputs: list[Any] = [job.finished(out) if out is not None and not rerun else None for job in jobs]
    todo = [i for i, o in enumerate(outputs) if o is None]
    if progress and len(todo) < len(jobs):
        note(f"{len(jobs) - len(todo)} of {len(jobs)} {desc} in {out}: {REUSE_NOTE}")
    if todo and executor is not None:
        _run_with_executor(jobs, todo, out, executor, device)
    elif len(todo) > 1 and devices is not None and len(devices) > 1:
        _run_in_workers(jobs, todo, out, list(devices))
    else:
        bar = progress_bar(progress and len(todo) > 1, total=len(jobs), initial=len(jobs) - len(todo), desc=desc,
                           unit="run")
        try:
            for i in todo:
                if bar is not None:
                    bar.set_postfix_str(jobs[i].name, refresh=True)
                dev = devices[0] if devices else device
                outputs[i] = jobs[i](out, dev, progress) if isinstance(jobs[i], FitJob) else jobs[i](out, dev)
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        return outputs
    for i in todo:  # what the workers / the executor left in out_dir
        outputs[i] = jobs[i].finished(out)
        if outputs[i] is None and isinstance(jobs[i], FitJob):
            path = out / f"{jobs[i].name}.json"
            if path.exists():  # a failed run: its result says why
                outputs[i] = Result.load(path)
        if outputs[i] is None:
            raise RuntimeError(f"job {jobs[i].name!r} left no output in {out}")
    return outputs


@dataclass(frozen=True)
class Execution:
    """Where and how a command's runs execute: the settings every entry point and CLI command
    shares, in one object (:func:`sweep`, :func:`rethink.randomization_test`,
    :func:`rethink.zoo`, :func:`rethink.memorization` take it as ``execution=``, or build it
    from the same keywords).

    Attributes:
        out_dir: the results folder (None: in memory only, in this process).
        root: folder of the dataset files (None: $RETHINK_DATA, ./data, the system's).
        device: device of in-process and executor jobs ("auto", "cpu", "cuda", "cuda:N").
        devices: one worker process per entry (e.g. ["cuda:0", "cuda:1"], or ["cpu", "cpu"]).
        executor: a submitit-style executor (:func:`slurm_executor`).
        progress: progress bars (on a terminal only).
        resume: reuse finished runs of the same settings and continue interrupted ones from
            their checkpoints; False retrains every run.
    """

    out_dir: str | os.PathLike | None = None
    root: str | os.PathLike | None = None
    device: str = "auto"
    devices: Sequence[str] | None = None
    executor: Any = None
    progress: bool = True
    resume: bool = True

    def run(self, jobs: Sequence[Any], desc: str = "runs") -> list[Any]:
        """:func:`run_jobs` with these settings (``resume=False`` reruns every job)."""
        return run_jobs(jobs, self.out_dir, device=self.device, devices=self.devices, executor=self.executor,
                        progress=self.progress, desc=desc, rerun=not self.resume)

    def fits(self, jobs: Sequence[FitJob], desc: str = "runs") -> list[Result]:
        """:func:`run_fits` with these settings: one Result per job (a job listed twice runs once)."""
        return run_fits(jobs, self.out_dir, device=self.device, devices=self.devices, executor=self.executor,
                        progress=self.progress, desc=desc, rerun=not self.resume)


def run_specs(specs: Sequence[RunSpec], out_dir: str | os.PathLike | None, *, root: str | None = None,
              **kwargs: Any) -> list[Result]:
    """:func:`run_jobs` over fits: one :class:`rethink.Result` per spec, in order (a spec
    listed twice runs once). ``kwargs`` go to :func:`run_jobs`."""
    return run_fits([FitJob(s, str(root) if root is not None else None) for s in specs], out_dir, **kwargs)


def run_fits(jobs: Sequence[FitJob], out_dir: str | os.PathLike | None, **kwargs: Any) -> list[Result]:
    """:func:`run_jobs` over :class:`FitJob` s: one Result per job, in order (a job listed
    twice runs once). ``kwargs`` go to :func:`run_jobs`."""
    jobs = list(jobs)
    unique = list(dict.fromkeys(jobs))
    done = dict(zip(unique, run_jobs(unique, out_dir, **kwargs)))
    return [done[j] for j in jobs]


def _as_list(v: Any) -> list[Any]:
    return list(v) if isinstance(v, (list, tuple)) else [v]


def sweep(models: Sequence[Any] = ("mlp1x512",), corruptions: Sequence[Any] = ("none", "random_labels"),
          seeds: Sequence[int] = (0,), out_dir: str | os.PathLike = "results", *, dataset: Any = "digits",
          devices: Sequence[str] | None = None, executor: Any = None, progress: bool = True,
          root: str | os.PathLike | None = None, device: str = "auto", execution: Execution | None = None,
          **settings: Any) -> list[Result]:
    """Train every combination of ``models`` x ``corruptions`` x ``seeds`` (and of any other
    run setting given as a list, e.g. ``weight_decay=[0, 5e-4]``) on ``dataset``, one result
    file per run in ``out_dir``. Finished runs of the same settings are read back, not
    retrained; interrupted runs resume from their checkpoint; a run that fails (NaN loss) is
    recorded with status ``"failed"`` and the sweep goes on. ``out_dir``, ``root``, ``device``,
    ``devices``, ``executor``, ``progress``: see :class:`Execution` (``execution=`` gives them
    all at once).

    ``models`` are anything :func:`rethink.fit_random` takes as a model (names, ``nn.Module``
    classes or factories, instances, which are copied) and ``dataset`` anything it takes as a
    dataset (see :mod:`rethink.inputs`), or a list of dataset names / files (each is swept).

    Returns the Results in product order (datasets, models, corruptions, seeds, then the listed
    settings in the order given). Raises ValueError for bad settings, before any run starts.
    """
    from .inputs import as_dataset, as_model
    from .spec import Subject

    ex = execution or Execution(out_dir, root, device, devices, executor, progress)
    if ex.out_dir is None:
        raise ValueError("sweep needs an out_dir for its result files")
    root = ex.root
    for bad in ("model", "corruption", "seed", "out_dir", "resume", "run_name"):
        if bad in settings:
            raise ValueError(f"sweep takes models=, corruptions=, seeds= and out_dir=; not {bad}=")
    models, corruptions, seeds = _as_list(models), _as_list(corruptions), _as_list(seeds)
    if not models or not corruptions or not seeds:
        raise ValueError("sweep needs at least one model, corruption and seed")
    expand = {k: _as_list(v) for k, v in settings.items() if isinstance(v, (list, tuple))}
    for k, v in expand.items():
        if not v:
            raise ValueError(f"sweep setting {k}= is an empty list: give at least one value")
    fixed = {k: v for k, v in settings.items() if k not in expand}
    several = isinstance(dataset, list) and dataset and all(isinstance(d, (str, os.PathLike)) for d in dataset)
    subjects = []
    for d in (dataset if several else [dataset]):
        data = fp = None
        if not isinstance(d, str):  # read and fingerprinted once for every run
            data, fp = as_dataset(d, root=root)
        subjects += [Subject(as_model(m), d if data is None else str(data.name), data, fp) for m in models]
    jobs = []
    for sub, c, s, *vals in itertools.product(subjects, corruptions, seeds, *expand.values()):
        jobs.append(FitJob.of(sub, sub.spec(corruption=c, seed=s, **fixed, **dict(zip(expand, vals))), root))
    return ex.fits(jobs, desc="sweep")


def slurm_executor(folder: str | os.PathLike, **parameters: Any):
    """A submitit executor for Slurm (or, off a cluster, submitit's local one) whose jobs log to
    ``folder``; ``parameters`` go to ``update_parameters`` (e.g. ``timeout_min=60,
    slurm_partition="gpu", gpus_per_node=1``). Needs ``pip install submitit``.

    Raises:
        ImportError: submitit is not installed (the message says how to get it).
    """
    try:
        import submitit
    except ImportError as e:
        raise ImportError("running on a cluster needs submitit: pip install submitit") from e
    ex = submitit.AutoExecutor(folder=str(folder))
    if parameters:
        ex.update_parameters(**parameters)
    return ex
