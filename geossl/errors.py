"""Typed errors: bad input, networks that fail, disks that fill.

Every error names the file, option or URL at fault and says what is wrong in one
line, so the command line can print it as it is and exit with the error's status:
2 for bad input (as argparse), 75 for a network failure that may pass
(``EX_TEMPFAIL``: a scheduler may retry), 74 for an output that cannot be written
(``EX_IOERR``: a full disk).
"""

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager


class GeosslError(Exception):
    """A failure geossl reports in one line, naming what is at fault.

    Attributes:
        source: the file, folder, option or URL at fault.
        problem: what is wrong with it.
        exit_status: the command line's exit status for it.
    """

    exit_status = 1

    def __init__(self, source: str | os.PathLike[str], problem: str) -> None:
        """Initialise the error.

        Args:
            source: the file, folder, option or URL at fault.
            problem: what is wrong with it, as a sentence fragment.
        """
        self.source = os.fspath(source)
        self.problem = problem
        super().__init__(f'{self.source}: {problem}')


class GeosslInputError(GeosslError, ValueError):
    """A file or option that geossl cannot use."""

    exit_status = 2


class NetworkError(GeosslError):
    """A remote file that could not be read in time, after retries; it may pass."""

    exit_status = 75


class OutputError(GeosslError):
    """An output that could not be written, such as on a full disk."""

    exit_status = 74


class RasterReadError(GeosslInputError):
    """A file that is empty, corrupt or not a raster."""


class MissingCRSError(GeosslInputError):
    """A raster with no coordinate reference system where a location is required."""


class BandMismatchError(GeosslInputError):
    """A raster whose band count or band names differ from the rest of the data."""


class NodataError(GeosslInputError):
    """A chip with nodata or NaN pixels where the nodata policy forbids them."""


class DateParseError(GeosslInputError):
    """An acquisition date that was found but could not be parsed."""


class ChipSizeError(GeosslInputError):
    """A chip smaller than the requested chip size."""


class DatasetLayoutError(GeosslInputError):
    """A folder whose layout geossl does not recognise, or an empty class folder."""


class LabelsFileError(GeosslInputError):
    """A labels file (vector or CSV) that is missing a column or has no usable rows."""


class SplitError(GeosslInputError):
    """A split request that the data cannot satisfy, or a stale split file."""


@contextmanager
def reading(
    source: str | os.PathLike[str],
    what: str,
    error: type[GeosslInputError] = GeosslInputError,
) -> Iterator[None]:
    """Turn any failure of a library reading a user's file into one line.

    Wrap the library's reading call alone (``torch.load``, rasterio, pyogrio,
    ``json``, ``csv``, YAML): whatever it raises on the file's bytes is a fact about
    the file, whichever exception type the library picked for it. geossl's own
    checks of what was read stay outside, so that a bug in geossl still surfaces
    with its traceback.

    Args:
        source: the file at fault.
        what: what it was read as, e.g. ``'a raster'``.
        error: the error type to raise.

    Raises:
        GeosslInputError: (or ``error``) ``<source>: cannot be read as <what>
            (<the library's first line>)``; errors geossl raised pass unchanged.
    """
    try:
        yield
    except GeosslError:
        raise
    except Exception as failure:
        raise error(
            source, f'cannot be read as {what} ({first_line(failure)})'
        ) from None


def first_line(failure: BaseException) -> str:
    """The first non-blank line of an exception's message, or its type's name.

    Args:
        failure: the exception.

    Returns:
        The line.
    """
    lines = [line.strip() for line in str(failure).splitlines() if line.strip()]
    cause = failure.__cause__ or failure.__context__
    # rasterio's read errors say what went wrong in the GDAL error they chain.
    if cause is not None and (not lines or 'previous exception' in lines[0]):
        return first_line(cause)
    return lines[0] if lines else type(failure).__name__


#: The last line of a worker's traceback that ends in one of geossl's errors.
_WORKER_ERROR = re.compile(r'^geossl\.errors\.(\w+): (.+)$', re.MULTILINE)


def error_in_worker(error: BaseException) -> tuple[str, int] | None:
    """The one line and exit status of a geossl error raised in a DataLoader worker.

    torch re-raises a worker's exception in the main process as a ``RuntimeError``
    holding the worker's traceback when it cannot rebuild the exception from one
    message, as it cannot geossl's (file, problem) errors.

    Args:
        error: an exception that reached the command line.

    Returns:
        ``<source>: <problem>`` and the error's exit status, or None if the error
        is not such a re-raise.
    """
    if not isinstance(error, RuntimeError) or not str(error).startswith('Caught '):
        return None
    found = _WORKER_ERROR.findall(str(error))
    if not found:
        return None
    name, line = found[-1]
    kind = globals().get(name)
    if not (isinstance(kind, type) and issubclass(kind, GeosslError)):
        return None
    return line, kind.exit_status
