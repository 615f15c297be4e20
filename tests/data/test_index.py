import os
import shutil

import pandas as pd
import pytest

from geossl.data.columns import LABEL_SEPARATOR
from geossl.data.index import (
    detect_layout,
    index_source,
    list_samples,
    read_index,
    write_index,
)
from geossl.data.metadata import MetadataReader
from geossl.errors import DatasetLayoutError, GeosslInputError
from tests.conftest import random_chip, write_raster


def test_scene_index_has_location_date_and_footprints(shared_data, tmp_path):
    output = tmp_path / 'scene.gpkg'
    index_source(shared_data / 'sentinel2-scene-18SVG-20160112', output, progress=False)
    index = read_index(output)
    assert len(index) == 13
    assert index.crs.to_epsg() == 4326
    assert index['lat'].between(37.66, 37.68).all()
    assert index['lon'].between(-75.63, -75.61).all()
    assert (index['datetime'] == pd.Timestamp('2016-01-12', tz='UTC')).all()
    b02 = index.set_index('sample_id').loc['T18SVG_20160112_B02.tif']
    assert (b02['width'], b02['height']) == (1933, 1947)
    assert b02['geometry'].contains(b02['geometry'].centroid)
    assert index.attrs['layout'] == 'rasters'


def test_bigearthnet_index_has_labels_and_dates(shared_data, tmp_path):
    index = index_source(
        shared_data / 'bigearthnet-s2-examples', tmp_path / 'b.gpkg', progress=False
    )
    assert index.attrs['layout'] == 'bigearthnet'
    assert index['datetime'].notna().all()
    first = index.set_index('sample_id').loc['S2A_MSIL2A_20170613T101031_87_48']
    assert first['label'].split(LABEL_SEPARATOR) == [
        'Non-irrigated arable land',
        'Land principally occupied by agriculture, with significant areas of natural vegetation',
    ]
    assert first['bands'] == 12


def test_rescan_reuses_unchanged_rows(tmp_path):
    root = tmp_path / 'data'
    for name in ('a', 'b'):
        write_raster(root / 'Forest' / f'{name}_20200101.tif', random_chip())
    output = tmp_path / 'i.gpkg'
    first = index_source(root, output, progress=False)
    assert first['datetime'].notna().all()
    # Change one file's date in place; touch the other's row by hand to prove reuse.
    changed = root / 'Forest' / 'b_20200101.tif'
    write_raster(changed, random_chip(seed=1), tags={'ACQUISITION_DATE': '2021-06-01'})
    os.utime(changed, ns=(1, 1))
    stale = read_index(output)
    stale.loc[stale['sample_id'] == 'Forest/a_20200101.tif', 'lat'] = 1.0
    stale.attrs = first.attrs
    write_index(stale, output)
    second = index_source(root, output, progress=False).set_index('sample_id')
    assert second.loc['Forest/a_20200101.tif', 'lat'] == 1.0  # reused, not re-read
    assert second.loc['Forest/b_20200101.tif', 'mtime_ns'] == 1  # re-read


def test_index_of_another_source_is_not_overwritten(tmp_path):
    for name in ('one', 'two'):
        write_raster(tmp_path / name / 'C' / 'x.tif', random_chip())
    output = tmp_path / 'i.gpkg'
    index_source(tmp_path / 'one', output, progress=False)
    before = output.read_bytes()
    with pytest.raises(GeosslInputError, match='already indexes'):
        index_source(tmp_path / 'two', output, progress=False)
    assert output.read_bytes() == before


def test_failed_index_leaves_no_file(tmp_path):
    write_raster(tmp_path / 'data' / 'C' / 'good.tif', random_chip())
    (tmp_path / 'data' / 'C' / 'bad.tif').touch()
    output = tmp_path / 'out' / 'i.gpkg'
    with pytest.raises(GeosslInputError, match=r'bad\.tif: is empty'):
        index_source(tmp_path / 'data', output, progress=False)
    assert not output.exists()


def test_layouts_and_unlabelled_folder(tmp_path):
    write_raster(tmp_path / 'Forest' / 'f.tif', random_chip())
    write_raster(tmp_path / 'unlabeled' / 'sub' / 'u.tif', random_chip())
    assert detect_layout(tmp_path) == 'classes'
    samples = {s.sample_id: s.label for s in list_samples(tmp_path)}
    assert samples == {'Forest/f.tif': 'Forest', 'unlabeled/sub/u.tif': None}
    (tmp_path / 'Empty').mkdir()
    with pytest.raises(DatasetLayoutError, match='Empty: class folder holds no images'):
        list_samples(tmp_path)
    shutil.rmtree(tmp_path / 'Empty')
    with pytest.raises(DatasetLayoutError, match='neither a folder nor an image'):
        detect_layout(tmp_path / 'missing')


def test_plain_jpeg_folder(shared_data, tmp_path):
    root = tmp_path / 'rgb'
    for cls in ('Forest', 'River'):
        (root / cls).mkdir(parents=True)
        for path in sorted((shared_data / 'eurosat-rgb' / cls).iterdir())[:3]:
            (root / cls / path.name).symlink_to(path)
    with pytest.raises(GeosslInputError, match='has no CRS'):
        index_source(root, tmp_path / 'x.gpkg', progress=False)
    index = index_source(
        root,
        tmp_path / 'i.gpkg',
        MetadataReader(require_location=False),
        progress=False,
    )
    assert len(index) == 6
    assert index['lon'].isna().all()
    assert index['geometry'].isna().all()
    assert set(index['bands']) == {3}
