"""The catalogue of bad input: one clear line, exit status 2, nothing written.

Each case builds its bad input in a fresh folder and names the command, the words
its error line must hold, and the outputs that must not appear. The commands run
as ``geossl`` runs them (:func:`geossl.cli.main`); the QGIS provider's cases go
through the provider's runner, which runs ``geossl`` in a subprocess as QGIS does.
"""

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import torch

from geossl.cli import main
from geossl.qgis_plugin.runner import GeosslRunError, run_geossl
from geossl.tasks.pretrain import SimSiam
from tests.conftest import random_chip, write_raster
from tests.inference.conftest import save_checkpoint
from tests.stac import s2_item

BANDS = ['B02', 'B03', 'B04', 'B08']


@dataclass
class Case:
    """A bad input: the arguments, the words of its error, what must not appear."""

    arguments: list[str]
    message: str
    absent: list[Path] = field(default_factory=list)
    via_qgis: bool = False


def _tiles(root: Path, classes: int = 2, per_class: int = 6, **options) -> Path:
    """A folder of small georeferenced 4-band tiles, one sub-folder per class."""
    for c in range(classes):
        for i in range(per_class):
            data = random_chip(bands=4, size=16, seed=10 * c + i)
            write_raster(root / f'class{c}' / f'tile{i}.tif', data, **options)
    return root


def _checkpoint(path: Path, bands: int = 4, chip: int = 16) -> Path:
    return save_checkpoint(
        path,
        num_classes=2,
        in_channels=bands,
        data={
            'band_names': BANDS[:bands]
            if bands <= 4
            else [f'b{i}' for i in range(bands)]
        },
        chip_size=chip,
        model='resnet10t',
    )


class _Payload:
    """Pickled code: runs a shell command if unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f'touch {self.marker}',))


def _pickled_checkpoint(path: Path) -> Path:
    torch.save(
        {'state_dict': {}, 'payload': _Payload(path.with_suffix('.pwned'))}, path
    )
    return path


def _garbage(path: Path, content: bytes = b'not what it claims to be') -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def _fit(tmp: Path, data: Path, *options: str) -> list[str]:
    return [
        'fit',
        '--data.root',
        str(data),
        '--data.labels_per_class',
        '2',
        '--data.batch_size',
        '2',
        '--data.mu',
        '1',
        '--model.model',
        'resnet10t',
        '--trainer.max_steps',
        '1',
        '--trainer.default_root_dir',
        str(tmp / 'run'),
        *options,
    ]


# -- index ---------------------------------------------------------------------


def index_zero_byte_file(tmp: Path) -> Case:
    data = _tiles(tmp / 'data')
    _garbage(data / 'class0' / 'empty.tif', b'')
    out = tmp / 'index.gpkg'
    return Case(['index', str(data), '-o', str(out)], 'empty.tif: is empty', [out])


def index_not_a_raster(tmp: Path) -> Case:
    data = _tiles(tmp / 'data')
    _garbage(data / 'class1' / 'notes.tif')
    out = tmp / 'index.gpkg'
    return Case(
        ['index', str(data), '-o', str(out)],
        'notes.tif: cannot be read as a raster',
        [out],
    )


def index_missing_crs(tmp: Path) -> Case:
    data = _tiles(tmp / 'data', crs=None)
    out = tmp / 'index.gpkg'
    return Case(['index', str(data), '-o', str(out)], 'has no CRS', [out])


def index_date_that_does_not_parse(tmp: Path) -> Case:
    data = _tiles(tmp / 'data')
    write_raster(data / 'class0' / 'T18SVG_20161399_B02.tif', random_chip())
    out = tmp / 'index.gpkg'
    return Case(['index', str(data), '-o', str(out)], "'20161399' is not a date", [out])


def index_latitude_off_the_earth(tmp: Path) -> Case:
    data = _tiles(tmp / 'data', crs='EPSG:4326', origin=(10.0, 123.0), res=0.001)
    out = tmp / 'index.gpkg'
    return Case(
        ['index', str(data), '-o', str(out)],
        'lies off the Earth (latitude 122.992 is outside -90..90)',
        [out],
    )


def index_locations_longitude_out_of_range(tmp: Path) -> Case:
    data = _tiles(tmp / 'data', crs=None)
    table = tmp / 'where.csv'
    rows = [f'class{c}/tile{i}.tif,200.5,40,' for c in range(2) for i in range(6)]
    table.write_text('path,lon,lat,datetime\n' + '\n'.join(rows) + '\n')
    out = tmp / 'index.gpkg'
    return Case(
        ['index', str(data), '-o', str(out), '--locations', str(table)],
        'where.csv: line 2: longitude 200.5 is outside -180..180',
        [out],
    )


def fit_locations_naming_no_sample(tmp: Path) -> Case:
    data = _tiles(tmp / 'data', crs=None)
    table = tmp / 'where.csv'
    table.write_text('image_id,lon,lat\nelsewhere.tif,10,50\n')
    return Case(
        [*_fit(tmp, data), '--data.locations', str(table)],
        f'where.csv: names none of the 12 samples of {data}',
        [tmp / 'run'],
    )


def fit_locations_naming_a_sample_twice(tmp: Path) -> Case:
    data = _tiles(tmp / 'data', crs=None)
    table = tmp / 'where.csv'
    table.write_text(
        'path,lon,lat\ntile0.tif,10,50\ntile1.tif,11,50\ntile0.tif,12,50\n'
    )
    return Case(
        [*_fit(tmp, data), '--data.locations', str(table)],
        "where.csv: line 4: 'tile0.tif' is named twice (first at line 2)",
        [tmp / 'run'],
    )


def fit_locations_without_lon(tmp: Path) -> Case:
    data = _tiles(tmp / 'data', crs=None)
    table = tmp / 'where.parquet'
    pd.DataFrame({'image_id': ['tile0.tif'], 'latitude': [50.0]}).to_parquet(table)
    return Case(
        [*_fit(tmp, data), '--data.locations', str(table)],
        'where.parquet: lacks column(s) lon, lat',
        [tmp / 'run'],
    )


def fit_split_file_naming_an_unknown_sample(tmp: Path) -> Case:
    data = _tiles(tmp / 'data')
    table = tmp / 'split.csv'
    table.write_text('path,split\nclass0/tile0.tif,test\nelsewhere.tif,test\n')
    return Case(
        [*_fit(tmp, data), '--data.split_file', str(table)],
        "split.csv: line 3: 'elsewhere.tif' names no sample of the data",
        [tmp / 'run'],
    )


def fit_split_file_with_an_unknown_split(tmp: Path) -> Case:
    data = _tiles(tmp / 'data')
    table = tmp / 'split.csv'
    table.write_text('sample_id,split\nclass0/tile0.tif,holdout\n')
    return Case(
        [*_fit(tmp, data), '--data.split_file', str(table)],
        "split.csv: line 2: split 'holdout' is not one of labelled, unlabelled",
        [tmp / 'run'],
    )


def fit_test_region_holding_no_sample(tmp: Path) -> Case:
    data = _tiles(tmp / 'data')
    region = tmp / 'far.geojson'
    gpd.GeoSeries([shapely.box(100, 10, 101, 11)], crs='EPSG:4326').to_file(region)
    return Case(
        [*_fit(tmp, data), '--data.test_region', str(region)],
        'far.geojson: (test_region) holds no sample',
        [tmp / 'run'],
    )


def fit_more_folds_than_blocks(tmp: Path) -> Case:
    data = _tiles(tmp / 'data')
    options = ['--data.split_strategy', 'spatial', '--data.folds', '5']
    return Case(
        [*_fit(tmp, data), *options],
        'folds: is 5 but the labelled samples fall in 1 blocks',
        [tmp / 'run'],
    )


def fit_buffer_that_leaves_a_class_without_labels(tmp: Path) -> Case:
    data = _tiles(tmp / 'data')
    return Case(
        [*_fit(tmp, data), '--data.buffer_km', '100'],
        "buffer_km: is 100: it leaves no training label of class 'class",
        [tmp / 'run'],
    )


def index_empty_class_folder(tmp: Path) -> Case:
    data = _tiles(tmp / 'data')
    (data / 'class2').mkdir()
    out = tmp / 'index.gpkg'
    return Case(['index', str(data), '-o', str(out)], 'class2', [out])


def _labels(path: Path, properties: dict) -> Path:
    """One labelled point inside the generated scene, as GeoJSON in EPSG:32618."""
    path.write_text(
        json.dumps(
            {
                'type': 'FeatureCollection',
                'crs': {'type': 'name', 'properties': {'name': 'EPSG:32618'}},
                'features': [
                    {
                        'type': 'Feature',
                        'properties': properties,
                        'geometry': {'type': 'Point', 'coordinates': [440500, 4169500]},
                    }
                ],
            }
        )
    )
    return path


def index_labels_without_class_column(tmp: Path) -> Case:
    scene = write_raster(tmp / 'scene.tif', random_chip(size=128), descriptions=BANDS)
    labels = _labels(tmp / 'labels.geojson', {'kind': 'water'})
    out = tmp / 'index.gpkg'
    return Case(
        ['index', str(scene), '-o', str(out), '--labels', str(labels)],
        "labels.geojson: has no column 'class'",
        [out],
    )


def index_labels_file_not_a_vector(tmp: Path) -> Case:
    scene = write_raster(tmp / 'scene.tif', random_chip(size=128), descriptions=BANDS)
    labels = _garbage(tmp / 'labels.gpkg', b'')
    out = tmp / 'index.gpkg'
    return Case(
        ['index', str(scene), '-o', str(out), '--labels', str(labels)],
        'labels.gpkg: cannot be read as a vector file',
        [out],
    )


def index_chip_larger_than_scene(tmp: Path) -> Case:
    scene = write_raster(tmp / 'scene.tif', random_chip(size=128), descriptions=BANDS)
    labels = _labels(tmp / 'labels.geojson', {'class': 'water'})
    out = tmp / 'index.gpkg'
    arguments = ['index', str(scene), '-o', str(out), '--labels', str(labels)]
    return Case(
        [*arguments, '--chip_size', '256'],
        'is 128 x 128 pixels, smaller than the',
        [out],
    )


def index_output_in_a_file(tmp: Path) -> Case:
    data = _tiles(tmp / 'data')
    blocker = _garbage(tmp / 'blocker')
    return Case(
        ['index', str(data), '-o', str(blocker / 'index.gpkg')],
        'cannot be written',
    )


# -- fit -----------------------------------------------------------------------


def fit_mismatched_band_counts(tmp: Path) -> Case:
    data = _tiles(tmp / 'data')
    write_raster(data / 'class1' / 'three.tif', random_chip(bands=3, size=16))
    return Case(
        _fit(tmp, data),
        'three.tif: has 3 bands, expected 4 bands like the others',
        [tmp / 'run'],
    )


def fit_unknown_class_in_labels(tmp: Path) -> Case:
    for i in range(4):
        patch = tmp / 'data' / f'S2A_MSIL2A_20170613T101031_{i}_0'
        for band in ('B02', 'B03'):
            write_raster(patch / f'{patch.name}_{band}.tif', random_chip(bands=1))
        label = 'Moon craters' if i == 3 else 'Pastures'
        (patch / f'{patch.name}_labels_metadata.json').write_text(
            json.dumps({'labels': [label], 'acquisition_date': '2017-06-13'})
        )
    return Case(
        _fit(tmp, tmp / 'data', '--model.algorithm', 'multilabel'),
        "label 'Moon craters' is not one of the",
        [tmp / 'run'],
    )


def fit_missing_data(tmp: Path) -> Case:
    return Case(
        _fit(tmp, tmp / 'nowhere'),
        'nowhere: is neither a folder nor an image file',
        [tmp / 'run'],
    )


def fit_option_typo(tmp: Path) -> Case:
    data = _tiles(tmp / 'data')
    return Case(
        [*_fit(tmp, data), '--data.batchsize', '4'],
        'unrecognized arguments: --data.batchsize 4 (see geossl fit --help)',
        [tmp / 'run'],
    )


def fit_config_file_typo(tmp: Path) -> Case:
    data = _tiles(tmp / 'data')
    config = tmp / 'config.yaml'
    config.write_text(f'data:\n  rooot: {data}\n')
    return Case(
        [
            'fit',
            '--config',
            str(config),
            '--trainer.default_root_dir',
            str(tmp / 'run'),
        ],
        'rooot',
        [tmp / 'run'],
    )


def fit_chip_larger_than_tiles(tmp: Path) -> Case:
    data = _tiles(tmp / 'data')
    return Case(
        _fit(tmp, data, '--data.chip_size', '32'),
        'is 16 x 16 pixels, smaller than the chip size 32',
        [tmp / 'run'],
    )


def fit_nodata_only_chip(tmp: Path) -> Case:
    # Every tile of a class is nodata, so the statistics meet one whatever the split.
    data = _tiles(tmp / 'data', classes=1)
    for i in range(6):
        blank = np.zeros((4, 16, 16), np.uint16)
        write_raster(data / 'blank' / f'tile{i}.tif', blank, nodata=0)
    return Case(
        _fit(tmp, data),
        'pixels are nodata or NaN',
        [tmp / 'run'],
    )


def fit_offset_that_does_not_parse(tmp: Path) -> Case:
    data = _tiles(tmp / 'data')
    write_raster(
        data / 'class0' / 'tile9.tif',
        random_chip(bands=4, size=16),
        tags={'RADIO_ADD_OFFSET': 'none'},
    )
    return Case(
        _fit(tmp, data),
        "tile9.tif: metadata item RADIO_ADD_OFFSET is 'none', not a number",
        [tmp / 'run'],
    )


def fit_more_labels_than_tiles(tmp: Path) -> Case:
    data = _tiles(tmp / 'data')
    return Case(
        _fit(tmp, data, '--data.labels_per_class', '50'),
        'labels_per_class',
        [tmp / 'run'],
    )


def fit_corrupt_checkpoint(tmp: Path) -> Case:
    data = _tiles(tmp / 'data')
    checkpoint = _garbage(tmp / 'broken.ckpt')
    return Case(
        _fit(tmp, data, '--ckpt_path', str(checkpoint)),
        'broken.ckpt: cannot be read as a safe checkpoint',
        [tmp / 'run'],
    )


def fit_pickled_checkpoint(tmp: Path) -> Case:
    data = _tiles(tmp / 'data')
    checkpoint = _pickled_checkpoint(tmp / 'evil.ckpt')
    return Case(
        _fit(tmp, data, '--ckpt_path', str(checkpoint)),
        'evil.ckpt: holds pickled code, which geossl never runs',
        [tmp / 'run', checkpoint.with_suffix('.pwned')],
    )


def fit_pickled_checkpoint_in_a_config(tmp: Path) -> Case:
    data = _tiles(tmp / 'data')
    checkpoint = _pickled_checkpoint(tmp / 'evil.ckpt')
    config = tmp / 'resume.yaml'
    config.write_text(f'ckpt_path: {checkpoint}\n')
    return Case(
        _fit(tmp, data, '--config', str(config)),
        'evil.ckpt: holds pickled code, which geossl never runs',
        [tmp / 'run', checkpoint.with_suffix('.pwned')],
    )


def fit_config_with_an_empty_section(tmp: Path) -> Case:
    data = _tiles(tmp / 'data')
    config = tmp / 'empty.yaml'
    config.write_text('data:\n  mu: 1\nmodel:\n')
    return Case(
        _fit(tmp, data, '--config', str(config)),
        "empty.yaml: 'model:' has nothing under it",
        [tmp / 'run'],
    )


def fit_checkpoint_of_another_model(tmp: Path) -> Case:
    data = _tiles(tmp / 'data')
    checkpoint = _checkpoint(tmp / 'other.ckpt', bands=13)
    return Case(
        _fit(tmp, data, '--ckpt_path', str(checkpoint)),
        'other.ckpt: holds student.backbone.conv1.0.weight of shape',
        [tmp / 'run'],
    )


def fit_config_path_is_not_run(tmp: Path) -> Case:
    marker = tmp / 'pwned'
    return Case(
        _fit(tmp, Path(f'$(touch {marker})')),
        'is neither a folder nor an image file',
        [tmp / 'run', marker],
    )


# -- map -------------------------------------------------------------------------


def _scene(tmp: Path, size: int = 48, bands: int = 4) -> Path:
    return write_raster(
        tmp / 'scene.tif',
        random_chip(bands=bands, size=size) + 1,
        descriptions=BANDS[:bands],
    )


def map_corrupt_checkpoint(tmp: Path) -> Case:
    out = tmp / 'map.tif'
    checkpoint = _garbage(tmp / 'broken.ckpt')
    return Case(
        ['map', str(checkpoint), str(_scene(tmp)), '-o', str(out)],
        'broken.ckpt: cannot be read as a safe checkpoint',
        [out],
    )


def map_pickled_checkpoint(tmp: Path) -> Case:
    out = tmp / 'map.tif'
    checkpoint = _pickled_checkpoint(tmp / 'evil.ckpt')
    return Case(
        ['map', str(checkpoint), str(_scene(tmp)), '-o', str(out)],
        'evil.ckpt: holds pickled code',
        [out, checkpoint.with_suffix('.pwned')],
    )


def map_existing_output(tmp: Path) -> Case:
    out = _garbage(tmp / 'map.tif', b'keep me')
    checkpoint = _checkpoint(tmp / 'model.ckpt')
    return Case(
        ['map', str(checkpoint), str(_scene(tmp)), '-o', str(out)],
        'map.tif: exists; pass --overwrite to replace it',
    )


def map_unwritable_output(tmp: Path) -> Case:
    blocker = _garbage(tmp / 'blocker')
    checkpoint = _checkpoint(tmp / 'model.ckpt')
    return Case(
        ['map', str(checkpoint), str(_scene(tmp)), '-o', str(blocker / 'map.tif')],
        'cannot be written',
    )


def map_chip_larger_than_raster(tmp: Path) -> Case:
    out = tmp / 'map.tif'
    checkpoint = _checkpoint(tmp / 'model.ckpt', chip=64)
    return Case(
        ['map', str(checkpoint), str(_scene(tmp, size=40)), '-o', str(out)],
        'is 40 x 40 pixels, smaller than the',
        [out],
    )


def map_bands_the_model_lacks(tmp: Path) -> Case:
    out = tmp / 'map.tif'
    checkpoint = _checkpoint(tmp / 'model.ckpt')
    return Case(
        ['map', str(checkpoint), str(_scene(tmp, bands=3)), '-o', str(out)],
        'B08',
        [out],
    )


def map_non_raster_source(tmp: Path) -> Case:
    out = tmp / 'map.tif'
    checkpoint = _checkpoint(tmp / 'model.ckpt')
    source = _garbage(tmp / 'scene.tif')
    return Case(
        ['map', str(checkpoint), str(source), '-o', str(out)],
        'scene.tif: cannot be read as a raster',
        [out],
    )


def map_stride_zero(tmp: Path) -> Case:
    out = tmp / 'map.tif'
    checkpoint = _checkpoint(tmp / 'model.ckpt')
    return Case(
        ['map', str(checkpoint), str(_scene(tmp)), '-o', str(out), '--stride', '0'],
        'stride',
        [out],
    )


def _region(path: Path, geometry: shapely.Geometry) -> Path:
    gpd.GeoDataFrame(geometry=[geometry], crs='EPSG:32618').to_file(path)
    return path


def _scl(path: Path, **options) -> Path:
    return write_raster(path, np.full((1, 24, 24), 4, np.uint8), **options)


def _map_case(tmp: Path, options: list[str], message: str) -> Case:
    """``geossl map`` of a good model and scene with ``options``, refused."""
    return _map_case_of(tmp, _scene(tmp), options, message)


def _map_case_of(tmp: Path, scene: Path, options: list[str], message: str) -> Case:
    """``geossl map`` of a good model over ``scene`` with ``options``, refused."""
    out = tmp / 'map.tif'
    checkpoint = _checkpoint(tmp / 'model.ckpt')
    arguments = ['map', str(checkpoint), str(scene), '-o', str(out), *options]
    return Case(arguments, message, [out])


def map_region_that_misses_the_scene(tmp: Path) -> Case:
    roi = _region(tmp / 'roi.gpkg', shapely.box(0, 0, 1000, 1000))
    return _map_case(
        tmp,
        ['--roi', str(roi)],
        'roi.gpkg: misses scene scene: the region spans 0, 0, 1000, 1000',
    )


def map_region_without_polygons(tmp: Path) -> Case:
    roi = _region(tmp / 'roi.gpkg', shapely.LineString([(440000, 4170000), (0, 0)]))
    return _map_case(
        tmp,
        ['--roi', str(roi)],
        'roi.gpkg: holds LineString geometries; a region must be polygons',
    )


def map_mask_of_another_grid(tmp: Path) -> Case:
    mask = _scl(tmp / 'scl.tif', crs='EPSG:32633')
    return _map_case(
        tmp,
        ['--mask', str(mask)],
        'scl.tif: is in EPSG:32633, not in the CRS of scene scene (EPSG:32618)',
    )


def map_mask_values_outside_a_byte(tmp: Path) -> Case:
    mask = _scl(tmp / 'scl.tif', res=20.0)
    return _map_case(
        tmp,
        ['--mask', str(mask), '--mask_values', '[3, 300]'],
        'mask_values: is [3, 300]; give one or more classes in 0..255',
    )


def map_offset_that_does_not_parse(tmp: Path) -> Case:
    out = tmp / 'map.tif'
    checkpoint = _checkpoint(tmp / 'model.ckpt')
    scene = write_raster(
        tmp / 'scene.tif',
        random_chip(bands=4, size=48) + 1,
        descriptions=BANDS,
        tags={'BOA_ADD_OFFSET': '-1000 DN'},
    )
    return Case(
        ['map', str(checkpoint), str(scene), '-o', str(out)],
        "scene.tif: metadata item BOA_ADD_OFFSET is '-1000 DN', not a number",
        [out],
    )


# -- export ----------------------------------------------------------------------


def export_existing_output(tmp: Path) -> Case:
    out = _garbage(tmp / 'model.onnx', b'keep me')
    checkpoint = _checkpoint(tmp / 'model.ckpt')
    return Case(
        ['export', str(checkpoint), '-o', str(out)],
        'model.onnx: exists; pass --overwrite to replace it',
    )


def export_foreign_checkpoint(tmp: Path) -> Case:
    out = tmp / 'model.onnx'
    checkpoint = tmp / 'foreign.ckpt'
    torch.save({'state_dict': {'weight': torch.zeros(2)}}, checkpoint)
    return Case(
        ['export', str(checkpoint), '-o', str(out)],
        'foreign.ckpt: is not a geossl checkpoint',
        [out],
    )


def export_deepness_of_a_multilabel_model(tmp: Path) -> Case:
    out = tmp / 'model.onnx'
    checkpoint = save_checkpoint(
        tmp / 'model.ckpt',
        num_classes=3,
        in_channels=4,
        task='multilabel',
        chip_size=16,
        model='resnet10t',
    )
    return Case(
        ['export', str(checkpoint), '-o', str(out), '--format', 'deepness'],
        'format: deepness runs segmentors that take one class per pixel',
        [out],
    )


# -- pretrain, evaluate-representation, embed -------------------------------------


def _pretrained(path: Path, bands: int = 4, chip: int = 16) -> Path:
    """A checkpoint as geossl pretrain writes it (SimSiam, timm's test_resnet)."""
    task = SimSiam(model='test_resnet', in_channels=bands, chip_size=chip)
    torch.save(
        {'hyper_parameters': dict(task.hparams), 'state_dict': task.state_dict()}, path
    )
    return path


def _pretrain(tmp: Path, data: Path, *options: str) -> list[str]:
    return [
        'pretrain',
        *['--data.root', str(data), '--data.labels_per_class', '2'],
        *['--model', 'SimSiam', '--model.model', 'test_resnet'],
        *['--trainer.max_steps', '1', '--trainer.default_root_dir', str(tmp / 'run')],
        *options,
    ]


def pretrain_unknown_method(tmp: Path) -> Case:
    data = _tiles(tmp / 'data')
    return Case(
        [*_pretrain(tmp, data), '--model', 'DINO'],
        'DINO',
        [tmp / 'run'],
    )


def pretrain_vision_transformer_on_small_chips(tmp: Path) -> Case:
    data = _tiles(tmp / 'data')
    return Case(
        [*_pretrain(tmp, data), '--model.model', 'vit_small_patch16_224'],
        'builds vision transformers for 224 x 224 chips only',
        [tmp / 'run'],
    )


def fit_backbone_weights_of_another_backbone(tmp: Path) -> Case:
    data = _tiles(tmp / 'data')
    weights = _pretrained(tmp / 'simsiam.ckpt')
    return Case(
        _fit(tmp, data, '--model.weights', str(weights)),
        'simsiam.ckpt: holds a test_resnet backbone, but the model is a resnet10t',
        [tmp / 'run'],
    )


def fit_unknown_weights_name(tmp: Path) -> Case:
    data = _tiles(tmp / 'data')
    return Case(
        _fit(tmp, data, '--model.weights', 'ResNet18_Weights.SENTINEL2_ALL'),
        'ResNet18_Weights.SENTINEL2_ALL: is not a TorchGeo weights name; did you '
        'mean ResNet18_Weights.SENTINEL2_ALL_MOCO',
        [tmp / 'run'],
    )


def fit_weights_of_pickled_code(tmp: Path) -> Case:
    data = _tiles(tmp / 'data')
    weights = tmp / 'weights.pth'
    torch.save({'conv1.weight': _Payload(tmp / 'ran')}, weights)
    return Case(
        _fit(tmp, data, '--model.weights', str(weights)),
        'weights.pth: holds pickled code, which geossl never runs',
        [tmp / 'run', tmp / 'ran'],
    )


def fit_weights_normalisation_without_weights(tmp: Path) -> Case:
    data = _tiles(tmp / 'data')
    return Case(
        _fit(tmp, data, '--model.normalisation', 'weights'),
        "normalisation: is 'weights' but there are no initial weights",
        [tmp / 'run'],
    )


def fit_weights_with_no_band_in_common(tmp: Path) -> Case:
    import timm

    data = _tiles(tmp / 'data')
    weights = tmp / 'rgb.pth'
    torch.save(timm.create_model('resnet10t', in_chans=3).state_dict(), weights)
    return Case(
        _fit(tmp, data, '--model.weights', str(weights)),
        'rgb.pth: holds weights for bands B4, B3, B2, none of which the data has',
        [tmp / 'run'],
    )


def evaluate_representation_of_other_bands(tmp: Path) -> Case:
    data = _tiles(tmp / 'data')
    checkpoint = _pretrained(tmp / 'simsiam.ckpt', bands=13)
    return Case(
        ['evaluate-representation', str(checkpoint), '--data.root', str(data)],
        'has 4 bands but the model was trained on 13',
    )


def evaluate_representation_of_multilabel_data(tmp: Path) -> Case:
    for i in range(4):
        patch = tmp / 'data' / f'S2A_MSIL2A_20170613T101031_{i}_0'
        for band in ('B02', 'B03'):
            write_raster(patch / f'{patch.name}_{band}.tif', random_chip(bands=1))
        (patch / f'{patch.name}_labels_metadata.json').write_text(
            json.dumps({'labels': ['Pastures'], 'acquisition_date': '2017-06-13'})
        )
    checkpoint = _pretrained(tmp / 'simsiam.ckpt', bands=2)
    return Case(
        [
            'evaluate-representation',
            str(checkpoint),
            *['--data.root', str(tmp / 'data'), '--data.labels_per_class', '1'],
        ],
        'is multi-label: kNN and linear-probe accuracy are for one class per tile',
    )


def evaluate_representation_empty_split(tmp: Path) -> Case:
    data = _tiles(tmp / 'data')
    checkpoint = _pretrained(tmp / 'simsiam.ckpt')
    return Case(
        [
            'evaluate-representation',
            str(checkpoint),
            *['--data.root', str(data), '--data.labels_per_class', '2'],
            *['--data.val_fraction', '0'],
            *['--split', 'val'],
        ],
        '--split: is val but that split holds no labelled tiles',
    )


def embed_output_not_a_table(tmp: Path) -> Case:
    data = _tiles(tmp / 'data')
    out = tmp / 'tiles.csv'
    checkpoint = _pretrained(tmp / 'simsiam.ckpt')
    return Case(
        ['embed', str(checkpoint), '--data.root', str(data), '-o', str(out)],
        'tiles.csv: must end in .gpkg or .parquet',
        [out],
    )


def embed_existing_picture(tmp: Path) -> Case:
    data = _tiles(tmp / 'data')
    out = tmp / 'tiles.gpkg'
    picture = _garbage(tmp / 'tsne.png', b'keep me')
    checkpoint = _pretrained(tmp / 'simsiam.ckpt')
    return Case(
        [
            'embed',
            str(checkpoint),
            *['--data.root', str(data), '-o', str(out), '--tsne', str(picture)],
        ],
        'tsne.png: exists; pass --overwrite to replace it',
        [out],
    )


# -- STAC ------------------------------------------------------------------------


def _stac_item(tmp: Path, bands: list[str], missing: str | None = None) -> Path:
    """An item JSON over small band files (``missing``'s file not written)."""
    files = {}
    for band in bands:
        files[band] = tmp / 'cogs' / f'{band}.tif'
        if band != missing:
            write_raster(files[band], random_chip(bands=1, size=48) + 1)
    item = s2_item('S2A_T18SVG_20160112', files, 'pc', like=files[bands[0]])
    path = tmp / 'item.json'
    path.write_text(json.dumps(item.to_dict()))
    return path


def map_stac_item_without_the_model_bands(tmp: Path) -> Case:
    item = _stac_item(tmp, ['B02', 'B03', 'B04'])
    return _map_case_of(
        tmp, item, [], 'scene S2A_T18SVG_20160112 has bands B02, B03, B04 but the'
    )


def map_stac_asset_that_is_missing(tmp: Path) -> Case:
    item = _stac_item(tmp, BANDS, missing='B08')
    return _map_case_of(tmp, item, [], 'STAC item S2A_T18SVG_20160112 asset B08 (')


def index_json_that_is_not_stac(tmp: Path) -> Case:
    source = _garbage(tmp / 'items.json', b'{"type": "Topology", "objects": {}}')
    out = tmp / 'index.gpkg'
    return Case(
        ['index', str(source), '-o', str(out)],
        "items.json: is JSON of type 'Topology', not a STAC Item",
        [out],
    )


def stac_search_bbox_off_the_earth(tmp: Path) -> Case:
    out = tmp / 'items.json'
    search = ['stac', 'search', '--url', 'http://127.0.0.1:9']
    return Case(
        [*search, '--bbox', '[200, 0, 1, 1]', '-o', str(out)],
        'bbox: is [200.0, 0.0, 1.0, 1.0]; give west, south, east, north in degrees',
        [out],
    )


# -- the QGIS provider -------------------------------------------------------------


def qgis_classify_raster_missing_checkpoint(tmp: Path) -> Case:
    out = tmp / 'map.tif'
    return Case(
        ['map', str(tmp / 'missing.ckpt'), str(_scene(tmp)), '-o', str(out)],
        'missing.ckpt: does not exist',
        [out],
        via_qgis=True,
    )


def qgis_build_index_not_a_raster(tmp: Path) -> Case:
    data = _tiles(tmp / 'data')
    _garbage(data / 'class1' / 'notes.tif')
    out = tmp / 'index.gpkg'
    return Case(
        ['index', str(data), '-o', str(out)],
        'notes.tif: cannot be read as a raster',
        [out],
        via_qgis=True,
    )


def qgis_train_bad_option(tmp: Path) -> Case:
    data = _tiles(tmp / 'data')
    return Case(
        [*_fit(tmp, data), '--model.algorithm', 'fixmatchh'],
        'fixmatchh',
        [tmp / 'run'],
        via_qgis=True,
    )


CASES: list[Callable[[Path], Case]] = [
    index_zero_byte_file,
    index_not_a_raster,
    index_missing_crs,
    index_date_that_does_not_parse,
    index_latitude_off_the_earth,
    index_locations_longitude_out_of_range,
    fit_locations_naming_no_sample,
    fit_locations_naming_a_sample_twice,
    fit_locations_without_lon,
    fit_split_file_naming_an_unknown_sample,
    fit_split_file_with_an_unknown_split,
    fit_test_region_holding_no_sample,
    fit_more_folds_than_blocks,
    fit_buffer_that_leaves_a_class_without_labels,
    index_empty_class_folder,
    index_labels_without_class_column,
    index_labels_file_not_a_vector,
    index_chip_larger_than_scene,
    index_output_in_a_file,
    fit_mismatched_band_counts,
    fit_unknown_class_in_labels,
    fit_missing_data,
    fit_option_typo,
    fit_config_file_typo,
    fit_chip_larger_than_tiles,
    fit_nodata_only_chip,
    fit_offset_that_does_not_parse,
    fit_more_labels_than_tiles,
    fit_corrupt_checkpoint,
    fit_pickled_checkpoint,
    fit_pickled_checkpoint_in_a_config,
    fit_config_with_an_empty_section,
    fit_checkpoint_of_another_model,
    fit_config_path_is_not_run,
    map_corrupt_checkpoint,
    map_pickled_checkpoint,
    map_existing_output,
    map_unwritable_output,
    map_chip_larger_than_raster,
    map_bands_the_model_lacks,
    map_non_raster_source,
    map_stride_zero,
    map_region_that_misses_the_scene,
    map_region_without_polygons,
    map_mask_of_another_grid,
    map_mask_values_outside_a_byte,
    map_offset_that_does_not_parse,
    export_existing_output,
    export_foreign_checkpoint,
    export_deepness_of_a_multilabel_model,
    pretrain_unknown_method,
    pretrain_vision_transformer_on_small_chips,
    fit_backbone_weights_of_another_backbone,
    fit_unknown_weights_name,
    fit_weights_of_pickled_code,
    fit_weights_normalisation_without_weights,
    fit_weights_with_no_band_in_common,
    evaluate_representation_of_other_bands,
    evaluate_representation_of_multilabel_data,
    evaluate_representation_empty_split,
    embed_output_not_a_table,
    embed_existing_picture,
    map_stac_item_without_the_model_bands,
    map_stac_asset_that_is_missing,
    index_json_that_is_not_stac,
    stac_search_bbox_off_the_earth,
    qgis_classify_raster_missing_checkpoint,
    qgis_build_index_not_a_raster,
    qgis_train_bad_option,
]


def _files(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in folder.rglob('*') if p.is_file()}


@pytest.mark.parametrize('build', CASES, ids=[case.__name__ for case in CASES])
def test_bad_input_is_one_line_exit_2_and_nothing_written(build, tmp_path, capsys):
    case = build(tmp_path)
    before = _files(tmp_path)
    if case.via_qgis:
        lines: list[str] = []
        with pytest.raises(GeosslRunError) as raised:
            run_geossl(
                Path(sys.executable),
                case.arguments,
                lambda _: None,
                lines.append,
                lambda: False,
            )
        error = str(raised.value)
        assert case.message in error
        assert 'exited with status' not in error  # a crash, not an input error
        assert not [line for line in lines if 'Traceback' in line]
    else:
        assert main(case.arguments) == 2
        stderr = capsys.readouterr().err
        errors = [line for line in stderr.splitlines() if 'error' in line.lower()]
        assert len(errors) == 1, stderr
        assert errors[0].startswith('geossl: error: ')
        assert case.message in errors[0]
        assert 'Traceback' not in stderr
    for path in case.absent:
        assert not path.exists(), f'{path} was written'
    # Inputs are left as they were, and nothing new appears beside them.
    assert _files(tmp_path) == before
