"""A region of interest: the polygons of a scene that a map should cover.

The region is read from any vector file geopandas reads, in any CRS
(:class:`~geossl.data.regions.Region`). On each scene it becomes two things: the
scene cropped to the region's bounds on the scene's pixel grid (so reading,
classifying and blending scale with the region, not the scene), and a pixel mask of
the region (pixels whose centre lies outside it are nodata). The crop is the union
of the scene's windows that touch the region, so the map of a region equals the map
of the whole scene inside it.
"""

import math
from dataclasses import replace

import shapely

from geossl.data.regions import Region
from geossl.data.scene_files import Bounds, Scene
from geossl.errors import GeosslInputError
from geossl.inference.windows import window_starts


class RegionOfInterest(Region):
    """The polygons a map should cover, and the part of each scene they need."""

    def overlaps(self, scene: Scene) -> bool:
        """Whether the region covers some of a scene.

        Args:
            scene: the scene.

        Returns:
            True if the region and the scene share some area.
        """
        region = self.in_crs(scene.crs)
        return region.intersection(shapely.box(*scene.bounds)).area > 0

    def on_scene(
        self, scene: Scene, chip_size: int, stride: int
    ) -> tuple[Scene, shapely.Geometry]:
        """The part of a scene to map, and the region in the scene's CRS.

        The part is the union of the scene's windows that touch the region's bounds,
        so each pixel of the region is blended from the same windows as when the
        whole scene is mapped, and its map is the same.

        Args:
            scene: the scene.
            chip_size: the window size.
            stride: the step between windows.

        Returns:
            The scene cropped to those windows, and the region.

        Raises:
            ChipSizeError: if the scene is smaller than a window.
            GeosslInputError: if the region misses the scene.
        """
        scene.check_fits(chip_size)
        region = self.in_crs(scene.crs)
        inside = region.intersection(shapely.box(*scene.bounds))
        if inside.area == 0:
            corners = ', '.join(f'{v:.0f}' for v in region.bounds)
            extent = ', '.join(f'{v:.0f}' for v in scene.bounds)
            raise GeosslInputError(
                self.path,
                f'misses scene {scene.name}: the region spans {corners} and the '
                f'scene {extent} ({scene.crs})',
            )
        bounds = _touching(scene, inside.bounds, chip_size, stride)
        return replace(scene, bounds=bounds), region


def _touching(scene: Scene, bounds: Bounds, size: int, stride: int) -> Bounds:
    """The union of the scene's windows that touch ``bounds``."""
    minx, _, _, maxy = scene.bounds
    xres, yres = scene.res
    height, width = scene.shape
    left, right = _span(
        math.floor((bounds[0] - minx) / xres + 1e-6),
        math.ceil((bounds[2] - minx) / xres - 1e-6),
        width,
        size,
        stride,
    )
    top, bottom = _span(
        math.floor((maxy - bounds[3]) / yres + 1e-6),
        math.ceil((maxy - bounds[1]) / yres - 1e-6),
        height,
        size,
        stride,
    )
    return (
        minx + left * xres,
        maxy - bottom * yres,
        minx + right * xres,
        maxy - top * yres,
    )


def _span(
    start: int, stop: int, length: int, size: int, stride: int
) -> tuple[int, int]:
    """First and end pixel of the windows over ``length`` that touch ``start..stop``."""
    touching = [
        s for s in window_starts(length, size, stride) if s < stop and s + size > start
    ]
    return touching[0], touching[-1] + size
