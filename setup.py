"""Build script for rethink and its C++/CUDA extension ``rethink._C``.

Install torch first, then ``pip install --no-build-isolation .``: the extension is
compiled against the torch that is already installed. (Build isolation would make pip
download some other torch into a throw-away environment, and the extension would then
refuse to import next to yours.)

Build switches (environment variables):

- ``RETHINK_CUDA``: ``0`` never builds CUDA kernels; ``1`` makes their absence an error;
  unset builds them whenever torch is a CUDA build and nvcc is found (no GPU needed).
- ``TORCH_CUDA_ARCH_LIST``: architectures to compile for. Default with no GPU visible:
  ``8.0;9.0+PTX``.
- ``CUDA_HOME``: the CUDA toolkit root (the folder holding ``lib64/``). Found from nvcc
  when unset.
- ``MAX_JOBS``: parallel compile jobs (ninja).
"""

from __future__ import annotations

import glob
import os
import shutil
import sys

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))


def _find_cuda_home() -> str | None:
    """The CUDA toolkit root: CUDA_HOME/CUDA_PATH, else derived from nvcc, else /usr/local/cuda."""
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            return os.environ[var]
    candidates = []
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.append(os.path.dirname(os.path.dirname(os.path.realpath(nvcc))))
    candidates += ["/usr/local/cuda"] + sorted(glob.glob("/usr/local/cuda-*"), reverse=True)
    # nvcc on PATH may be a wrapper script outside the toolkit (e.g. /usr/local/bin/nvcc), so a
    # root counts only when it holds nvcc, the runtime's header and the runtime library.
    for root in candidates:
        if (
            os.path.isfile(os.path.join(root, "bin", "nvcc"))
            and os.path.isfile(os.path.join(root, "include", "cuda_runtime.h"))
            and glob.glob(os.path.join(root, "lib*", "libcudart.so*"))
        ):
            return root
    return None


_cuda_home = _find_cuda_home()
if _cuda_home:
    # torch.utils.cpp_extension reads CUDA_HOME when it is imported.
    os.environ["CUDA_HOME"] = _cuda_home

import torch  # noqa: E402
from torch.utils.cpp_extension import (  # noqa: E402
    BuildExtension,
    CppExtension,
    CUDAExtension,
)


def _want_cuda() -> bool:
    flag = os.environ.get("RETHINK_CUDA", "").strip()
    available = torch.version.cuda is not None and _cuda_home is not None
    if flag == "0":
        return False
    if flag == "1" and not available:
        why = (
            "torch is a CPU build (torch.version.cuda is None)"
            if torch.version.cuda is None
            else "no CUDA toolkit found (set CUDA_HOME to the folder holding bin/nvcc and lib64/)"
        )
        sys.exit(f"RETHINK_CUDA=1 but the CUDA kernels cannot be built: {why}")
    return available


def _arch_list() -> list[str]:
    if not os.environ.get("TORCH_CUDA_ARCH_LIST"):
        if torch.cuda.is_available():
            return []  # torch picks the visible GPUs' archs
        os.environ["TORCH_CUDA_ARCH_LIST"] = "8.0;9.0+PTX"
    return [a for a in os.environ["TORCH_CUDA_ARCH_LIST"].replace(",", ";").replace(" ", ";").split(";") if a]


def _cuda_header_fallback() -> str | None:
    """The folder where a pip-installed CUDA torch keeps headers that the toolkit may lack
    (``site-packages/nvidia/*/include``, e.g. cusparse.h), or None. It is searched after
    every other include folder, so it never shadows the toolkit's own headers."""
    import importlib.util

    if _cuda_home and os.path.isfile(os.path.join(_cuda_home, "include", "cusparse.h")):
        return None
    spec = importlib.util.find_spec("nvidia")
    if spec is None or not spec.submodule_search_locations:
        return None
    for base in spec.submodule_search_locations:
        for inc in sorted(glob.glob(os.path.join(base, "*", "include"))):
            if os.path.isfile(os.path.join(inc, "cusparse.h")):
                return inc
    return None


def _extension():
    with_cuda = _want_cuda()
    sources = sorted(glob.glob("csrc/*.cpp")) + sorted(glob.glob("csrc/cpu/*.cpp"))
    cxx = ["-O3", "-std=c++20", "-fopenmp"]
    define = [
        ("RETHINK_TORCH_VERSION", f'"{torch.__version__}"'),
    ]
    if with_cuda:
        archs = _arch_list() or [
            f"{major}.{minor}" for major, minor in (torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count()))
        ]
        sources += sorted(glob.glob("csrc/cuda/*.cu"))
        inc = _cuda_header_fallback()
        # gcc: -idirafter; nvcc: a trailing -I comes after the toolkit's include folder.
        cxx = cxx + (["-idirafter", inc] if inc else [])
        nvcc_extra = [f"-I{inc}"] if inc else []
        define += [
            ("RETHINK_WITH_CUDA", "1"),
            ("RETHINK_CUDA_VERSION", f'"{torch.version.cuda}"'),
            ("RETHINK_CUDA_ARCHS", '"' + ";".join(archs) + '"'),
        ]
        return CUDAExtension(
            "rethink._C",
            sources,
            include_dirs=[os.path.join(ROOT, "csrc")],
            define_macros=define,
            extra_compile_args={"cxx": cxx, "nvcc": ["-O3", "-std=c++20", "--use_fast_math", "-lineinfo", *nvcc_extra]},
            extra_link_args=["-fopenmp"],
        )
    return CppExtension(
        "rethink._C",
        sources,
        include_dirs=[os.path.join(ROOT, "csrc")],
        define_macros=define,
        extra_compile_args={"cxx": cxx},
        extra_link_args=["-fopenmp"],
    )


setup(
    packages=find_packages(include=["rethink", "rethink.*"]),
    ext_modules=[_extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
