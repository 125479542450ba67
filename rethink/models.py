"""The paper's models (Zhang et al. 2017, CIFAR-10 section) and one modern reference.

``create(name, input_shape, num_classes)`` builds a model for images of shape
``input_shape = (C, H, W)``; inputs are float tensors ``B x C x H x W`` and outputs are
logits ``B x num_classes``. At ``input_shape=(3, 28, 28)`` and 10 classes the paper's
four models have exactly the parameter counts of the paper:

=====================  ==========================================================  ==========
name                   architecture                                                parameters
=====================  ==========================================================  ==========
mlp1x512               flatten -> 512 ReLU -> classes                              1,209,866
mlp3x512               flatten -> 3 x (512 ReLU) -> classes                        1,735,178
alexnet_small          2 x (conv 5x5 64 -> max-pool 3x3/2 -> LRN), FC 384, 192    1,387,786
inception_small        Conv96, Inception and Downsample modules, mean-pool, FC     1,649,402
inception_small_nobn   the same without batch norm                                 1,649,402
resnet18               CIFAR-style ResNet-18 (3x3 stem, no max-pool; 32x32 inputs) 11,173,962
=====================  ==========================================================  ==========

For studies over architecture (a model zoo) there are also MLPs ``mlp{depth}x{width}`` and
the Network-in-Network family ``nin{depth}x{width}`` of Jiang et al. 2020 (:class:`NiN`;
depth 2, 3, 4 blocks, width 24, 48, 96 channels: 8,242 (nin2x24) to 326,698 (nin4x96) parameters at 1x28x28
and 10 classes, see :func:`nin_parameters`).

Other input sizes (8x8x1 digits, 28x28x1 MNIST, 32x32x3 CIFAR without crop) change the
first layer's fan-in (MLPs), the flattened size before the fully connected layers
(small AlexNet) or nothing at all (the convolutional models end in a global mean pool).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from . import nn as rnn
from . import paper as _paper
from ._check import check_int, check_number

__all__ = ["create", "names", "num_parameters", "nin_parameters", "min_image_size", "PAPER_PARAMETERS"]

#: Parameter counts stated by the paper for 28x28x3 inputs and 10 classes (rethink.paper).
PAPER_PARAMETERS = _paper.PARAMETERS


class MLP(nn.Module):
    """Multilayer perceptron: flatten, ``depth`` hidden layers of ``width`` ReLU units, linear out."""

    def __init__(self, input_shape: Sequence[int], num_classes: int, width: int = 512, depth: int = 1,
                 dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        fan_in = math.prod(input_shape)
        for _ in range(depth):
            layers += [nn.Linear(fan_in, width), nn.ReLU(inplace=True)]
            if dropout:
                layers.append(nn.Dropout(dropout))
            fan_in = width
        layers.append(nn.Linear(fan_in, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _pool_out(n: int) -> int:
    # max-pool 3x3, stride 2, padding 1 (TensorFlow "SAME"): ceil(n / 2)
    return (n + 2 - 3) // 2 + 1


class SmallAlexNet(nn.Module):
    """The paper's small AlexNet: two (conv 5x5 -> ReLU -> max-pool 3x3/2 -> local response norm)
    blocks of 64 channels, then fully connected 384 and 192 ReLU layers and a linear layer.

    Each block's ReLU -> max-pool -> LRN is one fused op (:class:`rethink.nn.ReLUMaxPoolLRN`);
    ``fused=False`` builds the same network from torch's modules (same parameters, same
    ``state_dict`` keys, equal outputs up to float rounding).
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int, channels: int = 64, dropout: float = 0.0,
                 fused: bool = True):
        super().__init__()
        c, h, w = input_shape
        # TensorFlow cifar10 tutorial: depth_radius 4, bias 1, alpha 0.001/9, beta 0.75
        lrn = dict(size=9, alpha=0.001, beta=0.75, k=1.0)

        def block(cin: int) -> nn.Sequential:
            if fused:
                return nn.Sequential(nn.Conv2d(cin, channels, 5, padding=2), rnn.ReLUMaxPoolLRN(3, 2, 1, **lrn))
            return nn.Sequential(
                nn.Conv2d(cin, channels, 5, padding=2),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(3, stride=2, padding=1),
                nn.LocalResponseNorm(**lrn),
            )

        self.features = nn.Sequential(block(c), block(channels))
        flat = channels * _pool_out(_pool_out(h)) * _pool_out(_pool_out(w))
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, 384),
            nn.ReLU(inplace=True),
            *([nn.Dropout(dropout)] if dropout else []),
            nn.Linear(384, 192),
            nn.ReLU(inplace=True),
            *([nn.Dropout(dropout)] if dropout else []),
            nn.Linear(192, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class ConvModule(nn.Module):
    """conv (with bias) -> batch norm (no affine parameters) -> ReLU; no batch norm if ``bn=False``."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, bn: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)
        self.bn = nn.BatchNorm2d(cout, affine=False) if bn else nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class InceptionModule(nn.Module):
    """Inc(a, b): an ``a``-channel 1x1 conv module and a ``b``-channel 3x3 conv module, concatenated."""

    def __init__(self, cin: int, a: int, b: int, bn: bool = True):
        super().__init__()
        self.branch1 = ConvModule(cin, a, 1, bn=bn)
        self.branch3 = ConvModule(cin, b, 3, bn=bn)
        self.out_channels = a + b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch3(x)], dim=1)


class DownsampleModule(nn.Module):
    """Down(c): a 3x3 stride-2 ``c``-channel conv module and a 3x3 stride-2 max-pool, concatenated."""

    def __init__(self, cin: int, c: int, bn: bool = True):
        super().__init__()
        self.conv = ConvModule(cin, c, 3, stride=2, bn=bn)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.out_channels = c + cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.conv(x), self.pool(x)], dim=1)


class SmallInception(nn.Module):
    """The paper's small Inception (its Figure 3): Conv96 -> Inc(32,32) -> Inc(32,48) ->
    Down(80) -> Inc(112,48) -> Inc(96,64) -> Inc(80,80) -> Inc(48,96) -> Down(96) ->
    Inc(176,160) -> Inc(176,160) -> global mean pool (7x7 at 28x28 input) -> FC.

    ``channels_last_cpu``: the trainer runs it in channels_last memory on a CPU too, where
    torch's convolutions of its many small branches are faster that way (BENCHMARKS.md).

    Without batch norm (``bn=False``, the paper's "small Inception w/o BatchNorm") every conv
    is initialized He-normal (``kaiming_normal_``, fan-in, ReLU gain) with zero bias: at
    PyTorch's default init the signal's standard deviation shrinks from 0.60 to 0.015 over
    the 19 convs and the network stays at chance (training loss ln 10) at learning rates
    0.1 and 0.01; He init keeps it near 1. The paper does not state its init; with batch
    norm the default init is kept (batch norm rescales every layer)."""

    channels_last_cpu = True

    def __init__(self, input_shape: Sequence[int], num_classes: int, bn: bool = True, dropout: float = 0.0):
        super().__init__()
        c = input_shape[0]
        layers: list[nn.Module] = [ConvModule(c, 96, 3, bn=bn)]
        c = 96
        plan = [("inc", 32, 32), ("inc", 32, 48), ("down", 80), ("inc", 112, 48), ("inc", 96, 64),
                ("inc", 80, 80), ("inc", 48, 96), ("down", 96), ("inc", 176, 160), ("inc", 176, 160)]
        for kind, *sizes in plan:
            m = InceptionModule(c, *sizes, bn=bn) if kind == "inc" else DownsampleModule(c, *sizes, bn=bn)
            layers.append(m)
            c = m.out_channels
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.fc = nn.Linear(c, num_classes)
        if not bn:
            for module in self.features.modules():
                if isinstance(module, nn.Conv2d):
                    nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                    nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(torch.flatten(self.pool(self.features(x)), 1)))


class NiNBlock(nn.Module):
    """One Network-in-Network block: a 3x3 conv (padding 1, ``stride``), then two 1x1 convs,
    each conv (no bias: batch norm's shift replaces it) followed by batch norm (with its
    affine scale and shift) and ReLU. ``B x cin x H x W -> B x cout x ceil(H/stride) x ceil(W/stride)``."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        layers: list[nn.Module] = []
        for i, kernel in enumerate((3, 1, 1)):
            layers += [nn.Conv2d(cin if i == 0 else cout, cout, kernel, stride=stride if i == 0 else 1,
                                 padding=kernel // 2, bias=False),
                       nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class NiN(nn.Module):
    """The Network-in-Network family of Jiang et al. 2020 (their model zoo's base architecture,
    after Lin et al. 2013): ``depth`` NiN blocks (:class:`NiNBlock`) of ``width`` channels, a
    final 1x1 conv to ``num_classes`` channels (with bias) and a global average pool.

    Downsampling: the 3x3 conv of every block after the first has stride 2 (no pooling
    layers), so a ``B x C x H x W`` input gives ``B x width x ceil(H / 2^(depth-1)) x
    ceil(W / 2^(depth-1))`` features (28x28: 28, 14, 7, 4 for blocks 1..4) and ``B x
    num_classes`` logits. ``dropout``: ``nn.Dropout`` after every block (so also before the
    final 1x1 conv), none when 0.

    Jiang et al. used widths that are multiples of 48 (up to 384 channels) on CIFAR-10; the
    registered CPU-sized set is width 24, 48, 96 and depth 2, 3, 4 (:data:`NIN_WIDTHS`,
    :data:`NIN_DEPTHS`). Parameters: :func:`nin_parameters`.
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int, width: int = 48, depth: int = 3,
                 dropout: float = 0.0):
        super().__init__()
        if depth < 1 or width < 1:
            raise ValueError(f"NiN needs depth >= 1 and width >= 1, got depth {depth}, width {width}")
        layers: list[nn.Module] = []
        cin = input_shape[0]
        for i in range(depth):
            layers.append(NiNBlock(cin, width, stride=1 if i == 0 else 2))
            if dropout:
                layers.append(nn.Dropout(dropout))
            cin = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Conv2d(width, num_classes, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.classifier(self.features(x))), 1)


def nin_parameters(depth: int, width: int, channels: int, num_classes: int) -> int:
    """Trainable parameters of ``nin{depth}x{width}`` for ``channels`` input channels:
    the first 3x3 conv ``9 C w``, the other blocks' 3x3 convs ``9 w^2`` each, two 1x1 convs
    per block ``w^2`` each, batch norm ``2 w`` after each of the ``3 depth`` convs, and the
    final 1x1 conv ``w K + K``; independent of the image size."""
    w, d, k = width, depth, num_classes
    return 9 * channels * w + 9 * (d - 1) * w * w + 2 * d * w * w + 6 * d * w + w * k + k


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """CIFAR-style ResNet-18 (He et al. 2016): 3x3 stem without max-pool, four stages of two
    basic blocks (64, 128, 256, 512 channels), global mean pool, linear layer."""

    def __init__(self, input_shape: Sequence[int], num_classes: int, dropout: float = 0.0):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(input_shape[0], 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True)
        )
        blocks: list[nn.Module] = []
        cin = 64
        for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
            blocks += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(torch.flatten(self.pool(self.layers(self.stem(x))), 1)))


_REGISTRY: dict[str, Callable[[tuple[int, int, int], int, float], nn.Module]] = {
    "mlp1x512": lambda s, k, p: MLP(s, k, 512, 1, p),
    "mlp3x512": lambda s, k, p: MLP(s, k, 512, 3, p),
    "alexnet_small": lambda s, k, p: SmallAlexNet(s, k, dropout=p),
    "inception_small": lambda s, k, p: SmallInception(s, k, bn=True, dropout=p),
    "inception_small_nobn": lambda s, k, p: SmallInception(s, k, bn=False, dropout=p),
    "resnet18": lambda s, k, p: ResNet18(s, k, dropout=p),
}
# MLPs of other widths and depths, for studies over architecture (e.g. a model zoo):
# "mlp{depth}x{width}" with depth 1..4 and width 32..2048 in powers of two.
for _d in (1, 2, 3, 4):
    for _w in (32, 64, 128, 256, 1024, 2048) + ((512,) if _d in (2, 4) else ()):
        _REGISTRY.setdefault(f"mlp{_d}x{_w}", lambda s, k, p, d=_d, w=_w: MLP(s, k, w, d, p))
#: The registered Network-in-Network depths (blocks) and widths (channels): "nin{depth}x{width}".
NIN_DEPTHS, NIN_WIDTHS = (2, 3, 4), (24, 48, 96)
_MIN_SIZE: dict[str, int] = {}  # the smallest image side a model takes, where more than 4
for _d in NIN_DEPTHS:
    for _w in NIN_WIDTHS:
        _REGISTRY[f"nin{_d}x{_w}"] = lambda s, k, p, d=_d, w=_w: NiN(s, k, w, d, p)
        _MIN_SIZE[f"nin{_d}x{_w}"] = max(4, 2 ** (_d - 1))  # every strided conv sees at least 2 pixels

#: Models with convolutions (they benefit from channels_last on a GPU).
CONVOLUTIONAL = frozenset({"alexnet_small", "inception_small", "inception_small_nobn", "resnet18",
                           *(n for n in _REGISTRY if n.startswith("nin"))})

#: The paper's initial learning rates: 0.1 for the Inception models, 0.01 for the others
#: (every other model defaults to 0.01 as well).
DEFAULT_LR = dict(_paper.LR)


def names() -> list[str]:
    """Names accepted by :func:`create`."""
    return list(_REGISTRY)


def min_image_size(name: str) -> int:
    """The smallest image height and width model ``name`` takes (1 for MLPs, 4 for the other
    convolutional models, ``max(4, 2^(depth-1))`` for ``nin{depth}x{width}``)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(names())}")
    return _MIN_SIZE.get(name, 4 if name in CONVOLUTIONAL else 1)


def num_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (buffers such as batch-norm running statistics excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


#: The most output classes a model is built for (a larger count is a mistake, not a model).
MAX_CLASSES = 2**20


def create(name: str, input_shape: Sequence[int], num_classes: int, *, seed: int | None = None,
           dropout: float = 0.0) -> nn.Module:
    """Build model ``name`` for inputs ``B x C x H x W`` (``input_shape = (C, H, W)``) and
    ``num_classes`` output logits, in float32 on the CPU.

    ``seed``: when given, the initial weights are drawn from ``torch.manual_seed(seed)``
    inside a forked RNG (the global RNG state is left as it was); otherwise from the
    global RNG. ``dropout``: probability of ``nn.Dropout`` after every hidden fully
    connected layer (MLPs, small AlexNet), after every block (NiN) or before the last layer
    (small Inception, ResNet-18); 0 (the paper's setting) adds none.

    Raises ValueError for an unknown name (the message lists the choices), an
    ``input_shape`` that is not three positive integers, an image too small for the
    model, or ``num_classes < 1``.
    """
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(names())}")
    shape = tuple(input_shape)
    if len(shape) != 3 or not all(isinstance(v, int) and v > 0 for v in shape):
        raise ValueError(f"input_shape must be (C, H, W) positive integers, got {input_shape!r}")
    check_int("num_classes", num_classes, low=1, high=MAX_CLASSES)
    check_number("dropout (a probability)", dropout, low=0, high=1, high_open=True)
    side = min_image_size(name)
    if min(shape[1:]) < side:
        raise ValueError(f"model {name!r} needs images of at least {side}x{side}, got input_shape {shape}")
    if seed is None:
        return _REGISTRY[name](shape, num_classes, float(dropout))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _REGISTRY[name](shape, num_classes, float(dropout))
