"""The plugin object: registers the geossl Processing provider."""

from __future__ import annotations

from typing import Any

from qgis.core import QgsApplication

from .provider import GeosslProvider


class GeosslPlugin:
    """Adds the ``geossl`` provider to Processing, in QGIS and in ``qgis_process``.

    Args:
        iface: QGIS's interface (None in ``qgis_process``).
    """

    def __init__(self, iface: Any) -> None:
        self.iface = iface
        self.provider: GeosslProvider | None = None

    def initProcessing(self) -> None:
        """Register the provider (QGIS calls this for processing plugins)."""
        self.provider = GeosslProvider()
        QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:
        """Register the provider when the desktop application loads the plugin."""
        self.initProcessing()

    def unload(self) -> None:
        """Remove the provider."""
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
