import math

import pytest
import torch
from torch import nn

import rethink


class Constant(nn.Module):
    """Predicts the same logits for every input: it can only learn the majority class."""

    def __init__(self, classes: int = 2):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(classes))

    def forward(self, x):
        return self.bias.expand(len(x), -1)


@pytest.fixture(scope="module")
def digits():
    return rethink.datasets.load("digits")


@pytest.fixture(scope="module")
def small(digits):
    return rethink.datasets.from_tensors(digits.train.images[:128], digits.train.labels[:128],
                                         digits.test.images[:32], digits.test.labels[:32], num_classes=10,
                                         name="digits128")


def test_constant_model_is_near_zero(digits):
    r = rethink.rademacher(Constant(), digits, draws=3, max_epochs=2, device="cpu", seed=0)
    n = len(digits.train.labels)
    assert r.n == n and r.classes == 2 and len(r.correlations) == 3
    # a constant sign f correlates with sigma by |mean(sigma)| ~ 1/sqrt(n) at most
    assert all(abs(c) < 4 / math.sqrt(n) for c in r.correlations)
    assert abs(r.mean) < 0.1 and abs(r.fit_score) < 0.1
    # with K = 2 the fit score is the correlation: 2 acc - 1
    for c, s, a in zip(r.correlations, r.fit_scores, r.train_accs):
        assert c == pytest.approx(2 * a - 1) and s == pytest.approx(c)
    again = rethink.rademacher(Constant(), digits, draws=3, max_epochs=2, device="cpu", seed=0)
    assert again.correlations == r.correlations  # seeded
    assert r.std == pytest.approx(torch.tensor(r.correlations, dtype=torch.float64).std().item())


@pytest.mark.slow
def test_memorizing_model_is_near_one(small):
    r = rethink.rademacher("mlp1x512", small, draws=2, max_epochs=100, batch_size=32, lr=0.05, device="cpu")
    assert r.mean >= 0.95 and r.fit_score >= 0.95
    assert all(res.status == "completed" for res in r.results)
    # the trained models really fit the random labels they were given
    assert all(res.final["train_acc"] >= 0.97 for res in r.results)


def test_multiclass_fit_score(small):
    r = rethink.rademacher(Constant(10), small, draws=1, classes=10, max_epochs=2, device="cpu")
    assert math.isnan(r.correlations[0]) and math.isnan(r.mean)
    # majority class of 128 uniform labels over 10 classes: accuracy well under 0.3
    assert r.fit_scores[0] == pytest.approx((r.train_accs[0] - 0.1) / 0.9)
    assert r.fit_scores[0] < 0.25


def test_bad_input(digits):
    with pytest.raises(ValueError, match="draws"):
        rethink.rademacher(Constant(), digits, draws=0)
    with pytest.raises(ValueError, match="classes"):
        rethink.rademacher(Constant(), digits, classes=1)
    with pytest.raises(ValueError, match="no parameters"):
        rethink.rademacher(nn.Flatten(), digits)
    with pytest.raises(ValueError, match="corruption"):
        rethink.rademacher(Constant(), digits, corruption="labels:0.5")
    empty = rethink.datasets.from_tensors(digits.train.images[:0], digits.train.labels[:0],
                                          digits.test.images[:4], digits.test.labels[:4], num_classes=10)
    with pytest.raises(ValueError, match="no training data"):
        rethink.rademacher(Constant(), empty)


@pytest.mark.parametrize("kwargs, match", [
    (dict(dataset=42), "dataset must be a dataset name, .* got int 42"),
    (dict(seed=-1), r"seed must be an integer in \[0, 2\^63\)"),
    (dict(seed=2**63 - 2, draws=5), "the seed of the last draw"),
    (dict(draws="5"), "draws must be an integer >= 1, got '5'"),
    (dict(classes=2**40), "classes must be an integer >= 2 and <= 1048576"),
])
def test_bad_values_are_named_before_any_fit(kwargs, match):
    with pytest.raises(ValueError, match=match):
        rethink.rademacher(**kwargs)
