"""Read a vector file of labelled points or polygons (GeoPackage, GeoJSON, Shapefile).

This is what an analyst digitises in QGIS over a scene: one feature per label, a
class column, any CRS. Every problem names the file and says what is wrong.
"""

import warnings
from pathlib import Path

import geopandas as gpd

from geossl.errors import LabelsFileError, reading

#: Geometry types a labels file may hold.
LABEL_GEOMETRY_TYPES = frozenset({'Point', 'MultiPoint', 'Polygon', 'MultiPolygon'})


def read_labels(
    path: str | Path, class_column: str = 'class', layer: str | None = None
) -> gpd.GeoDataFrame:
    """Read labelled features and their classes.

    Features with an empty geometry or an empty class are dropped with a warning
    (digitising leaves such rows behind); multi-points become single points.

    Args:
        path: the vector file.
        class_column: the column holding each feature's class.
        layer: the layer to read from a multi-layer file (GeoPackage); None for the
            first.

    Returns:
        One row per single-part geometry: ``feature`` (its row number in the
        file), ``part`` (0 unless the feature was a multi-geometry), ``label``
        (class name as text) and ``geometry``, in the file's CRS.

    Raises:
        LabelsFileError: if the file is missing or unreadable, has no CRS, lacks the
            class column, holds other geometries than points and polygons, or has
            no usable feature.
    """
    path = Path(path)
    if not path.exists():
        raise LabelsFileError(path, 'does not exist')
    with reading(path, 'a vector file', LabelsFileError):
        features = gpd.read_file(path, layer=layer)
    if class_column not in features.columns:
        columns = [c for c in features.columns if c != features.geometry.name]
        raise LabelsFileError(
            path,
            f'has no column {class_column!r}; its columns are '
            f'{", ".join(columns) or "(none)"} (choose one as the class column)',
        )
    if features.crs is None:
        raise LabelsFileError(path, 'has no CRS; save it with one (e.g. EPSG:4326)')
    features = gpd.GeoDataFrame(
        {
            'feature': range(len(features)),
            'label': features[class_column],
        },
        geometry=features.geometry.values,
        crs=features.crs,
    )
    usable = ~features.geometry.is_empty & features.geometry.notna()
    usable &= features['label'].notna() & (features['label'].astype(str) != '')
    if not usable.all():
        warnings.warn(
            f'{path}: dropping {int((~usable).sum())} features with no geometry or '
            f'no {class_column!r}',
            UserWarning,
            stacklevel=2,
        )
    features = features[usable]
    if features.empty:
        raise LabelsFileError(
            path, f'has no feature with a geometry and a {class_column!r}'
        )
    odd = sorted(set(features.geom_type) - LABEL_GEOMETRY_TYPES)
    if odd:
        raise LabelsFileError(
            path,
            f'holds {", ".join(odd)} geometries; labels must be points or polygons',
        )
    features['label'] = features['label'].map(_class_text)
    features = features.explode(index_parts=False).reset_index(drop=True)
    features['part'] = features.groupby('feature').cumcount()
    return features


def _class_text(value: object) -> str:
    """Class values as text; whole-number floats (1.0 from a Shapefile) become '1'."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
