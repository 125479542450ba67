"""Loading of the compiled extension ``rethink._C`` with version checks."""

from __future__ import annotations

import torch

_REBUILD = (
    "Rebuild it against the torch you have: `pip install --no-build-isolation .` in the rethink "
    "checkout (or `make install`), after installing torch."
)

try:
    from . import _C  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised only on a broken install
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


def describe_machine(device: str | torch.device = "cpu") -> str:
    """One line naming the machine that figures come from: the GPU for a CUDA device, else
    the CPU model, core count and torch threads; with the torch (and CUDA) version."""
    import os
    import platform

    device = torch.device(device)
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (torch {torch.__version__}, CUDA {torch.version.cuda})"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads (torch {torch.__version__})"
