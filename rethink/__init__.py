"""rethink: randomization tests of Zhang et al., "Understanding deep learning requires
rethinking generalization" (ICLR 2017), with a fused C++/CUDA data path.

Importing rethink loads its compiled extension ``rethink._C`` and registers the ops
under ``torch.ops.rethink``.
"""

import torch  # noqa: F401  (libtorch must be loaded before the extension)

from ._build import build_info, cuda_kernels_available
from .results import Result

__version__ = "0.1.0"

__all__ = ["Result", "build_info", "cuda_kernels_available", "__version__"]

# --- Theorem 1: finite-sample expressivity (issue: core) ---------------------

# --- data path: datasets, corruptions, loader (issue: loader) ----------------
from . import datasets
from .corruption import Corruption, corrupt
from .loader import RandomizedLoader, randomized_batch

__all__ += ["datasets", "Corruption", "corrupt", "RandomizedLoader", "randomized_batch"]

# --- engine: models, fit_random, sweeps (issue: engine) ----------------------
from . import models, train  # noqa: E402
from .train import fit_random, sweep  # noqa: E402

__all__ += ["models", "train", "fit_random", "sweep"]

# --- main job: randomization test, plots (issue: main job) -------------------
from . import plots  # noqa: E402
from .randomization import RandomizationTestReport, randomization_test  # noqa: E402

__all__ += ["plots", "randomization_test", "RandomizationTestReport"]

# --- beyond the paper: measures, rademacher, kernels (issue: measures) -------
