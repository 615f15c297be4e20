"""Vector polygons of a class map, for GIS work on the classes themselves."""

from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import rasterio
import shapely
from rasterio.features import shapes

from geossl.atomic import atomic_output
from geossl.inference.map_writer import NODATA_CLASS


def save_class_polygons(
    class_map: str | Path, path: str | Path, class_names: Sequence[str]
) -> int:
    """Polygonise a class map into a GeoPackage layer ``classes``.

    Each connected region of one class becomes a polygon with ``class_id`` and
    ``class``; nodata becomes nothing. The map is read whole (one byte per pixel).

    Args:
        class_map: the class-map GeoTIFF.
        path: the ``.gpkg`` to write (written whole, then renamed).
        class_names: the class names, by class value.

    Returns:
        The number of polygons.
    """
    path = Path(path)
    with rasterio.open(class_map) as src:
        classes = src.read(1)
        regions = list(
            shapes(classes, mask=classes != NODATA_CLASS, transform=src.transform)
        )
        crs = src.crs
    values = [int(value) for _, value in regions]
    frame = gpd.GeoDataFrame(
        {'class_id': values, 'class': [class_names[v] for v in values]},
        geometry=[shapely.geometry.shape(geometry) for geometry, _ in regions],
        crs=crs,
    )
    with atomic_output(path) as partial:
        frame.to_file(partial, layer='classes', driver='GPKG')
    return len(frame)
