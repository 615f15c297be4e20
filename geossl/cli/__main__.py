"""``python -m geossl.cli``: the ``geossl`` command (QGIS and DDP start it so)."""

import sys

from geossl.cli import main

if __name__ == '__main__':
    sys.exit(main())
