"""One scene read through TorchGeo, every band resampled onto the finest grid.

:class:`SceneRaster` is a TorchGeo :class:`~torchgeo.datasets.RasterDataset` over
one :class:`~geossl.data.scene_files.Scene`: it resamples every band bilinearly onto
the finest band's grid and reads chips and windows by their bounds, with the
scene's nodata and reflectance offset applied.
"""

from collections.abc import Sequence

import numpy as np
import shapely
from torchgeo.datasets import RasterDataset

from geossl.data.pixels import apply_reflectance_offset, invalid_pixels
from geossl.data.remote import read_remote
from geossl.data.scene_files import BAND_FILE_REGEX, Bounds, Scene
from geossl.errors import (
    RasterReadError,
    reading,
)


class SceneRaster(RasterDataset):
    """One scene as a TorchGeo raster dataset, every band on the finest grid.

    Attributes:
        reflectance_offset: the offset added to the valid pixels read: the one the
            scene declares, else the one given.
    """

    def __init__(
        self, scene: Scene, bands: Sequence[str], reflectance_offset: float = 0.0
    ) -> None:
        """Initialise the dataset.

        Args:
            scene: the scene to read.
            bands: names of the bands to read, in output order.
            reflectance_offset: the offset if the scene declares none.
        """
        self.scene = scene
        declared = scene.reflectance_offset
        self.reflectance_offset = reflectance_offset if declared is None else declared
        self.all_bands = list(scene.band_names)
        self.separate_files = scene.per_band
        if scene.per_band:
            self.filename_regex = BAND_FILE_REGEX
        super().__init__(paths=[scene.files[0]], res=scene.res, bands=list(bands))
        self.band_nodata = [scene.nodata[self.all_bands.index(b)] for b in self.bands]

    def footprint_from_datasource(self, datasource: object) -> shapely.Polygon:
        """The area every band covers, so samplers stay where all bands have data.

        Args:
            datasource: the open raster (unused: the scene knows its bounds).

        Returns:
            The scene's bounds as a polygon in its CRS.
        """
        return shapely.box(*self.scene.bounds)

    def read_chip(self, bounds: Bounds) -> tuple[np.ndarray, np.ndarray]:
        """Read the pixels inside ``bounds`` on the scene's grid.

        Args:
            bounds: (minx, miny, maxx, maxy) in the scene's CRS.

        Returns:
            float32 ``C x H x W`` raw values plus the reflectance offset, and the
            mask of nodata or NaN pixels.
        """
        minx, miny, maxx, maxy = bounds
        xres, yres = self.scene.res
        files = self.scene.files
        source = files[0] if len(files) == 1 else files[0].parent
        with reading(source, 'a raster', RasterReadError):
            # Remote files: bounded in time, retried, failures named (remote.py).
            image = read_remote(
                files, lambda: self[minx:maxx:xres, miny:maxy:yres]['image'].numpy()
            )
        invalid = [
            invalid_pixels(band, nodata)
            for band, nodata in zip(image, self.band_nodata, strict=True)
        ]
        invalid = np.stack(invalid)
        apply_reflectance_offset(image, invalid, self.reflectance_offset)
        return image, invalid
