"""A user's own network and data for rethink (README, "Your model and your data").

    python examples/my_model.py            # writes my_digits.npz: tensors standing in for your data
    rethink fit-random --model examples.my_model:MyCNN --dataset my_digits.npz --max-epochs 20
"""

import numpy as np
import torch
from torch import nn


class MyCNN(nn.Module):
    """Any nn.Module works; rethink passes ``input_shape`` (C, H, W) and ``num_classes``
    when the constructor names them, under ``torch.manual_seed(seed)`` for every run."""

    def __init__(self, input_shape, num_classes):
        super().__init__()
        c, h, w = input_shape
        self.conv = nn.Conv2d(c, 16, 3, padding=1)
        self.head = nn.Linear(16 * h * w, num_classes)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).flatten(1))


if __name__ == "__main__":
    import rethink

    ds = rethink.datasets.load("digits")  # the embedded 8x8 digits, standing in for your tensors
    np.savez("my_digits.npz", train_images=ds.train.images.numpy(), train_labels=ds.train.labels.numpy(),
             test_images=ds.test.images.numpy(), test_labels=ds.test.labels.numpy())
    print("wrote my_digits.npz")
