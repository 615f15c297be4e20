import pickle

import pytest
from torch.utils.data import DataLoader, Dataset

from geossl.errors import (
    GeosslInputError,
    RasterReadError,
    error_in_worker,
    reading,
)


def test_any_failure_of_the_reader_becomes_the_files_one_line():
    for failure in (KeyError(174812789), pickle.UnpicklingError('bad'), OSError('x')):
        with (
            pytest.raises(RasterReadError) as error,
            reading('a.tif', 'a raster', RasterReadError),
        ):
            raise failure
        assert str(error.value).startswith('a.tif: cannot be read as a raster (')
        assert error.value.__cause__ is None


def _read_with_gdal_cause() -> None:
    try:
        raise ValueError('TIFFReadEncodedStrip() failed')
    except ValueError as cause:
        raise OSError('Read failed. See previous exception for details.') from cause


def test_the_chained_cause_speaks_when_the_message_points_to_it():
    pattern = r'\(TIFFReadEncodedStrip\(\) failed\)'
    with pytest.raises(GeosslInputError, match=pattern), reading('a.tif', 'a raster'):
        _read_with_gdal_cause()


def test_geossl_errors_pass_unchanged():
    original = GeosslInputError('labels.gpkg', 'has no CRS')
    with (
        pytest.raises(GeosslInputError) as error,
        reading('labels.gpkg', 'a vector file'),
    ):
        raise original
    assert error.value is original


class _Unreadable(Dataset):
    def __len__(self):
        return 1

    def __getitem__(self, position):
        raise RasterReadError('tile.tif', 'cannot be read as a raster (truncated)')


def test_an_input_error_in_a_dataloader_worker_keeps_its_line():
    # torch cannot rebuild geossl's errors in the main process and re-raises a
    # RuntimeError holding the worker's traceback instead.
    with pytest.raises(RuntimeError) as error:
        next(iter(DataLoader(_Unreadable(), num_workers=1)))
    assert error_in_worker(error.value) == (
        'tile.tif: cannot be read as a raster (truncated)',
        2,
    )
    assert error_in_worker(RuntimeError('CUDA out of memory')) is None
