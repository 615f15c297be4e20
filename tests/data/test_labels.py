import geopandas as gpd
import pytest
import shapely

from geossl.data.labels import read_labels
from geossl.errors import LabelsFileError


def _write(path, classes, geometries, crs='EPSG:4326', column='class'):
    frame = gpd.GeoDataFrame({column: classes}, geometry=geometries, crs=crs)
    frame.to_file(path)
    return path


def test_points_polygons_and_multipoints(tmp_path):
    path = _write(
        tmp_path / 'labels.gpkg',
        ['forest', 'water', 'town'],
        [
            shapely.Point(-75.6, 37.7),
            shapely.box(-75.55, 37.6, -75.54, 37.61),
            shapely.MultiPoint([(-75.62, 37.7), (-75.63, 37.71)]),
        ],
    )
    labels = read_labels(path)
    assert list(labels['label']) == ['forest', 'water', 'town', 'town']
    assert list(labels['feature']) == [0, 1, 2, 2]
    assert list(labels['part']) == [0, 0, 0, 1]
    assert list(labels.geom_type) == ['Point', 'Polygon', 'Point', 'Point']
    assert labels.crs.to_epsg() == 4326


def test_class_codes_become_text(tmp_path):
    path = _write(
        tmp_path / 'codes.shp',
        [1.0, 10.0],
        [shapely.Point(0, 0), shapely.Point(1, 1)],
        column='code',
    )
    assert list(read_labels(path, class_column='code')['label']) == ['1', '10']


def test_missing_class_column_names_the_columns(tmp_path):
    path = _write(tmp_path / 'l.geojson', ['a'], [shapely.Point(0, 0)], column='kind')
    with pytest.raises(
        LabelsFileError,
        match=r"l\.geojson: has no column 'class'; "
        r'its columns are kind',
    ):
        read_labels(path)


def test_rows_without_class_or_geometry_are_dropped_with_a_warning(tmp_path):
    path = _write(
        tmp_path / 'l.gpkg',
        ['a', None, 'b'],
        [shapely.Point(0, 0), shapely.Point(1, 1), None],
    )
    with pytest.warns(UserWarning, match='dropping 2 features'):
        labels = read_labels(path)
    assert list(labels['label']) == ['a']


def test_bad_labels_files(tmp_path):
    with pytest.raises(LabelsFileError, match='does not exist'):
        read_labels(tmp_path / 'missing.gpkg')
    garbage = tmp_path / 'garbage.gpkg'
    garbage.write_bytes(b'not a vector file')
    with pytest.raises(LabelsFileError, match='cannot be read as a vector file'):
        read_labels(garbage)
    lines = _write(
        tmp_path / 'lines.gpkg', ['road'], [shapely.LineString([(0, 0), (1, 1)])]
    )
    with pytest.raises(LabelsFileError, match='LineString geometries'):
        read_labels(lines)
    with pytest.warns(UserWarning, match="'crs' was not provided"):
        no_crs = _write(tmp_path / 'nocrs.shp', ['a'], [shapely.Point(0, 0)], crs=None)
    with pytest.raises(LabelsFileError, match='has no CRS'):
        read_labels(no_crs)
    empty = _write(tmp_path / 'empty.gpkg', [None], [shapely.Point(0, 0)])
    with (
        pytest.warns(UserWarning, match='dropping 1 features'),
        pytest.raises(LabelsFileError, match='no feature'),
    ):
        read_labels(empty)
