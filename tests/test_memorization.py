"""Memorization scores (Feldman & Zhang 2020) against hand computations, and end to end on digits."""

import math

import pytest
import torch

import rethink
from rethink.memorization import auroc, influence_scores, memorization_scores

pytestmark = pytest.mark.usefixtures("one_thread")


def test_scores_by_hand():
    # 4 runs, 3 examples
    in_mask = torch.tensor([[1, 1, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0]], dtype=torch.bool)
    correct = torch.tensor([[1, 1, 1], [1, 0, 0], [0, 1, 1], [0, 0, 1]], dtype=torch.bool)
    s = memorization_scores(in_mask, correct)
    assert s[0] == pytest.approx(1.0 - 0.0)  # in runs 0,1 both correct; out runs 2,3 both wrong
    assert s[1] == pytest.approx(2 / 3 - 0.0)  # in runs 0,2,3: correct 0,2; out run 1: wrong
    assert math.isnan(s[2])  # never in a subset
    with pytest.raises(ValueError, match="runs, n"):
        memorization_scores(in_mask[:, :2], correct)


def test_influence_by_hand():
    in_mask = torch.tensor([[1, 0], [1, 1], [0, 1]], dtype=torch.bool)
    correct_test = torch.tensor([[1], [1], [0]], dtype=torch.bool)
    infl = influence_scores(in_mask, correct_test)
    assert infl.shape == (2, 1)
    assert infl[0, 0] == pytest.approx(1.0 - 0.0)  # train 0 in runs 0,1 (test right), out run 2 (wrong)
    assert infl[1, 0] == pytest.approx(0.5 - 1.0)  # train 1 in runs 1,2 (1 of 2 right), out run 0 (right)


def test_auroc_against_scikit_learn_with_ties():
    from sklearn.metrics import roc_auc_score

    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 5, (200,), generator=g).double()  # many ties
    labels = torch.rand(200, generator=g) < 0.3
    assert auroc(scores, labels) == pytest.approx(roc_auc_score(labels.numpy(), scores.numpy()))
    assert auroc(torch.tensor([0.1, 0.9, float("nan")]), torch.tensor([False, True, True])) == 1.0
    assert math.isnan(auroc(torch.tensor([0.1, 0.2]), torch.tensor([False, False])))


@pytest.mark.slow
def test_flipped_labels_get_the_highest_scores_on_digits(tmp_path):
    rep = rethink.memorization("mlp1x512", "digits", "labels:0.3:different", runs=8, subset=0.6, train_pool=400,
                               out_dir=tmp_path, device="cpu", progress=False, max_epochs=300, batch_size=32)
    assert rep.scores.shape == rep.flipped.shape == (400,)
    assert 80 <= int(rep.flipped.sum()) <= 160  # about 30% of 400 labels flipped
    assert rep.scores[rep.flipped].nanmean() > rep.scores[~rep.flipped].nanmean() + 0.3
    assert rep.auroc > 0.8 and set(rep.auroc_by_runs) == {5, 8}
    assert (tmp_path / "memorization.json").exists()
    # cached: a second call trains nothing and reads the same predictions
    again = rethink.memorization("mlp1x512", "digits", "labels:0.3:different", runs=8, subset=0.6, train_pool=400,
                                 out_dir=tmp_path, device="cpu", progress=False, max_epochs=300, batch_size=32)
    assert torch.equal(again.scores.nan_to_num(-9), rep.scores.nan_to_num(-9))


def test_bad_input():
    with pytest.raises(ValueError, match="runs must be"):
        rethink.memorization(runs=1)
    with pytest.raises(ValueError, match="subset must be"):
        rethink.memorization(subset=1.0)
    with pytest.raises(ValueError, match="sets train_size"):
        rethink.memorization(train_size=10)
    for pool in (0, 1, -3, 2.5, True):  # 0 used to train on the whole training set
        with pytest.raises(ValueError, match=f"train_pool must be an integer >= 2, got {pool!r}"):
            rethink.memorization(train_pool=pool)
