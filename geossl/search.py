"""Search a STAC API for scenes and keep them as an ItemCollection file.

The file is what ``geossl index``, ``fit --data.root`` and ``map`` read (see
:mod:`geossl.data.stac`): a user can look at it, drop items, and pass it on.
"""

import json
from pathlib import Path
from typing import Literal

import pystac
import shapely

from geossl.atomic import atomic_output, check_output
from geossl.errors import GeosslInputError, reading
from geossl.inference.region import RegionOfInterest


def _sign_modifier(sign: bool) -> object:
    if not sign:
        return None
    try:
        import planetary_computer
    except ImportError:
        raise GeosslInputError(
            'sign',
            'needs the planetary-computer package: pip install '
            '"geossl[planetary-computer]"',
        ) from None
    return planetary_computer.sign_inplace


def _check(bbox: list[float] | None, max_cloud: float | None, max_items: int) -> None:
    if bbox is not None:
        on_earth = len(bbox) == 4 and (
            -180 <= bbox[0] <= 180
            and -180 <= bbox[2] <= 180
            and -90 <= bbox[1] < bbox[3] <= 90
        )
        if not on_earth:
            raise GeosslInputError(
                'bbox',
                f'is {bbox}; give west, south, east, north in degrees, e.g. '
                '[-76.1, 37.5, -75.9, 37.7]',
            )
    if max_cloud is not None and not 0 <= max_cloud <= 100:
        raise GeosslInputError('max_cloud', f'is {max_cloud:g}; it must be in 0..100')
    if max_items <= 0:
        raise GeosslInputError('max_items', f'is {max_items}; it must be > 0')


def _region(roi: str | None) -> dict[str, object] | None:
    if roi is None:
        return None
    region = RegionOfInterest.read(roi).in_crs('EPSG:4326')
    return shapely.geometry.mapping(region)


def stac(
    action: Literal['search'],
    url: str,
    output: str,
    collection: str = 'sentinel-2-l2a',
    bbox: list[float] | None = None,
    roi: str | None = None,
    datetime: str | None = None,
    max_cloud: float | None = None,
    max_items: int = 100,
    sign: bool = False,
    overwrite: bool = False,
) -> pystac.ItemCollection:
    """Search a STAC API for scenes and write them as an ItemCollection JSON file.

    The file lists each item with its band assets; geossl index, fit --data.root
    and map read it, fetching only the pixels they need.

    Args:
        action: search: query the API and write what it finds.
        url: The STAC API, e.g. https://earth-search.aws.element84.com/v1 or
            https://planetarycomputer.microsoft.com/api/stac/v1.
        output: The ItemCollection .json to write.
        collection: The collection to search.
        bbox: West, south, east, north in degrees, e.g. [-76.1, 37.5, -75.9, 37.7].
        roi: A vector file of polygons (any CRS) the items must intersect, instead
            of or with --bbox.
        datetime: A date or range, as STAC APIs take it: 2024-05/2024-09,
            2024-06-01, 2024-05-01T00:00:00Z/..
        max_cloud: Keep items whose eo:cloud_cover is at most this many percent.
        max_items: Stop after this many items.
        sign: Sign asset URLs for Microsoft Planetary Computer (needs the
            planetary-computer package; signatures expire after about an hour, so
            search again before a long run).
        overwrite: Replace an existing output.

    Returns:
        The items written.
    """
    from pystac_client import Client

    _check(bbox, max_cloud, max_items)
    path = Path(output)
    check_output(path, overwrite)
    intersects = _region(roi)
    modifier = _sign_modifier(sign)
    with reading(url, 'a STAC API'):
        client = Client.open(url, modifier=modifier)
        search = client.search(
            collections=[collection],
            bbox=bbox,
            intersects=intersects,
            datetime=datetime,
            query={'eo:cloud_cover': {'lte': max_cloud}}
            if max_cloud is not None
            else None,
            max_items=max_items,
        )
        items = list(search.items())
    # An API without the query extension ignores the cloud limit: apply it here.
    if max_cloud is not None:
        items = [
            item
            for item in items
            if item.properties.get('eo:cloud_cover', 0) <= max_cloud
        ]
    if not items:
        asked = ', '.join(
            f'{name} {value}'
            for name, value in (
                ('collection', collection),
                ('bbox', bbox),
                ('roi', roi),
                ('datetime', datetime),
                ('max_cloud', max_cloud),
            )
            if value is not None
        )
        raise GeosslInputError(url, f'found no items ({asked}); nothing written')
    found = pystac.ItemCollection(items)
    with atomic_output(path) as partial:
        partial.write_text(json.dumps(found.to_dict(transform_hrefs=False)))
    dates = sorted(item.datetime.date().isoformat() for item in items if item.datetime)
    span = ''
    if dates:
        span = f', {dates[0]}' + (f' to {dates[-1]}' if dates[-1] != dates[0] else '')
    print(f'Found {len(items)} {collection} items{span} -> {path}')
    return found
