"""The provider in a real, headless QGIS (``qgis_process``), as users script it.

CI installs Debian's QGIS (``.ci/run``); there these tests must run, never skip.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely

from geossl.data.scene_files import find_scenes
from geossl.data.scene_raster import SceneRaster
from geossl.qgis import PLUGIN_NAME, install_plugin
from geossl.ssl.policies import algorithm_names

#: Debian's qgis_process wrapper passes an option its binary refuses; use the binary.
QGIS_PROCESS = shutil.which('qgis_process.bin') or shutil.which('qgis_process')

#: A 3.2 x 3.2 km crop of the 18SVG scene with fields, woods and a village.
CROP = (436000.0, 4170000.0, 439200.0, 4173200.0)


@pytest.fixture(scope='module')
def qgis(tmp_path_factory):
    """Run ``qgis_process`` with geossl's plugin installed in a fresh profile."""
    if QGIS_PROCESS is None:
        if os.environ.get('CI'):
            pytest.fail('qgis_process not found; .ci/run installs QGIS for CI')
        pytest.skip('QGIS is not installed (apt install qgis python3-qgis)')
    config = tmp_path_factory.mktemp('qgis-config')
    install_plugin(config / 'profiles' / 'default' / 'python' / 'plugins')
    # QGIS as a user starts it: its own Python, and nothing of the test process's
    # environment (the venv, and what torch, GDAL or Lightning set in it).
    environment = {
        name: os.environ[name]
        for name in ('HOME', 'LANG', 'TMPDIR', 'GEOSSL_CACHE_DIR')
        if name in os.environ
    } | {
        'PATH': '/usr/local/bin:/usr/bin:/bin',
        'QT_QPA_PLATFORM': 'offscreen',
        'QGIS_CUSTOM_CONFIG_PATH': str(config),
        'XDG_RUNTIME_DIR': str(config),
    }

    def run(*arguments, **variables):
        return subprocess.run(
            [QGIS_PROCESS, *arguments],
            env=environment | variables,
            capture_output=True,
            text=True,
            timeout=600,
        )

    enabled = run('plugins', 'enable', PLUGIN_NAME)
    assert enabled.returncode == 0, enabled.stdout + enabled.stderr
    return run


def run_algorithm(qgis, algorithm, parameters, **variables):
    """``qgis_process --json run geossl:ALGORITHM -- KEY=VALUE ...``."""
    pairs = [f'{key}={value}' for key, value in parameters.items()]
    return qgis('--json', 'run', f'geossl:{algorithm}', '--', *pairs, **variables)


def results_of(qgis, algorithm, parameters):
    """The outputs of a run that must succeed."""
    result = run_algorithm(qgis, algorithm, parameters)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)['results']


@pytest.fixture(scope='module')
def crop(shared_data, tmp_path_factory):
    """The crop as one 13-band 10 m GeoTIFF with its date, and the labels inside it."""
    folder = tmp_path_factory.mktemp('qgis-data')
    (scene,) = find_scenes(shared_data / 'sentinel2-scene-18SVG-20160112')
    image, _ = SceneRaster(scene, scene.band_names).read_chip(CROP)
    profile = {
        'driver': 'GTiff',
        'count': image.shape[0],
        'height': image.shape[1],
        'width': image.shape[2],
        'dtype': 'uint16',
        'crs': scene.crs,
        'transform': rasterio.transform.from_origin(CROP[0], CROP[3], 10.0, 10.0),
    }
    raster = folder / 'crop.tif'
    with rasterio.open(raster, 'w', **profile) as dst:
        dst.write(image.round().astype(np.uint16))
        dst.descriptions = scene.band_names
        dst.update_tags(ACQUISITION_DATE='2016-01-12T16:06:52Z')
    labels = gpd.read_file(Path(__file__).parents[2] / 'examples/18SVG-labels.geojson')
    labels = labels[labels.to_crs(scene.crs).within(shapely.box(*CROP))]
    labels.to_file(folder / 'labels.geojson')
    return raster, folder / 'labels.geojson'


@pytest.fixture(scope='module')
def checkpoint(qgis, crop, tmp_path_factory):
    """A model trained through the provider's Train algorithm."""
    raster, labels = crop
    run_dir = tmp_path_factory.mktemp('qgis-run')
    parameters = {
        'INPUT_RASTER': raster,
        'LABELS': labels,
        'CLASS_FIELD': 'class',
        'ALGORITHM': algorithm_names(multilabel=False).index('fixmatch'),
        'TEACHER_STUDENT': 'true',
        'BATCH_SIZE': 4,
        'MAX_STEPS': 3,
        'OUTPUT': run_dir,
    }
    outputs = results_of(qgis, 'train', parameters)
    assert Path(outputs['CHECKPOINT']) == run_dir / 'checkpoints' / 'last.ckpt'
    return Path(outputs['CHECKPOINT'])


def test_classify_raster_writes_a_georeferenced_class_map(qgis, crop, checkpoint):
    raster, _ = crop
    output = raster.parent / 'map.tif'
    parameters = {
        'INPUT': raster,
        'CHECKPOINT': checkpoint,
        'STRIDE': 16,
        'PROBABILITIES': 1,
        'OUTPUT': output,
    }
    outputs = results_of(qgis, 'classify_raster', parameters)
    assert outputs['OUTPUT'] == str(output)
    with rasterio.open(output) as src:
        assert src.crs.to_epsg() == 32618
        assert src.shape == (320, 320)
        assert (src.transform.c, src.transform.f) == (CROP[0], CROP[3])
        assert json.loads(src.tags()['CLASS_NAMES']) == [
            'built-up',
            'cropland',
            'forest',
        ]
        assert set(np.unique(src.read(1))) <= {0, 1, 2}
    with rasterio.open(outputs['OUTPUT_PROBABILITIES']) as src:
        assert src.count == 3
        assert src.dtypes[0] == 'uint8'


def test_classify_raster_maps_a_processed_area_with_test_time_augmentation(
    qgis, crop, checkpoint, tmp_path
):
    raster, _ = crop
    # A 1 x 1 km square in the middle of the crop, drawn in WGS 84.
    area = shapely.box(437100.0, 4171100.0, 438100.0, 4172100.0)
    roi = tmp_path / 'area.gpkg'
    gpd.GeoDataFrame(geometry=[area], crs=32618).to_crs(4326).to_file(roi)
    output = tmp_path / 'area.tif'
    parameters = {
        'INPUT': raster,
        'CHECKPOINT': checkpoint,
        'ROI': roi,
        'CROP': 'true',
        'TTA': 2,
        'OUTPUT': output,
    }
    results_of(qgis, 'classify_raster', parameters)
    with rasterio.open(output) as src:
        # The windows of 32 px at a stride of 16 that touch the square.
        assert src.bounds == (436800.0, 4170800.0, 438400.0, 4172400.0)
        classes = src.read(1)
    assert (classes != 255).sum() == 100 * 100


def test_classify_raster_leaves_clouds_of_a_mask_as_nodata(
    qgis, crop, checkpoint, tmp_path
):
    raster, _ = crop
    # An SCL band at 20 m: cloud (9) over the northern half, vegetation (4) below.
    scl = np.full((1, 160, 160), 4, dtype=np.uint8)
    scl[0, :80] = 9
    mask = tmp_path / 'scl.tif'
    profile = {'driver': 'GTiff', 'count': 1, 'height': 160, 'width': 160}
    profile |= {'dtype': 'uint8', 'crs': 'EPSG:32618'}
    profile['transform'] = rasterio.transform.from_origin(CROP[0], CROP[3], 20.0, 20.0)
    with rasterio.open(mask, 'w', **profile) as dst:
        dst.write(scl)
    output = tmp_path / 'clear.tif'
    parameters = {'INPUT': raster, 'CHECKPOINT': checkpoint, 'MASK': mask}
    results_of(qgis, 'classify_raster', parameters | {'OUTPUT': output})
    with rasterio.open(output) as src:
        classes = src.read(1)
    # Windows centred on the cloud are left out; those below it cover the rest.
    assert (classes[:160] == 255).all()
    assert (classes[160:] != 255).all()


def test_build_index_lists_every_tile(qgis, shared_data, tmp_path):
    output = tmp_path / 'index.gpkg'
    parameters = {'INPUT': shared_data / 'eurosat-ms-sample', 'OUTPUT': output}
    assert results_of(qgis, 'build_index', parameters)['OUTPUT'] == str(output)
    index = gpd.read_file(output)
    assert len(index) == 100
    assert index.crs.to_epsg() == 4326
    assert index['lon'].notna().all()


def test_bad_input_is_a_clear_message_not_a_traceback(qgis, crop, checkpoint, tmp_path):
    three_bands = tmp_path / 'rgb.tif'
    with rasterio.open(crop[0]) as src:
        profile = src.profile | {'count': 3}
        with rasterio.open(three_bands, 'w', **profile) as dst:
            dst.write(src.read([4, 3, 2]))
    output = tmp_path / 'map.tif'
    cases = [
        (
            {'INPUT': three_bands, 'CHECKPOINT': checkpoint},
            {},
            'has 3 unnamed bands but the model needs 13: B01, B02',
        ),
        (
            {'INPUT': crop[0], 'CHECKPOINT': tmp_path / 'missing.ckpt'},
            {},
            'missing.ckpt: does not exist',
        ),
        (
            {'INPUT': crop[0], 'CHECKPOINT': checkpoint},
            {'GEOSSL_PYTHON': str(tmp_path / 'no-env' / 'python')},
            'geossl environment not found: $GEOSSL_PYTHON names',
        ),
    ]
    for parameters, variables, message in cases:
        result = run_algorithm(
            qgis, 'classify_raster', parameters | {'OUTPUT': output}, **variables
        )
        log = result.stdout + result.stderr
        assert result.returncode != 0
        assert message in log
        assert 'Traceback' not in log
        assert not output.exists()


def test_train_holds_out_a_test_region_with_a_buffer(qgis, crop, tmp_path):
    raster, labels = crop
    # The crop's south-east, with cropland and woods, in WGS 84 as a user might
    # digitise it; every class keeps a label beyond the buffer.
    south_east = shapely.box(438000, CROP[1], CROP[2], 4171600)
    region = gpd.GeoSeries([south_east], crs='EPSG:32618').to_crs('EPSG:4326')
    region.to_file(tmp_path / 'south-east.gpkg')
    parameters = {
        'INPUT_RASTER': raster,
        'LABELS': labels,
        'ALGORITHM': algorithm_names(multilabel=False).index('supervised'),
        'TEACHER_STUDENT': 'false',
        'TEST_REGION': tmp_path / 'south-east.gpkg',
        'BUFFER_KM': 0.3,
        'BATCH_SIZE': 2,
        'MAX_STEPS': 1,
        'OUTPUT': tmp_path / 'run',
    }
    results_of(qgis, 'train', parameters)
    split = gpd.read_file(tmp_path / 'run' / 'splits.gpkg').to_crs('EPSG:32618')
    inside = split.geometry.within(south_east)
    # Labelled chips inside are tested; unlabelled ones leave training.
    assert set(split['split'][inside]) == {'test', 'excluded'}
    assert (split['split'][~inside] != 'test').all()
    # Within 300 m of a test chip, nothing trains.
    training = split[split['split'].isin(['labelled', 'unlabelled'])]
    tested = shapely.union_all(split.geometry[split['split'] == 'test'].values)
    assert training.distance(tested).min() > 300
