import geopandas as gpd
import numpy as np
import pytest
import shapely

from geossl.data.masks import SCL_INVALID, PixelMask
from geossl.data.scene import SceneDataset
from geossl.data.scene_files import find_scenes
from geossl.errors import GeosslInputError
from tests.conftest import random_chip, write_raster


def _scl(path, size=24, res=20.0, crs='EPSG:32618', cloud=(4, 12)):
    """An SCL band at 20 m: vegetation (4), with a square of cloud (9)."""
    values = np.full((1, size, size), 4, dtype=np.uint8)
    values[0, cloud[0] : cloud[1], cloud[0] : cloud[1]] = 9
    return write_raster(path, values, crs=crs, res=res)


def test_an_scl_file_beside_band_files_is_the_scenes_mask(tmp_path):
    for band in ('B02', 'B03', 'B04'):
        write_raster(tmp_path / f'T1_{band}.tif', random_chip(bands=1, size=48))
    _scl(tmp_path / 'T1_SCL.tif')
    (scene,) = find_scenes(tmp_path)
    assert scene.band_names == ('B02', 'B03', 'B04')
    assert scene.mask == PixelMask(tmp_path / 'T1_SCL.tif', 1, SCL_INVALID)
    # On the 10 m grid: each 20 m cloud pixel covers 2 x 2 pixels.
    masked = scene.mask.invalid(scene.bounds, scene.shape)
    assert masked.shape == (48, 48)
    assert masked[8:24, 8:24].all()
    assert masked.sum() == 16 * 16


def test_an_scl_band_of_a_stack_is_its_mask(tmp_path):
    data = random_chip(bands=3, size=16)
    data[2] = 8
    path = write_raster(
        tmp_path / 'stack.tif', data, descriptions=['B04', 'B08', 'SCL']
    )
    (scene,) = find_scenes(path)
    assert scene.mask == PixelMask(path, 3)
    assert scene.mask.invalid(scene.bounds, scene.shape).all()


def test_a_mask_on_another_grid_or_with_odd_values_is_refused(tmp_path):
    scene_path = write_raster(tmp_path / 'scene.tif', random_chip(bands=3, size=48))
    (scene,) = find_scenes(scene_path)
    elsewhere = PixelMask(_scl(tmp_path / 'utm19.tif', crs='EPSG:32619'))
    with pytest.raises(GeosslInputError, match='is in EPSG:32619, not in the CRS'):
        elsewhere.check_covers(scene.crs, scene.bounds, scene.name)
    small = PixelMask(_scl(tmp_path / 'small.tif', size=10))
    with pytest.raises(GeosslInputError, match='not all of scene scene'):
        small.check_covers(scene.crs, scene.bounds, scene.name)
    with pytest.raises(GeosslInputError, match=r'mask_values: is \[3, 300\]'):
        small.with_values([3, 300])
    assert small.with_values([3]).invalid_values == (3,)


def test_cloudy_unlabelled_chips_leave_the_pool_and_cloudy_labels_are_named(tmp_path):
    for band in ('B02', 'B03', 'B04'):
        write_raster(tmp_path / f'T1_{band}.tif', random_chip(bands=1, size=48) + 1)
    # Cloud over 10 m pixels 0-23: of the 16 px grid cells, those at rows and
    # columns 0-31 are 25 to 100 % cloud.
    _scl(tmp_path / 'T1_SCL.tif', cloud=(0, 12))
    x, y = 440000.0, 4170000.0
    labels = gpd.GeoDataFrame(
        {'class': ['cloudy', 'clear']},
        geometry=[shapely.Point(x + 80, y - 80), shapely.Point(x + 400, y - 400)],
        crs='EPSG:32618',
    )
    labels.to_file(tmp_path / 'labels.gpkg')
    with pytest.warns(UserWarning, match='clouds or other masked pixels') as caught:
        chips = SceneDataset(tmp_path, tmp_path / 'labels.gpkg', chip_size=16)
    messages = [str(w.message) for w in caught]
    index = chips.index
    unlabelled = index[index['label'].isna()]
    assert (unlabelled['cloud_fraction'] <= 0.1).all()
    # 9 cells, 2 under the labels, 3 of the others cloudy.
    assert len(unlabelled) == 4
    cloudy = index[index['label'] == 'cloudy']
    assert cloudy['cloud_fraction'].iloc[0] == 1.0
    assert any(m.startswith('3 unlabelled chips with more than 10%') for m in messages)
    assert any(
        f'(kept): {cloudy["sample_id"].iloc[0]} (cloudy, 100%)' in m for m in messages
    )
    with pytest.raises(GeosslInputError, match='max_cloud_fraction: is 2'):
        SceneDataset(tmp_path, chip_size=16, max_cloud_fraction=2)
