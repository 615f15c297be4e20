"""The Sentinel-2 reflectance offset of processing baseline 04.00, read from the data.

Since processing baseline 04.00 (products from 25 January 2022), Sentinel-2 L1C and
L2A digital numbers carry an offset: reflectance is ``(DN + offset) / 10000`` with an
offset of -1000, so the same surface reads 1000 higher than in older products, and a
date-aware model would learn the jump. geossl adds each sample's offset to its valid
pixels as it reads them, which puts every product on the scale of those before 04.00
whatever its baseline. The first of these that declares an offset gives it:

1. a metadata item ``BOA_ADD_OFFSET`` (L2A) or ``RADIO_ADD_OFFSET`` (L1C) of a band
   or of its file, as the product metadata names them;
2. a band's GDAL offset and scale (``value = DN * scale + offset``, as COG writers
   store a product's offset), read as ``offset / scale`` digital numbers;
3. the product metadata ``MTD_MSIL2A.xml`` or ``MTD_MSIL1C.xml`` in the file's folder
   or up to four folders above it (a SAFE product's ``GRANULE/<tile>/IMG_DATA/R10m``),
   per band by its ``band_id``; one without an offset list (before 04.00) declares 0.

A sample whose data declares none takes the offset the user gives
(``--data.reflectance_offset``, 0 by default), and the model keeps that rule so that
``geossl map`` reads scenes the same way.
"""

import math
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from geossl.errors import GeosslInputError, reading

#: Metadata items holding the offset, in L2A and L1C product metadata.
OFFSET_ITEMS = ('BOA_ADD_OFFSET', 'RADIO_ADD_OFFSET')

#: Product metadata files that list each band's offset.
PRODUCT_METADATA = ('MTD_MSIL2A.xml', 'MTD_MSIL1C.xml')

#: The bands of product metadata, by ``band_id``.
PRODUCT_BANDS = (
    'B01', 'B02', 'B03', 'B04', 'B05', 'B06', 'B07',
    'B08', 'B8A', 'B09', 'B10', 'B11', 'B12',
)  # fmt: skip

#: When baseline 04.00, and its offset, began.
BASELINE_04_START = datetime(2022, 1, 25, tzinfo=UTC)

#: How many folders above a band file its product metadata may lie.
_LEVELS_UP = 4


def _number(text: str | None, item: str, source: Path) -> float:
    try:
        value = float(text or '')
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise GeosslInputError(
            source, f'metadata item {item} is {text!r}, not a number'
        )
    return value


def offset_in_dn(offset: float, scale: float | None) -> float:
    """An offset given for ``value = DN * scale + offset``, in digital numbers.

    Args:
        offset: the offset, in the scaled values' units.
        scale: the scale; None or 0 for 1.

    Returns:
        ``offset / scale``.
    """
    return offset / (scale or 1.0)


def _tagged_offsets(path: Path, bands: Sequence[int]) -> list[float | None]:
    """The offset a raster's metadata items or GDAL offsets declare for each band."""
    # rasterio loads here, where a raster is read: datasets held in memory read
    # this module's dates and rule without it.
    from geossl.data.raster import open_raster

    with open_raster(path) as src:
        # A band's own items win over its file's.
        found = [
            (src.tags() | src.tags(b), src.offsets[b - 1], src.scales[b - 1])
            for b in bands
        ]
    offsets = []
    for tags, offset, scale in found:
        item = next((item for item in OFFSET_ITEMS if item in tags), None)
        if item is not None:
            offsets.append(_number(tags[item], item, path))
        elif offset:
            offsets.append(offset_in_dn(offset, scale))
        else:
            offsets.append(None)
    return offsets


def product_metadata(path: Path) -> Path | None:
    """The product metadata file of a band file, if the product's folders hold one.

    Args:
        path: a band file (or a sample folder).

    Returns:
        The nearest ``MTD_MSIL2A.xml`` or ``MTD_MSIL1C.xml`` above it, or None.
    """
    for folder in [path.parent, *path.parent.parents][: _LEVELS_UP + 1]:
        for name in PRODUCT_METADATA:
            if (folder / name).is_file():
                return folder / name
    return None


def _product_offsets(path: Path) -> dict[str, float]:
    """Each band's offset in product metadata; empty where it lists none."""
    with reading(path, 'Sentinel-2 product metadata'):
        root = ElementTree.parse(path).getroot()
    offsets = {}
    for element in root.iter():
        item = re.sub(r'^\{.*\}', '', element.tag)
        if item not in OFFSET_ITEMS:
            continue
        band_id = element.get('band_id', '')
        if not band_id.isdigit() or int(band_id) >= len(PRODUCT_BANDS):
            raise GeosslInputError(
                path, f'{item} has band_id {band_id!r}, not 0..{len(PRODUCT_BANDS) - 1}'
            )
        offsets[PRODUCT_BANDS[int(band_id)]] = _number(element.text, item, path)
    return offsets


def _one_offset(declared: dict[str, float | None], source: Path) -> float | None:
    values = set(declared.values())
    if len(values) > 1:
        listed = ', '.join(
            f'{band} {"none" if value is None else f"{value:g}"}'
            for band, value in declared.items()
        )
        raise GeosslInputError(
            source,
            f'its bands declare different reflectance offsets ({listed}); geossl '
            'applies one offset per scene',
        )
    return values.pop() if values else None


def declared_offset(
    files: Sequence[Path], band_names: Sequence[str], skip: Sequence[str] = ()
) -> float | None:
    """The reflectance offset a sample's data declares (see the module), or None.

    Args:
        files: one multiband file, or one file per band.
        band_names: the bands' names, in the files' order.
        skip: bands that hold no reflectance (a mask band), left unread.

    Returns:
        The offset in digital numbers (-1000 from baseline 04.00), or None where the
        data declares none.

    Raises:
        GeosslInputError: if an offset does not parse, or the bands declare
            different offsets.
    """
    if len(files) == 1:
        files_bands = [(files[0], list(range(1, len(band_names) + 1)))]
    else:
        files_bands = [(file, [1]) for file in files]
    values = [v for file, bands in files_bands for v in _tagged_offsets(file, bands)]
    declared = {
        name: value
        for name, value in zip(band_names, values, strict=True)
        if name not in skip
    }
    if any(value is not None for value in declared.values()):
        return _one_offset(declared, files[0])
    metadata = product_metadata(files[0])
    if metadata is None:
        return None
    listed = _product_offsets(metadata)
    if not listed:
        return 0.0
    named = {name: listed[name] for name in band_names if name in listed}
    return _one_offset(named or listed, metadata)
