import math

import pytest
import torch
import torch.nn.functional as F
from kornia.geometry.transform import get_affine_matrix2d, warp_affine
from torch import nn

from geossl.augment.views import (
    MultispectralRandAugment,
    RandomAffine,
    RandomDihedral,
    RandomSharpness,
    RandomShift,
    SpectralJitter,
    Views,
    affine_theta,
    contrastive_view,
)


def _views(bands):
    return Views(torch.full((bands,), 1000.0), torch.full((bands,), 500.0))


@pytest.mark.parametrize('bands', [13, 12, 3])
def test_views_keep_shape_and_dtype(bands):
    torch.manual_seed(0)
    views = _views(bands)
    raw = torch.rand(8, bands, 64, 64) * 4000
    images = views.normalise(raw)
    torch.testing.assert_close(images, (raw - 1000.0) / 500.0)
    for view in (views.weak(images), views.strong(images)):
        assert view.shape == images.shape
        assert view.dtype == torch.float32
        assert torch.isfinite(view).all()


def test_views_differ_per_sample():
    torch.manual_seed(0)
    views = _views(13)
    images = torch.randn(1, 13, 32, 32).repeat(16, 1, 1, 1)
    for view in (views.weak(images), views.strong(images)):
        distinct = {tuple(sample.flatten()[:64].tolist()) for sample in view}
        assert len(distinct) > 8


def test_weak_view_keeps_the_pixels_it_moves():
    torch.manual_seed(0)
    views = Views(torch.zeros(2), torch.ones(2), crop_padding=0.0)
    images = torch.randn(6, 2, 16, 16)
    weak = views.weak(images)
    # Flips and 90-degree turns only permute pixels, exactly.
    for original, view in zip(images, weak, strict=True):
        assert torch.equal(
            original.flatten().sort().values, view.flatten().sort().values
        )


def test_strong_view_erases_a_patch_to_the_band_mean():
    torch.manual_seed(0)
    views = _views(4)
    strong = views.strong(torch.randn(8, 4, 32, 32) + 5.0)
    # Cutout writes exact zeros (the mean after normalisation) in every sample.
    assert ((strong == 0).all(dim=1).flatten(1).sum(dim=1) > 0).all()


class _Add(nn.Module):
    def __init__(self, value):
        super().__init__()
        self.value = value

    def forward(self, images):
        return images + self.value


def test_rand_augment_picks_an_operation_per_sample():
    torch.manual_seed(0)
    augment = MultispectralRandAugment(
        num_ops=1, operations={'plus': _Add(1.0), 'minus': _Add(-1.0)}
    )
    out = augment(torch.zeros(64, 2, 4, 4))
    per_sample = out.flatten(1)
    assert (per_sample == per_sample[:, :1]).all()
    assert set(per_sample[:, 0].tolist()) == {1.0, -1.0}
    two = MultispectralRandAugment(
        num_ops=2, operations={'plus': _Add(1.0), 'minus': _Add(-1.0)}
    )
    assert set(two(torch.zeros(64, 1, 1, 1)).flatten().tolist()) == {-2.0, 0.0, 2.0}


def test_sharpness_is_not_clamped():
    images = torch.zeros(4, 3, 8, 8)
    images[..., 4, 4] = -50.0
    sharpened = RandomSharpness(0.9)(images)
    assert sharpened.min() < -50.0


def _symmetries(image):
    """The 8 flips and turns of a square image."""
    turns = [torch.rot90(image, k, dims=(-2, -1)) for k in range(4)]
    return turns + [turn.flip(-1) for turn in turns]


def test_dihedral_draws_all_eight_symmetries_per_sample():
    torch.manual_seed(0)
    image = torch.arange(2 * 5 * 5.0).reshape(1, 2, 5, 5)
    moved = RandomDihedral()(image.repeat(200, 1, 1, 1))
    symmetries = _symmetries(image[0])
    drawn = [
        next(i for i, s in enumerate(symmetries) if torch.equal(s, sample))
        for sample in moved
    ]
    assert set(drawn) == set(range(8))


def test_dihedral_keeps_non_square_images_to_flips():
    torch.manual_seed(0)
    image = torch.arange(12.0).reshape(1, 1, 3, 4)
    moved = RandomDihedral()(image.repeat(50, 1, 1, 1))
    flips = [image[0], image[0].flip(-1), image[0].flip(-2), image[0].flip(-1, -2)]
    assert moved.shape == (50, 1, 3, 4)
    assert all(any(torch.equal(f, sample) for f in flips) for sample in moved)


def test_shift_crops_the_reflect_padded_image_at_a_per_sample_offset():
    torch.manual_seed(0)
    images = torch.randn(40, 3, 8, 8)
    shifted = RandomShift(2)(images)
    padded = F.pad(images, (2, 2, 2, 2), mode='reflect')
    offsets = set()
    for original, view in zip(padded, shifted, strict=True):
        (offset,) = [
            (y, x)
            for y in range(5)
            for x in range(5)
            if torch.equal(original[:, y : y + 8, x : x + 8], view)
        ]
        offsets.add(offset)
    assert len(offsets) > 10


def test_spectral_jitter_gives_each_band_of_each_sample_its_own_gain_and_offset():
    torch.manual_seed(0)
    images = torch.ones(64, 13, 4, 4)
    jittered = SpectralJitter(strength=0.4, p=1.0, grayscale=0.0)(images)
    # Each band of a sample moves as one (a gain and an offset, not noise).
    assert (jittered == jittered[:, :, :1, :1]).all()
    values = jittered[:, :, 0, 0]
    # gain * 1 + offset, each within 0.4 of the identity.
    assert values.min() >= 1 - 0.8
    assert values.max() <= 1 + 0.8
    assert len(values.flatten().unique()) == values.numel()
    # A spread over the whole range, not a few fixed values.
    assert values.std() > 0.2


def test_spectral_jitter_leaves_or_averages_bands_as_told():
    torch.manual_seed(0)
    images = torch.randn(16, 13, 8, 8)
    untouched = SpectralJitter(p=0.0, grayscale=0.0)(images)
    torch.testing.assert_close(untouched, images)
    gray = SpectralJitter(p=0.0, grayscale=1.0)(images)
    torch.testing.assert_close(gray, images.mean(dim=1, keepdim=True).expand_as(gray))
    # By default about 80 % of samples are jittered and 20 % made gray.
    many = torch.randn(4000, 3, 2, 2)
    out = SpectralJitter()(many)
    changed = (out != many).flatten(1).any(dim=1).float().mean()
    single = (out == out[:, :1]).flatten(1).all(dim=1).float().mean()
    assert 0.8 < changed < 0.9  # jittered or grayed: 1 - 0.2 x 0.8 = 0.84
    assert 0.15 < single < 0.25


def test_contrastive_view_crops_to_the_chip_size():
    torch.manual_seed(0)
    view = contrastive_view(chip_size=24)
    images = torch.randn(6, 13, 64, 64)
    first, second = view(images), view(images)
    assert first.shape == (6, 13, 24, 24)
    assert not torch.equal(first, second)


def _kornia_warp(images, angle=0.0, shear_x=0.0, shear_y=0.0, shift_x=0.0, shift_y=0.0):
    """What Kornia's RandomAffine does with these magnitudes (degrees, radians, px)."""
    height, width = images.shape[-2:]
    matrix = get_affine_matrix2d(
        torch.tensor([[shift_x, shift_y]]),
        torch.tensor([[width / 2 - 0.5, height / 2 - 0.5]]),
        torch.ones(1, 2),
        torch.tensor([angle]),
        torch.tensor([shear_x]),
        torch.tensor([shear_y]),
    )
    matrices = matrix[:, :2].expand(len(images), 2, 3)
    return warp_affine(
        images,
        matrices,
        (height, width),
        padding_mode='reflection',
        align_corners=False,  # RandomAffine's
    )


@pytest.mark.parametrize(
    ('move', 'kornia'),
    [
        ([0.3, 0, 0, 0, 0], {'angle': math.degrees(0.3)}),
        ([0, -0.2, 0, 0, 0], {'shear_x': -0.2}),
        ([0, 0, 0.25, 0, 0], {'shear_y': 0.25}),
        ([0, 0, 0, 0.25, 0], {'shift_x': 0.25 * 16}),
        ([0, 0, 0, 0, -0.3], {'shift_y': -0.3 * 12}),
    ],
)
def test_affine_moves_warp_as_kornias_random_affine(move, kornia):
    torch.manual_seed(0)
    images = torch.randn(2, 3, 12, 16)
    theta = affine_theta(torch.tensor([move, move]), 12, 16)
    grid = F.affine_grid(theta, [2, 3, 12, 16], align_corners=False)
    ours = F.grid_sample(images, grid, padding_mode='reflection', align_corners=False)
    torch.testing.assert_close(ours, _kornia_warp(images, **kornia))


def test_rand_augment_warps_the_samples_that_drew_a_geometric_operation():
    torch.manual_seed(0)
    ramp = torch.arange(8.0).expand(64, 1, 8, 8)  # varies along x only
    augment = MultispectralRandAugment(
        num_ops=1,
        operations={'shift': RandomAffine(translate=(0.5, 0.0)), 'plus': _Add(100.0)},
    )
    out = augment(ramp)
    added = (out == ramp + 100).flatten(1).all(dim=1)
    assert 0 < added.sum() < 64
    shifted = out[~added]
    # A horizontal shift keeps every row alike, moves the ramp, and adds nothing.
    assert torch.allclose(shifted, shifted[:, :, :1].expand_as(shifted))
    assert not torch.allclose(shifted, ramp[~added])
    assert shifted.max() <= 7 + 1e-5
