import sys
from pathlib import Path

import pytest

from geossl.qgis_plugin.runner import (
    ALGORITHMS_FILE,
    PYTHON_FILE,
    GeosslRunError,
    clean_environment,
    find_python,
    progress_of,
    read_algorithms,
    run_geossl,
)
from tests.inference.conftest import S2_BANDS, save_checkpoint

PYTHON = Path(sys.executable)


def _python_file(folder, python):
    (folder / PYTHON_FILE).write_text(f'{python}\n')


def test_find_python_takes_the_setting_then_the_variable_then_the_install_note(
    tmp_path, monkeypatch
):
    other = tmp_path / 'python'
    other.write_text('')
    _python_file(tmp_path, PYTHON)
    monkeypatch.setenv('GEOSSL_PYTHON', str(other))
    assert find_python(str(PYTHON), tmp_path) == PYTHON
    assert find_python('', tmp_path) == other
    monkeypatch.delenv('GEOSSL_PYTHON')
    assert find_python(None, tmp_path) == PYTHON


def test_find_python_reads_the_geossl_command_on_the_path(tmp_path, monkeypatch):
    monkeypatch.delenv('GEOSSL_PYTHON', raising=False)
    script = tmp_path / 'bin' / 'geossl'
    script.parent.mkdir()
    script.write_text(f'#!{PYTHON}\nimport geossl\n')
    script.chmod(0o755)
    monkeypatch.setenv('PATH', str(script.parent))
    assert find_python(None, tmp_path) == PYTHON
    monkeypatch.setenv('PATH', str(tmp_path / 'nowhere'))
    with pytest.raises(GeosslRunError, match=r'^geossl environment not found: set'):
        find_python(None, tmp_path)


def test_a_named_python_that_is_missing_is_reported_by_where_it_was_named(
    tmp_path, monkeypatch
):
    monkeypatch.setenv('GEOSSL_PYTHON', str(tmp_path / 'gone' / 'python'))
    with pytest.raises(GeosslRunError, match=r'\$GEOSSL_PYTHON names .*gone'):
        find_python(None, tmp_path)


def test_qgis_python_and_gdal_settings_stay_out_of_geossl():
    cleaned = clean_environment(
        {'PYTHONPATH': '/usr/share/qgis/python', 'GDAL_DATA': '/x', 'HOME': '/h'}
    )
    assert cleaned == {
        'HOME': '/h',
        'PYTHONUNBUFFERED': '1',
        # A progress line a second, to move QGIS's bar (geossl.progress).
        'GEOSSL_PROGRESS_INTERVAL': '1',
    }


def test_progress_bars_become_percentages():
    assert progress_of('Mapping T18SVG:  45%|####5     | 9/20 [00:01<00:02]') == 45
    assert progress_of('Epoch 0: 100%|##########| 4/4 [00:03<00:00]') == 100
    assert progress_of('Indexed 100 samples') is None


def _run(arguments, cancel_after=None):
    progress, lines = [], []

    def cancelled():
        return cancel_after is not None and len(progress) >= cancel_after

    run_geossl(PYTHON, arguments, progress.append, lines.append, cancelled)
    return progress, lines


def test_run_reports_progress_and_lines(shared_data, tmp_path):
    output = tmp_path / 'index.gpkg'
    progress, lines = _run(
        ['index', str(shared_data / 'eurosat-ms-sample'), '-o', str(output)]
    )
    assert progress[-1] == 100
    assert lines[-1].startswith('Indexed 100 samples')
    assert output.is_file()


def test_geossl_errors_come_back_as_their_one_line(tmp_path):
    missing = tmp_path / 'missing.ckpt'
    with pytest.raises(GeosslRunError) as error:
        _run(['map', str(missing), str(tmp_path), '-o', str(tmp_path / 'm.tif')])
    assert str(error.value) == f'{missing}: does not exist'
    with pytest.raises(GeosslRunError) as error:
        _run(['index', str(tmp_path), '-o'])
    assert str(error.value) == (
        'argument -o/--output: expected one argument (see geossl index --help)'
    )


def test_cancel_stops_geossl_and_leaves_no_output(shared_data, tmp_path):
    checkpoint = save_checkpoint(
        tmp_path / 'model.ckpt',
        num_classes=2,
        in_channels=13,
        data={'band_names': S2_BANDS},
        chip_size=32,
        model='resnet10t',
    )
    output = tmp_path / 'out' / 'map.tif'
    scene = shared_data / 'sentinel2-scene-18SVG-20160112'
    with pytest.raises(GeosslRunError, match=r'^cancelled'):
        _run(['map', str(checkpoint), str(scene), '-o', str(output)], cancel_after=2)
    assert list(output.parent.iterdir()) == []


@pytest.mark.parametrize('listed', [None, '{"not": "pairs"}', '[["fixmatch"]]', '[['])
def test_a_missing_or_broken_algorithm_list_says_to_reinstall(tmp_path, listed):
    if listed is not None:
        (tmp_path / ALGORITHMS_FILE).write_text(listed)
    with pytest.raises(GeosslRunError, match="run 'geossl qgis install'"):
        read_algorithms(tmp_path)
