import math

import pytest
import torch
from conftest import DEVICES

from rethink.min_norm import KernelMemoryError, kernel_matrix, memory_estimate, min_norm_fit


def _data(n=30, d=50, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g)
    y = torch.randint(0, k, (n,), generator=g)
    return X, y


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kernel,kw", [("linear", {}), ("rbf", {}), ("random_features", {"width": 200})])
def test_interpolates_training_points(kernel, kw, device):
    X, y = _data()
    p = min_norm_fit(X, y, kernel=kernel, device=device, **kw)
    assert p.train_error == 0.0
    assert p.train_residual < 1e-8
    onehot = torch.nn.functional.one_hot(y, 3).double()
    torch.testing.assert_close(p.predict(X).cpu(), onehot, atol=1e-8, rtol=0)
    assert torch.equal(p.classify(X).cpu(), y)
    assert p.error(X, y) == 0.0
    assert p.norm > 0 and math.isfinite(p.norm)


def test_linear_equals_pseudo_inverse():
    X, _ = _data(n=20, d=40)
    Y = torch.randn(20, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    p = min_norm_fit(X, Y, kernel="linear")
    Xd = X.double()
    w = torch.linalg.pinv(Xd) @ Y  # minimum-norm solution of X w = Y
    Xt = torch.randn(7, 40, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    torch.testing.assert_close(p.predict(Xt), Xt @ w, atol=1e-9, rtol=1e-9)
    assert p.norm == pytest.approx(float(torch.linalg.norm(w)), rel=1e-9)


def test_ridge_shrinks_norm_and_no_longer_interpolates():
    X, y = _data()
    p0 = min_norm_fit(X, y, kernel="rbf")
    p1 = min_norm_fit(X, y, kernel="rbf", ridge=1.0)
    assert p1.norm < p0.norm
    assert p1.train_residual > 1e-3
    assert p1.ridge == 1.0


def test_rbf_kernel_matrix_by_hand():
    X = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    K = kernel_matrix(X, "rbf", gamma=0.5)
    sq = torch.tensor([[0, 1, 2], [1, 0, 1], [2, 1, 0]], dtype=torch.float64)
    torch.testing.assert_close(K, torch.exp(-0.5 * sq))
    # default gamma: 1 / (d * var(X))
    p = min_norm_fit(X, torch.tensor([0.0, 1.0, 0.0]), kernel="rbf")
    assert p.gamma == pytest.approx(1.0 / (2 * float(X.double().var())))


def test_random_features_seeded():
    X, y = _data()
    a = min_norm_fit(X, y, kernel="random_features", width=100, seed=3)
    b = min_norm_fit(X, y, kernel="random_features", width=100, seed=3)
    c = min_norm_fit(X, y, kernel="random_features", width=100, seed=4)
    assert a.norm == b.norm
    assert a.norm != c.norm
    K = kernel_matrix(X, "random_features", width=100, seed=3)
    assert K.shape == (30, 30)


def test_memory_check_suggests_subsample():
    X, y = _data(n=100, d=10)
    budget = memory_estimate(50, 10, 3)
    with pytest.raises(KernelMemoryError, match=r"subsample to about n=\d+") as e:
        min_norm_fit(X, y, kernel="rbf", max_memory=budget)
    assert 0 < e.value.suggested_n < 100
    assert isinstance(e.value, MemoryError)
    # the suggested size does fit
    n = e.value.suggested_n
    p = min_norm_fit(X[:n], y[:n], kernel="rbf", max_memory=budget)
    assert p.train_error == 0.0


@pytest.mark.parametrize(
    "args,kw,exc,match",
    [
        ((torch.zeros(0, 3), torch.zeros(0)), {}, ValueError, "no points"),
        ((torch.zeros(3, 2), torch.zeros(4)), {}, ValueError, "3 points but Y has 4"),
        ((torch.randn(3, 2), torch.zeros(3)), {"kernel": "poly"}, ValueError, "'poly'"),
        ((torch.randn(3, 2), torch.zeros(3)), {"kernel": "random_features"}, ValueError, "width"),
        ((torch.randn(3, 2), torch.zeros(3)), {"ridge": -1.0}, ValueError, "ridge"),
        ((torch.randn(3, 2), torch.zeros(3)), {"gamma": -2.0}, ValueError, "gamma"),
        ((torch.randn(3, 2), torch.zeros(3)), {"kernel": "linear", "gamma": 1.0}, ValueError, "gamma"),
        (([[1.0]], torch.zeros(1)), {}, TypeError, "X must be a torch.Tensor"),
        ((torch.randn(3, 2), torch.tensor([0, -1, 1])), {}, ValueError, "labels must be >= 0"),
    ],
)
def test_bad_input(args, kw, exc, match):
    with pytest.raises(exc, match=match):
        min_norm_fit(*args, **kw)


def test_singular_kernel_says_use_ridge():
    X, y = _data(n=30, d=5)  # linear kernel of rank 5 < 30
    with pytest.raises(ValueError, match="ridge > 0"):
        min_norm_fit(X, y, kernel="linear")
    p = min_norm_fit(X, y, kernel="linear", ridge=1e-3)
    assert math.isfinite(p.norm)


def test_predict_checks_dimension():
    X, y = _data()
    p = min_norm_fit(X, y, kernel="linear")
    with pytest.raises(ValueError, match="values per point"):
        p.predict(torch.randn(2, 7))
