"""The embedding table with places, its files, and the t-SNE picture."""

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from geossl.errors import GeosslInputError
from geossl.inference.embeddings import (
    GEOPACKAGE_MAX_DIMENSIONS,
    check_table_path,
    embedding_table,
    save_tsne_plot,
    tile_classes,
    tsne_coordinates,
    write_table,
)

CLASSES = ['water', 'forest', 'urban']


def _index() -> pd.DataFrame:
    return pd.DataFrame(
        {
            'sample_id': ['a', 'b', 'c'],
            'datetime': pd.to_datetime(['2016-01-12', None, '2017-06-01'], utc=True),
            'lon': [-75.4, np.nan, 10.0],
            'lat': [37.9, np.nan, 50.5],
        }
    )


def _table() -> gpd.GeoDataFrame:
    embeddings = {
        'features': torch.arange(6.0).reshape(3, 2),
        'projection': torch.ones(3, 1),
    }
    return embedding_table(
        _index(),
        pd.Series(['water', 'unlabelled', 'urban']),
        pd.Series(['labelled', 'unlabelled', 'test']),
        embeddings,
    )


def test_classes_of_multiclass_and_multilabel_targets():
    assert list(tile_classes(np.array([0, -1, 2]), CLASSES)) == [
        'water',
        'unlabelled',
        'urban',
    ]
    multi_hot = np.array([[1, 0, 1], [-1, -1, -1], [0, 0, 0]], dtype=np.float32)
    assert list(tile_classes(multi_hot, CLASSES)) == [
        'water; urban',
        'unlabelled',
        'unlabelled',
    ]


def test_the_table_places_each_tile_at_its_lon_lat():
    table = _table()
    assert table.crs.to_epsg() == 4326
    assert list(table.columns[:6]) == [
        'sample_id',
        'split',
        'class',
        'datetime',
        'lon',
        'lat',
    ]
    assert [c for c in table.columns if '_' in c and c != 'sample_id'] == [
        'features_0',
        'features_1',
        'projection_0',
    ]
    assert (table.geometry[0].x, table.geometry[0].y) == (-75.4, 37.9)
    assert table.geometry[1] is None  # no location, no made-up point
    assert list(table['features_1']) == [1.0, 3.0, 5.0]


@pytest.mark.parametrize('suffix', ['.gpkg', '.parquet'])
def test_the_table_round_trips_through_its_file(suffix, tmp_path):
    path = tmp_path / f'tiles{suffix}'
    write_table(_table(), path)
    back = gpd.read_parquet(path) if suffix == '.parquet' else gpd.read_file(path)
    assert list(back['sample_id']) == ['a', 'b', 'c']
    assert list(back['class']) == ['water', 'unlabelled', 'urban']
    assert np.allclose(back['features_0'], [0.0, 2.0, 4.0])
    assert back.crs.to_epsg() == 4326
    assert back.geometry[0].x == pytest.approx(-75.4)
    assert back.geometry[1] is None
    # Written whole, with nothing left beside it.
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_table_paths_that_cannot_hold_the_embeddings_are_refused():
    with pytest.raises(GeosslInputError, match=r'must end in \.gpkg or \.parquet'):
        check_table_path(Path('tiles.csv'), 10)
    with pytest.raises(GeosslInputError, match=r'write \.parquet instead'):
        check_table_path(Path('tiles.gpkg'), GEOPACKAGE_MAX_DIMENSIONS + 1)
    check_table_path(Path('tiles.parquet'), GEOPACKAGE_MAX_DIMENSIONS + 1)


def test_tsne_keeps_clusters_apart(tmp_path):
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat_interleave(20)
    features = torch.eye(64)[labels] * 10 + torch.randn(60, 64, generator=generator)
    coordinates = tsne_coordinates(features)
    assert coordinates.shape == (60, 2)
    # Each point's nearest neighbour in the picture is of its own class.
    distances = np.linalg.norm(coordinates[:, None] - coordinates[None], axis=2)
    np.fill_diagonal(distances, np.inf)
    assert (labels.numpy()[distances.argmin(axis=1)] == labels.numpy()).all()
    path = tmp_path / 'tsne.png'
    classes = pd.Series([CLASSES[i] for i in labels])
    save_tsne_plot(coordinates, classes, CLASSES, 'three clusters', path)
    with Image.open(path) as image:
        assert image.format == 'PNG'
        assert image.width > 400
    assert sorted(p.name for p in tmp_path.iterdir()) == ['tsne.png']
