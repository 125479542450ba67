"""Shared test helpers: devices to run on, with a printed reason when CUDA is skipped."""

import pytest
import torch

import rethink

HAS_CUDA = rethink.cuda_kernels_available()
if not torch.cuda.is_available():
    CUDA_SKIP_REASON = "no CUDA device visible (torch.cuda.is_available() is False)"
elif not rethink.build_info()["cuda_kernels"]:
    CUDA_SKIP_REASON = "rethink._C was built without CUDA kernels"
else:
    CUDA_SKIP_REASON = ""

#: Parametrize over this to run a test on CPU and, when possible, CUDA.
DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not HAS_CUDA, reason=CUDA_SKIP_REASON)),
]

requires_cuda = pytest.mark.skipif(not HAS_CUDA, reason=CUDA_SKIP_REASON)


@pytest.fixture
def one_thread():
    """One torch thread for the test: tiny models on a small shared machine train several
    times faster with one thread than with two."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def pytest_report_header(config):
    info = rethink.build_info()
    return [
        f"rethink._C built against torch {info['torch']}, cuda {info['cuda']}, "
        f"cuda_kernels={info['cuda_kernels']} archs={info['cuda_archs']}",
        "CUDA tests: " + ("run" if HAS_CUDA else f"skipped: {CUDA_SKIP_REASON}"),
    ]
