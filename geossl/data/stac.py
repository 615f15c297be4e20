"""STAC items as scenes: each item's band assets read where they lie.

A STAC source is an Item, an ItemCollection or a static catalog (a JSON file or an
``http(s)`` URL). Each Sentinel-2 item becomes a folder of one GDAL VRT per band
(``<item id>_<band>.vrt``, and ``<item id>_SCL.vrt`` for its scene classification),
each pointing at the band's asset at its native 10, 20 or 60 m: a local file, or a
Cloud-Optimized GeoTIFF read over HTTP through GDAL's ``/vsicurl/``, so that a
window read fetches only the blocks it needs. The folder is then a per-band scene
like any other (:mod:`geossl.data.scene`); the VRTs are kept in the cache
(``$GEOSSL_CACHE_DIR/stac``, else ``~/.cache/geossl/stac``) and open in QGIS.

Bands are found by asset key or by the asset's band name, as catalogues name them
differently: Planetary Computer by band (``B02``, ``B8A``, ``SCL``), Earth Search by
common name (``blue``, ``nir08``, ``scl``). Only GeoTIFF assets are read (Earth
Search's ``-jp2`` copies are not). The item's metadata, not its file names, gives
the scene's acquisition time (``datetime``), cloud cover (``eo:cloud_cover``) and
footprint (the geometry), and its reflectance offset
(:mod:`geossl.data.reflectance`), written into each band's VRT as
``BOA_ADD_OFFSET``, from the first of: ``earthsearch:boa_offset_applied`` true (the
files hold reflectance on the old scale already: 0); the asset's ``raster:bands``
offset and scale; ``s2:processing_baseline`` (-1000 from 04.00, else 0).
"""

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pystac
import rasterio
import rasterio.shutil
import shapely

from geossl.cache import cache_dir
from geossl.data.reflectance import OFFSET_ITEMS, offset_in_dn
from geossl.data.remote import (
    ASSET_ITEMS,
    RemoteAsset,
    check_still_there,
    read_remote,
)
from geossl.errors import GeosslInputError, reading

#: Sentinel-2 band names by the asset keys and common names of STAC catalogues.
COMMON_NAMES: Mapping[str, str] = {
    'coastal': 'B01',
    'blue': 'B02',
    'green': 'B03',
    'red': 'B04',
    'rededge1': 'B05',
    'rededge2': 'B06',
    'rededge3': 'B07',
    'nir': 'B08',
    'nir08': 'B8A',
    'nir09': 'B09',
    'cirrus': 'B10',
    'swir16': 'B11',
    'swir22': 'B12',
    'scl': 'SCL',
}

#: GDAL's settings for reading over HTTP, each one where the user has not set it. No
#: directory listing on open, only raster files fetched, retries on a busy server,
#: a connection given 10 s, a request dropped when under 1 byte/s for 30 s or over
#: 60 s in all, consecutive block ranges merged into one request, and a block cache.
#: :mod:`geossl.data.remote` bounds and retries each read on top of these.
HTTP_SETTINGS: Mapping[str, str] = {
    'GDAL_DISABLE_READDIR_ON_OPEN': 'EMPTY_DIR',
    'CPL_VSIL_CURL_ALLOWED_EXTENSIONS': '.tif,.tiff,.TIF,.TIFF',
    'GDAL_HTTP_MAX_RETRY': '3',
    'GDAL_HTTP_RETRY_DELAY': '1',
    'GDAL_HTTP_CONNECTTIMEOUT': '10',
    'GDAL_HTTP_LOW_SPEED_TIME': '30',
    'GDAL_HTTP_LOW_SPEED_LIMIT': '1',
    'GDAL_HTTP_TIMEOUT': '60',
    'GDAL_HTTP_MERGE_CONSECUTIVE_RANGES': 'YES',
    'GDAL_HTTP_MULTIPLEX': 'YES',
    'VSI_CACHE': 'TRUE',
}

#: Changes when the VRTs change, so that older ones in the cache are written anew
#: (2: they name their item and asset).
_CACHE_VERSION = b'2'

_BAND = re.compile(r'^B(0?[1-9]|1[0-2]|8A)$', re.IGNORECASE)


@dataclass(frozen=True)
class ItemScene:
    """One STAC item written as a folder of band VRTs, and what its metadata says.

    Attributes:
        folder: the folder of VRTs (a per-band scene).
        time: the acquisition time, or None.
        cloud_cover: the item's ``eo:cloud_cover`` in percent, or None.
        footprint: the item's geometry in WGS 84, or None.
    """

    folder: Path
    time: datetime | None
    cloud_cover: float | None
    footprint: shapely.Geometry | None


def is_stac(source: str | os.PathLike[str]) -> bool:
    """Whether a source names STAC JSON (a ``.json`` file or an ``http(s)`` URL).

    Args:
        source: a data source as given.

    Returns:
        True for STAC sources.
    """
    text = os.fspath(source)
    return text.startswith(('http://', 'https://')) or (
        text.lower().endswith('.json') and not Path(text).is_dir()
    )


def use_http_settings() -> None:
    """Set :data:`HTTP_SETTINGS` in the environment where the user has not.

    GDAL reads its settings from the environment at each use, in this process and
    in the DataLoader processes it starts.
    """
    for key, value in HTTP_SETTINGS.items():
        os.environ.setdefault(key, value)


def read_items(source: str) -> list[pystac.Item]:
    """The items of a STAC Item, ItemCollection or static catalog.

    Args:
        source: a JSON file or URL.

    Returns:
        The items, asset hrefs made absolute.

    Raises:
        GeosslInputError: if the source cannot be read, is not STAC, or holds no
            item.
    """
    with reading(source, 'STAC JSON'):
        data = pystac.StacIO.default().read_json(source)
    kind = data.get('type') if isinstance(data, dict) else None
    with reading(source, f'a STAC {kind}'):
        if kind == 'Feature':
            items = [pystac.Item.from_dict(data)]
        elif kind == 'FeatureCollection':
            items = list(pystac.ItemCollection.from_dict(data))
        elif kind in ('Catalog', 'Collection'):
            catalog = pystac.read_file(source)
            items = list(catalog.get_items(recursive=True))
        else:
            items = None
    if items is None:
        raise GeosslInputError(
            source,
            f'is JSON of type {kind!r}, not a STAC Item, ItemCollection, Catalog or '
            'Collection',
        )
    if not items:
        raise GeosslInputError(source, 'holds no STAC items')
    for item in items:
        base = item.get_self_href() or source
        for asset in item.assets.values():
            asset.href = _absolute(asset.href, base)
    return items


def _absolute(href: str, base: str) -> str:
    if urlparse(href).scheme in ('http', 'https', 's3', 'file'):
        return href
    if Path(href).is_absolute():
        return href
    if urlparse(base).scheme in ('http', 'https'):
        return urljoin(base, href)
    return str((Path(base).parent / href).resolve())


def gdal_path(href: str) -> str:
    """The path GDAL opens an asset href by.

    Args:
        href: an ``http(s)``, ``s3`` or ``file`` URL, or a local path.

    Returns:
        ``/vsicurl/`` or ``/vsis3/`` paths for remote files, else the local path.
    """
    url = urlparse(href)
    if url.scheme in ('http', 'https'):
        return f'/vsicurl/{href}'
    if url.scheme == 's3':
        return f'/vsis3/{url.netloc}{url.path}'
    if url.scheme == 'file':
        return url.path
    return href


def _names(key: str, asset: pystac.Asset) -> list[str]:
    """The names an asset goes by: its key, then its single band's names."""
    bands = asset.extra_fields.get('eo:bands') or asset.extra_fields.get('bands')
    names = [key]
    if isinstance(bands, list) and len(bands) == 1 and isinstance(bands[0], dict):
        names += [
            str(bands[0][field])
            for field in ('name', 'common_name', 'eo:common_name')
            if bands[0].get(field)
        ]
    return names


def band_of(key: str, asset: pystac.Asset) -> str | None:
    """The Sentinel-2 band (or ``SCL``) a GeoTIFF asset holds, if any.

    Args:
        key: the asset's key in its item.
        asset: the asset.

    Returns:
        ``B01`` ... ``B12``, ``B8A`` or ``SCL``; None for other assets.
    """
    media = (asset.media_type or '').lower()
    path = urlparse(asset.href).path.lower()
    tiff = 'tiff' in media if media else path.endswith(('.tif', '.tiff'))
    if not tiff:
        return None
    for name in _names(key, asset):
        if match := _BAND.match(name):
            number = match[1].upper()
            return f'B{number.zfill(2)}' if number != '8A' else 'B8A'
        if name.upper() == 'SCL' or name.lower() in COMMON_NAMES:
            return COMMON_NAMES.get(name.lower(), 'SCL')
    return None


def _baseline_offset(item: pystac.Item) -> float | None:
    baseline = item.properties.get('s2:processing_baseline')
    if baseline is None:
        return None
    try:
        number = float(baseline)
    except (TypeError, ValueError):
        raise GeosslInputError(
            f'STAC item {item.id}',
            f's2:processing_baseline is {baseline!r}, not a number like 04.00',
        ) from None
    return -1000.0 if number >= 4 else 0.0


def asset_offset(item: pystac.Item, asset: pystac.Asset) -> float | None:
    """The reflectance offset of one band asset, as its item declares it.

    Args:
        item: the item.
        asset: one of its band assets.

    Returns:
        The offset in digital numbers, or None where the item says nothing.
    """
    if item.properties.get('earthsearch:boa_offset_applied') is True:
        return 0.0
    bands = asset.extra_fields.get('raster:bands') or asset.extra_fields.get('bands')
    if isinstance(bands, list) and bands and isinstance(bands[0], dict):
        offset, scale = bands[0].get('offset'), bands[0].get('scale')
        if not isinstance(scale, int | float):
            scale = None
        if isinstance(offset, int | float):
            return offset_in_dn(offset, scale)
    return _baseline_offset(item)


def _write_vrt(source: RemoteAsset, path: Path, offset: float | None) -> None:
    """A VRT of one band asset, what it reads and its offset as metadata items."""
    read_remote(
        [source],
        lambda: rasterio.shutil.copy(gdal_path(source.href), path, driver='VRT'),
    )
    tree = ElementTree.parse(path)
    metadata = tree.getroot().find('Metadata')
    if metadata is None:
        metadata = ElementTree.SubElement(tree.getroot(), 'Metadata')
    named = (source.item, source.asset, source.href)
    items = dict(zip(ASSET_ITEMS, named, strict=True))
    if offset is not None:
        items[OFFSET_ITEMS[0]] = f'{offset:g}'
    for key, value in items.items():
        ElementTree.SubElement(metadata, 'MDI', key=key).text = value
    tree.write(path)


def _stem(item: pystac.Item) -> str:
    return re.sub(r'[^A-Za-z0-9_.-]+', '-', item.id)


def item_scene(item: pystac.Item) -> ItemScene:
    """Write (or find in the cache) one item's band VRTs.

    Args:
        item: a Sentinel-2 item, asset hrefs absolute.

    Returns:
        Its folder and metadata.

    Raises:
        GeosslInputError: if the item has no Sentinel-2 band asset, or an asset
            cannot be read (one line naming the asset); nothing is left behind.
    """
    bands: dict[str, tuple[str, pystac.Asset]] = {}
    for key, asset in item.assets.items():
        band = band_of(key, asset)
        if band is not None and band not in bands:
            bands[band] = (key, asset)
    if not any(band != 'SCL' for band in bands):
        raise GeosslInputError(
            f'STAC item {item.id}',
            'has no Sentinel-2 band assets in GeoTIFF (its assets: '
            f'{", ".join(item.assets) or "none"})',
        )
    digest = hashlib.sha256(
        json.dumps(item.to_dict(include_self_link=False), sort_keys=True).encode()
        + _CACHE_VERSION
    ).hexdigest()[:16]
    folder = cache_dir('stac') / f'{_stem(item)}-{digest}'
    if folder.is_dir():
        # The VRTs were written from assets that may have gone since.
        check_still_there(
            RemoteAsset(item.id, key, a.href) for key, a in bands.values()
        )
    else:
        _write_item(item, bands, folder)
    time = item.datetime or item.common_metadata.start_datetime
    cloud = item.properties.get('eo:cloud_cover')
    return ItemScene(
        folder,
        time,
        float(cloud) if isinstance(cloud, int | float) else None,
        shapely.geometry.shape(item.geometry) if item.geometry else None,
    )


def _write_item(
    item: pystac.Item, bands: Mapping[str, tuple[str, pystac.Asset]], folder: Path
) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f'.{folder.name}.', dir=folder.parent))
    try:
        for band, (key, asset) in bands.items():
            offset = None if band == 'SCL' else asset_offset(item, asset)
            source = RemoteAsset(item.id, key, asset.href)
            with reading(str(source), 'a raster'):
                _write_vrt(source, partial / f'{_stem(item)}_{band}.vrt', offset)
        with contextlib.suppress(OSError):
            # Another process may have written the same item meanwhile.
            partial.rename(folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    if not folder.is_dir():
        raise GeosslInputError(folder.parent, 'cannot be written (the STAC cache)')


def stac_scenes(source: str) -> Iterator[ItemScene]:
    """Each item of a STAC source as a folder of band VRTs (see the module).

    Args:
        source: a STAC Item, ItemCollection or static catalog, file or URL.

    Yields:
        Each item's folder and metadata, in the source's order.

    Raises:
        GeosslInputError: as :func:`read_items` and :func:`item_scene` do.
    """
    use_http_settings()
    for item in read_items(source):
        yield item_scene(item)
