import json
from datetime import UTC, datetime

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from pyproj import Transformer

from geossl.data.metadata import MetadataReader, centre_lonlat, footprint_wgs84
from geossl.data.tile_metadata import TileMetadata, lonlat_problem, parse_datetime
from geossl.errors import (
    DateParseError,
    LabelsFileError,
    MissingCRSError,
    RasterReadError,
)
from tests.conftest import random_chip, write_raster

SCENE = 'sentinel2-scene-18SVG-20160112'


def test_scene_centre_is_chincoteague(shared_data):
    meta = MetadataReader().read(shared_data / SCENE / 'T18SVG_20160112_B02.tif')
    assert meta.lat == pytest.approx(37.67, abs=0.01)
    assert meta.lon == pytest.approx(-75.62, abs=0.01)
    assert meta.time == datetime(2016, 1, 12, tzinfo=UTC)
    assert meta.crs == 'EPSG:32618'
    assert meta.footprint.contains(meta.footprint.centroid)


def test_bigearthnet_centres_and_dates_match_their_json(shared_data):
    reader = MetadataReader()
    patches = sorted((shared_data / 'bigearthnet-s2-examples').iterdir())
    assert len(patches) == 6
    for patch in patches:
        info = json.loads((patch / f'{patch.name}_labels_metadata.json').read_text())
        corners = info['coordinates']
        bounds = (corners['ulx'], corners['lry'], corners['lrx'], corners['uly'])
        lon, lat = centre_lonlat(info['projection'], bounds)
        meta = reader.read(patch)
        assert meta.lon == pytest.approx(lon, abs=1e-6)
        assert meta.lat == pytest.approx(lat, abs=1e-6)
        assert meta.time == parse_datetime(info['acquisition_date'])


def test_bigearthnet_malformed_name_falls_back_to_json(shared_data):
    # The patch name says T94161 (not a time); the JSON has the real one.
    patch = shared_data / 'bigearthnet-s2-examples' / 'S2B_MSIL2A_20180204T94161_57_38'
    assert MetadataReader().read(patch).time == datetime(
        2018, 2, 4, 9, 41, 56, tzinfo=UTC
    )


def test_bigearthnet_json_gives_location_when_rasters_lack_crs(tmp_path):
    patch = tmp_path / 'P_1_2'
    write_raster(patch / 'P_1_2_B02.tif', random_chip(1), crs=None)
    (patch / 'P_1_2_labels_metadata.json').write_text(
        json.dumps(
            {
                'labels': ['Pastures'],
                'coordinates': {
                    'ulx': 404400,
                    'uly': 5342400,
                    'lrx': 405600,
                    'lry': 5341200,
                },
                'projection': 'EPSG:32633',
                'acquisition_date': '2017-06-13 10:10:31',
            }
        )
    )
    meta = MetadataReader().read(patch)
    assert meta.lon == pytest.approx(13.7209, abs=1e-3)
    assert meta.time == datetime(2017, 6, 13, 10, 10, 31, tzinfo=UTC)


@pytest.mark.parametrize(
    ('name', 'expected'),
    [
        (
            'T18SVG_20160112T160652_B02.tif',
            datetime(2016, 1, 12, 16, 6, 52, tzinfo=UTC),
        ),
        ('T18SVG_20160112_B02.tif', datetime(2016, 1, 12, tzinfo=UTC)),
        ('tile_without_date.tif', None),
    ],
)
def test_sentinel2_filename_dates(tmp_path, name, expected):
    path = write_raster(tmp_path / name, random_chip(1))
    assert MetadataReader().read(path).time == expected


def test_user_regex_takes_precedence_over_tags(tmp_path):
    path = write_raster(
        tmp_path / 'site_12-03-2019.tif',
        random_chip(1),
        tags={'ACQUISITION_DATE': '2001-01-01'},
    )
    reader = MetadataReader(
        filename_regex=r'site_(?P<date>\d\d-\d\d-\d{4})', date_format='%d-%m-%Y'
    )
    assert reader.read(path).time == datetime(2019, 3, 12, tzinfo=UTC)
    assert MetadataReader().read(path).time == datetime(2001, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ('tags', 'expected'),
    [
        (
            {'TIFFTAG_DATETIME': '2016:01:12 16:06:52'},
            datetime(2016, 1, 12, 16, 6, 52, tzinfo=UTC),
        ),
        (
            {'DATATAKE_1_DATATAKE_SENSING_START': '2016-01-12T16:06:52.026Z'},
            datetime(2016, 1, 12, 16, 6, 52, 26000, tzinfo=UTC),
        ),
        (
            # The acquisition tag wins over TIFFTAG_DATETIME (often a processing time).
            {
                'TIFFTAG_DATETIME': '2020:05:05 00:00:00',
                'ACQUISITION_DATE': '2016-01-12',
            },
            datetime(2016, 1, 12, tzinfo=UTC),
        ),
        (
            {'ACQUISITION_DATE': '2016-01-12T10:00:00+02:00'},
            datetime(2016, 1, 12, 8, tzinfo=UTC),
        ),
    ],
)
def test_dates_from_tags(tmp_path, tags, expected):
    path = write_raster(tmp_path / 'chip.tif', random_chip(1), tags=tags)
    assert MetadataReader().read(path).time == expected


def test_unparseable_date_names_the_file_and_value(tmp_path):
    path = write_raster(
        tmp_path / 'chip.tif', random_chip(1), tags={'ACQUISITION_DATE': 'last tuesday'}
    )
    with pytest.raises(
        DateParseError, match=r"chip\.tif: tag ACQUISITION_DATE 'last tuesday'"
    ):
        MetadataReader().read(path)


def test_regex_without_date_group_is_refused():
    with pytest.raises(DateParseError, match='filename_regex'):
        MetadataReader(filename_regex=r'^T(?P<tile>\w+)')


def test_missing_crs_is_an_error_unless_location_optional(tmp_path):
    path = write_raster(tmp_path / 'plain.tif', random_chip(1), crs=None)
    with pytest.raises(MissingCRSError, match=r'plain\.tif: has no CRS'):
        MetadataReader().read(path)
    meta = MetadataReader(require_location=False).read(path)
    assert (meta.lon, meta.lat, meta.crs, meta.bounds) == (None, None, None, None)


def test_locations_table_fills_location_and_time(tmp_path):
    path = write_raster(tmp_path / 'img' / 'a.tif', random_chip(1), crs=None)
    table = tmp_path / 'meta.csv'
    table.write_text(
        'path,lon,lat,datetime\nimg/a.tif,-75.5,37.5,2016-01-12T15:00:00Z\n'
    )
    meta = MetadataReader(locations=table).read(path)
    assert (meta.lon, meta.lat) == (-75.5, 37.5)
    assert meta.time == datetime(2016, 1, 12, 15, tzinfo=UTC)


def test_locations_table_without_columns_is_refused(tmp_path):
    table = tmp_path / 'meta.csv'
    table.write_text('x,lat\n')
    path = write_raster(tmp_path / 'a.tif', random_chip(1))
    with pytest.raises(
        LabelsFileError,
        match=r'meta\.csv: lacks column\(s\) one of path/file/filename/file_name/'
        r'image_id/image, lon;',
    ):
        MetadataReader(locations=table).read(path)


def test_empty_and_corrupt_files(tmp_path):
    empty = tmp_path / 'empty.tif'
    empty.touch()
    with pytest.raises(RasterReadError, match=r'empty\.tif: is empty \(0 bytes\)'):
        MetadataReader().read(empty)
    corrupt = tmp_path / 'corrupt.tif'
    corrupt.write_bytes(b'II*\x00 not really a tiff')
    with pytest.raises(
        RasterReadError, match=r'corrupt\.tif: cannot be read as a raster'
    ):
        MetadataReader().read(corrupt)


def test_geographic_crs_and_antimeridian():
    lon, lat = centre_lonlat('EPSG:4326', (179.0, 10.0, 181.0, 11.0))
    assert (lon, lat) == (-180.0, 10.5)
    footprint = footprint_wgs84('EPSG:32601', (100000, 5000000, 900000, 5100000))
    assert footprint.geom_type == 'MultiPolygon'
    assert footprint.bounds[0] == pytest.approx(-180)
    assert footprint.bounds[2] == pytest.approx(180)


def test_to_tensors_masks_missing_values_with_zeros():
    meta, mask = TileMetadata(
        lon=None, lat=None, time=datetime(2016, 1, 12, tzinfo=UTC)
    ).to_tensors()
    assert meta.dtype == torch.float32
    assert not torch.isnan(meta).any()
    assert mask.tolist() == [False, False, True]
    assert meta[:2].tolist() == [0.0, 0.0]
    assert meta[2].item() == pytest.approx(
        datetime(2016, 1, 12, tzinfo=UTC).timestamp(), abs=128
    )
    assert np.isclose(
        TileMetadata(1.5, -2.5, None).to_tensors()[0][:2].numpy(), [1.5, -2.5]
    ).all()


@given(
    when=st.datetimes(
        min_value=datetime(1970, 1, 1),
        max_value=datetime(2100, 1, 1),
        timezones=st.just(UTC),
    )
)
def test_dates_round_trip_through_every_accepted_form(when):
    when = when.replace(microsecond=0)
    assert parse_datetime(when.isoformat()) == when
    assert parse_datetime(when.strftime('%Y%m%dT%H%M%S')) == when
    assert parse_datetime(when.strftime('%Y:%m:%d %H:%M:%S')) == when
    assert (
        parse_datetime(when.strftime('%d/%m/%Y %H-%M-%S'), '%d/%m/%Y %H-%M-%S') == when
    )


@given(
    zone=st.integers(1, 60),
    north=st.booleans(),
    lon_offset=st.floats(-2.9, 2.9),
    lat=st.floats(0.0, 80.0),
)
def test_utm_positions_come_back_as_the_lon_lat_they_were(zone, north, lon_offset, lat):
    lat = lat if north else -lat
    lon = -183.0 + 6 * zone + lon_offset  # within the zone
    crs = f'EPSG:{32600 + zone if north else 32700 + zone}'
    x, y = Transformer.from_crs('EPSG:4326', crs, always_xy=True).transform(lon, lat)
    got_lon, got_lat = centre_lonlat(crs, (x, y, x, y))
    wrapped = ((lon + 180.0) % 360.0) - 180.0
    assert abs(((got_lon - wrapped + 180.0) % 360.0) - 180.0) < 1e-6
    assert got_lat == pytest.approx(lat, abs=1e-6)
    assert lonlat_problem(got_lon, got_lat) is None


@given(lon=st.floats(allow_nan=True), lat=st.floats(allow_nan=True))
def test_only_places_on_earth_pass(lon, lat):
    on_earth = -180 <= lon <= 180 and -90 <= lat <= 90
    assert (lonlat_problem(lon, lat) is None) == on_earth
