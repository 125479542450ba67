"""Loading of the compiled extension ``rethink._C`` with version checks."""

from __future__ import annotations

import torch

_REBUILD = (
    "Rebuild it against the torch you have: `pip install --no-build-isolation .` in the rethink "
    "checkout (or `make install`), after installing torch."
)

def _shadowed_install() -> str | None:
    """Where an installed rethink lives when this import comes from another folder (e.g. the
    source checkout, in the current directory, shadowing a non-editable install), else None."""
    import importlib.metadata
    from pathlib import Path

    try:
        dist = importlib.metadata.distribution("rethink")
    except importlib.metadata.PackageNotFoundError:
        return None
    installed = Path(str(dist.locate_file("rethink/__init__.py")))
    here = Path(__file__).resolve().parent / "__init__.py"
    if installed.is_file() and installed.resolve() != here:
        return str(installed.parent)
    return None


try:
    from . import _C  # noqa: F401
except ImportError as e:
    other = _shadowed_install()
    if other is not None:
        raise ImportError(
            f"rethink is being imported from {__file__.rsplit('/', 2)[0]}, which has no compiled extension, and "
            f"shadows the rethink installed in {other}: run Python from another folder, or install the checkout "
            f"in place with `pip install --no-build-isolation -e .`") from e
    raise ImportError(f"rethink's compiled extension rethink._C could not be loaded ({e}). {_REBUILD}") from e


def _check_build() -> None:
    info = _C.build_info()
    built, running = info["torch"], torch.__version__
    if built != running:
        raise ImportError(
            f"rethink._C was built against torch {built} but torch {running} is imported. {_REBUILD}"
        )
    if info["cuda_kernels"] and info["cuda"] != torch.version.cuda:
        raise ImportError(
            f"rethink._C was built with CUDA {info['cuda']} but the imported torch uses CUDA "
            f"{torch.version.cuda}. {_REBUILD}"
        )


_check_build()


def build_info() -> dict:
    """How the extension was built.

    Returns:
        dict with ``torch`` (str, the torch version built against), ``cuda`` (str or None),
        ``cuda_kernels`` (bool: CUDA kernels compiled in), ``cuda_archs`` (list of str, e.g.
        ``["8.0", "9.0+PTX"]``) and ``openmp`` (bool).
    """
    return dict(_C.build_info())


def cuda_kernels_available() -> bool:
    """True when the extension holds CUDA kernels and a CUDA device is visible."""
    return bool(_C.build_info()["cuda_kernels"]) and torch.cuda.is_available()


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``'s "model name"), else the platform's processor
    or machine string."""
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_machine(device: str | torch.device = "cpu") -> str:
    """One line naming the machine that figures come from: the GPU for a CUDA device, else
    the CPU model, core count and torch threads; with the torch (and CUDA) version."""
    import os

    device = torch.device(device)
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (torch {torch.__version__}, CUDA {torch.version.cuda})"
    return f"{cpu_model()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads (torch {torch.__version__})"


def resolve_device(device: str | torch.device = "auto", *, kernels: bool = True,
                   local_rank: int | None = None) -> torch.device:
    """The one device resolver of rethink: a ``torch.device`` from a user's device argument.

    Args:
        device: ``"auto"`` (CUDA when a GPU is visible and usable, else the CPU), ``"cpu"``,
            ``"cuda"``, ``"cuda:N"`` or a ``torch.device``.
        kernels: the caller runs rethink's fused ops, so CUDA also needs rethink built with
            its CUDA kernels (``"auto"`` then falls back to the CPU without them).
        local_rank: under torchrun, the GPU of this process for ``"auto"`` and ``"cuda"``.

    Returns:
        a ``torch.device``; CUDA devices always carry an index.

    Raises:
        ValueError: an unknown device, a device type other than CPU/CUDA, CUDA asked for on
            a machine or a torch build without it (the message says how to fix it), a GPU
            index that is not visible.
    """
    usable = torch.cuda.is_available() and (not kernels or bool(_C.build_info()["cuda_kernels"]))
    if isinstance(device, str) and device == "auto":
        if not usable:
            return torch.device("cpu")
        device = "cuda"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}: expected 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if dev.type == "cpu":
        return torch.device("cpu")
    if dev.type != "cuda":
        raise ValueError(f"unsupported device {device!r}: expected 'auto', 'cpu', 'cuda' or 'cuda:N'")
    if not torch.cuda.is_available():
        why = ("this torch is a CPU build (torch.version.cuda is None)" if torch.version.cuda is None
               else "no CUDA device is visible")
        raise ValueError(f"device {str(device)!r} requested but {why}: use device 'cpu' (--device cpu), or run on "
                         f"a machine with a GPU and a CUDA build of torch (then rebuild rethink against it)")
    if kernels and not _C.build_info()["cuda_kernels"]:
        raise ValueError(f"device {str(device)!r} requested but rethink._C was built without CUDA kernels: "
                         f"rebuild with RETHINK_CUDA=1 and CUDA_HOME set (README, 'Install'), or use device 'cpu'")
    if dev.index is None:
        dev = torch.device("cuda", local_rank if local_rank is not None and local_rank >= 0
                           else torch.cuda.current_device())
    if dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {str(device)!r}: only {torch.cuda.device_count()} CUDA devices are visible")
    return dev
