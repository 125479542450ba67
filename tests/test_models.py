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


def test_inception_without_batch_norm_is_he_initialized_and_keeps_its_signal():
    """Without batch norm every conv is He-normal (std sqrt(2 / fan_in)) with zero bias, and a
    unit-variance input keeps a feature std of order 1 through the 19 convs; the batch-norm
    network keeps PyTorch's default init (uniform, std sqrt(1 / (3 fan_in)))."""
    torch.manual_seed(0)
    nobn = models.create("inception_small_nobn", (1, 24, 24), 10, seed=0)
    bn = models.create("inception_small", (1, 24, 24), 10, seed=0)
    convs = [m for m in nobn.features.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 19
    for conv in convs:
        fan_in = conv.weight[0].numel()
        assert conv.weight.std().item() == pytest.approx((2 / fan_in) ** 0.5, rel=0.15)
        assert torch.count_nonzero(conv.bias) == 0
    for conv in (m for m in bn.features.modules() if isinstance(m, torch.nn.Conv2d)):
        fan_in = conv.weight[0].numel()
        assert conv.weight.std().item() == pytest.approx((1 / (3 * fan_in)) ** 0.5, rel=0.15)
    x = torch.randn(64, 1, 24, 24)
    with torch.no_grad():
        assert 0.3 < nobn.features(x).std().item() < 3.0


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


# --- the Network-in-Network family (Jiang et al. 2020) ----------------------------------

NIN = [n for n in models.names() if n.startswith("nin")]


def test_nin_family_is_registered_and_convolutional():
    assert NIN == [f"nin{d}x{w}" for d in (2, 3, 4) for w in (24, 48, 96)]
    assert set(NIN) <= models.CONVOLUTIONAL
    assert all(models.DEFAULT_LR.get(n, 0.01) == 0.01 for n in NIN)


def test_nin_parameter_counts_by_hand():
    # nin2x24, 1 input channel, 10 classes; every conv has no bias, every batch norm 2 * 24:
    # block 1: 3x3 conv 1->24 (9*1*24) + two 1x1 convs 24->24 (2*24*24) + 3 batch norms (3*2*24)
    # block 2: 3x3 conv 24->24 (9*24*24) + two 1x1 convs (2*24*24) + 3 batch norms (3*2*24)
    # final 1x1 conv 24->10 with bias (24*10 + 10)
    by_hand = (216 + 1152 + 144) + (5184 + 1152 + 144) + 250
    assert by_hand == 8242
    assert models.num_parameters(models.create("nin2x24", (1, 28, 28), 10)) == by_hand
    # nin4x96 on 3 channels: 9*3*96 + 3 * 9*96*96 + 4 * 2*96*96 + 12 * 2*96 + 96*10 + 10, any image size
    by_hand = 2592 + 248832 + 73728 + 2304 + 970
    assert by_hand == 328_426
    for shape in ((3, 24, 24), (3, 32, 32)):
        assert models.num_parameters(models.create("nin4x96", shape, 10)) == by_hand
    # the documented formula agrees with the built models for the whole family
    for name in NIN:
        d, w = map(int, name[3:].split("x"))
        for c, k in ((1, 10), (3, 7)):
            assert models.num_parameters(models.create(name, (c, 16, 16), k)) == models.nin_parameters(d, w, c, k)


@pytest.mark.parametrize("name", ["nin2x24", "nin3x48", "nin4x96"])
@pytest.mark.parametrize("shape", [(1, 24, 24), (3, 28, 28)])
def test_nin_shapes(name, shape):
    d, w = int(name[3]), int(name[5:])
    model = models.create(name, shape, 10).eval()
    x = torch.randn(2, *shape)
    side = {24: [24, 12, 6, 3], 28: [28, 14, 7, 4]}[shape[1]][d - 1]  # stride 2 in blocks 2..depth
    with torch.no_grad():
        assert model.features(x).shape == (2, w, side, side)
        out = model(x)
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.kernel_size[0] for c in convs] == [3, 1, 1] * d + [1]
    assert [c.stride[0] for c in convs[::3][:d]] == [1] + [2] * (d - 1)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) == 3 * d and all(m.affine for m in norms)


def test_nin_dropout_after_every_block():
    model = models.create("nin3x24", (1, 24, 24), 10, dropout=0.3)
    drops = [m for m in model.features if isinstance(m, torch.nn.Dropout)]
    assert len(drops) == 3 and all(m.p == 0.3 for m in drops)
    assert not any(isinstance(m, torch.nn.Dropout) for m in models.create("nin3x24", (1, 24, 24), 10).modules())
    # same parameters with and without dropout
    assert models.num_parameters(model) == models.nin_parameters(3, 24, 1, 10)


def test_nin_seed_is_deterministic():
    state = torch.get_rng_state()
    a, b = (models.create("nin3x48", (3, 28, 28), 10, seed=5) for _ in range(2))
    c = models.create("nin3x48", (3, 28, 28), 10, seed=6)
    assert torch.equal(torch.get_rng_state(), state)
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(v, w), k
    assert not torch.equal(a.features[0].net[0].weight, c.features[0].net[0].weight)


def test_nin_refuses_images_smaller_than_its_downsampling():
    assert [models.min_image_size(n) for n in ("nin2x24", "nin3x48", "nin4x96", "mlp1x512", "alexnet_small")] == \
        [4, 4, 8, 1, 4]
    models.create("nin4x24", (1, 8, 8), 10)
    with pytest.raises(ValueError, match=r"'nin4x24' needs images of at least 8x8, got input_shape \(1, 7, 8\)"):
        models.create("nin4x24", (1, 7, 8), 10)
    with pytest.raises(ValueError, match=r"at least 4x4.*\(3, 3, 3\)"):
        models.create("nin2x24", (3, 3, 3), 10)
    with pytest.raises(ValueError, match="unknown model"):
        models.min_image_size("nin5x24")


@pytest.mark.usefixtures("one_thread")
def test_nin_trains(tmp_path):
    import rethink

    data = rethink.datasets.synthetic(64, 32, shape=(1, 24, 24), num_classes=4, seed=0)
    r = rethink.fit_random("nin2x24", data, "none", device="cpu", progress=False, max_epochs=2, batch_size=16,
                           stop_at_train_acc=None, seed=0)
    assert r.status == "completed" and len(r.history) == 2
    assert all(torch.isfinite(torch.tensor([h["train_loss"], h["test_loss"]])).all() for h in r.history)
    assert r.history[0]["step"] == 4 and r.history[1]["step"] == 8
    init = models.create("nin2x24", (1, 24, 24), 4, seed=0).state_dict()
    assert any(not torch.equal(v, r.model.state_dict()[k].cpu()) for k, v in init.items()
               if k.endswith("weight"))
    # the 8x8 digits fit the depth-4 network (its smallest image)
    d = rethink.fit_random("nin4x24", "digits", "none", device="cpu", progress=False, max_epochs=1, train_size=64,
                           test_size=32, stop_at_train_acc=None, batch_size=32)
    assert d.status == "completed" and d.config["model"] == "nin4x24"
