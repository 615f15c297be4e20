"""Keep the memory of a long mapping run flat, whatever the scene size.

Two things grow with the rows read unless bounded:

* glibc's heap: once large blocks have been freed, glibc serves strip-sized blocks
  from the heap, which fragments and is seldom given back. Reading the 18SVG scene
  strip by strip grew the resident memory by about 500 MB this way;
  :func:`release_free_memory` after each strip (about 1.5 ms) keeps it to 45 MB.
* GDAL's block cache, 5 % of the machine's memory by default, which fills with
  blocks of the scene already classified.
"""

import ctypes
import functools
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import rasterio

#: GDAL block cache while mapping, a row of 512 x 512 blocks of a 13-band uint16
#: 10,980 px tile takes 150 MB, so each block is still decompressed once.
GDAL_CACHE_BYTES = 256 << 20


@functools.cache
def _malloc_trim() -> ctypes._CFuncPtr | None:
    if not sys.platform.startswith('linux'):
        return None
    try:
        return ctypes.CDLL('libc.so.6').malloc_trim
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return None


def release_free_memory() -> bool:
    """Give the free pages of glibc's heap back to the system (``malloc_trim``).

    Returns:
        True where glibc did it; False elsewhere (macOS, Windows, musl), whose
        allocators need no help.
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


@contextmanager
def bounded_gdal_cache(limit: int = GDAL_CACHE_BYTES) -> Iterator[None]:
    """Cap GDAL's block cache for the block, unless ``$GDAL_CACHEMAX`` sets it.

    Args:
        limit: the cap in bytes.

    Yields:
        Nothing; the cap holds inside the block.
    """
    if 'GDAL_CACHEMAX' in os.environ:
        yield
        return
    with rasterio.Env(GDAL_CACHEMAX=limit):
        yield
