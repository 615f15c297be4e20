import numpy as np
import pytest

from geossl.data.pixels import apply_reflectance_offset
from geossl.data.raster import band_files, describe, read_sample
from geossl.errors import BandMismatchError, ChipSizeError, NodataError, RasterReadError
from tests.conftest import random_chip, write_raster


def test_reads_selected_bands_in_order(tmp_path):
    data = random_chip(bands=4)
    path = write_raster(tmp_path / 'a.tif', data)
    image = read_sample(path, band_count=4, bands=[2, 0])
    assert image.dtype == np.float32
    np.testing.assert_array_equal(image, data[[2, 0]].astype(np.float32))


def test_centre_crop_and_too_small(tmp_path):
    data = random_chip(bands=2, size=10)
    path = write_raster(tmp_path / 'a.tif', data)
    np.testing.assert_array_equal(read_sample(path, 2, size=4), data[:, 3:7, 3:7])
    with pytest.raises(
        ChipSizeError, match=r'a\.tif: is 10 x 10 pixels, smaller than the chip size 12'
    ):
        read_sample(path, 2, size=12)


def test_wrong_band_count(tmp_path):
    path = write_raster(tmp_path / 'a.tif', random_chip(bands=3))
    with pytest.raises(BandMismatchError, match=r'a\.tif: has 3 bands, expected 13'):
        read_sample(path, 13)


def test_nodata_and_nan_pixels(tmp_path):
    data = random_chip(bands=2, size=4)
    data[0, 1, 1] = 0
    path = write_raster(tmp_path / 'nodata.tif', data, nodata=0)
    with pytest.raises(
        NodataError, match=r'nodata\.tif: 1 of 32 pixels are nodata or NaN'
    ):
        read_sample(path, 2)
    assert read_sample(path, 2, nodata='zero')[0, 1, 1] == 0.0
    floats = random_chip(bands=1, size=4).astype(np.float32)
    floats[0, 0, :] = np.nan
    nan_path = write_raster(tmp_path / 'nan.tif', floats)
    with pytest.raises(NodataError, match='4 of 16 pixels'):
        read_sample(nan_path, 1)
    assert not np.isnan(read_sample(nan_path, 1, nodata='zero')).any()


def test_missing_empty_and_corrupt(tmp_path):
    with pytest.raises(RasterReadError, match='does not exist'):
        read_sample(tmp_path / 'nope.tif', 1)
    (tmp_path / 'empty.tif').touch()
    with pytest.raises(RasterReadError, match=r'is empty \(0 bytes\)'):
        read_sample(tmp_path / 'empty.tif', 1)
    (tmp_path / 'bad.tif').write_text('not a raster')
    with pytest.raises(RasterReadError, match='cannot be read as a raster'):
        read_sample(tmp_path / 'bad.tif', 1)


def test_bigearthnet_band_folder_resampled_to_10m(shared_data):
    patch = shared_data / 'bigearthnet-s2-examples' / 'S2A_MSIL2A_20170613T101031_87_48'
    names = [p.stem.rsplit('_', 1)[-1] for p in band_files(patch)]
    assert names == [
        'B01',
        'B02',
        'B03',
        'B04',
        'B05',
        'B06',
        'B07',
        'B08',
        'B8A',
        'B09',
        'B11',
        'B12',
    ]
    shape = describe(patch)
    assert (shape.width, shape.height, shape.bands, shape.band_names) == (
        120,
        120,
        12,
        tuple(names),
    )
    image = read_sample(patch, 12)
    assert image.shape == (12, 120, 120)
    # Real reflectances: B02 (blue) is darker than B08 (NIR) over this farmland patch.
    assert image[1].mean() < image[7].mean()


def test_band_descriptions_become_names(tmp_path):
    path = write_raster(
        tmp_path / 'a.tif', random_chip(bands=2), descriptions=['red', 'nir']
    )
    assert describe(path).band_names == ('red', 'nir')
    assert (
        describe(write_raster(tmp_path / 'b.tif', random_chip(bands=2))).band_names
        is None
    )


def test_the_offset_moves_valid_pixels_only_and_keeps_them_above_no_data():
    image = np.array([[[0.0, 500.0, 1000.0, 1500.0, 65535.0]]], dtype=np.float32)
    invalid = np.array([[[False, False, False, False, True]]])
    apply_reflectance_offset(image, invalid, -1000)
    np.testing.assert_array_equal(image, [[[0.0, 1.0, 1.0, 500.0, 65535.0]]])
