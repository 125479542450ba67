"""rethink: randomization tests of Zhang et al., "Understanding deep learning requires
rethinking generalization" (ICLR 2017), with a fused C++/CUDA data path.

Importing rethink loads its compiled extension ``rethink._C`` and registers the ops
under ``torch.ops.rethink``.
"""

import torch  # noqa: F401  (libtorch must be loaded before the extension)

from ._build import build_info, cuda_kernels_available
from ._version import __version__
from .results import Result

# Theorem 1: finite-sample expressivity
from .expressivity import InterpolatingNet, interpolate  # isort: skip
from .depth import DeepInterpolatingNet  # isort: skip
from .slabs import SlabNet  # isort: skip

# the data path: datasets, corruptions, the fused loader
from . import datasets  # isort: skip
from .corruption import Corruption, corrupt  # isort: skip
from .loader import RandomizedLoader, randomized_batch  # isort: skip

# the engine: models, the run model, the trainer, the runner
from . import models, spec, run, train, runner  # isort: skip
from .spec import RunSpec  # isort: skip
from .results import load_runs  # isort: skip
from .train import fit, fit_random, load_model  # isort: skip
from .runner import sweep  # isort: skip

# the main job: the randomization test, Figure 1 and Table 1
from . import plots  # isort: skip
from .randomization import RandomizationTestReport, randomization_test  # isort: skip

# beyond the paper: complexity measures, Rademacher estimate, minimum-norm kernels
from . import measures, min_norm, study  # isort: skip
from .rademacher import RademacherResult, rademacher  # isort: skip
from .memorization import MemorizationReport, memorization  # isort: skip
from .zoo import ZooReport, zoo  # isort: skip


__all__ = [
    "Corruption",
    "DeepInterpolatingNet",
    "InterpolatingNet",
    "MemorizationReport",
    "ZooReport",
    "RademacherResult",
    "RandomizationTestReport",
    "RandomizedLoader",
    "Result",
    "RunSpec",
    "SlabNet",
    "__version__",
    "build_info",
    "corrupt",
    "cuda_kernels_available",
    "datasets",
    "fit",
    "fit_random",
    "interpolate",
    "load_model",
    "load_runs",
    "min_norm",
    "measures",
    "memorization",
    "study",
    "models",
    "plots",
    "rademacher",
    "randomization_test",
    "randomized_batch",
    "run",
    "runner",
    "runs",
    "spec",
    "sweep",
    "train",
    "zoo",
]

# rethink 0.2's name of ``rethink.spec``, kept so that ``import rethink.runs`` and
# ``from rethink.runs import RunSpec`` still work (there is no runs.py beside runner.py)
import sys as _sys  # noqa: E402  isort: skip

runs = _sys.modules[__name__ + ".runs"] = spec
