"""Regions: the polygons of a vector file, in any CRS, as one geometry.

A map's region of interest (:mod:`geossl.inference.region`) and the regions a split
holds out (:mod:`geossl.data.splits`) are read alike, from any vector file geopandas
reads.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Self

import geopandas as gpd
import shapely

from geossl.errors import GeosslInputError, reading

#: Geometry types a region may hold.
REGION_GEOMETRY_TYPES = frozenset({'Polygon', 'MultiPolygon'})


@dataclass(frozen=True)
class Region:
    """The polygons of a vector file, as one geometry.

    Attributes:
        path: the file read.
        polygons: the file's polygons, one per feature, in its CRS.
    """

    path: Path
    polygons: gpd.GeoSeries

    @classmethod
    def read(cls, path: str | Path, layer: str | None = None) -> Self:
        """Read the polygons of a vector file.

        Args:
            path: the file (GeoPackage, GeoJSON, Shapefile, ...).
            layer: the layer of a multi-layer file; None for the first.

        Returns:
            The region.

        Raises:
            GeosslInputError: if the file is missing or unreadable, has no CRS, or
                holds no polygons or other geometries than polygons.
        """
        path = Path(path)
        if not path.exists():
            raise GeosslInputError(path, 'does not exist')
        with reading(path, 'a vector file'):
            features = gpd.read_file(path, layer=layer)
        if features.crs is None:
            raise GeosslInputError(path, 'has no CRS; save it with one')
        polygons = features.geometry[
            features.geometry.notna() & ~features.geometry.is_empty
        ]
        odd = sorted(set(polygons.geom_type) - REGION_GEOMETRY_TYPES)
        if odd or polygons.empty:
            found = ', '.join(odd) + ' geometries' if odd else 'no geometry'
            raise GeosslInputError(path, f'holds {found}; a region must be polygons')
        return cls(path, polygons.make_valid())

    def in_crs(self, crs: str) -> shapely.Geometry:
        """The region as one geometry in a CRS.

        Args:
            crs: the CRS.

        Returns:
            The union of its polygons, reprojected.
        """
        return shapely.union_all(self.polygons.to_crs(crs).values)
