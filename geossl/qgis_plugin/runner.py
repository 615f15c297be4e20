"""Run the ``geossl`` command in its own Python environment, from QGIS.

QGIS's Python has QGIS's own GDAL, NumPy and PyQt and no PyTorch; geossl needs
PyTorch, rasterio and TorchGeo. So nothing of geossl is imported into QGIS: each
algorithm runs ``<geossl python> -m geossl.cli ...`` as a subprocess, arguments as a
list (never through a shell), with QGIS's Python and GDAL settings taken out of its
environment. Progress bars in its output become progress, its lines become log
messages, and its one-line ``geossl: error: ...`` becomes the error QGIS shows.

This module uses only the standard library (it runs inside QGIS, Python 3.9 and
newer) and knows nothing of QGIS, so it is tested without QGIS.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

#: Written by ``geossl qgis install`` beside the plugin: the Python that ran it.
PYTHON_FILE = 'geossl_python.txt'

#: Written by ``geossl qgis install`` beside the plugin: ``[name, display name]`` of
#: every multi-class algorithm of that geossl, for the Train algorithm's choices.
ALGORITHMS_FILE = 'geossl_algorithms.json'

#: Environment variable naming the geossl Python, for scripts and CI.
PYTHON_VARIABLE = 'GEOSSL_PYTHON'

#: Where users set the Python in QGIS.
SETTING_HELP = (
    "set 'Python of the geossl environment' in Processing > Options > Providers > "
    "geossl, or run 'geossl qgis install' with that environment's geossl"
)

#: Variables QGIS sets for its own Python and GDAL that would break geossl's.
QGIS_ONLY_VARIABLES = (
    'PYTHONPATH',
    'PYTHONHOME',
    'PYTHONSTARTUP',
    'GDAL_DATA',
    'GDAL_DRIVER_PATH',
    'PROJ_LIB',
    'PROJ_DATA',
)

_PERCENT = re.compile(r'(\d{1,3})%\|')
#: How geossl's bad-input messages and its option parser's errors begin.
_ERROR_LINE = re.compile(r'^(geossl: )?error: ')


class GeosslRunError(Exception):
    """The geossl command could not run, failed, or was cancelled."""


def find_python(setting: str | None, plugin_dir: Path) -> Path:
    """The Python of the geossl environment.

    Looked for in order: the provider setting, ``$GEOSSL_PYTHON``, the file
    ``geossl qgis install`` wrote beside the plugin, and the interpreter of a
    ``geossl`` command on the PATH.

    Args:
        setting: the provider setting, empty or None if unset.
        plugin_dir: the plugin's folder.

    Returns:
        The interpreter's path.

    Raises:
        GeosslRunError: if none is found, or the one named does not exist.
    """
    named = [
        ("the provider setting 'Python of the geossl environment'", setting),
        (f'${PYTHON_VARIABLE}', os.environ.get(PYTHON_VARIABLE)),
    ]
    installed = plugin_dir / PYTHON_FILE
    if installed.is_file():
        named.append((str(installed), installed.read_text().strip()))
    for source, value in named:
        if value:
            python = Path(value)
            if not python.is_file():
                raise GeosslRunError(
                    f'geossl environment not found: {source} names {python}, which '
                    f'does not exist; {SETTING_HELP}'
                )
            return python
    command = shutil.which('geossl')
    if command is not None:
        with open(command, 'rb') as script:
            first = script.readline().decode(errors='replace').strip()
        if first.startswith('#!') and Path(first[2:]).is_file():
            return Path(first[2:])
    raise GeosslRunError(f'geossl environment not found: {SETTING_HELP}')


def read_algorithms(plugin_dir: Path) -> list[tuple[str, str]]:
    """The algorithms ``geossl fit`` offers, as the installing geossl listed them.

    Args:
        plugin_dir: the plugin's folder.

    Returns:
        ``(name, display name)`` pairs, ``supervised`` first.

    Raises:
        GeosslRunError: if the list is missing or unreadable.
    """
    listed = plugin_dir / ALGORITHMS_FILE
    try:
        return [(name, title) for name, title in json.loads(listed.read_text())]
    except (OSError, ValueError, TypeError) as error:
        raise GeosslRunError(
            f"geossl's algorithm list {listed} cannot be read ({error}); run "
            "'geossl qgis install' with the geossl environment"
        ) from None


def clean_environment(environment: dict[str, str]) -> dict[str, str]:
    """QGIS's environment without the variables meant for QGIS's Python and GDAL.

    Args:
        environment: the environment QGIS runs in.

    Returns:
        A copy for the geossl subprocess.
    """
    cleaned = {k: v for k, v in environment.items() if k not in QGIS_ONLY_VARIABLES}
    # Progress as lines we can read as they come, often enough to move QGIS's bar
    # (geossl.progress.INTERVAL_VARIABLE, named here: QGIS's Python has no geossl).
    cleaned['PYTHONUNBUFFERED'] = '1'
    cleaned['GEOSSL_PROGRESS_INTERVAL'] = '1'
    return cleaned


def progress_of(line: str) -> int | None:
    """The percentage of a progress-bar line (tqdm's ``45%|####``), if it is one.

    Args:
        line: a line of output.

    Returns:
        0 to 100, or None.
    """
    match = _PERCENT.search(line)
    return min(int(match.group(1)), 100) if match else None


def command(python: Path, arguments: Sequence[str]) -> list[str]:
    """The subprocess's argument list.

    Args:
        python: the geossl environment's Python.
        arguments: the ``geossl`` command's arguments.

    Returns:
        The argument list.
    """
    return [str(python), '-m', 'geossl.cli', *map(str, arguments)]


def run_geossl(
    python: Path,
    arguments: Sequence[str],
    report_progress: Callable[[int], None],
    report_line: Callable[[str], None],
    cancelled: Callable[[], bool],
) -> None:
    """Run a ``geossl`` command, reporting as it goes.

    Args:
        python: the geossl environment's Python.
        arguments: the command's arguments, e.g. ``['map', ckpt, raster, '-o', tif]``.
        report_progress: called with each new percentage.
        report_line: called with each line of output that is not a progress bar.
        cancelled: polled while the command runs; True stops it.

    Raises:
        GeosslRunError: with geossl's own one-line message if it failed, or if the
            command could not start or was cancelled.
    """
    try:
        process = subprocess.Popen(
            command(python, arguments),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=clean_environment(dict(os.environ)),
        )
    except OSError as error:
        raise GeosslRunError(
            f'geossl environment not found: cannot run {python} ({error.strerror}); '
            f'{SETTING_HELP}'
        ) from None
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_read_lines, args=(process, lines), daemon=True)
    reader.start()
    errors: list[str] = []
    last: list[str] = []
    finished = False
    while not finished:
        if cancelled():
            _stop(process)
            raise GeosslRunError('cancelled; no output was written')
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            continue
        if line is None:
            finished = True
            continue
        percent = progress_of(line)
        if percent is not None:
            report_progress(percent)
            continue
        error = _ERROR_LINE.match(line)
        if error:
            errors.append(line[error.end() :])
        last = [*last[-19:], line]
        report_line(line)
    if process.wait() != 0:
        if errors:
            raise GeosslRunError(errors[-1])
        # Not a geossl input error: a crash. Its last lines say what happened.
        raise GeosslRunError(
            f'geossl exited with status {process.returncode}: '
            + (last[-1] if last else 'no output')
        )


def _read_lines(process: subprocess.Popen, lines: queue.Queue) -> None:
    """Split the output on newlines and the carriage returns of progress bars."""
    pending = b''
    assert process.stdout is not None
    for chunk in iter(lambda: process.stdout.read1(65536), b''):
        pending += chunk
        *complete, pending = re.split(rb'[\r\n]', pending)
        for raw in complete:
            text = raw.decode(errors='replace').strip()
            if text:
                lines.put(text)
    process.stdout.close()
    if pending.strip():
        lines.put(pending.decode(errors='replace').strip())
    lines.put(None)


def _stop(process: subprocess.Popen) -> None:
    """Ask the command to stop, then make it."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
