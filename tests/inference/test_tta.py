import pytest
import torch

from geossl.inference.checkpoint import load_task
from geossl.inference.tta import TTA_MOVES, augmented_probabilities
from tests.inference.conftest import small_checkpoint


@pytest.fixture(scope='module')
def task(tmp_path_factory):
    checkpoint = small_checkpoint(tmp_path_factory.mktemp('tta') / 'model.ckpt', 4)
    return load_task(checkpoint).eval()


def _images(count):
    return torch.randn(count, 3, 16, 16, generator=torch.Generator().manual_seed(0))


def _symmetries(images):
    """The 8 turns and turned mirror images, written out independently."""
    turns = [torch.rot90(images, k, dims=(-2, -1)) for k in range(4)]
    return turns + [turn.flip(-1) for turn in turns]


@torch.no_grad()
def test_no_augmentation_is_the_model_itself(task):
    images = _images(5)
    assert torch.equal(
        augmented_probabilities(task.probabilities, images, 'none'),
        task.probabilities(images),
    )


@torch.no_grad()
def test_dihedral_averages_the_eight_symmetries_and_is_blind_to_them(task):
    images = _images(5)
    averaged = augmented_probabilities(task.probabilities, images, 'dihedral')
    expected = torch.stack([task.probabilities(m) for m in _symmetries(images)])
    torch.testing.assert_close(averaged, expected.mean(dim=0), atol=1e-5, rtol=0)
    for moved in _symmetries(images)[1:]:
        torch.testing.assert_close(
            augmented_probabilities(task.probabilities, moved, 'dihedral'),
            averaged,
            atol=1e-5,
            rtol=0,
        )
    assert not torch.allclose(averaged, task.probabilities(images), atol=1e-3)


@torch.no_grad()
def test_flips_average_the_image_and_its_mirror(task):
    images = _images(3)
    flipped = augmented_probabilities(task.probabilities, images, 'flips')
    expected = (task.probabilities(images) + task.probabilities(images.flip(-1))) / 2
    torch.testing.assert_close(flipped, expected, atol=1e-5, rtol=0)
    assert len(TTA_MOVES['flips']) == 2
    assert flipped.sum(dim=1).sub(1).abs().max() < 1e-5
