"""Reads of remote rasters that end in bounded time, retry faults and name what failed.

GDAL reads a STAC item's Cloud-Optimized GeoTIFFs over HTTP (``/vsicurl/``) and
retries what it knows to be transient (HTTP 429 and 5xx), but not a connection reset
half-way through a body, whose short block it caches, and a server that stops
answering stalls it for ``GDAL_HTTP_TIMEOUT`` each time it asks again. Every read
of a scene made from a STAC item goes through :func:`read_remote`, which:

* gives up a read that takes longer than ``GEOSSL_READ_TIMEOUT`` seconds (default
  120), and stops: the read runs in a thread of its own, so that the process, and
  a stop request (SIGTERM, Ctrl-C), never waits on a stalled server (a stalled
  read is not retried: its thread still holds the open files);
* retries a read that fails up to ``GEOSSL_READ_TRIES`` times per asset (default
  4), 1, 2, 4 ... seconds apart, after dropping what GDAL cached of that asset
  (``rasterio.cache.invalidate``; with rasterio older than 1.5, which lacks it, a
  reset is reported, not retried);
* names what failed: the item, the asset and its URL, the HTTP status where GDAL or
  one probe of the URL gives one, and the tries, as a
  :class:`~geossl.errors.NetworkError` (exit status 75: a scheduler may retry).

The item and asset of each band file are in its VRT (:mod:`geossl.data.stac` writes
them as metadata items ``STAC_ITEM``, ``STAC_ASSET`` and ``STAC_HREF``). Reads
retried and GDAL's own retries are counted (:func:`retries`) for the run to report.
"""

import functools
import logging
import os
import re
import threading
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from geossl.errors import GeosslInputError, NetworkError

#: Seconds a read may take, over all the requests it makes, by default.
READ_TIMEOUT = 120.0

#: Tries of a read (the first and its retries), by default.
READ_TRIES = 4

#: Metadata items of a band VRT that say which STAC asset it reads.
ASSET_ITEMS = ('STAC_ITEM', 'STAC_ASSET', 'STAC_HREF')

#: GDAL's warning when it retries an HTTP request, as rasterio logs it (opening a
#: file, in rasterio._env, or reading one, in rasterio._err).
_GDAL_RETRY = re.compile(r'HTTP error code: (\d+) - (\S+?)\.? Retrying')

#: A failed block read in GDAL's messages: the file it was reading.
_FAILED_FILE = re.compile(r'([^\s/:]+), band \d+: IReadBlock failed')


@dataclass(frozen=True)
class RemoteAsset:
    """The STAC asset a band file reads.

    Attributes:
        item: the item's id.
        asset: the asset's key.
        href: its URL (or path).
    """

    item: str
    asset: str
    href: str

    @property
    def remote(self) -> bool:
        """Whether it is read over a network."""
        return self.href.startswith(('http://', 'https://', 's3://'))

    def __str__(self) -> str:
        return f'STAC item {self.item} asset {self.asset} ({self.href})'

    @property
    def item_name(self) -> str:
        """The item, for a failure of several of its assets at once."""
        return f'STAC item {self.item}'


@functools.lru_cache(maxsize=1024)
def asset_of(path: Path) -> RemoteAsset | None:
    """The STAC asset a band VRT reads, or None for any other file.

    Args:
        path: a raster file.

    Returns:
        What its metadata items say.
    """
    if path.suffix.lower() != '.vrt':
        return None
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError):
        return None
    found = {
        item.get('key'): item.text or ''
        for item in root.iterfind('Metadata/MDI')
        if item.get('key') in ASSET_ITEMS
    }
    if len(found) < len(ASSET_ITEMS):
        return None
    return RemoteAsset(*(found[key] for key in ASSET_ITEMS))


class _Retries(logging.Handler):
    """Counts GDAL's HTTP retries, and the last status of each URL, from its log."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.gdal = 0
        self.status: dict[str, int] = {}
        self.reads = 0

    def emit(self, record: logging.LogRecord) -> None:
        match = _GDAL_RETRY.search(record.getMessage())
        if match:
            self.gdal += 1
            self.status[match[2]] = int(match[1])


_RETRIES = _Retries()
logging.getLogger('rasterio').addHandler(_RETRIES)


def retries() -> str | None:
    """The line that says how many reads and requests were retried since last asked.

    Returns:
        The line, or None if none was.
    """
    reads, requests = _RETRIES.reads, _RETRIES.gdal
    _RETRIES.reads = _RETRIES.gdal = 0
    if not (reads or requests):
        return None
    return (
        f'Retried {reads} reads of remote files (geossl) and '
        f'{requests} HTTP requests (GDAL): the network or server is unreliable'
    )


def _setting(name: str, default: float, minimum: float) -> float:
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float('nan')
    if not value >= minimum:
        raise GeosslInputError(name, f'is {text!r}, not a number >= {minimum:g}')
    return value


#: Threads of reads given up or interrupted that may still be blocked in GDAL.
_ABANDONED: list[threading.Thread] = []


def reads_abandoned() -> bool:
    """Whether a read given up (or interrupted) is still blocked in GDAL.

    Such a thread would crash the interpreter's shutdown, so the command line
    leaves with ``os._exit`` instead, once its outputs are cleaned up.

    Returns:
        True if one is.
    """
    return any(thread.is_alive() for thread in _ABANDONED)


def _within[T](read: Callable[[], T], seconds: float) -> T:
    """``read()`` in a thread of its own, given up after ``seconds``.

    The thread of a read given up, or interrupted by a signal, stays blocked in
    GDAL until GDAL's own timeout; it is a daemon, so it holds nothing up.

    Raises:
        TimeoutError: if the read has not ended in time.
    """
    result: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.append(read())
        except BaseException as error:  # Handed to the caller's thread.
            failure.append(error)

    thread = threading.Thread(target=run, name='geossl-read', daemon=True)
    thread.start()
    try:
        thread.join(seconds)
    finally:
        if thread.is_alive():
            _ABANDONED.append(thread)
    if thread.is_alive():
        raise TimeoutError(f'no answer within {seconds:g} s')
    if failure:
        raise failure[0]
    return result[0]


def _forget(assets: Iterable[RemoteAsset]) -> None:
    """Drop GDAL's cached bytes of the assets, so that a retry fetches them again."""
    try:
        from rasterio.cache import invalidate
    except ImportError:  # rasterio < 1.5
        return
    for asset in assets:
        invalidate(asset.href)


def check_still_there(assets: Iterable[RemoteAsset]) -> None:
    """Refuse assets of a cached item that their server says are gone.

    Each remote asset is asked for its first byte, all at once, for up to 10 s: a
    cached item is otherwise read without a request until its pixels are. Servers
    that do not answer are left to the reads, which retry them.

    Args:
        assets: the item's band assets.

    Raises:
        GeosslInputError: naming the first asset gone (HTTP 4xx other than 408 and
            429), item, asset and URL.
    """
    remote = [asset for asset in assets if asset.remote]
    if not remote:
        return
    for asset, (status, said) in zip(remote, _answers(remote, 10), strict=True):
        if _gone(status):
            raise GeosslInputError(
                str(asset), f'is gone since the item was cached ({said})'
            )


def _stalled(assets: list[RemoteAsset]) -> str:
    """Who to name for a read that stalled: the assets that do not answer now.

    Each is asked once for its first byte, at the same time, for 5 s.
    """
    answers = _answers(assets, 5)
    silent = [a for a, (status, _) in zip(assets, answers, strict=True) if not status]
    if len(silent) == 1:
        return str(silent[0])
    return assets[0].item_name


def _answers(assets: list[RemoteAsset], timeout: float) -> list[tuple[int | None, str]]:
    """:func:`_answer` of every asset, asked at the same time."""
    with ThreadPoolExecutor(min(len(assets), 16)) as pool:
        return list(pool.map(lambda asset: _answer(asset, timeout), assets))


def _answer(asset: RemoteAsset, timeout: float = 10) -> tuple[int | None, str]:
    """An asset's HTTP status and how to say it.

    The status of its last failed request as GDAL logged it, else what one ranged
    request of the URL answers now.
    """
    status = _RETRIES.status.get(asset.href)
    if status is not None:
        return status, f'HTTP {status}'
    if not asset.href.startswith(('http://', 'https://')):
        return None, ''
    request = urllib.request.Request(asset.href, headers={'Range': 'bytes=0-0'})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, f'its URL answers HTTP {answer.status} now'
    except urllib.error.HTTPError as error:
        return error.code, f'HTTP {error.code}'
    except (urllib.error.URLError, OSError) as error:
        return None, f'no answer ({getattr(error, "reason", error)})'


def _gone(status: int | None) -> bool:
    """Whether a status says the asset is not there to read (not worth a retry)."""
    return status is not None and 400 <= status < 500 and status not in (408, 429)


def _culprit(assets: list[RemoteAsset], failure: BaseException) -> RemoteAsset:
    """The asset whose file GDAL's message names, else the first."""
    text = ' '.join(
        str(error)
        for error in (failure, failure.__cause__, failure.__context__)
        if error is not None
    )
    match = _FAILED_FILE.search(text)
    if match:
        for asset in assets:
            if asset.href.rsplit('/', 1)[-1] == match[1]:
                return asset
    return assets[0]


def _when(sources: Iterable[Path | RemoteAsset]) -> str:
    """When a read failed, for its message.

    Opening an asset (writing its VRT), or reading pixels from a warm or a cold
    cache: the item's VRTs written before this process, or by it.
    """
    files = [Path(path) for path in sources if not isinstance(path, RemoteAsset)]
    if not files:
        return 'opening the asset'
    try:
        warm = min(path.stat().st_mtime for path in files) < _STARTED
    except OSError:
        return 'reading pixels'
    return f'reading pixels, {"warm" if warm else "cold"} cache'


#: When this process started using remote reads: older VRTs make a warm cache.
_STARTED = time.time()


def read_remote[T](sources: Iterable[Path | RemoteAsset], read: Callable[[], T]) -> T:
    """Run ``read``, which reads ``sources``, bounded in time and retried if remote.

    Sources that are not STAC assets read over a network are read as they are.

    Args:
        sources: the files the read opens (band VRTs name their asset), or assets
            (read as the VRTs are written).
        read: the read.

    Returns:
        What ``read`` returns.

    Raises:
        NetworkError: naming the item, asset and URL, the HTTP status, the tries
            and when (opening the asset, or reading pixels from a warm or cold
            cache), if the read fails every try or stalls.
        GeosslInputError: the same, if the server says the asset is not there
            (HTTP 4xx other than 408 and 429); it is not retried.
    """
    sources = list(sources)
    assets = [
        source if isinstance(source, RemoteAsset) else asset_of(Path(source))
        for source in sources
    ]
    remote = [asset for asset in assets if asset is not None and asset.remote]
    if not remote:
        return read()
    timeout = _setting('GEOSSL_READ_TIMEOUT', READ_TIMEOUT, 0.001)
    tries = int(_setting('GEOSSL_READ_TRIES', READ_TRIES, 1))
    # Tries count per asset: a read of many assets may meet a fault in several.
    failures: Counter[RemoteAsset] = Counter()
    while True:
        for asset in remote:
            _RETRIES.status.pop(asset.href, None)
        try:
            return _within(read, timeout)
        except TimeoutError as failure:
            raise NetworkError(
                _stalled(remote),
                f'{failure} ({_when(sources)}; GEOSSL_READ_TIMEOUT); gave up',
            ) from None
        except Exception as failure:
            asset = _culprit(remote, failure)
            status, said = _answer(asset)
            detail = str(failure.__cause__ or failure)
            problem = f'{said}: {detail}' if said else detail
        if _gone(status):
            raise GeosslInputError(
                str(asset), f'cannot be read ({problem}; {_when(sources)})'
            )
        failures[asset] += 1
        if failures[asset] == tries:
            break
        _RETRIES.reads += 1
        _forget([asset])
        time.sleep(min(2.0 ** (failures[asset] - 1), 30.0))
    raise NetworkError(
        str(asset), f'{problem} ({_when(sources)}); gave up after {tries} tries'
    )
