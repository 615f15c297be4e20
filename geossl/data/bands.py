"""Band names and positions: what the data calls its bands, and which are asked for.

Data that does not name its bands (EuroSAT's GeoTIFFs, plain images) has them
numbered ``1``, ``2``, ...; a model trained on such data maps only rasters whose
bands are numbered too.
"""

from collections.abc import Sequence

from geossl.errors import BandMismatchError


def numbered_bands(count: int) -> list[str]:
    """The names of bands that have none: their numbers, ``1``, ``2``, ...

    Args:
        count: how many bands.

    Returns:
        The names.
    """
    return [str(number) for number in range(1, count + 1)]


def are_numbered(band_names: Sequence[str]) -> bool:
    """Whether band names are only the bands' numbers (see :func:`numbered_bands`).

    Args:
        band_names: the names, in order.

    Returns:
        True for ``1, 2, ..., N``.
    """
    return list(band_names) == numbered_bands(len(band_names))


def resolve_bands(
    requested: Sequence[str | int] | None, names: Sequence[str], source: str
) -> list[int]:
    """Positions of the requested bands among a source's band names.

    Args:
        requested: band names or 0-based positions; None for all bands.
        names: the source's band names, in order.
        source: the source named in errors.

    Returns:
        0-based band positions, in the requested order.

    Raises:
        BandMismatchError: for a position out of range or an unknown name.
    """
    if requested is None:
        return list(range(len(names)))
    positions = []
    for band in requested:
        if isinstance(band, int):
            if not 0 <= band < len(names):
                raise BandMismatchError(
                    'bands', f'band index {band} is outside 0..{len(names) - 1}'
                )
            positions.append(band)
        elif band in names:
            positions.append(names.index(band))
        else:
            raise BandMismatchError(
                'bands', f'{source} has no band {band!r}; it has {", ".join(names)}'
            )
    return positions
