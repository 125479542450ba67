import math

import pytest
import torch
from conftest import DEVICES, requires_cuda

from rethink.features import KernelOperator, RandomConvFeatures, kernel_block
from rethink.min_norm import (
    KernelMemoryError,
    cholesky_inplace,
    cholesky_solve_inplace_factor,
    kernel_matrix,
    memory_estimate,
    min_norm_fit,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # small problems: one thread is faster on a busy machine


def _data(n=30, d=50, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g)
    y = torch.randint(0, k, (n,), generator=g)
    return X, y


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kernel,kw", [("linear", {}), ("rbf", {}), ("laplacian", {}),
                                       ("random_features", {"width": 200})])
def test_interpolates_training_points(kernel, kw, device):
    X, y = _data()
    p = min_norm_fit(X, y, kernel=kernel, device=device, **kw)
    assert p.train_error == 0.0
    assert p.train_residual < 1e-8
    assert p.relative_residual <= 1e-9
    onehot = torch.nn.functional.one_hot(y, 3).double()
    torch.testing.assert_close(p.predict(X).cpu(), onehot, atol=1e-8, rtol=0)
    assert torch.equal(p.classify(X).cpu(), y)
    assert p.error(X, y) == 0.0
    assert p.norm > 0 and math.isfinite(p.norm)


def test_linear_equals_pseudo_inverse():
    X, _ = _data(n=20, d=40)
    Y = torch.randn(20, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    Xd = X.double()
    w = torch.linalg.pinv(Xd) @ Y  # minimum-norm solution of X w = Y
    Xt = torch.randn(7, 40, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for method in ("cholesky", "pcg"):
        p = min_norm_fit(X, Y, kernel="linear", method=method)
        torch.testing.assert_close(p.predict(Xt), Xt @ w, atol=1e-9, rtol=1e-9)
        assert p.norm == pytest.approx(float(torch.linalg.norm(w)), rel=1e-9)


@pytest.mark.parametrize("kernel,kw", [("rbf", {}), ("laplacian", {}), ("linear", {}),
                                       ("random_features", {"width": 400})])
def test_pcg_matches_exact_cholesky(kernel, kw):
    # n = 157 with 32-row blocks: several blocks and a ragged last one
    X, y = _data(n=157, d=200 if kernel == "linear" else 12, k=4, seed=3)
    a = min_norm_fit(X, y, kernel=kernel, method="cholesky", **kw)
    b = min_norm_fit(X, y, kernel=kernel, method="pcg", block=32, **kw)
    assert (a.method, b.method) == ("cholesky", "pcg")
    assert b.converged and b.solve_info["iterations"] >= 1
    assert a.relative_residual <= 1e-9 and b.relative_residual <= 1e-9
    assert _rel(b.alpha, a.alpha) < 1e-7
    Xt, _ = _data(n=40, d=X.shape[1], seed=4)
    torch.testing.assert_close(b.predict(Xt), a.predict(Xt), atol=1e-9, rtol=0)
    assert b.norm == pytest.approx(a.norm, rel=1e-9)
    assert b.train_error == 0.0


def _near_duplicates(n=120, d=4, delta=1e-3, pairs=20, seed=0):
    """Points with `pairs` near-duplicate pairs (distance delta) carrying different targets:
    the rbf kernel's smallest eigenvalue is about gamma * delta^2."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    X[n - pairs:] = X[:pairs] + delta * torch.randn(pairs, d, generator=g, dtype=torch.float64)
    Y = torch.randn(n, 2, generator=g, dtype=torch.float64)
    return X, Y


@pytest.mark.parametrize("delta", [1e-3, 5e-4])
def test_pcg_ill_conditioned(delta):
    X, Y = _near_duplicates(delta=delta)
    K = kernel_matrix(X, "rbf", gamma=1.0)
    cond = float(torch.linalg.cond(K))
    assert cond > 1e5  # ill-conditioned for float32
    a = min_norm_fit(X, Y, kernel="rbf", gamma=1.0, method="cholesky")
    b = min_norm_fit(X, Y, kernel="rbf", gamma=1.0, method="pcg", block=32, max_iter=300)
    assert b.converged and b.relative_residual <= 1e-9
    assert b.solve_info["iterations"] >= 2
    assert b.solve_info["shift"] >= 2.0**-24 * math.sqrt(120)  # u sqrt(n) times the mean diagonal, 1
    assert _rel(b.alpha, a.alpha) < 1e-5
    assert b.norm == pytest.approx(a.norm, rel=1e-7)
    Xt = torch.randn(30, 4, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    torch.testing.assert_close(b.predict(Xt), a.predict(Xt), atol=1e-6 * float(a.predict(Xt).abs().max()), rtol=0)


def test_pcg_not_converging_warns():
    X, Y = _near_duplicates(delta=1e-4)
    with pytest.warns(RuntimeWarning, match="pcg stopped after 1 iterations"):
        p = min_norm_fit(X, Y, kernel="rbf", gamma=1.0, method="pcg", max_iter=1)
    assert not p.converged and p.relative_residual > 1e-9


@pytest.mark.parametrize("method", ["cholesky", "pcg"])
def test_several_right_hand_sides_share_one_solve(method):
    X, _ = _data(n=90, d=6)
    Y = torch.randn(90, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    both = min_norm_fit(X, Y, kernel="laplacian", method=method, block=32)
    for c in range(5):
        one = min_norm_fit(X, Y[:, c], kernel="laplacian", method=method, block=32)
        torch.testing.assert_close(both.alpha[:, c], one.alpha[:, 0], atol=1e-9 * float(one.alpha.abs().max()), rtol=0)
        assert both.column_norms[c] == pytest.approx(one.norm, rel=1e-9)
    assert both.norm == pytest.approx(float(both.column_norms.pow(2).sum().sqrt()), rel=1e-12)
    assert bool((both.column_residuals <= 1e-9).all())


def test_laplacian_kernel_against_plain_reference():
    X, _ = _data(n=25, d=7)
    Xd = X.double()
    dist = ((Xd[:, None, :] - Xd[None, :, :]) ** 2).sum(-1).sqrt()
    torch.testing.assert_close(kernel_matrix(X, "laplacian", gamma=0.3), torch.exp(-0.3 * dist), atol=1e-13, rtol=0)
    assert torch.equal(kernel_matrix(X, "laplacian", gamma=0.3).diagonal(), torch.ones(25, dtype=torch.float64))
    p = min_norm_fit(X, torch.zeros(25), kernel="laplacian")
    assert p.gamma == pytest.approx(1.0 / math.sqrt(7 * float(Xd.var())))
    Xt = torch.randn(6, 7, dtype=torch.float64)
    Kt = torch.exp(-p.gamma * ((Xt[:, None, :] - Xd[None, :, :]) ** 2).sum(-1).sqrt())
    Y = torch.randn(25, dtype=torch.float64)
    q = min_norm_fit(X, Y, kernel="laplacian")
    torch.testing.assert_close(q.predict(Xt)[:, 0], Kt @ q.alpha[:, 0], atol=1e-12, rtol=0)


def test_rbf_kernel_matrix_by_hand():
    X = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    K = kernel_matrix(X, "rbf", gamma=0.5)
    sq = torch.tensor([[0, 1, 2], [1, 0, 1], [2, 1, 0]], dtype=torch.float64)
    torch.testing.assert_close(K, torch.exp(-0.5 * sq))
    # default gamma: 1 / (d * var(X))
    p = min_norm_fit(X, torch.tensor([0.0, 1.0, 0.0]), kernel="rbf")
    assert p.gamma == pytest.approx(1.0 / (2 * float(X.double().var())))


@pytest.mark.parametrize("kernel", ["rbf", "laplacian", "linear"])
def test_kernel_operator_matches_dense(kernel):
    F = torch.randn(101, 9, dtype=torch.float64)
    V = torch.randn(101, 3, dtype=torch.float64)
    gamma = None if kernel == "linear" else 0.2
    op = KernelOperator(F, kernel, gamma, ridge=0.5, block=16)
    K = kernel_block(F, F, kernel, gamma, same=True) + 0.5 * torch.eye(101, dtype=torch.float64)
    torch.testing.assert_close(op.matmul(V), K @ V, atol=1e-12, rtol=1e-12)
    L = torch.full((101, 101), float("nan"), dtype=torch.float32)  # only the lower part may be read
    op.form_float32(L, shift=0.0)
    torch.testing.assert_close(L.tril(), K.float().tril())


def test_blocked_cholesky_and_solve():
    g = torch.Generator().manual_seed(0)
    M = torch.randn(70, 70, generator=g, dtype=torch.float64)
    A = M @ M.T + 70 * torch.eye(70, dtype=torch.float64)
    L_ref = torch.linalg.cholesky(A)
    # NaN above the diagonal: the upper triangle is never read
    W = torch.where(torch.ones_like(A, dtype=torch.bool).triu(1), torch.full_like(A, float("nan")), A)
    assert cholesky_inplace(W, block=16) == -1
    torch.testing.assert_close(W.tril(), L_ref)
    R = torch.randn(70, 4, generator=g, dtype=torch.float64)
    torch.testing.assert_close(cholesky_solve_inplace_factor(W, R, block=16), torch.cholesky_solve(R, L_ref))
    B = A.clone()
    B[40, 40] = -1.0  # not positive definite: fails at column 40 or before
    col = cholesky_inplace(B, block=16)
    assert 0 <= col <= 40


def test_conv_features_shape_determinism_reference():
    fmap = RandomConvFeatures(image_shape=(1, 8, 8), filters=3, size=3, pool=2, seed=5)
    assert fmap.dim == 12 and fmap.input_dim == 64
    X = torch.rand(4, 64, generator=torch.Generator().manual_seed(1))
    F = fmap(X)
    assert F.shape == (4, 12) and F.dtype == torch.float64
    assert torch.equal(F, fmap(X)) and torch.equal(F, fmap(X.reshape(4, 1, 8, 8)))
    assert torch.equal(F, RandomConvFeatures(image_shape=(1, 8, 8), filters=3, size=3, pool=2, seed=5)(X))
    assert not torch.equal(F, RandomConvFeatures(image_shape=(1, 8, 8), filters=3, size=3, pool=2, seed=6)(X))
    W = fmap.weights()
    assert W.shape == (3, 1, 3, 3)
    torch.testing.assert_close(W.flatten(1).sum(1), torch.zeros(3, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(W.flatten(1).norm(dim=1), torch.ones(3, dtype=torch.float64))
    # plain reference: every 3x3 patch, ReLU, mean over the 3x3 quadrants of the 6x6 map
    img = X.double().reshape(4, 8, 8)
    maps = torch.zeros(4, 3, 6, 6, dtype=torch.float64)
    for i in range(6):
        for j in range(6):
            maps[:, :, i, j] = (img[:, i:i + 3, j:j + 3].reshape(4, 1, 9) * W.reshape(1, 3, 9)).sum(-1)
    maps.clamp_(min=0)
    ref = torch.stack([maps[:, :, a:a + 3, b:b + 3].mean((-1, -2)) for a in (0, 3) for b in (0, 3)], -1)
    torch.testing.assert_close(F, ref.reshape(4, 12))
    rgb = RandomConvFeatures(image_shape=(3, 6, 6), filters=2, size=3, pool=2, seed=0)
    assert rgb(torch.rand(5, 3, 6, 6)).shape == (5, 8) and rgb.weights().shape == (2, 3, 3, 3)
    with pytest.raises(ValueError, match="shape"):
        fmap(torch.rand(4, 63))
    bad = X.clone()
    bad[2, 10] = float("nan")
    with pytest.raises(ValueError, match="row 2, column 10"):
        fmap(bad)
    with pytest.raises(ValueError, match="pool"):
        RandomConvFeatures(image_shape=(1, 8, 8), size=3, pool=7)


def test_conv_features_with_kernels():
    fmap = RandomConvFeatures(image_shape=(1, 8, 8), filters=8, size=3, pool=3, seed=0)  # dim 72
    X = torch.rand(50, 64, generator=torch.Generator().manual_seed(2))
    y = torch.randint(0, 3, (50,), generator=torch.Generator().manual_seed(3))
    p = min_norm_fit(X, y, kernel="rbf", features=fmap)
    assert p.train_error == 0.0 and p.relative_residual <= 1e-9
    F = fmap(X)
    assert p.gamma == pytest.approx(1.0 / (72 * float(F.var())))
    torch.testing.assert_close(p.predict(X[:5]), kernel_block(fmap(X[:5]), F, "rbf", p.gamma) @ p.alpha)
    q = min_norm_fit(X, y, kernel="linear", features=fmap)  # 72 features >= 50 points
    assert q.train_error == 0.0 and q.relative_residual <= 1e-9
    with pytest.raises(ValueError, match="rank <= 72 < n=80"):
        min_norm_fit(torch.rand(80, 64), torch.randint(0, 3, (80,)), kernel="linear", features=fmap)


@pytest.mark.parametrize("kernel", ["rbf", "laplacian", "linear"])
def test_duplicates_with_equal_targets_are_merged(kernel):
    X, y = _data(n=40, d=50)
    Xd = torch.cat([X, X[[3, 7, 3]]])
    yd = torch.cat([y, y[[3, 7, 3]]])
    p = min_norm_fit(Xd, yd, kernel=kernel)
    q = min_norm_fit(X, y, kernel=kernel)
    assert torch.equal(p.train_index, torch.arange(40))
    torch.testing.assert_close(p.alpha, q.alpha, atol=1e-12 * float(q.alpha.abs().max()), rtol=0)
    assert p.norm == pytest.approx(q.norm, rel=1e-12)
    assert p.train_error == 0.0
    torch.testing.assert_close(p.predict(Xd), torch.nn.functional.one_hot(yd, 3).double(), atol=1e-8, rtol=0)
    assert min_norm_fit(Xd, yd, kernel=kernel, ridge=1e-3).train_index is None  # no merging with a ridge


def test_duplicates_with_conflicting_targets_raise():
    X, y = _data(n=20, d=5)
    X[12] = X[4]
    y[12] = (y[4] + 1) % 3
    with pytest.raises(ValueError, match=r"rows 4 and 12 of X are identical but have different labels"):
        min_norm_fit(X, y, kernel="rbf")
    Y = torch.randn(20, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"rows 4 and 12 .* different targets"):
        min_norm_fit(X, Y, kernel="laplacian")


@pytest.mark.parametrize("where,value", [("X", float("nan")), ("X", float("inf")), ("Y", float("nan")),
                                         ("Y", float("-inf"))])
@pytest.mark.parametrize("method", ["cholesky", "pcg"])
def test_non_finite_input_is_named(where, value, method):
    X, _ = _data(n=20, d=6)
    Y = torch.randn(20, 2)
    (X if where == "X" else Y)[5, 1] = value
    with pytest.raises(ValueError, match=rf"{where} has a non-finite value \({value}\) at row 5, column 1") as e:
        min_norm_fit(X, Y, kernel="rbf", method=method)
    assert "positive definite" not in str(e.value)


def test_non_finite_predict_input_and_overflow():
    X, y = _data(n=20, d=6)
    p = min_norm_fit(X, y, kernel="rbf")
    Xq = torch.randn(3, 6)
    Xq[2, 4] = float("nan")
    with pytest.raises(ValueError, match="row 2, column 4"):
        p.predict(Xq)
    for method in ("cholesky", "pcg"):
        with pytest.raises(ValueError, match="non-finite entries: the inputs .* too large") as e:
            min_norm_fit(X.double() * 1e200, y, kernel="rbf", method=method)
        assert "positive definite" not in str(e.value)


def test_memory_estimates_and_auto_method():
    n, d, k, b = 300, 10, 3, 32
    chol, pcg = memory_estimate(n, d, k, "cholesky"), memory_estimate(n, d, k, "pcg", block=b)
    assert chol == 8 * (3 * n * n + 2 * n * d + 6 * n * k)
    assert pcg == 4 * n * n + 8 * (2 * n * d + 12 * n * k) + 24 * b * b + 8 * b * 4 * b
    assert memory_estimate(60000, 784, 160, "pcg") < 17 * 2**30 < memory_estimate(60000, 784, 160, "cholesky")
    X, y = _data(n=n, d=d)
    assert min_norm_fit(X, y, max_memory=chol, block=b).method == "cholesky"
    p = min_norm_fit(X, y, max_memory=(chol + pcg) // 2, block=b)  # auto: float64 does not fit
    assert p.method == "pcg" and p.train_error == 0.0
    with pytest.raises(KernelMemoryError, match="method 'cholesky'"):
        min_norm_fit(X, y, method="cholesky", max_memory=(chol + pcg) // 2, block=b)
    with pytest.raises(ValueError, match="method"):
        memory_estimate(10, 2, 1, "svd")


def test_memory_check_suggests_subsample():
    X, y = _data(n=200, d=10)
    budget = memory_estimate(100, 10, 3, "pcg", block=16)
    with pytest.raises(KernelMemoryError, match=r"subsample to about n=\d+") as e:
        min_norm_fit(X, y, kernel="rbf", max_memory=budget, block=16)
    assert 0 < e.value.suggested_n < 200
    assert isinstance(e.value, MemoryError)
    n = e.value.suggested_n  # the suggested size does fit
    assert memory_estimate(n, 10, 3, "pcg", block=16) <= budget
    p = min_norm_fit(X[:n], y[:n], kernel="rbf", max_memory=budget, block=16)
    assert p.train_error == 0.0 and p.method == "pcg"


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
        ((torch.randn(3, 2), torch.zeros(3)), {"method": "lu"}, ValueError, "method"),
        ((torch.randn(3, 2), torch.zeros(3)), {"tol": 0.0}, ValueError, "tol"),
        ((torch.randn(3, 2), torch.zeros(3)), {"max_iter": 0}, ValueError, "max_iter"),
        ((torch.randn(3, 2), torch.zeros(3)), {"features": 3}, TypeError, "features"),
        ((torch.randn(3, 4), torch.zeros(3)),
         {"kernel": "random_features", "width": 5, "features": RandomConvFeatures((1, 2, 2), size=1, pool=1)},
         ValueError, "features cannot be combined"),
        (([[1.0]], torch.zeros(1)), {}, TypeError, "X must be a torch.Tensor"),
        ((torch.randn(3, 2), torch.tensor([0, -1, 1])), {}, ValueError, "labels must be >= 0"),
        ((torch.randn(3, 2), torch.zeros(3)), {"max_memory": "1GB"}, ValueError,
         r"max_memory \(bytes\) must be an integer >= 1, got '1GB'"),
        ((torch.randn(3, 2), torch.zeros(3)), {"seed": 2**64}, ValueError, r"seed must be an integer in \[0, 2\^63\)"),
        ((torch.randn(3, 2), torch.zeros(3, 0)), {}, ValueError, "Y has no target columns"),
        ((torch.randn(3, 2), torch.tensor([0, 1, 1])), {"num_classes": 2**40}, ValueError,
         "num_classes must be an integer >= 1 and <= 1048576, got 1099511627776"),
        ((torch.randn(3, 2), torch.zeros(3)), {"tol": "1e-9"}, ValueError, "tol must be a number"),
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


def test_ridge_shrinks_norm_and_no_longer_interpolates():
    X, y = _data()
    p0 = min_norm_fit(X, y, kernel="rbf")
    for method in ("cholesky", "pcg"):
        p1 = min_norm_fit(X, y, kernel="rbf", ridge=1.0, method=method)
        assert p1.norm < p0.norm
        assert p1.train_residual > 1e-3
        assert p1.ridge == 1.0 and p1.relative_residual <= 1e-9


def test_random_features_seeded():
    X, y = _data()
    a = min_norm_fit(X, y, kernel="random_features", width=100, seed=3)
    b = min_norm_fit(X, y, kernel="random_features", width=100, seed=3)
    c = min_norm_fit(X, y, kernel="random_features", width=100, seed=4)
    assert a.norm == b.norm
    assert a.norm != c.norm
    K = kernel_matrix(X, "random_features", width=100, seed=3)
    assert K.shape == (30, 30)


def test_predict_checks_dimension():
    X, y = _data()
    p = min_norm_fit(X, y, kernel="linear")
    with pytest.raises(ValueError, match="values per point"):
        p.predict(torch.randn(2, 7))


@requires_cuda
@pytest.mark.parametrize("kernel", ["rbf", "laplacian"])
def test_pcg_on_cuda_matches_cpu(kernel):
    X, y = _data(n=157, d=12, k=4, seed=3)
    a = min_norm_fit(X, y, kernel=kernel, method="pcg", block=32)
    b = min_norm_fit(X.cuda(), y, kernel=kernel, method="pcg", block=32)
    assert b.alpha.is_cuda and b.relative_residual <= 1e-9
    assert _rel(b.alpha.cpu(), a.alpha) < 1e-7


def test_a_single_class_is_interpolated_and_classified_as_itself():
    X = torch.randn(12, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for label in (0, 2):
        y = torch.full((12,), label)
        p = min_norm_fit(X, y, kernel="rbf", num_classes=None if label == 0 else 3)
        assert p.train_residual < 1e-8  # one-hot targets of one class interpolated
        assert p.train_error == 0.0 and p.error(X, y) == 0.0
        assert p.classify(X + 0.01).tolist() == [label] * 12
    real = min_norm_fit(X, torch.where(X[:, 0] > 0, 1.0, -1.0), kernel="rbf")  # real targets: the sign
    assert real.num_classes is None and real.classify(X).tolist() == (X[:, 0] > 0).long().tolist()


def test_huge_num_classes_fails_the_memory_check_before_allocating():
    X = torch.randn(8, 3, dtype=torch.float64)
    with pytest.raises(KernelMemoryError, match="n=8 points need"):
        min_norm_fit(X, torch.zeros(8, dtype=torch.long), num_classes=2**20, max_memory=2**20)


@pytest.mark.parametrize("kwargs, match", [
    (dict(seed=2**64), r"seed must be an integer in \[0, 2\^63\), got 18446744073709551616"),  # was accepted
    (dict(seed=1.5), "seed must be an integer"),
    (dict(image_shape=("1", "4", "4")), r"image_shape \(C, H, W\) must be 3 positive integers, got \('1', '4', '4'\)"),
    (dict(image_shape=(1, 4)), "must be 3 positive integers"),
    (dict(filters=2.0), "filters must be an integer >= 1, got 2.0"),
])
def test_conv_features_name_bad_values_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RandomConvFeatures(**{"image_shape": (1, 4, 4), "size": 2, "pool": 1, **kwargs})


def test_random_feature_seed_is_checked():
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\^63\)"):
        kernel_matrix(torch.randn(3, 2), kernel="random_features", width=4, seed=-1)
