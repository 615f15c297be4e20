import numpy as np
import pandas as pd
import pytest

from geossl.data.geodesy import nearest_km
from geossl.data.splits import (
    SplitConfig,
    _spatial_blocks,
    held_out_distances,
    load_or_make_splits,
    make_splits,
    split_counts,
)
from geossl.errors import SplitError


def test_random_split_is_stratified_and_seeded(eurosat_ms):
    splits = make_splits(eurosat_ms, SplitConfig(labels_per_class=4, seed=3))
    assert split_counts(splits) == {
        'labelled': 40,
        'unlabelled': 40,
        'val': 10,
        'test': 10,
        'excluded': 0,
    }
    per_class = pd.crosstab(splits['split'], eurosat_ms.targets)
    assert (per_class.loc['labelled'] == 4).all()
    assert (per_class.loc['test'] == 1).all()
    again = make_splits(eurosat_ms, SplitConfig(labels_per_class=4, seed=3))
    other = make_splits(eurosat_ms, SplitConfig(labels_per_class=4, seed=4))
    assert again.equals(splits)
    assert not other.equals(splits)


def test_label_fraction(eurosat_ms):
    splits = make_splits(
        eurosat_ms, SplitConfig(labels_per_class=None, label_fraction=0.25)
    )
    assert (pd.crosstab(splits['split'], eurosat_ms.targets).loc['labelled'] == 2).all()


def test_spatial_split_keeps_blocks_apart(eurosat_ms):
    config = SplitConfig(
        labels_per_class=2,
        strategy='spatial',
        block_size_km=100,
        val_fraction=0.2,
        test_fraction=0.2,
    )
    splits = make_splits(eurosat_ms, config)
    names = splits['split'].to_numpy()
    assert (names == 'test').sum() >= 20
    blocks = _spatial_blocks(
        eurosat_ms, np.arange(len(eurosat_ms)), config.block_size_km
    )
    train_blocks = set(blocks[np.isin(names, ['labelled', 'unlabelled'])])
    assert not train_blocks & set(blocks[names == 'test'])
    assert not train_blocks & set(blocks[names == 'val'])
    # Blocks are about 100 km: tiles sharing one are never farther apart than its diagonal.
    lat = eurosat_ms.index['lat'].to_numpy()
    for block in np.unique(blocks):
        assert np.ptp(lat[blocks == block]) * 111.32 <= 100


def test_temporal_split_holds_out_latest(bigearthnet):
    config = SplitConfig(
        labels_per_class=1, val_fraction=0.2, test_fraction=0.2, strategy='temporal'
    )
    splits = make_splits(bigearthnet, config)
    times = bigearthnet.index['datetime']
    held_out = times[splits['split'].isin(['val', 'test']).to_numpy()]
    kept = times[splits['split'].isin(['labelled', 'unlabelled']).to_numpy()]
    assert held_out.min() > kept.max()


def test_longitude_split_tests_the_east_and_validates_next_to_it(eurosat_ms):
    # As TorchGeo's EuroSATSpatial: train the west, validate, test the east.
    config = SplitConfig(
        labels_per_class=1, val_fraction=0.2, test_fraction=0.2, strategy='longitude'
    )
    splits = make_splits(eurosat_ms, config)['split'].to_numpy()
    lon = eurosat_ms.index['lon'].to_numpy()
    train = np.isin(splits, ['labelled', 'unlabelled'])
    assert lon[train].max() <= lon[splits == 'val'].min()
    assert lon[splits == 'val'].max() <= lon[splits == 'test'].min()
    assert (splits == 'test').sum() == 20
    assert (splits == 'val').sum() == 20


def test_temporal_split_without_dates(eurosat_ms):
    with pytest.raises(
        SplitError, match='temporal split needs a date for every sample; 100 lack one'
    ):
        make_splits(eurosat_ms, SplitConfig(strategy='temporal'))


def test_multilabel_labels_per_class(bigearthnet):
    splits = make_splits(
        bigearthnet,
        SplitConfig(labels_per_class=1, val_fraction=0.0, test_fraction=0.0),
    )
    labelled = bigearthnet.targets[(splits['split'] == 'labelled').to_numpy()]
    present = bigearthnet.targets.sum(axis=0) > 0
    assert (labelled.sum(axis=0)[present] >= 1).all()
    assert len(labelled) < len(bigearthnet)


def test_too_few_samples_for_labels_per_class(eurosat_ms):
    with pytest.raises(
        SplitError, match="is 9 but class 'AnnualCrop' has only 8 training samples"
    ):
        make_splits(eurosat_ms, SplitConfig(labels_per_class=9))


def test_bad_config():
    with pytest.raises(SplitError, match='val_fraction'):
        SplitConfig(val_fraction=0.6, test_fraction=0.5)
    with pytest.raises(SplitError, match='strategy'):
        SplitConfig(strategy='diagonal')


def test_saved_split_is_reloaded_and_guarded(eurosat_ms, tmp_path):
    path = tmp_path / 'run' / 'splits.csv'
    config = SplitConfig(seed=1)
    first = load_or_make_splits(eurosat_ms, config, path)
    assert path.read_text().startswith('# geossl splits {')
    # Tamper with the file: the reload must use the file, not re-split.
    text = path.read_text().replace(',labelled', ',unlabelled', 1)
    path.write_text(text)
    reloaded = load_or_make_splits(eurosat_ms, config, path)
    assert (reloaded['split'] != first['split']).sum() == 1
    with pytest.raises(SplitError, match='was made with other settings'):
        load_or_make_splits(eurosat_ms, SplitConfig(seed=2), path)
    lines = path.read_text().splitlines()
    path.write_text('\n'.join(lines[:-5]) + '\n')
    with pytest.raises(SplitError, match='lists 95 samples but the data has 100'):
        load_or_make_splits(eurosat_ms, config, path)


def _fold_splits(dataset, folds, **options):
    return [
        make_splits(dataset, SplitConfig(folds=folds, fold=fold, **options))
        for fold in range(folds)
    ]


def test_spatial_folds_test_every_tile_once_balanced_by_class(eurosat_places):
    options = {'labels_per_class': 4, 'strategy': 'spatial', 'block_size_km': 50}
    runs = _fold_splits(eurosat_places, 5, val_fraction=0.05, **options)
    tested = np.stack([run['split'].to_numpy() == 'test' for run in runs])
    assert (tested.sum(axis=0) == 1).all()  # every tile is tested in one fold
    assert all((run['fold'] == runs[0]['fold']).all() for run in runs)
    # As StratifiedGroupKFold: a fifth of every class in each fold.
    shares = pd.crosstab(runs[0]['fold'], eurosat_places.targets, normalize='columns')
    assert np.allclose(shares, 0.2, atol=0.02)
    blocks = _spatial_blocks(eurosat_places, np.arange(len(eurosat_places)), 50)
    for run in runs:
        names = run['split'].to_numpy()
        train = set(blocks[np.isin(names, ['labelled', 'unlabelled'])])
        assert not train & set(blocks[names == 'test'])
        assert not train & set(blocks[names == 'val'])


def test_a_buffer_keeps_training_tiles_away_from_test_tiles(eurosat_places):
    splits = make_splits(
        eurosat_places,
        SplitConfig(
            labels_per_class=4,
            strategy='spatial',
            block_size_km=50,
            folds=5,
            buffer_km=10,
        ),
    )
    names = splits['split'].to_numpy()
    lon = eurosat_places.index['lon'].to_numpy()
    lat = eurosat_places.index['lat'].to_numpy()
    train = np.flatnonzero(np.isin(names, ['labelled', 'unlabelled']))
    test = np.flatnonzero(names == 'test')
    assert nearest_km(lon, lat, train, test).min() > 10
    # Tiles of the neighbouring blocks within 10 km left training.
    assert split_counts(splits)['excluded'] > 1000
    distances = held_out_distances(eurosat_places, splits)
    assert distances['test']['unlabelled'][1] > 10  # even the 5th percentile


def test_a_random_split_tests_on_near_copies_of_its_training_tiles(eurosat_places):
    random = make_splits(eurosat_places, SplitConfig(test_fraction=0.2))
    blocks = make_splits(
        eurosat_places,
        SplitConfig(strategy='spatial', block_size_km=50, test_fraction=0.2),
    )
    near = held_out_distances(eurosat_places, random)['test']['unlabelled']
    far = held_out_distances(eurosat_places, blocks)['test']['unlabelled']
    assert near[0] < 1.5  # median km: a neighbouring tile of the same field
    assert far[0] > 10 * near[0]


def test_bad_folds_and_buffers_are_refused_naming_the_option(eurosat_ms):
    with pytest.raises(SplitError, match='folds: is 300 but the labelled samples fall'):
        make_splits(
            eurosat_ms,
            SplitConfig(labels_per_class=1, strategy='spatial', folds=300),
        )
    with pytest.raises(SplitError, match=r'fold: is 5; use 0 to 4 of 5'):
        SplitConfig(folds=5, fold=5)
    with pytest.raises(SplitError, match='folds: need strategy random, spatial'):
        SplitConfig(folds=5, strategy='longitude')
    with pytest.raises(SplitError, match='split_file: gives the whole split'):
        SplitConfig(file='splits.csv', folds=5)
    with pytest.raises(
        SplitError, match='buffer_km: is 3000: it leaves no training label of class'
    ):
        make_splits(eurosat_ms, SplitConfig(labels_per_class=1, buffer_km=3000))


def test_temporal_folds_hold_out_whole_dates(bigearthnet):
    splits = make_splits(
        bigearthnet,
        SplitConfig(labels_per_class=1, strategy='temporal', folds=2, val_fraction=0),
    )
    days = pd.to_datetime(bigearthnet.index['datetime']).dt.floor('D')
    names = splits['split'].to_numpy()
    train = set(days[np.isin(names, ['labelled', 'unlabelled'])])
    assert set(days[names == 'test'])
    assert not train & set(days[names == 'test'])
