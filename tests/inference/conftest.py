"""Fixtures of the inference tests: the real 18SVG scene cropped, models, regions."""

import geopandas as gpd
import numpy as np
import pytest
import torch

from geossl.tasks.semi_supervised import SemiSupervisedTask
from tests.conftest import random_chip, write_raster
from tests.stac import write_tiled_bands

S2_BANDS = ['B01', 'B02', 'B03', 'B04', 'B05', 'B06', 'B07', 'B08', 'B8A', 'B09']
S2_BANDS += ['B10', 'B11', 'B12']


def save_checkpoint(path, **options):
    """A checkpoint as geossl fit writes it (hyperparameters + weights)."""
    torch.manual_seed(0)
    task = SemiSupervisedTask(**({'algorithm': 'supervised'} | options))
    task.views.set_statistics(
        torch.full((task.hparams['in_channels'],), 1000.0),
        torch.full((task.hparams['in_channels'],), 500.0),
    )
    torch.save(
        {'hyper_parameters': dict(task.hparams), 'state_dict': task.state_dict()}, path
    )
    return path


@pytest.fixture(scope='session')
def s2_checkpoint(tmp_path_factory):
    """An untrained 13-band Sentinel-2 model (3 classes, chip 32) as a checkpoint."""
    return save_checkpoint(
        tmp_path_factory.mktemp('model') / 'model.ckpt',
        num_classes=3,
        in_channels=13,
        data={'band_names': S2_BANDS, 'class_names': ['ocean', 'marsh', 'forest']},
        chip_size=32,
        model='resnet10t',
    )


def assert_same_classes(classes, expected, probabilities, margin):
    """Two class maps agree wherever the expected probabilities name a clear winner.

    float32 convolutions round differently with the batch's composition, the thread
    count and the CPU's kernels, so where two classes' probabilities lie within
    ``margin`` of each other either may win; elsewhere the classes must be equal.
    Pixels without probabilities (NaN: nodata) must be equal everywhere.

    Args:
        classes: ``H x W`` class map under test.
        expected: ``H x W`` reference class map.
        probabilities: ``K x H x W`` reference probabilities.
        margin: largest rounding difference between the two computations.

    Returns:
        The fraction of pixels with data whose winner is clear.
    """
    nodata = np.isnan(probabilities).any(axis=0)
    np.testing.assert_array_equal(classes[nodata], expected[nodata])
    valid = probabilities[:, ~nodata].astype(np.float64)  # K x pixels
    ranked = np.sort(valid, axis=0)
    clear = ranked[-1] - ranked[-2] > margin
    got, wanted = classes[~nodata], expected[~nodata]
    np.testing.assert_array_equal(got[clear], wanted[clear])
    # A near tie goes to one of the classes within the margin of the best.
    chosen = valid[got.astype(np.int64), np.arange(got.size)]
    assert (chosen[~clear] >= ranked[-1][~clear] - margin).all()
    return float(clear.mean())


#: The test scene: 70 x 90 pixels of 10 m from (440000, 4170000), EPSG:32618.
ORIGIN = (440000.0, 4170000.0)


@pytest.fixture
def scene_and_model(tmp_path):
    """A random 3-band scene and an untrained model of chip 16 for it."""
    data = random_chip(bands=3, size=90, seed=5)[:, :70, :]
    path = write_raster(tmp_path / 'scene.tif', data, descriptions=['r', 'g', 'n'])
    return path, small_checkpoint(tmp_path / 'model.ckpt', num_classes=3)


def small_checkpoint(path, num_classes, data=None, **options):
    """An untrained ResNet-10 for 3 bands (r, g, n) and chips of 16 px."""
    return save_checkpoint(
        path,
        num_classes=num_classes,
        in_channels=3,
        data={'band_names': ['r', 'g', 'n']} | (data or {}),
        chip_size=16,
        model='resnet10t',
        **options,
    )


def region_file(path, polygon, crs='EPSG:32618'):
    """Write a polygon given in EPSG:32618 to a vector file, in ``crs``."""
    frame = gpd.GeoDataFrame(geometry=[polygon], crs='EPSG:32618').to_crs(crs)
    frame.to_file(path)
    return path


@pytest.fixture(scope='module')
def served(scene_crop, tmp_path_factory):
    """The crop's bands as COGs (from baseline 05.09: 1000 DN higher), to serve."""
    root = tmp_path_factory.mktemp('served')
    files = write_tiled_bands(scene_crop, root / 'cogs', add=1000)
    return root, files
