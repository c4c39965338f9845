"""Batch augmentation: one random transform per image, reproducible from the seed."""

import torch

from mnist_tui.core import data
from mnist_tui.core.augment import Affine

AUG = Affine(rotate=10, translate=0.1, scale=0.1)


def _batch(n=8):
    train, _ = data.load()
    # The same digit repeated: any difference between outputs comes from the transforms.
    return data.normalise(train.images[:1].repeat(n, 1, 1))


def test_each_image_in_a_batch_gets_its_own_transform():
    x = _batch()
    out = AUG(x, torch.Generator().manual_seed(0), data.BACKGROUND)
    assert out.shape == x.shape
    assert not torch.allclose(out, x)
    for i in range(1, len(out)):
        assert (out[i] - out[0]).abs().max() > 0.1, f"image {i} got the same transform as image 0"


def test_same_seed_same_batch_other_seed_other_batch():
    x = _batch()
    a = AUG(x, torch.Generator().manual_seed(7), data.BACKGROUND)
    b = AUG(x, torch.Generator().manual_seed(7), data.BACKGROUND)
    c = AUG(x, torch.Generator().manual_seed(8), data.BACKGROUND)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_background_stays_black_and_the_digit_survives():
    x = _batch(64)
    out = AUG(x, torch.Generator().manual_seed(0), data.BACKGROUND)
    # Corners are background before and after: shifting must not pull in grey padding.
    assert torch.allclose(out[:, :, 0, 0], torch.full((64, 1), data.BACKGROUND), atol=1e-5)
    # A ±10% zoom and shift keeps the digit's ink (sum of brightness) within a third of the original.
    ink = lambda t: (t - data.BACKGROUND).sum(dim=(1, 2, 3))  # noqa: E731
    assert ((ink(out) / ink(x)).sub(1).abs() < 0.35).all()


def test_no_ranges_is_the_identity():
    x = _batch()
    assert Affine()(x, torch.Generator().manual_seed(0), data.BACKGROUND) is x
