import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from geossl.data.datamodule import GeoDataModule
from geossl.data.scene import SceneDataset
from geossl.data.split_files import read_split_file
from geossl.data.splits import SplitConfig, make_splits, split_counts
from geossl.errors import SplitError

EXAMPLE_LABELS = Path(__file__).parents[2] / 'examples' / '18SVG-labels.geojson'


def _own_split(eurosat_ms, path, names=None):
    """Every tile named by file name: class 0 tested, class 1 validated, others train."""
    ids = eurosat_ms.sample_ids if names is None else names
    split = np.where(
        eurosat_ms.targets == 0,
        'test',
        np.where(eurosat_ms.targets == 1, 'val', 'train'),
    )
    table = pd.DataFrame({'file': [i.split('/')[-1] for i in ids], 'split': split})
    table.to_csv(path, index=False)
    return table


def test_your_own_split_by_file_name(eurosat_ms, tmp_path):
    table = _own_split(eurosat_ms, tmp_path / 'mine.csv')
    splits = make_splits(eurosat_ms, SplitConfig(file=str(tmp_path / 'mine.csv')))
    assert (splits['split'][eurosat_ms.targets == 0] == 'test').all()
    assert (splits['split'][eurosat_ms.targets == 1] == 'val').all()
    # `train` keeps the labels of labelled tiles: all of EuroSAT's.
    assert split_counts(splits)['labelled'] == (table['split'] == 'train').sum()


def test_a_vector_split_file_and_the_samples_it_does_not_name(
    eurosat_ms, tmp_path, caplog
):
    ids = eurosat_ms.sample_ids
    places = gpd.points_from_xy(eurosat_ms.index['lon'], eurosat_ms.index['lat'])
    named = gpd.GeoDataFrame(
        {'sample_id': ids[:50], 'split': ['test'] * 10 + ['unlabelled'] * 40},
        geometry=places[:50],
        crs='EPSG:4326',
    )
    named.to_file(tmp_path / 'mine.gpkg')
    with caplog.at_level(logging.INFO, logger='geossl'):
        split = read_split_file(tmp_path / 'mine.gpkg', eurosat_ms, 'unlabelled')
    assert (split[:10] == 'test').all()
    assert (split[10:] == 'unlabelled').all()
    assert (
        '50 of 100 samples are not in it; they join the unlabelled pool' in caplog.text
    )
    with pytest.raises(
        SplitError,
        match=r'mine\.gpkg: does not name 50 of the 100 samples \(the first: '
        r'Pasture/Pasture_1\.tif\)',
    ):
        read_split_file(tmp_path / 'mine.gpkg', eurosat_ms, 'error')


@pytest.mark.parametrize(
    ('rows', 'problem'),
    [
        (
            [('Forest_1.tif', 'test'), ('Forest_99999.tif', 'test')],
            r"line 3: 'Forest_99999.tif' names no sample of the data",
        ),
        (
            [
                ('AnnualCrop/AnnualCrop_1.tif', 'test'),
                ('{tiles}/AnnualCrop/AnnualCrop_1.tif', 'val'),
            ],
            r"line 3: '.+/AnnualCrop_1.tif' names the sample line 2 names "
            r"\('AnnualCrop/AnnualCrop_1.tif'\); name each sample once",
        ),
        ([('Forest_1.tif', 'holdout')], "line 2: split 'holdout' is not one of"),
    ],
)
def test_bad_split_files_are_one_line_naming_the_row(
    eurosat_ms, shared_data, tmp_path, rows, problem
):
    path = tmp_path / 'mine.csv'
    tiles = shared_data / 'eurosat-ms-sample'
    rows = [(name.format(tiles=tiles), split) for name, split in rows]
    pd.DataFrame(rows, columns=['path', 'split']).to_csv(path, index=False)
    with pytest.raises(SplitError, match=problem):
        read_split_file(path, eurosat_ms, 'unlabelled')


def test_the_command_datamodule_writes_the_split_as_a_map(
    shared_data, tmp_path, caplog
):
    tiles = shared_data / 'eurosat-ms-sample'
    region = shapely.box(0, 40, 12, 60)  # lon/lat: a band of western Europe
    gpd.GeoSeries([region], crs='EPSG:4326').to_crs('EPSG:3035').to_file(
        tmp_path / 'west.gpkg'
    )
    datamodule = GeoDataModule(
        str(tiles),
        labels_per_class=1,
        test_region=str(tmp_path / 'west.gpkg'),
        buffer_km=20,
        run_dir=str(tmp_path / 'run'),
    )
    with caplog.at_level(logging.INFO):
        datamodule.setup('fit')
    split = gpd.read_file(tmp_path / 'run' / 'splits.gpkg')
    inside = split.geometry.within(region)
    assert (split['split'][inside] == 'test').all()
    assert not (split['split'][~inside] == 'test').any()
    assert split.crs == 'EPSG:4326'
    assert list(split['split']) == list(datamodule.splits['split'])
    assert 'test: nearest training sample, labelled' in caplog.text


@pytest.fixture(scope='module')
def scene_with_chips(shared_data):
    return SceneDataset(
        shared_data / 'sentinel2-scene-18SVG-20160112',
        EXAMPLE_LABELS,
        chip_size=32,
        unlabelled_chips=300,
    )


def test_a_scenes_labels_file_with_a_split_column_is_a_split_file(
    scene_with_chips, tmp_path
):
    labels = gpd.read_file(EXAMPLE_LABELS)
    # The northern third of the features tested, the rest trained on.
    north = labels.geometry.centroid.y > labels.geometry.centroid.y.quantile(2 / 3)
    labels['split'] = np.where(north, 'test', 'train')
    labels.to_file(tmp_path / 'labels.geojson')
    splits = make_splits(
        scene_with_chips, SplitConfig(file=str(tmp_path / 'labels.geojson'))
    )
    feature = scene_with_chips.index['feature']
    labelled = feature.notna().to_numpy()
    expected = np.where(
        north.to_numpy()[feature[labelled].astype(int)], 'test', 'labelled'
    )
    assert (splits['split'][labelled] == expected).all()
    assert (splits['split'][~labelled] == 'unlabelled').all()  # the grid's chips


def test_a_test_region_takes_the_unlabelled_chips_inside_out_of_training(
    scene_with_chips, tmp_path
):
    index = scene_with_chips.index
    # The western half of the scene, drawn in its own UTM zone.
    west = shapely.box(435730, 4160040, 445385, 4179460)
    gpd.GeoSeries([west], crs='EPSG:32618').to_file(tmp_path / 'west.gpkg')
    splits = make_splits(
        scene_with_chips,
        SplitConfig(
            labels_per_class=None,
            label_fraction=0.5,
            test_region=str(tmp_path / 'west.gpkg'),
        ),
    )
    inside = (
        gpd.GeoSeries(gpd.points_from_xy(index['lon'], index['lat']), crs='EPSG:4326')
        .to_crs('EPSG:32618')
        .within(west)
        .to_numpy()
    )
    names = splits['split'].to_numpy()
    labelled = scene_with_chips.is_labelled
    assert (names[inside & labelled] == 'test').all()
    assert (names[inside & ~labelled] == 'excluded').all()
    assert (inside & ~labelled).sum() > 50
    assert not np.isin(names[inside], ['labelled', 'unlabelled']).any()
    assert not (names[~inside] == 'test').any()
    with pytest.raises(SplitError, match=r'val_region: and the test set share \d+'):
        make_splits(
            scene_with_chips,
            SplitConfig(
                test_region=str(tmp_path / 'west.gpkg'),
                val_region=str(tmp_path / 'west.gpkg'),
            ),
        )
    gpd.GeoSeries([shapely.box(0, 0, 1, 1)], crs='EPSG:4326').to_file(
        tmp_path / 'elsewhere.gpkg'
    )
    with pytest.raises(SplitError, match=r'elsewhere\.gpkg: \(test_region\) holds no'):
        make_splits(
            scene_with_chips, SplitConfig(test_region=str(tmp_path / 'elsewhere.gpkg'))
        )
