import sys

import pytest
from rasterio.env import get_gdal_config

from geossl.inference.memory import (
    GDAL_CACHE_BYTES,
    bounded_gdal_cache,
    release_free_memory,
)


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc only')
def test_free_heap_pages_are_given_back_on_glibc():
    assert release_free_memory() is True


def test_gdal_cache_is_capped_while_mapping_and_restored_after(monkeypatch):
    monkeypatch.delenv('GDAL_CACHEMAX', raising=False)
    before = get_gdal_config('GDAL_CACHEMAX')
    assert before != GDAL_CACHE_BYTES
    with bounded_gdal_cache():
        assert get_gdal_config('GDAL_CACHEMAX') == GDAL_CACHE_BYTES
    assert get_gdal_config('GDAL_CACHEMAX') == before


def test_a_users_gdal_cachemax_is_left_alone(monkeypatch):
    monkeypatch.setenv('GDAL_CACHEMAX', '64')
    before = get_gdal_config('GDAL_CACHEMAX')
    with bounded_gdal_cache():
        assert get_gdal_config('GDAL_CACHEMAX') == before
