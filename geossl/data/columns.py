"""What an index's columns hold, read by the index and the datasets alike.

Kept apart from :mod:`geossl.data.index`, which reads and writes GeoPackages, so
that datasets held in memory read labels and bounds without the geospatial stack.
"""

from collections.abc import Iterable

#: Separator of the labels of a multi-label sample in the ``label`` column.
LABEL_SEPARATOR = '; '

#: Columns of a sample's bounds in its own CRS.
BOUNDS_COLUMNS = ('minx', 'miny', 'maxx', 'maxy')


def class_names(labels: Iterable[str | None]) -> list[str]:
    """Sorted class names of an index's ``label`` column.

    Args:
        labels: label texts, multi-label ones joined by :data:`LABEL_SEPARATOR`.

    Returns:
        The distinct class names, sorted; class codes (``'2'``, ``'10'``) sort as
        numbers, before names.
    """
    names: set[str] = set()
    for label in labels:
        if isinstance(label, str) and label:
            names.update(label.split(LABEL_SEPARATOR))
    return sorted(names, key=_class_order)


def _class_order(name: str) -> tuple[bool, int, str]:
    return (not name.isdigit(), int(name) if name.isdigit() else 0, name)
