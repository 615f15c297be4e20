"""Read one sample's pixels: a multiband raster file, or a folder of band files.

A sample is either one raster file holding all bands (EuroSAT-MS, UC Merced, JPEGs)
or one folder holding a file per band at mixed resolutions (a BigEarthNet patch),
resampled bilinearly onto the finest band's grid as TorchGeo's BigEarthNet does.
Every failure names the file and the problem.
"""

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import rasterio.errors
from rasterio.enums import Resampling
from rasterio.windows import Window
from torchgeo.datasets.utils import sort_sentinel2_bands

from geossl.data.metadata import IMAGE_SUFFIXES
from geossl.data.pixels import (
    NodataPolicy,
    apply_nodata_policy,
    apply_reflectance_offset,
    invalid_pixels,
)
from geossl.errors import (
    BandMismatchError,
    ChipSizeError,
    RasterReadError,
    reading,
)


def band_files(folder: Path) -> list[Path]:
    """The band files of a sample folder, in Sentinel-2 band order (B8A after B08).

    Args:
        folder: a folder with one raster per band named ``<anything>_<band>.<ext>``.

    Returns:
        The band files, sorted.
    """
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=sort_sentinel2_bands)


@dataclass(frozen=True)
class RasterShape:
    """The size, band count and band names of one sample, read without its pixels.

    Attributes:
        width: width in pixels (of the finest band for a sample folder).
        height: height in pixels (of the finest band for a sample folder).
        bands: number of bands.
        dtype: data type of the first band.
        band_names: band names if the data names them, else None.
    """

    width: int
    height: int
    bands: int
    dtype: str
    band_names: tuple[str, ...] | None


def describe(path: Path) -> RasterShape:
    """Describe one sample without reading its pixels.

    Band names come from the band descriptions of a raster file, or from the
    ``_<band>`` suffix of each file of a sample folder.

    Args:
        path: a raster file or a sample folder.

    Returns:
        The sample's shape and band names.

    Raises:
        RasterReadError: if a file is missing, empty or unreadable, or a sample
            folder holds no band files.
    """
    if path.is_dir():
        files = band_files(path)
        if not files:
            raise RasterReadError(path, 'sample folder holds no band files')
        shapes = []
        for file in files:
            with open_raster(file) as src:
                shapes.append((src.height, src.width, src.dtypes[0]))
        height, width, dtype = max(shapes)
        names = tuple(p.stem.rsplit('_', 1)[-1] for p in files)
        return RasterShape(width, height, len(files), dtype, names)
    with open_raster(path) as src:
        names = tuple(src.descriptions) if all(src.descriptions) else None
        return RasterShape(src.width, src.height, src.count, src.dtypes[0], names)


def open_raster(path: Path) -> rasterio.DatasetReader:
    """Open a raster, turning every failure into an error that names the file.

    Args:
        path: the raster file.

    Returns:
        The open dataset (use it as a context manager).

    Raises:
        RasterReadError: if the file is missing, empty or not a raster.
    """
    if not path.exists():
        raise RasterReadError(path, 'does not exist')
    if path.stat().st_size == 0:
        raise RasterReadError(path, 'is empty (0 bytes)')
    with reading(path, 'a raster', RasterReadError), warnings.catch_warnings():
        warnings.simplefilter('ignore', rasterio.errors.NotGeoreferencedWarning)
        return rasterio.open(path)


def _centre_window(height: int, width: int, size: int | None, path: Path) -> Window:
    if size is None:
        return Window(0, 0, width, height)
    if height < size or width < size:
        raise ChipSizeError(
            path, f'is {height} x {width} pixels, smaller than the chip size {size}'
        )
    return Window((width - size) // 2, (height - size) // 2, size, size)


def read_sample(
    path: Path,
    band_count: int,
    bands: Sequence[int] | None = None,
    size: int | None = None,
    nodata: NodataPolicy = 'error',
    reflectance_offset: float = 0.0,
) -> np.ndarray:
    """Read one sample as a float32 ``C x H x W`` array of raw values.

    Args:
        path: a raster file or a folder of band files.
        band_count: how many bands every sample of the dataset has; a sample with
            another count is refused.
        bands: 0-based positions of the bands to keep, in output order; None keeps all.
        size: crop a centred ``size x size`` chip; None keeps the whole raster.
        nodata: what to do with nodata or NaN pixels.
        reflectance_offset: added to the valid pixels (see
            :func:`~geossl.data.pixels.apply_reflectance_offset`).

    Returns:
        The pixels, float32, not normalised.

    Raises:
        RasterReadError: if a file is missing, empty or unreadable.
        BandMismatchError: if the sample does not have ``band_count`` bands.
        ChipSizeError: if the raster is smaller than ``size``.
        NodataError: if ``nodata='error'`` and any pixel is nodata or NaN.
    """
    positions = list(range(band_count)) if bands is None else list(bands)
    if path.is_dir():
        image, invalid = _read_band_folder(path, band_count, positions, size)
    else:
        image, invalid = _read_multiband(path, band_count, positions, size)
    apply_reflectance_offset(image, invalid, reflectance_offset)
    return apply_nodata_policy(image, invalid, nodata, path)


def _read_multiband(
    path: Path, band_count: int, positions: list[int], size: int | None
) -> tuple[np.ndarray, np.ndarray]:
    with open_raster(path) as src:
        if src.count != band_count:
            raise BandMismatchError(
                path, f'has {src.count} bands, expected {band_count} like the others'
            )
        window = _centre_window(src.height, src.width, size, path)
        with reading(path, 'a raster', RasterReadError):
            image = src.read([p + 1 for p in positions], window=window)
        image = image.astype(np.float32)
        return image, invalid_pixels(image, src.nodata)


def _read_band_folder(
    folder: Path, band_count: int, positions: list[int], size: int | None
) -> tuple[np.ndarray, np.ndarray]:
    files = band_files(folder)
    if len(files) != band_count:
        raise BandMismatchError(
            folder,
            f'has {len(files)} band files, expected {band_count} like the others',
        )
    sources = [open_raster(files[p]) for p in positions]
    try:
        # Every band is resampled onto the grid of the finest band.
        height = max(src.height for src in sources)
        width = max(src.width for src in sources)
        window = _centre_window(height, width, size, folder)
        bands, invalid = [], []
        for src in sources:
            with reading(src.name, 'a raster', RasterReadError):
                band = src.read(
                    1,
                    out_shape=(height, width),
                    resampling=Resampling.bilinear,
                    out_dtype=np.float32,
                )[window.toslices()]
            bands.append(band)
            invalid.append(invalid_pixels(band, src.nodata))
    finally:
        for src in sources:
            src.close()
    return np.stack(bands), np.stack(invalid)
