import pytest
import torch
from torch import nn

from geossl.augment.views import MultispectralRandAugment, RandomSharpness, Views


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
    # Flips and 90-degree turns only permute pixels (Kornia warps: 1e-5 rounding).
    for original, view in zip(images, weak, strict=True):
        torch.testing.assert_close(
            original.flatten().sort().values,
            view.flatten().sort().values,
            atol=1e-4,
            rtol=0,
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
