"""Pixel masks of clouds and other invalid pixels, given the way bands are given.

Sentinel-2 L2A products carry a scene classification band (SCL, at 20 m): 0 no data,
1 saturated or defective, 2 dark area, 3 cloud shadow, 4 vegetation, 5 not
vegetated, 6 water, 7 unclassified, 8 and 9 cloud (medium and high probability),
10 thin cirrus, 11 snow or ice. A mask is a band of such classes (or any other
integer classes), read onto the scene's grid with nearest-neighbour resampling; the
values listed as invalid mark the pixels no prediction should be made from.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import from_bounds

from geossl.data.remote import read_remote
from geossl.errors import GeosslInputError, RasterReadError, reading

#: SCL classes that are not clear ground (no data, cloud shadow, cloud, cirrus, snow).
SCL_INVALID = (0, 3, 8, 9, 10, 11)

#: A scene's mask file beside its per-band files, ``<stem>_SCL.<ext>``.
MASK_FILE_REGEX = r'^(?P<stem>.+)_SCL\.(?:tif|tiff|jp2|vrt)$'

#: The band name of a mask inside a multiband raster.
MASK_BAND = 'SCL'


@dataclass(frozen=True)
class PixelMask:
    """A band of classes whose listed values mark invalid pixels.

    Attributes:
        path: the raster holding the band.
        band: the band's 1-based index in it.
        invalid_values: the classes that mark a pixel invalid.
    """

    path: Path
    band: int = 1
    invalid_values: tuple[int, ...] = SCL_INVALID

    def with_values(self, values: list[int]) -> 'PixelMask':
        """The same band with other invalid values.

        Args:
            values: the classes that mark a pixel invalid, each in 0..255.

        Returns:
            The mask.

        Raises:
            GeosslInputError: for a value outside 0..255 or no value.
        """
        odd = [v for v in values if not 0 <= v <= 255]
        if odd or not values:
            raise GeosslInputError(
                'mask_values',
                f'is {values}; give one or more classes in 0..255 (e.g. SCL: '
                f'{" ".join(map(str, SCL_INVALID))})',
            )
        return PixelMask(self.path, self.band, tuple(values))

    def check_covers(self, crs: str, bounds: tuple[float, ...], scene: str) -> None:
        """Refuse a mask on another grid than the scene's.

        Args:
            crs: the scene's CRS, as text.
            bounds: the scene's bounds.
            scene: its name, for the message.

        Raises:
            GeosslInputError: if the mask's CRS differs or it does not cover the
                scene.
        """
        with (
            reading(self.path, 'a raster', RasterReadError),
            rasterio.open(self.path) as src,
        ):
            mask_crs, mask_bounds, res, count = src.crs, src.bounds, src.res, src.count
        if self.band > count:
            raise GeosslInputError(self.path, f'has no band {self.band}')
        if mask_crs is None or mask_crs != rasterio.crs.CRS.from_user_input(crs):
            raise GeosslInputError(
                self.path,
                f'is in {mask_crs}, not in the CRS of scene {scene} ({crs}); a mask '
                "must be on the scene's grid",
            )
        slack = max(res) / 2
        covered = (
            mask_bounds.left <= bounds[0] + slack
            and mask_bounds.bottom <= bounds[1] + slack
            and mask_bounds.right >= bounds[2] - slack
            and mask_bounds.top >= bounds[3] - slack
        )
        if not covered:
            box = ', '.join(f'{v:.0f}' for v in mask_bounds)
            extent = ', '.join(f'{v:.0f}' for v in bounds)
            raise GeosslInputError(
                self.path,
                f'covers {box}, not all of scene {scene} ({extent}); a mask must be '
                "on the scene's grid",
            )

    def invalid(self, bounds: tuple[float, ...], shape: tuple[int, int]) -> np.ndarray:
        """Which pixels of a grid the mask marks invalid.

        Args:
            bounds: the grid's (minx, miny, maxx, maxy), inside the mask.
            shape: its (height, width).

        Returns:
            A boolean ``height x width`` array.
        """
        (masked,) = self.invalid_each([bounds], shape)
        return masked

    def invalid_each(
        self, bounds: Iterable[tuple[float, ...]], shape: tuple[int, int]
    ) -> Iterator[np.ndarray]:
        """:meth:`invalid` for grids of one shape, the mask opened once for all.

        Args:
            bounds: each grid's (minx, miny, maxx, maxy), inside the mask.
            shape: their (height, width).

        Yields:
            A boolean ``height x width`` array per grid.
        """
        with (
            reading(self.path, 'a raster', RasterReadError),
            rasterio.open(self.path) as src,
        ):
            for box in bounds:
                values = read_remote(
                    [self.path],
                    lambda box=box: src.read(
                        self.band,
                        window=from_bounds(*box, src.transform),
                        out_shape=shape,
                        resampling=Resampling.nearest,
                    ),
                )
                yield np.isin(values, self.invalid_values)
