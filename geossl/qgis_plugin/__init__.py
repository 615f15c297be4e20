"""geossl's QGIS plugin: a Processing provider that runs geossl in a subprocess.

QGIS imports this folder as a plugin (``geossl qgis install`` copies it into a QGIS
profile). It imports QGIS only when QGIS loads it, so that :mod:`.runner` can be
tested without QGIS.
"""

from __future__ import annotations

from typing import Any


def classFactory(iface: Any) -> Any:
    """The plugin object QGIS asks for.

    Args:
        iface: QGIS's interface (None in ``qgis_process``).

    Returns:
        The plugin.
    """
    from .plugin import GeosslPlugin

    return GeosslPlugin(iface)
