"""What is done to pixels as they are read: no data, and the reflectance offset.

Every reader (sample files, scene chips, TorchGeo datasets) marks the pixels that
are NaN or equal to the raster's nodata value, adds the reflectance offset to the
others (:mod:`geossl.data.reflectance`), and then refuses or zero-fills the invalid
ones as the ``nodata`` policy says. Arrays only: reading the files is
:mod:`geossl.data.raster`'s.
"""

from pathlib import Path
from typing import Literal

import numpy as np

from geossl.errors import NodataError

#: What to do with nodata or NaN pixels (raise, or replace them with zero).
NodataPolicy = Literal['error', 'zero']


def invalid_pixels(array: np.ndarray, nodata: float | None) -> np.ndarray:
    """Mark the NaN pixels and those equal to a raster's nodata value.

    Args:
        array: pixels of one band (or of bands sharing ``nodata``).
        nodata: the raster's declared nodata value, or None.

    Returns:
        Boolean mask, True where a pixel is not valid data.
    """
    invalid = np.isnan(array)
    if nodata is not None and not np.isnan(nodata):
        invalid |= array == nodata
    return invalid


def apply_nodata_policy(
    image: np.ndarray, invalid: np.ndarray, policy: NodataPolicy, source: str | Path
) -> np.ndarray:
    """Refuse a chip with invalid pixels, or zero-fill them, as the policy says.

    Args:
        image: the chip's pixels (modified in place when zero-filling).
        invalid: mask of the invalid pixels, same shape as ``image``.
        policy: ``'error'`` or ``'zero'``.
        source: the file or chip named in the error.

    Returns:
        The image.

    Raises:
        NodataError: if ``policy='error'`` and any pixel is invalid.
    """
    if invalid.any():
        if policy == 'error':
            raise NodataError(
                source,
                f'{int(invalid.sum())} of {invalid.size} pixels are nodata or NaN; '
                "use nodata='zero' to fill them",
            )
        image[invalid] = 0.0
    return image


def apply_reflectance_offset(
    image: np.ndarray, invalid: np.ndarray, offset: float
) -> np.ndarray:
    """Add an offset to the valid pixels of an image, in place.

    Pixels that are nodata, or 0 (Sentinel-2's own no-data value), are left as they
    are, and no valid pixel drops below 1, so that none comes to read as no data
    (see :mod:`geossl.data.reflectance` for where offsets come from).

    Args:
        image: float ``C x H x W`` digital numbers.
        invalid: the nodata pixels, same shape.
        offset: the offset in digital numbers.

    Returns:
        The image.
    """
    if offset:
        valid = ~invalid & (image != 0)
        image[valid] = np.maximum(image[valid] + offset, 1.0)
    return image
