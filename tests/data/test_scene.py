from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
import torch
from rasterio.enums import Resampling
from rasterio.windows import from_bounds

from geossl.data.scene import SceneDataset
from geossl.data.scene_files import find_scenes
from geossl.data.splits import SplitConfig, make_splits
from geossl.errors import (
    BandMismatchError,
    ChipSizeError,
    LabelsFileError,
    MissingCRSError,
    NodataError,
)
from tests.conftest import random_chip, write_raster

EXAMPLE_LABELS = Path(__file__).parents[2] / 'examples' / '18SVG-labels.geojson'
SCENE = 'sentinel2-scene-18SVG-20160112'


@pytest.fixture(scope='module')
def scene_dir(shared_data):
    return shared_data / SCENE


@pytest.fixture(scope='module')
def scene(scene_dir):
    return SceneDataset(scene_dir, EXAMPLE_LABELS, chip_size=32)


def _write_labels(path, classes, geometries, crs='EPSG:32618'):
    gpd.GeoDataFrame({'class': classes}, geometry=geometries, crs=crs).to_file(path)
    return path


def test_band_files_form_one_scene_on_the_10m_grid(scene_dir):
    (found,) = find_scenes(scene_dir)
    assert found.name == 'T18SVG_20160112'
    assert found.per_band
    assert found.band_names[7:10] == ('B08', 'B8A', 'B09')
    assert len(found.band_names) == 13
    assert found.res == (10.0, 10.0)
    # The area all of the 10, 20 and 60 m files cover, on the 10 m grid.
    assert found.bounds == (435730.0, 4160040.0, 455040.0, 4179460.0)
    assert found.shape == (1942, 1931)


def test_chips_match_the_band_files(scene, scene_dir):
    position = scene.sample_ids.index('T18SVG_20160112/r0c0')
    bounds = scene.index.loc[position, ['minx', 'miny', 'maxx', 'maxy']].tolist()
    image = scene[position]['image']
    assert image.shape == (13, 32, 32)
    with rasterio.open(scene_dir / 'T18SVG_20160112_B02.tif') as src:
        b02 = src.read(1, window=from_bounds(*bounds, src.transform))
    # A 10 m band is read as it is; a 20 m band is resampled onto the 10 m grid.
    np.testing.assert_array_equal(image[1].numpy(), b02)
    with rasterio.open(scene_dir / 'T18SVG_20160112_B11.tif') as src:
        b11 = src.read(
            1,
            window=from_bounds(*bounds, src.transform),
            out_shape=(32, 32),
            resampling=Resampling.bilinear,
        )
    assert abs(image[11].mean().item() / b11.mean() - 1) < 0.01


def test_labelled_chips_from_points_and_polygons(scene):
    labels = gpd.read_file(EXAMPLE_LABELS).to_crs('EPSG:32618')
    index = scene.index
    labelled = index[scene.is_labelled]
    counts = labelled['label'].value_counts()
    # Points give one chip each (7 cropland points); polygons give every grid chip
    # centred inside them, or one chip when smaller than a chip (built-up: 4 points,
    # 2 small polygons, one of which holds a grid chip centre).
    assert counts['cropland'] == 7
    assert counts['built-up'] == 7
    assert counts['forest'] == 15
    assert counts['ocean'] > 100
    boxes = shapely.box(*labelled[['minx', 'miny', 'maxx', 'maxy']].to_numpy().T)
    for box, feature, label in zip(
        boxes, labelled['feature'], labelled['label'], strict=True
    ):
        geometry = labels.geometry.iloc[feature]
        assert labels['class'].iloc[feature] == label
        if geometry.geom_type == 'Point':
            assert box.contains(geometry)
        else:
            assert geometry.contains(box.centroid)
        assert box.bounds[2] - box.bounds[0] == 320.0


def test_unlabelled_chips_avoid_labelled_ones(scene):
    index = scene.index
    boxes = shapely.box(*index[['minx', 'miny', 'maxx', 'maxy']].to_numpy().T)
    labelled = shapely.union_all(boxes[scene.is_labelled])
    unlabelled = index[~scene.is_labelled]
    # The 32-pixel grid from the top-left corner: 1942 // 32 rows, 1931 // 32 columns.
    grid = {
        f'T18SVG_20160112/r{32 * row}c{32 * column}': shapely.box(
            435730 + 320 * column,
            4179460 - 320 * (row + 1),
            435730 + 320 * (column + 1),
            4179460 - 320 * row,
        )
        for row in range(60)
        for column in range(60)
    }
    free = {
        name for name, cell in grid.items() if cell.intersection(labelled).area == 0
    }
    assert set(unlabelled['sample_id']) == free
    for name, minx, maxy in unlabelled[['sample_id', 'minx', 'maxy']].itertuples(
        index=False
    ):
        assert grid[name].bounds[0] == minx
        assert grid[name].bounds[3] == maxy


def test_metadata_is_each_chip_centre_and_the_scene_date(scene):
    index = scene.index
    assert index['lat'].between(37.58, 37.76).all()
    assert index['lon'].between(-75.74, -75.50).all()
    assert (index['datetime'] == pd.Timestamp('2016-01-12', tz='UTC')).all()
    sample = scene[0]
    assert sample['meta_mask'].all()
    assert sample['meta'][0] == pytest.approx(index['lon'][0], abs=1e-4)
    assert sample['crs'] == 'EPSG:32618'
    assert sample['label'].item() == scene.classes.index(index['label'][0])


def test_band_selection(scene_dir, scene):
    two = SceneDataset(scene_dir, EXAMPLE_LABELS, chip_size=32, bands=['B04', 'B8A'])
    assert two.band_names == ['B04', 'B8A']
    assert two.sample_ids == scene.sample_ids
    torch.testing.assert_close(two[3]['image'], scene[3]['image'][[3, 8]])


def test_point_near_the_edge_gets_a_chip_inside_the_scene(scene_dir, tmp_path):
    labels = _write_labels(
        tmp_path / 'edge.gpkg',
        ['corner', 'far'],
        [shapely.Point(435735, 4179455), shapely.Point(0, 0)],
    )
    with pytest.warns(UserWarning, match='1 of 2 labels lie outside every scene'):
        dataset = SceneDataset(scene_dir, labels, chip_size=16, unlabelled_chips=5)
    labelled = dataset.index[dataset.is_labelled]
    assert list(labelled['label']) == ['corner']
    assert labelled[['minx', 'maxy']].iloc[0].tolist() == [435730.0, 4179460.0]
    assert (~dataset.is_labelled).sum() == 5
    with pytest.warns(UserWarning, match='outside every scene'):
        again = SceneDataset(scene_dir, labels, chip_size=16, unlabelled_chips=5)
    assert again.sample_ids == dataset.sample_ids


def test_labels_outside_the_scene(scene_dir, tmp_path):
    labels = _write_labels(tmp_path / 'far.gpkg', ['x'], [shapely.Point(0, 0)])
    with pytest.raises(LabelsFileError, match=r'far\.gpkg: no label falls inside'):
        SceneDataset(scene_dir, labels)


def test_splits_work_on_scene_chips(scene):
    splits = make_splits(scene, SplitConfig(labels_per_class=2, seed=1))
    labelled = splits[splits['split'] == 'labelled']
    assert len(labelled) == 2 * len(scene.classes)


def _multiband_scene(tmp_path, name='scene.tif', data=None, **kwargs):
    data = random_chip(bands=3, size=40) if data is None else data
    return write_raster(
        tmp_path / name, data, descriptions=['red', 'green', 'nir'], **kwargs
    )


def test_multiband_scene_and_nodata(tmp_path):
    data = random_chip(bands=3, size=40).astype(np.float32)
    data[:, 35:, 35:] = np.nan
    path = _multiband_scene(tmp_path, data=data)
    labels = _write_labels(
        tmp_path / 'l.gpkg', ['a', 'b'], [shapely.Point(440100, 4169900), None]
    )
    with pytest.warns(UserWarning, match='dropping 1 features'):
        dataset = SceneDataset(path, labels, chip_size=8)
    assert dataset.band_names == ['red', 'green', 'nir']
    # The chip around the label overlaps 4 of the 5 x 5 grid cells.
    assert len(dataset) == 1 + 21
    image = dataset[0]['image']
    np.testing.assert_array_equal(image.numpy(), data[:, 6:14, 6:14])
    corner = dataset.sample_ids.index('scene/r32c32')
    with pytest.raises(
        NodataError, match=r'scene\.tif \(chip scene/r32c32\): 75 of 192 pixels'
    ):
        dataset[corner]
    zero = SceneDataset(path, chip_size=8, nodata='zero')
    assert zero[zero.sample_ids.index('scene/r32c32')]['image'][:, -1, -1].eq(0).all()


def test_bad_scenes(tmp_path):
    no_crs = _multiband_scene(tmp_path, 'nocrs.tif', crs=None)
    with pytest.raises(MissingCRSError, match=r'nocrs\.tif: has no CRS'):
        find_scenes(no_crs)
    small = _multiband_scene(tmp_path, 'small.tif')
    with pytest.raises(ChipSizeError, match='is 40 x 40 pixels, smaller than the chip'):
        SceneDataset(small, chip_size=64)
    other = write_raster(tmp_path / 'other' / 'two.tif', random_chip(bands=2, size=40))
    with pytest.raises(BandMismatchError, match='scene two has bands 1, 2'):
        SceneDataset([small, other], chip_size=8)
