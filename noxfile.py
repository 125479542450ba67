"""nox sessions for rethink. Each session builds its own environment (nothing reuses the
caller's), except ``gpu``, which is for a GPU machine that already has torch.

    nox -s "tests(torch='cpu')"      # torch 2.13.0 CPU build
    nox -s "tests(torch='cu130')"    # torch 2.14.1 + CUDA 13.0: CUDA kernels must compile (nvcc 13.0)
    nox -s "tests(torch='cu126')"    # torch 2.9.1 + CUDA 12.6, where a CUDA 12.6 toolkit is installed
    nox -s lint
    nox -s gpu                       # on a GPU machine: build in place, all tests, benchmarks

Add ``-r`` to reuse environments between runs (the CUDA torch builds are large).
"""

from __future__ import annotations

import glob
import os
import shutil

import nox

nox.options.sessions = ["tests(torch='cpu')", "lint"]
nox.options.default_venv_backend = "venv"

TEST_DEPS = ["numpy", "tqdm", "matplotlib", "scikit-learn", "pytest", "hypothesis", "pybind11", "ninja", "setuptools", "wheel"]

#: torch builds the tests run against: name -> pip requirement(s) for torch, and the CUDA
#: toolkit version whose nvcc must compile the kernels (None: a CPU build).
TORCH_BUILDS = {
    "cpu": {"torch": ["torch==2.13.0"], "cuda": None},
    "cu130": {"torch": ["torch==2.14.1"], "cuda": "13.0"},
    # A CUDA 12.x row: torch's cu126 wheels and a local CUDA 12.6 toolkit.
    "cu126": {"torch": ["torch==2.9.1", "--index-url", "https://download.pytorch.org/whl/cu126"], "cuda": "12.6"},
}


def _toolkit_root(version: str) -> str | None:
    """A CUDA toolkit root whose nvcc reports `version`, from CUDA_HOME or /usr/local/cuda*."""
    import subprocess

    roots = [os.environ.get("CUDA_HOME", ""), "/usr/local/cuda", *sorted(glob.glob("/usr/local/cuda-*"))]
    for root in roots:
        nvcc = os.path.join(root, "bin", "nvcc")
        if root and os.path.isfile(nvcc):
            out = subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout
            if f"release {version}" in out:
                return root
    return None


@nox.session
@nox.parametrize("torch", list(TORCH_BUILDS))
def tests(session: nox.Session, torch: str) -> None:
    """Build rethink against one torch build and run the test suite.

    CUDA rows build with RETHINK_CUDA=1, so a kernel that does not compile fails the
    session; CUDA tests then skip (with the reason printed) where no GPU is visible. A row
    whose CUDA toolkit is not installed is skipped with a message, never passed."""
    row = TORCH_BUILDS[torch]
    env = {"MAX_JOBS": os.environ.get("MAX_JOBS", "2")}
    if row["cuda"] is not None:
        root = _toolkit_root(row["cuda"])
        if root is None:
            session.skip(f"no CUDA {row['cuda']} toolkit (bin/nvcc) in CUDA_HOME or /usr/local/cuda*: "
                         f"the {torch} row needs one to compile the CUDA kernels")
        env.update(RETHINK_CUDA="1", CUDA_HOME=root)
    session.install(*row["torch"])
    session.install(*TEST_DEPS)
    session.install("--no-build-isolation", "--no-deps", "-e", ".", env=env)
    session.run("python", "-c", "import rethink, json; print(json.dumps(rethink.build_info()))")
    session.run("python", "-m", "pytest", "-q", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff for Python, clang-format for csrc/."""
    session.install("ruff", "clang-format")
    session.run("ruff", "check", "rethink", "tests", "benchmarks", "scripts", "noxfile.py", "setup.py")
    sources = sorted(glob.glob("csrc/**/*.cpp", recursive=True) + glob.glob("csrc/**/*.cu", recursive=True) + glob.glob("csrc/**/*.h", recursive=True))
    session.run("clang-format", "--dry-run", "-Werror", *sources)


@nox.session(venv_backend="none")
def gpu(session: nox.Session) -> None:
    """On a GPU machine with torch installed: build in place, run every test and the benchmarks."""
    if shutil.which("nvidia-smi") is None:
        session.warn("nvidia-smi not found: CUDA tests will skip unless a GPU is visible to torch")
    session.run("bash", "scripts/gpu_check.sh", external=True, env={"FULL": "1"})
