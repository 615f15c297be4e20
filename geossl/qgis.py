"""Install geossl's QGIS plugin (the Processing provider) into a QGIS profile.

The plugin is copied, not linked, together with a note of the Python that installed
it, so that QGIS runs geossl in this environment, and the list of its algorithms
(QGIS's Python cannot import geossl to ask); run the command again after upgrading
geossl.
"""

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Literal

from geossl.errors import GeosslInputError
from geossl.qgis_plugin.runner import ALGORITHMS_FILE, PYTHON_FILE
from geossl.ssl.policies import algorithm_names, display_name

#: The plugin's folder name in QGIS.
PLUGIN_NAME = 'geossl_qgis'

_SOURCE = Path(__file__).resolve().parent / 'qgis_plugin'


def profile_plugins_dir(profile: str = 'default') -> Path:
    """The Python plugin folder of a QGIS 3 profile on this system.

    Args:
        profile: the profile's name.

    Returns:
        ``<QGIS settings>/QGIS3/profiles/<profile>/python/plugins``.
    """
    if sys.platform == 'win32':
        base = Path(os.environ.get('APPDATA', Path.home() / 'AppData' / 'Roaming'))
        settings = base / 'QGIS'
    elif sys.platform == 'darwin':
        settings = Path.home() / 'Library' / 'Application Support' / 'QGIS'
    else:
        data = os.environ.get('XDG_DATA_HOME') or Path.home() / '.local' / 'share'
        settings = Path(data) / 'QGIS'
    return settings / 'QGIS3' / 'profiles' / profile / 'python' / 'plugins'


def install_plugin(plugins_dir: Path, python: Path | None = None) -> Path:
    """Copy the plugin into a QGIS plugin folder, replacing an older copy.

    Args:
        plugins_dir: the QGIS profile's ``python/plugins`` folder.
        python: the Python QGIS should run geossl with; None for this one.

    Returns:
        The installed plugin's folder.

    Raises:
        GeosslInputError: if the folder cannot be written.
    """
    target = plugins_dir / PLUGIN_NAME
    staging = plugins_dir / f'.{PLUGIN_NAME}.partial-{os.getpid()}'
    try:
        plugins_dir.mkdir(parents=True, exist_ok=True)
        shutil.copytree(_SOURCE, staging, ignore=shutil.ignore_patterns('__pycache__'))
        (staging / PYTHON_FILE).write_text(f'{python or sys.executable}\n')
        offered = [[name, display_name(name)] for name in algorithm_names(False)]
        (staging / ALGORITHMS_FILE).write_text(json.dumps(offered) + '\n')
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except OSError as error:
        raise GeosslInputError(
            plugins_dir, f'cannot be written ({error.strerror})'
        ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def qgis(
    action: Literal['install'], profile: str = 'default', plugins_dir: str | None = None
) -> Path:
    """Install the geossl Processing provider into QGIS (3.22 or newer).

    As the plugin geossl_qgis. QGIS then runs geossl with this Python environment,
    in a subprocess; run again after upgrading geossl. Enable the plugin in QGIS's
    plugin manager, or headless with 'qgis_process plugins enable geossl_qgis'.

    Args:
        action: install: copy the plugin into QGIS.
        profile: The QGIS user profile to install into.
        plugins_dir: A QGIS profile's python/plugins folder, instead of --profile's.

    Returns:
        The installed plugin's folder.
    """
    folder = Path(plugins_dir) if plugins_dir else profile_plugins_dir(profile)
    target = install_plugin(folder)
    print(
        f'Installed the geossl QGIS plugin into {target} (geossl runs with '
        f'{sys.executable}). Enable it in Plugins > Manage and Install Plugins, or '
        f'with: qgis_process plugins enable {PLUGIN_NAME}'
    )
    return target
