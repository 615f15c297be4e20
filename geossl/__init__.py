"""geossl: semi-supervised learning on Sentinel-2 imagery, on TorchGeo."""

from importlib.metadata import PackageNotFoundError, version

try:
    #: The installed version: the wheel's, the QGIS plugin's, and each checkpoint's
    #: ``geossl_version``.
    __version__ = version('geossl')
except PackageNotFoundError:  # A source tree on the path, not installed.
    __version__ = '0+unknown'
