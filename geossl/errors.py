"""Typed errors for bad input.

Every error names the file (or option) at fault and says what is wrong in one line,
so the command line can print it as it is and exit with status 2.
"""

import os


class GeosslInputError(ValueError):
    """A file or option that geossl cannot use.

    Attributes:
        source: the file, folder or option at fault.
        problem: what is wrong with it.
    """

    def __init__(self, source: str | os.PathLike[str], problem: str) -> None:
        """Initialise the error.

        Args:
            source: the file, folder or option at fault.
            problem: what is wrong with it, as a sentence fragment.
        """
        self.source = os.fspath(source)
        self.problem = problem
        super().__init__(f'{self.source}: {problem}')


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
