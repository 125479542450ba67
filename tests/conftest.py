"""Shared test helpers: devices to run on, with a printed reason when CUDA is skipped."""

import numpy as np
import pytest
import torch
from hypothesis import assume
from hypothesis import strategies as st

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


GEOMETRIES = ("gaussian", "grid", "line", "near_duplicates", "subspace", "constant_columns", "duplicates")


@st.composite
def interpolation_samples(draw, kinds=GEOMETRIES, min_n=1, max_d=6, dtypes=(torch.float64, torch.float32)):
    """(X, Y) for the interpolation constructions: points of one geometry of ``kinds``
    (Gaussian; an integer grid; collinear; near-duplicate pairs; on an affine plane of
    dimension <= 2; with constant columns; or exact duplicate rows sharing their targets),
    at a scale 10^-3..10^3, in one of ``dtypes``; scalar, multi-column or class targets.
    Only "duplicates" has repeated rows."""
    n = draw(st.integers(min_n, 40))
    d = draw(st.integers(1, max_d))
    kind = draw(st.sampled_from(kinds))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "grid":
        pts = np.unique(rng.integers(-4, 5, size=(4 * n, d)).astype(np.float64), axis=0)
        pts = pts[rng.permutation(len(pts))[:n]]
    elif kind == "line":
        t = rng.choice(10 * n, size=n, replace=False).astype(np.float64)
        pts = rng.standard_normal(d) + t[:, None] * rng.standard_normal(d)
    elif kind == "subspace":
        pts = rng.standard_normal(d) + rng.standard_normal((n, 2)) @ rng.standard_normal((2, d))
    else:
        pts = rng.standard_normal((n, d))
        if kind == "constant_columns":
            pts[:, rng.random(d) < 0.5] = 0.25
        elif kind == "near_duplicates" and n > 1:
            odd = pts[1::2]
            odd[:] = pts[rng.integers(0, n, size=len(odd))] + 1e-7 * (1 + rng.random(odd.shape))
    X = torch.tensor(pts * 10.0 ** draw(st.integers(-3, 3)), dtype=draw(st.sampled_from(dtypes)))
    n = X.shape[0]
    target = draw(st.sampled_from(["scalar", "multi", "labels"]))
    if target == "scalar":
        Y = torch.tensor(rng.standard_normal(n) * 10.0 ** rng.integers(-3, 4))
    elif target == "multi":
        Y = torch.tensor(rng.standard_normal((n, int(rng.integers(1, 4)))))
    else:
        Y = torch.tensor(rng.integers(0, 4, size=n))
    if kind == "duplicates":
        src = rng.integers(0, n, size=3)
        X, Y = torch.cat([X, X[src]]), torch.cat([Y, Y[src]])
    else:
        assume(torch.unique(X, dim=0).shape[0] == X.shape[0])
    return X, Y


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
