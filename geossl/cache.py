"""geossl's cache folder, where indexes and STAC items' band files are kept."""

import os
from pathlib import Path


def cache_dir(kind: str) -> Path:
    """One kind of geossl's cache: ``$GEOSSL_CACHE_DIR/<kind>``.

    Without ``$GEOSSL_CACHE_DIR``, the cache is ``~/.cache/geossl``.

    Args:
        kind: the sub-folder, e.g. ``index`` or ``stac``.

    Returns:
        The folder (not created).
    """
    home = Path.home() / '.cache' / 'geossl'
    return Path(os.environ.get('GEOSSL_CACHE_DIR', home)) / kind
