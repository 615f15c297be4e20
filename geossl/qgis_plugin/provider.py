"""The ``geossl`` Processing provider and its setting."""

from __future__ import annotations

from processing.core.ProcessingConfig import ProcessingConfig, Setting
from qgis.core import QgsProcessingProvider

from .algorithms import PYTHON_SETTING, BuildIndex, ClassifyRaster, Train


class GeosslProvider(QgsProcessingProvider):
    """geossl's algorithms: classify a raster, build an index, train."""

    def id(self) -> str:
        """The provider's id, the prefix of its algorithms' ids.

        Returns:
            ``geossl``.
        """
        return 'geossl'

    def name(self) -> str:
        """The name shown in the toolbox.

        Returns:
            ``geossl``.
        """
        return 'geossl'

    def longName(self) -> str:
        """The name with what it is for.

        Returns:
            The long name.
        """
        return 'geossl (semi-supervised Sentinel-2 classification)'

    def load(self) -> bool:
        """Add the provider's setting, then its algorithms.

        Returns:
            True.
        """
        ProcessingConfig.addSetting(
            Setting(
                self.name(),
                PYTHON_SETTING,
                'Python of the geossl environment (empty: found automatically)',
                '',
                valuetype=Setting.FILE,
            )
        )
        ProcessingConfig.readSettings()
        self.refreshAlgorithms()
        return True

    def unload(self) -> None:
        """Remove the provider's setting."""
        ProcessingConfig.removeSetting(PYTHON_SETTING)

    def loadAlgorithms(self) -> None:
        """Add the algorithms."""
        for algorithm in (ClassifyRaster(), BuildIndex(), Train()):
            self.addAlgorithm(algorithm)

    def supportedOutputRasterLayerExtensions(self) -> list[str]:
        """Raster outputs are Cloud-Optimized GeoTIFFs.

        Returns:
            ``['tif']``.
        """
        return ['tif']

    def supportedOutputVectorLayerExtensions(self) -> list[str]:
        """Vector outputs are GeoPackages.

        Returns:
            ``['gpkg']``.
        """
        return ['gpkg']
