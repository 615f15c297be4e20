"""STAC items over real Sentinel-2 COGs, and an HTTP server that serves them.

The items carry the 18SVG crop's bands as tiled GeoTIFFs, named the two
ways catalogues name them: Earth Search by common name (``blue``, ``nir08``,
``scl``, offsets in ``raster:bands``), Planetary Computer by band (``B02``, ``B8A``,
``SCL``, the offset told by ``s2:processing_baseline``). The server answers HTTP
range requests, as object stores do, counts the bytes it sends, and can answer a
STAC API's item search. It can also misbehave as real servers do (:class:`Faults`):
answer range requests with 503 or 404, reset the connection half-way through a
body, or stop answering.
"""

import functools
import http.server
import json
import random
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pystac
import rasterio
import shapely

from geossl.data.metadata import footprint_wgs84
from geossl.data.stac import COMMON_NAMES

#: The id of the item :func:`served_item` makes.
ITEM = 'S2B_18SVG_20230502_0_L2A'

#: The Earth Search key of each band.
EARTH_SEARCH_KEYS = {band: key for key, band in COMMON_NAMES.items()}


def write_tiled_bands(source: Path, folder: Path, add: int = 0) -> dict[str, Path]:
    """The band files of ``source`` as tiled GeoTIFFs of 64 px blocks, DN + ``add``.

    Blocks this small let a window read fetch a small part of a 258 px crop, as
    512 px blocks do of a 10,980 px tile.

    Returns:
        Each band's file, by band name (B01 ... B12, B8A).
    """
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for path in sorted(source.glob('*_B*.tif')):
        band = path.stem.rsplit('_', 1)[-1]
        with rasterio.open(path) as src:
            data = src.read()
            profile = src.profile | {
                'driver': 'GTiff',
                'tiled': True,
                'blockxsize': 64,
                'blockysize': 64,
                'compress': 'deflate',
                'nodata': 0,
            }
        data = np.where(data > 0, data + add, 0).astype(data.dtype)
        files[band] = folder / f'{band}.tif'
        with rasterio.open(files[band], 'w', **profile) as dst:
            dst.write(data)
    return files


def write_scl(like: Path, path: Path, cloud: slice) -> Path:
    """An SCL COG at 20 m: vegetation (4), and cloud (9) over rows ``cloud``."""
    with rasterio.open(like) as src:
        profile = src.profile
        shape = (src.height // 2, src.width // 2)
        transform = src.transform @ src.transform.scale(2, 2)
    data = np.full((1, *shape), 4, dtype=np.uint8)
    data[0, cloud] = 9
    profile |= {'dtype': 'uint8', 'height': shape[0], 'width': shape[1]}
    with rasterio.open(path, 'w', **profile | {'transform': transform}) as dst:
        dst.write(data)
    return path


def s2_item(
    item_id: str,
    files: dict[str, Path | str],
    style: str,
    when: datetime = datetime(2016, 1, 12, 16, 6, 52, tzinfo=UTC),
    baseline: str = '02.01',
    cloud_cover: float = 3.5,
    like: Path | None = None,
) -> pystac.Item:
    """A Sentinel-2 item over ``files``, named the ``earth-search`` or ``pc`` way.

    Its geometry is the extent of ``like`` (a local band file), else of the first
    file.
    """
    with rasterio.open(like or next(iter(files.values()))) as src:
        crs, bounds = src.crs.to_string(), tuple(src.bounds)
    geometry = shapely.geometry.mapping(footprint_wgs84(crs, bounds))
    item = pystac.Item(
        item_id,
        geometry,
        list(shapely.geometry.shape(geometry).bounds),
        when,
        {'eo:cloud_cover': cloud_cover, 's2:processing_baseline': baseline},
    )
    media = pystac.MediaType.COG
    for band, href in files.items():
        if style == 'earth-search':
            raster = {'nodata': 0, 'data_type': 'uint16'}
            if band != 'SCL':
                offset = -0.1 if float(baseline) >= 4 else 0.0
                raster |= {'scale': 0.0001, 'offset': offset}
            key = EARTH_SEARCH_KEYS[band]
            fields = {'raster:bands': [raster]}
        else:
            key = band
            fields = {}
        if band != 'SCL':
            fields['eo:bands'] = [{'name': key}]
        item.add_asset(
            key,
            pystac.Asset(
                str(href), media_type=media, roles=['data'], extra_fields=fields
            ),
        )
    thumbnail = pystac.Asset('preview.png', media_type=pystac.MediaType.PNG)
    item.add_asset('thumbnail', thumbnail)
    return item


@dataclass
class Faults:
    """Faults a server injects into the range requests of files under ``prefix``.

    Attributes:
        mode: ``503`` (busy), ``404`` (gone), ``reset`` (the connection dropped
            after half the body) or ``stall`` (no answer until the server stops).
        rate: the share of range requests that fail, drawn with ``seed``.
        seed: the seed of the draws.
        prefix: the request paths that can fail.
        after: range requests of each path answered before faults start (1: the
            header GDAL reads on opening a file, so that the failure comes while
            reading pixels).
        injected: how many requests failed so far.
    """

    mode: str
    rate: float = 1.0
    seed: int = 0
    prefix: str = '/cogs/'
    after: int = 0
    injected: int = 0
    _draws: random.Random = field(init=False, repr=False)
    _seen: dict[str, int] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._draws = random.Random(self.seed)

    def strike(self, path: str, ranged: bool) -> str | None:
        """The fault of one request, or None to answer it."""
        if not ranged or not path.startswith(self.prefix):
            return None
        self._seen[path] = self._seen.get(path, 0) + 1
        if self._seen[path] <= self.after or self._draws.random() >= self.rate:
            return None
        self.injected += 1
        return self.mode


def served_item(url: str, files: dict[str, Path], root: Path) -> pystac.Item:
    """An Earth Search item (baseline 05.09) of ``files`` served from ``root`` at ``url``."""
    hrefs = {band: f'{url}/{path.relative_to(root)}' for band, path in files.items()}
    when = datetime(2023, 5, 2, 15, 57, 1, tzinfo=UTC)
    item = s2_item(ITEM, hrefs, 'earth-search', when, '05.09', like=files['B02'])
    item.collection_id = 'sentinel-2-l2a'
    return item


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with byte ranges; a STAC API's item search if given items."""

    def __init__(self, *args, server_state, **kwargs):
        self.state = server_state
        super().__init__(*args, **kwargs)

    def log_message(self, *args):
        pass

    def _json(self, payload):
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        if self.path.split('?')[0] != '/search':
            self.send_error(404)
            return
        length = int(self.headers.get('Content-Length', 0))
        self._json(self.state.search(json.loads(self.rfile.read(length) or b'{}')))

    def do_GET(self):
        if self.state.items is not None and self.path.split('?')[0] in ('/', ''):
            self._json(self.state.landing(f'http://{self.headers["Host"]}'))
            return
        super().do_GET()

    def send_head(self):
        if self.path.startswith('/slow/'):
            # A server that does not answer in time.
            time.sleep(self.state.delay)
        path = Path(self.translate_path(self.path.split('?')[0]))
        ranged = 'Range' in self.headers
        fault = self.state.faults and self.state.faults.strike(self.path, ranged)
        if fault == 'stall':
            self.state.stopped.wait()
            self.close_connection = True
            return None
        if fault in ('503', '404'):
            self.send_error(int(fault))
            return None
        self.reset = fault == 'reset'
        if not path.is_file():
            self.send_error(404)
            return None
        size = path.stat().st_size
        handle = path.open('rb')
        match = re.match(r'bytes=(\d+)-(\d*)$', self.headers.get('Range', ''))
        if match:
            start = int(match[1])
            end = min(int(match[2]) if match[2] else size - 1, size - 1)
            self.send_response(206)
            self.send_header('Content-Range', f'bytes {start}-{end}/{size}')
            handle.seek(start)
        else:
            start, end = 0, size - 1
            self.send_response(200)
        self.send_header('Content-Length', str(end - start + 1))
        self.send_header('Accept-Ranges', 'bytes')
        self.end_headers()
        self.remaining = end - start + 1
        return handle

    def copyfile(self, source, outputfile):
        data = source.read(self.remaining)
        self.state.sent[self.path] = self.state.sent.get(self.path, 0) + len(data)
        self.state.requests += 1
        if self.reset:
            # Half the body, then a TCP reset (linger 0), as a dropped link gives.
            outputfile.write(data[: len(data) // 2])
            outputfile.flush()
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0)
            )
            self.close_connection = True
            raise ConnectionResetError('fault injected')
        outputfile.write(data)


class ServerState:
    """What the server serves and has sent.

    Attributes:
        sent: bytes of files sent per request path.
        requests: requests for files answered.
        items: the items a STAC API search finds, or None for no API.
        delay: seconds before answering a path under ``/slow/``.
        faults: the faults it injects, or None.
        stopped: set when the server stops (a stalled request then ends).
    """

    def __init__(self, items: list[pystac.Item] | None) -> None:
        self.sent: dict[str, int] = {}
        self.requests = 0
        self.items = items
        self.delay = 3.0
        self.faults: Faults | None = None
        self.stopped = threading.Event()

    def landing(self, root: str) -> dict:
        return {
            'type': 'Catalog',
            'id': 'test-api',
            'description': 'A STAC API on 127.0.0.1',
            'stac_version': '1.0.0',
            'conformsTo': [
                'https://api.stacspec.org/v1.0.0/core',
                'https://api.stacspec.org/v1.0.0/item-search',
                'https://api.stacspec.org/v1.0.0/item-search#query',
            ],
            'links': [
                {'rel': 'self', 'href': root, 'type': 'application/json'},
                {'rel': 'root', 'href': root, 'type': 'application/json'},
                {
                    'rel': 'search',
                    'href': f'{root}/search',
                    'type': 'application/geo+json',
                    'method': 'POST',
                },
            ],
        }

    def search(self, request: dict) -> dict:
        """The items in the request's bbox, collections and cloud limit."""
        found = []
        limit = request.get('query', {}).get('eo:cloud_cover', {}).get('lte')
        box = shapely.box(*request['bbox']) if 'bbox' in request else None
        for item in self.items or []:
            if box is not None and not box.intersects(
                shapely.geometry.shape(item.geometry)
            ):
                continue
            if limit is not None and item.properties['eo:cloud_cover'] > limit:
                continue
            if item.collection_id not in request.get(
                'collections', [item.collection_id]
            ):
                continue
            found.append(item.to_dict())
        return {'type': 'FeatureCollection', 'features': found, 'links': []}

    def bytes_sent(self, suffix: str = '') -> int:
        return sum(n for path, n in self.sent.items() if path.endswith(suffix))


class _QuietServer(http.server.ThreadingHTTPServer):
    """A threading server that does not print the connections its faults drop."""

    daemon_threads = True

    def handle_error(self, request, client_address):
        pass


@contextmanager
def http_server(
    root: Path, items: list[pystac.Item] | None = None
) -> Iterator[tuple[str, ServerState]]:
    """Serve ``root`` (and a STAC API over ``items``) on 127.0.0.1.

    Yields:
        The server's URL and its state.
    """
    state = ServerState(items)
    handler = functools.partial(_RangeHandler, directory=str(root), server_state=state)
    server = _QuietServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f'http://127.0.0.1:{server.server_address[1]}', state
    finally:
        state.stopped.set()
        server.shutdown()
        server.server_close()
