import sys
from pathlib import Path

import pytest

from geossl.cli import main
from geossl.errors import GeosslInputError
from geossl.qgis import PLUGIN_NAME, install_plugin, profile_plugins_dir


def test_install_copies_the_plugin_and_notes_this_python(tmp_path, capsys):
    plugins = tmp_path / 'plugins'
    (plugins / PLUGIN_NAME).mkdir(parents=True)
    (plugins / PLUGIN_NAME / 'stale.py').write_text('')
    assert main(['qgis', 'install', '--plugins_dir', str(plugins)]) == 0
    installed = plugins / PLUGIN_NAME
    assert sorted(p.name for p in installed.iterdir()) == [
        '__init__.py',
        'algorithms.py',
        'enums.py',
        'geossl_algorithms.json',
        'geossl_python.txt',
        'metadata.txt',
        'plugin.py',
        'provider.py',
        'runner.py',
    ]
    assert (installed / 'geossl_python.txt').read_text() == f'{sys.executable}\n'
    assert 'hasProcessingProvider=yes' in (installed / 'metadata.txt').read_text()
    assert f'qgis_process plugins enable {PLUGIN_NAME}' in capsys.readouterr().out
    assert sorted(p.name for p in plugins.iterdir()) == [PLUGIN_NAME]


def test_install_into_an_unwritable_place_is_refused(tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('')
    with pytest.raises(GeosslInputError, match='cannot be written'):
        install_plugin(blocker / 'plugins')


def test_profile_folder_follows_the_platform(monkeypatch):
    monkeypatch.setattr(sys, 'platform', 'linux')
    monkeypatch.setenv('XDG_DATA_HOME', '/data')
    assert profile_plugins_dir('work') == Path(
        '/data/QGIS/QGIS3/profiles/work/python/plugins'
    )
