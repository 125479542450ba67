import pytest
import torch

from rethink import models


@pytest.mark.parametrize("name", sorted(models.PAPER_PARAMETERS))
def test_paper_parameter_counts_at_28x28x3(name):
    model = models.create(name, (3, 28, 28), 10)
    assert models.num_parameters(model) == models.PAPER_PARAMETERS[name]


def test_resnet18_parameter_count():
    # the usual CIFAR ResNet-18 count
    assert models.num_parameters(models.create("resnet18", (3, 32, 32), 10)) == 11_173_962


def test_inception_batch_norm_has_no_affine_and_nobn_has_none():
    bn = models.create("inception_small", (3, 28, 28), 10)
    norms = [m for m in bn.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(not m.affine for m in norms)
    nobn = models.create("inception_small_nobn", (3, 28, 28), 10)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in nobn.modules())


def test_inception_mean_pools_7x7_at_28x28():
    model = models.create("inception_small", (3, 28, 28), 10)
    feats = model.features(torch.randn(2, 3, 28, 28))
    assert feats.shape == (2, 336, 7, 7)


def test_alexnet_flattens_64x7x7_at_28x28():
    model = models.create("alexnet_small", (3, 28, 28), 10)
    assert model.classifier[1].in_features == 64 * 7 * 7


@pytest.mark.parametrize("name", models.names())
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_other_input_shapes(name, shape):
    model = models.create(name, shape, 7).eval()
    with torch.no_grad():
        out = model(torch.randn(3, *shape))
    assert out.shape == (3, 7) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_mlp_adapts_fan_in():
    assert models.num_parameters(models.create("mlp1x512", (1, 8, 8), 10)) == 64 * 512 + 512 + 5130


def test_seed_is_deterministic_and_leaves_global_rng():
    state = torch.get_rng_state()
    a = models.create("mlp1x512", (1, 8, 8), 10, seed=3)
    b = models.create("mlp1x512", (1, 8, 8), 10, seed=3)
    c = models.create("mlp1x512", (1, 8, 8), 10, seed=4)
    assert torch.equal(torch.get_rng_state(), state)
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(v, w), k
    assert not torch.equal(a.state_dict()["net.1.weight"], c.state_dict()["net.1.weight"])


def test_bad_input():
    with pytest.raises(ValueError, match="'vgg'.*mlp1x512"):
        models.create("vgg", (3, 28, 28), 10)
    with pytest.raises(ValueError, match="input_shape"):
        models.create("mlp1x512", (28, 28), 10)
    with pytest.raises(ValueError, match="num_classes"):
        models.create("mlp1x512", (3, 28, 28), 0)
    with pytest.raises(ValueError, match="at least 4x4"):
        models.create("inception_small", (3, 2, 2), 10)
