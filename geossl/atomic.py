"""Outputs that appear whole or not at all, alone or as a set.

Every file geossl writes (indexes, splits, maps, polygons, quick-looks, ONNX models)
is written to a hidden sibling and renamed into place only when complete, so an
interrupted run leaves no half-written output behind; the files of one result (a
map, its probabilities, its quick-look) are renamed together, after all are
written. A run killed outright (no chance to clean up) leaves only its hidden
siblings; the next run writing the same output removes those of processes that no
longer run. A disk that fills while writing is one line naming the folder.
"""

import errno
import glob
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from geossl.errors import GeosslInputError, OutputError


def partial_path(
    path: Path, suffix: str | None = None, owner: int | None = None
) -> Path:
    """A hidden sibling of ``path`` for work in progress, unique to one process.

    Args:
        path: the final output.
        suffix: the sibling's extension (drivers pick formats by it); None for
            ``path``'s own.
        owner: id of the process that owns the work (so that processes working
            together agree on names); None for this process.

    Returns:
        ``.<name>.partial-<owner><suffix>`` beside ``path``.
    """
    owner = os.getpid() if owner is None else owner
    return path.with_name(f'.{path.name}.partial-{owner}{suffix or path.suffix}')


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # Another user's process.
        return True
    return True


def remove_stale_partials(path: str | Path) -> list[Path]:
    """Remove the work in progress of ``path`` left by processes that were killed.

    Work of a process that still runs (another run writing the same output) is
    kept.

    Args:
        path: the final output.

    Returns:
        The files removed.
    """
    path = Path(path)
    owner = re.compile(rf'\.{re.escape(path.name)}\.partial-(\d+)')
    removed = []
    for candidate in path.parent.glob(f'.{glob.escape(path.name)}.partial-*'):
        match = owner.match(candidate.name)
        if match and not _is_running(int(match[1])):
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


def _disk_full(error: BaseException, folder: Path) -> bool:
    """Whether a write failed for want of space.

    An error that says so (``ENOSPC``, or GDAL's words), else a probe: older GDAL
    reports a full disk as a bare libtiff I/O error, so a failure is taken for a
    full disk when 64 KiB no longer fit in the folder either.
    """
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if 'No space left on device' in str(cause):
            return True
        cause = cause.__cause__ or cause.__context__
    probe = partial_path(folder / 'space', '.probe')
    try:
        with probe.open('wb') as file:
            file.write(bytes(_PROBE_BYTES))
            file.flush()
            os.fsync(file.fileno())
    except OSError as failure:
        return failure.errno in (errno.ENOSPC, errno.EDQUOT)
    finally:
        probe.unlink(missing_ok=True)
    return False


#: What a folder must still hold for a failed write not to be a full disk.
_PROBE_BYTES = 64 * 1024


def _free_space(folder: Path) -> str:
    try:
        return f'{shutil.disk_usage(folder).free / 1e6:.1f} MB free'
    except OSError:
        return 'free space unknown'


@contextmanager
def atomic_outputs(paths: Sequence[str | Path]) -> Iterator[list[Path]]:
    """Write outputs to hidden siblings; rename them all into place if all succeed.

    Siblings left by killed processes are removed first. If the block fails, no
    output appears and every sibling is removed.

    Args:
        paths: the final outputs.

    Yields:
        The paths to write to, in the same order.

    Raises:
        OutputError: if the disk fills while writing, naming the folder.
    """
    finals = [Path(path) for path in paths]
    for path in finals:
        remove_stale_partials(path)
    partials = [partial_path(path) for path in finals]
    try:
        try:
            yield partials
        except Exception as error:
            folder = finals[0].parent
            if not _disk_full(error, folder):
                raise
            names = ', '.join(path.name for path in finals)
            raise OutputError(
                folder,
                f'no space left on device writing {names} ({_free_space(folder)}); '
                'nothing written',
            ) from None
        for partial, final in zip(partials, finals, strict=True):
            os.replace(partial, final)
    finally:
        for partial in partials:
            partial.unlink(missing_ok=True)


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Write to a hidden sibling, then rename it to ``path`` if the block succeeds.

    As :func:`atomic_outputs`, for one output.

    Args:
        path: the final output.

    Yields:
        The path to write to.
    """
    with atomic_outputs([path]) as (partial,):
        yield partial


def check_output(path: Path, overwrite: bool) -> None:
    """Refuse an existing output (unless overwriting) or an unwritable folder.

    Work in progress that a killed run left beside the output is removed.

    Args:
        path: the output file.
        overwrite: replace an existing file.

    Raises:
        GeosslInputError: if the output cannot or must not be written.
    """
    if path.exists() and not overwrite:
        raise GeosslInputError(path, 'exists; pass --overwrite to replace it')
    if path.is_dir():
        raise GeosslInputError(path, 'is a folder, not a file name')
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(path)
        probe = partial_path(path, '.write-test')
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise GeosslInputError(path, f'cannot be written ({error.strerror})') from None
