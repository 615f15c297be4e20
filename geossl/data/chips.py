"""Where a scene's chips go: around the labels, and on a grid elsewhere.

Chips are aligned to the scene's finest grid:

* labelled chips are centred on each labelled point (moved inside the scene when the
  point is near its edge), and cover each labelled polygon with the grid chips whose
  centre lies inside it (or one chip on the polygon when it is smaller than a chip);
* unlabelled chips are the cells of TorchGeo's
  :class:`~torchgeo.samplers.GriddedPatchSampler` that overlap no labelled chip, so no
  labelled pixel is seen again as unlabelled data.
"""

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import shapely
from torchgeo.samplers import GriddedPatchSampler

from geossl.data.scene_files import Bounds, Scene
from geossl.data.scene_raster import SceneRaster


@dataclass(frozen=True)
class Chip:
    """One chip of a scene, before it becomes a row of the index.

    Attributes:
        sample_id: ``<scene>/<grid cell>``, or ``<scene>/label-<feature>...``.
        scene: the position of its scene among the dataset's scenes.
        bounds: (minx, miny, maxx, maxy) in the scene's CRS.
        label: its class, or None for an unlabelled chip.
        feature: the labels file's feature it was cut for, or None.
        cloud_fraction: the share of its pixels the scene's mask marks invalid,
            or None where the scene has no mask.
    """

    sample_id: str
    scene: int
    bounds: Bounds
    label: str | None = None
    feature: int | None = None
    cloud_fraction: float | None = None


class ChipGrid:
    """Chip positions on one scene's pixel grid."""

    def __init__(self, scene: Scene, size: int) -> None:
        self.scene = scene
        self.width = size * scene.res[0]
        self.height = size * scene.res[1]
        scene.check_fits(size)

    def around(self, x: float, y: float) -> Bounds:
        """The chip centred on (x, y), snapped to the grid and moved inside the scene.

        Returns:
            The chip's bounds.
        """
        minx, miny, maxx, maxy = self.scene.bounds
        xres, yres = self.scene.res
        left = minx + round((x - self.width / 2 - minx) / xres) * xres
        bottom = miny + round((y - self.height / 2 - miny) / yres) * yres
        left = min(max(left, minx), maxx - self.width)
        bottom = min(max(bottom, miny), maxy - self.height)
        return left, bottom, left + self.width, bottom + self.height

    def cell_id(self, bounds: Bounds) -> str:
        """Name a grid cell by its row (from the top) and column.

        Returns:
            ``r<row>c<column>`` in pixels of the scene grid.
        """
        minx, _, _, maxy = self.scene.bounds
        column = round((bounds[0] - minx) / self.scene.res[0])
        row = round((maxy - bounds[3]) / self.scene.res[1])
        return f'r{row}c{column}'


def grid_cells(raster: SceneRaster, size: int, stride: int) -> list[Bounds]:
    """The cells of TorchGeo's gridded sampler, tiling the scene from its top-left.

    The region handed to the sampler is cut to a whole number of strides, so no
    cell overhangs the area every band covers and cells start at the top-left pixel.
    """
    minx, _, _, maxy = raster.scene.bounds
    height, width = raster.scene.shape
    xres, yres = raster.scene.res
    used_width = ((width - size) // stride * stride + size) * xres
    used_height = ((height - size) // stride * stride + size) * yres
    region = shapely.box(minx, maxy - used_height, minx + used_width, maxy)
    sampler = GriddedPatchSampler(raster, size=size, stride=stride, roi=region)
    return [(x.start, y.start, x.stop, y.stop) for x, y in sampler]


def cells_inside(cells: list[Bounds], scene: Scene) -> list[Bounds]:
    """The cells inside a scene's footprint (where its STAC item has data)."""
    footprint = gpd.GeoSeries([scene.footprint], crs=4326).to_crs(scene.crs).iloc[0]
    # Half a pixel of slack for the rounding of the footprint's reprojection.
    footprint = footprint.buffer(max(scene.res) / 2)
    boxes = shapely.box(*np.asarray(cells).T) if cells else []
    inside = shapely.covers(footprint, boxes)
    return [cell for cell, keep in zip(cells, inside, strict=True) if keep]


def label_chips(
    position: int,
    grid: ChipGrid,
    cells: list[Bounds],
    labels: gpd.GeoDataFrame,
) -> list[Chip]:
    """Labelled chips of one scene."""
    scene = grid.scene
    area = shapely.box(*scene.bounds)
    labels = labels.to_crs(scene.crs)
    inside = labels.intersects(area)
    chips = []
    polygons = labels[inside & (labels.geom_type == 'Polygon')]
    if len(polygons):
        centres = gpd.GeoDataFrame(
            {'cell': range(len(cells))},
            geometry=[shapely.box(*cell).centroid for cell in cells],
            crs=scene.crs,
        )
        covered = centres.sjoin(polygons, predicate='within')
        for cell, feature, label in zip(
            covered['cell'], covered['feature'], covered['label'], strict=True
        ):
            bounds = cells[cell]
            sample_id = f'{scene.name}/label-{feature}/{grid.cell_id(bounds)}'
            chips.append(Chip(sample_id, position, bounds, label, int(feature)))
        small = polygons[~polygons['feature'].isin(covered['feature'])]
    else:
        small = polygons
    points = labels[inside & (labels.geom_type == 'Point')]
    for row in (*small.itertuples(), *points.itertuples()):
        centre = row.geometry.representative_point()
        if not area.contains(centre):
            continue
        bounds = grid.around(centre.x, centre.y)
        sample_id = f'{scene.name}/label-{row.feature}-{row.part}'
        chips.append(Chip(sample_id, position, bounds, row.label, int(row.feature)))
    # Unique ids keep repeated polygon cells of one multi-polygon from doubling.
    return list({chip.sample_id: chip for chip in chips}.values())


def unlabelled_chips(
    position: int, grid: ChipGrid, cells: list[Bounds], labelled: list[Chip]
) -> list[Chip]:
    """Grid cells of one scene that overlap no labelled chip."""
    xres, yres = grid.scene.res
    # Shrink labelled chips by half a pixel so that cells merely touching them stay.
    taken = shapely.STRtree(
        [
            shapely.box(
                minx + xres / 2, miny + yres / 2, maxx - xres / 2, maxy - yres / 2
            )
            for minx, miny, maxx, maxy in (chip.bounds for chip in labelled)
        ]
    )
    boxes = [shapely.box(*cell) for cell in cells]
    overlapping = set(taken.query(boxes, predicate='intersects')[0].tolist())
    return [
        Chip(f'{grid.scene.name}/{grid.cell_id(cell)}', position, cell)
        for i, cell in enumerate(cells)
        if i not in overlapping
    ]
