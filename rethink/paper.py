"""The paper's numbers, quoted once: reports, plots and tests read them from here.

Source: Zhang, Bengio, Hardt, Recht, Vinyals, "Understanding deep learning requires
rethinking generalization", ICLR 2017 (CIFAR-10 unless said otherwise). These are the
paper's results, never rethink's: anything that prints them must name them as the paper's.
"""

from __future__ import annotations

__all__ = [
    "MODEL_NAMES",
    "PARAMETERS",
    "TABLE1",
    "TABLE1_COLUMNS",
    "FIGURE1_INCEPTION_STEPS",
    "FIGURE1_CLAIMS",
    "EARLY_STOPPING_CIFAR10",
    "APPENDIX_E_RANDOM_LABELS",
    "SECTION5",
    "CIFAR10_TRAIN_IMAGES",
    "LR",
    "LR_DECAY_PER_EPOCH",
    "MOMENTUM",
    "BATCH_SIZE",
    "parameters_per_image",
]

#: Display names of the paper's models (and of the one modern reference rethink adds).
MODEL_NAMES = {
    "mlp1x512": "MLP 1x512",
    "mlp3x512": "MLP 3x512",
    "alexnet_small": "small AlexNet",
    "inception_small": "small Inception",
    "inception_small_nobn": "small Inception w/o BN",
    "resnet18": "ResNet-18",
}

#: Parameter counts the paper states for 28x28x3 inputs and 10 classes.
PARAMETERS = {
    "mlp1x512": 1_209_866,
    "mlp3x512": 1_735_178,
    "alexnet_small": 1_387_786,
    "inception_small": 1_649_402,
    "inception_small_nobn": 1_649_402,
}

CIFAR10_TRAIN_IMAGES = 50_000

#: Table 1 columns: "crop+wd", "crop", "wd", "none" (true labels), "random_labels".
TABLE1_COLUMNS = ("crop+wd", "crop", "wd", "none", "random_labels")

#: Table 1: (train accuracy %, test accuracy %) per model and column; "-" cells absent.
TABLE1 = {
    "inception_small": {"crop+wd": (100.0, 89.05), "crop": (100.0, 89.31), "wd": (100.0, 86.03),
                        "none": (100.0, 85.75), "random_labels": (100.0, 9.78)},
    "inception_small_nobn": {"wd": (100.0, 83.00), "none": (100.0, 82.00), "random_labels": (100.0, 10.12)},
    "alexnet_small": {"crop+wd": (99.90, 81.22), "crop": (99.82, 79.66), "wd": (100.0, 77.36),
                      "none": (100.0, 76.07), "random_labels": (99.82, 9.86)},
    "mlp3x512": {"wd": (100.0, 53.35), "none": (100.0, 52.39), "random_labels": (100.0, 10.48)},
    "mlp1x512": {"wd": (99.80, 50.39), "none": (100.0, 50.51), "random_labels": (99.34, 10.61)},
}

#: Steps until the training loss fell to 0.01 for small Inception (lr 0.1, batch 128), per
#: variant, as measured by one independent reproduction of Figure 1a (not by the paper).
FIGURE1_INCEPTION_STEPS = {"true": 5_700, "shuffled_pixels": 6_700, "gaussian": 9_900, "random_pixels": 13_000,
                           "random_labels": 17_700}

#: Figure 1's claims, per panel, in the paper's words (paraphrased).
FIGURE1_CLAIMS = {
    "a": "every variant reaches a training loss of about 0; random pixels and Gaussian start converging "
         "faster than random labels",
    "b": "the time to fit grows only by a small constant factor as label corruption goes from 0 to 1",
    "c": "test error grows steadily to 90% as label corruption goes to 1",
}

#: Section 3's remark on Figure 2: on CIFAR-10, early stopping gave no benefit.
EARLY_STOPPING_CIFAR10 = "no benefit"

#: Appendix E (secondary sources, unsure): train accuracy % on random labels with a regularizer.
APPENDIX_E_RANDOM_LABELS = {
    ("inception_small", "weight decay"): 100.0,
    ("inception_small", "random crop"): 99.93,
    ("inception_small", "augmentation"): 99.28,
    ("alexnet_small", "weight decay"): None,  # "fails to converge"
    ("mlp1x512", "weight decay"): 99.21,
}

#: Section 5: minimum-norm kernel interpolation (test error %) and solution norms.
SECTION5 = {
    "mnist_gaussian_pixels_error": 1.2,
    "mnist_gaussian_wavelets_error": 0.6,
    "cifar10_gaussian_pixels_error": 46.0,
    "cifar10_random_conv_features_error": 17.0,
    "cifar10_random_conv_features_l2_error": 15.0,
    "mnist_norm_pixels": 220.0,
    "mnist_norm_wavelets": 390.0,
}

#: Training settings of the paper (CIFAR-10).
LR = {"inception_small": 0.1, "inception_small_nobn": 0.1, "alexnet_small": 0.01, "mlp1x512": 0.01,
      "mlp3x512": 0.01}
LR_DECAY_PER_EPOCH = 0.95
MOMENTUM = 0.9
BATCH_SIZE = 128  # not stated by the paper; what reproductions use


def parameters_per_image(model: str, train_images: int = CIFAR10_TRAIN_IMAGES) -> float | None:
    """The paper's parameter count of ``model`` per training image (CIFAR-10: 50,000), or None."""
    p = PARAMETERS.get(model)
    return None if p is None else p / train_images
