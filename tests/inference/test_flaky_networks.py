"""Maps of STAC items over networks that fail, and onto disks that fill.

A local server serves the 18SVG crop as 13 COGs behind one item and injects faults
into range requests (:class:`tests.stac.Faults`, seeded). A map that succeeds must
equal the healthy one bit for bit; one that fails must say what failed in one line,
exit with the documented status, and leave nothing behind.
"""

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import rasterio

from geossl.cli import main
from tests.stac import ITEM, Faults, http_server, served_item

#: GDAL's own retries of HTTP errors, short, so that geossl's are what is tested.
QUICK_GDAL = {'GDAL_HTTP_MAX_RETRY': '1', 'GDAL_HTTP_RETRY_DELAY': '0.1'}


@pytest.fixture
def item_of(served, tmp_path, monkeypatch):
    """Writes the served item as ``items.json``, each test with a cold cache."""
    monkeypatch.setenv('GEOSSL_CACHE_DIR', str(tmp_path / 'cache'))
    for key, value in QUICK_GDAL.items():
        monkeypatch.setenv(key, value)
    root, files = served

    def write(url):
        items = tmp_path / 'items.json'
        items.write_text(json.dumps(served_item(url, files, root).to_dict()))
        return items

    return write


def _map(checkpoint, items, output, *options):
    args = ['map', str(checkpoint), str(items), '-o', str(output)]
    return main([*args, '--probabilities', 'float16', *options])


def _outputs(folder):
    return sorted(path.name for path in folder.iterdir())


#: Whether rasterio can drop GDAL's cached bytes of a URL (1.5 and newer): without
#: it, a short read stays in GDAL's cache and a reset is reported, not retried.
DROPS_CACHE = importlib.util.find_spec('rasterio.cache') is not None


def test_connection_resets_are_retried_and_the_map_equals_the_healthy_one(
    served, item_of, s2_checkpoint, tmp_path, capsys
):
    root, _ = served
    # Each map has a server of its own: GDAL keeps what it fetched of a URL.
    with http_server(root) as (url, _):
        healthy = tmp_path / 'healthy' / 'map.tif'
        assert _map(s2_checkpoint, item_of(url), healthy) == 0
    for seed in (0, 1):
        with http_server(root) as (url, state):
            # A reset after half the body, on 30 % of range requests: GDAL does
            # not retry a short read, and caches it.
            state.faults = Faults('reset', 0.3, seed)
            flaky = tmp_path / f'seed{seed}' / 'map.tif'
            capsys.readouterr()
            status = _map(s2_checkpoint, item_of(url), flaky)
            assert state.faults.injected > 0
        err = capsys.readouterr().err
        if not DROPS_CACHE:
            assert status == 75, err
            assert err.strip().splitlines()[-1].endswith('gave up after 4 tries')
            assert _outputs(flaky.parent) == []
            continue
        assert status == 0, err
        assert 'geossl: Retried ' in err
        for suffix in ('', '_probabilities'):
            name = f'map{suffix}.tif'
            with (
                rasterio.open(flaky.with_name(name)) as a,
                rasterio.open(healthy.with_name(name)) as b,
            ):
                np.testing.assert_array_equal(a.read(), b.read())


#: Failures while reading pixels (each asset's first range request, its header, is
#: answered, so the VRTs are written): the fault of asset red, a read setting, the
#: exit status, and how the line naming item, asset and URL goes on.
FAILURES = {
    'busy': (
        '503',
        ('GEOSSL_READ_TRIES', '2'),
        75,
        r': HTTP 503: .+ \(reading pixels, cold cache\); gave up after 2 tries',
    ),
    'stalled': (
        'stall',
        ('GEOSSL_READ_TIMEOUT', '2'),
        75,
        r': no answer within 2 s \(reading pixels, cold cache; GEOSSL_READ_TIMEOUT\); '
        'gave up',
    ),
    'gone': (
        '404',
        None,
        2,
        r': cannot be read \(HTTP 404: .+; reading pixels, cold cache\)',
    ),
}


@pytest.mark.parametrize('failure', FAILURES)
def test_a_failed_read_is_one_line_naming_item_asset_url_and_status(
    served, item_of, s2_checkpoint, tmp_path, capsys, monkeypatch, failure
):
    mode, setting, expected_status, rest = FAILURES[failure]
    if setting is not None:
        monkeypatch.setenv(*setting)
    root, _ = served
    output = tmp_path / 'out' / 'map.tif'
    with http_server(root) as (url, state):
        state.faults = Faults(mode, prefix='/cogs/B04', after=1)
        capsys.readouterr()
        started = time.monotonic()
        status = _map(s2_checkpoint, item_of(url), output)
        assert time.monotonic() - started < 30
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert status == expected_status, line
    named = f'geossl: error: STAC item {ITEM} asset red ({url}/cogs/B04.tif)'
    assert re.fullmatch(re.escape(named) + rest, line), line
    assert _outputs(output.parent) == []


#: A stop request, and the exit status it ends the command with: a scheduler's
#: SIGTERM (128 + 15), or Ctrl-C, after which Lightning exits with 1.
STOPS = {'SIGTERM': (signal.SIGTERM, 143), 'SIGINT': (signal.SIGINT, 1)}


@pytest.mark.parametrize('stop', STOPS)
def test_a_stop_during_a_stalled_read_cleans_up_at_once(
    served, item_of, s2_checkpoint, tmp_path, stop
):
    sent, expected = STOPS[stop]
    root, _ = served
    with http_server(root) as (url, state):
        items = item_of(url)
        state.faults = Faults('stall', prefix='/cogs/B04', after=1)
        output = tmp_path / 'out' / 'map.tif'
        command = [sys.executable, '-m', 'geossl.cli', 'map', str(s2_checkpoint)]
        command += [str(items), '-o', str(output), '--probabilities', 'float16']
        process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        # The part files appear as mapping starts; the first strip then stalls.
        while not list(output.parent.glob('.map.tif.partial-*')):
            assert process.poll() is None, process.stderr.read()
            assert time.monotonic() < deadline, 'map wrote nothing in 2 minutes'
            time.sleep(0.05)
        time.sleep(1)
        stopped = time.monotonic()
        process.send_signal(sent)
        assert process.wait(timeout=30) == expected, process.stderr.read()
        assert time.monotonic() - stopped < 10
        assert _outputs(output.parent) == []


def _in_tiny_tmpfs(folder, kilobytes, command):
    """``command`` with a tmpfs of ``kilobytes`` on ``folder``, then what it holds.

    The tmpfs lives in a private mount namespace, gone when the command ends, so
    the listing of what was left in it is printed after ``LEFT:``. None where this
    machine does not allow such a namespace.
    """
    unshare = shutil.which('unshare')
    if unshare is None:
        return None
    probe = subprocess.run([unshare, '-rm', 'true'], capture_output=True, check=False)
    if probe.returncode:
        return None
    script = (
        f'mount -t tmpfs -o size={kilobytes}k tmpfs "$1" || exit 99; dir=$1; shift; '
        '"$@"; status=$?; echo LEFT:; ls -A "$dir"; exit $status'
    )
    return [unshare, '-rm', 'sh', '-c', script, 'sh', str(folder), *command]


@pytest.mark.parametrize('kilobytes', [64, 320])
def test_a_full_disk_is_one_line_and_leaves_no_output(
    scene_crop, s2_checkpoint, tmp_path, kilobytes
):
    # 64 KB fills while writing the parts; 320 KB holds the class map but not its
    # probabilities and quick-look, which used to leave the map alone.
    folder = tmp_path / 'disk'
    folder.mkdir()
    geossl = [sys.executable, '-m', 'geossl.cli', 'map', str(s2_checkpoint)]
    geossl += [str(scene_crop), '-o', str(folder / 'map.tif')]
    geossl += ['--probabilities', 'float16', '--quicklook', 'true']
    command = _in_tiny_tmpfs(folder, kilobytes, geossl)
    if command is None:
        pytest.skip('no private mount namespace here (unshare -rm) for a tiny tmpfs')
    env = os.environ | {'TQDM_DISABLE': '1'}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    assert result.returncode == 74, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f'geossl: error: {folder}: no space left on device ')
    assert line.endswith('nothing written'), line
    assert 'Traceback' not in result.stderr
    left = result.stdout.split('LEFT:', 1)[1].split()
    assert left == []


def test_an_asset_gone_from_a_warm_cache_is_noticed_before_success(
    served, item_of, tmp_path, capsys
):
    root, _ = served
    with http_server(root) as (url, state):
        items = item_of(url)
        index = tmp_path / 'index.gpkg'
        assert main(['index', str(items), '-o', str(index)]) == 0
        # Every range request of B04 now answers 404, as an asset deleted would.
        state.faults = Faults('404', prefix='/cogs/B04')
        again = tmp_path / 'again.gpkg'
        capsys.readouterr()
        assert main(['index', str(items), '-o', str(again)]) == 2
        assert state.faults.injected >= 1
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line == (
        f'geossl: error: STAC item {ITEM} asset red ({url}/cogs/B04.tif): '
        'is gone since the item was cached (HTTP 404)'
    )
    assert not again.exists()


def test_bad_read_settings_are_one_line(served, item_of, tmp_path, capsys, monkeypatch):
    root, _ = served
    monkeypatch.setenv('GEOSSL_READ_TRIES', 'none')
    with http_server(root) as (url, _):
        index = tmp_path / 'index.gpkg'
        assert main(['index', str(item_of(url)), '-o', str(index)]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line == "geossl: error: GEOSSL_READ_TRIES: is 'none', not a number >= 1"
    assert not index.exists()


def test_a_run_that_needed_retries_says_so(served, item_of, tmp_path, capsys):
    root, _ = served
    with http_server(root) as (url, state):
        # 503 on 30 % of range requests: GDAL retries them, and the run succeeds.
        state.faults = Faults('503', 0.3, seed=0)
        index = tmp_path / 'index.gpkg'
        capsys.readouterr()
        assert main(['index', str(item_of(url)), '-o', str(index)]) == 0
        assert state.faults.injected > 0
    err = capsys.readouterr().err
    assert (
        f'geossl: Retried 0 reads of remote files (geossl) and '
        f'{state.faults.injected} HTTP requests (GDAL)'
    ) in err
