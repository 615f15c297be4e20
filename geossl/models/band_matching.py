"""Bands matched by name between initial weights and the data.

Weights and data may spell a band differently (``B01`` and ``B1``, ``B8a`` and
``B8A``, ``red`` and ``B4``); :func:`canonical_band` makes them one. A first layer
trained on some bands is then rearranged, and widened or narrowed, to the data's
(:func:`match_bands`), and the input normalisation follows the same matching.
"""

import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from geossl.data.bands import are_numbered
from geossl.errors import GeosslInputError

#: ImageNet's bands (red, green, blue) under their Sentinel-2 names.
RGB_BANDS = ('B4', 'B3', 'B2')


#: Colour names of bands, as RGB data may name them.
_COLOUR_BANDS = {'R': 'B4', 'RED': 'B4', 'G': 'B3', 'GREEN': 'B3'}
_COLOUR_BANDS |= {'B': 'B2', 'BLUE': 'B2'}


def canonical_band(name: str) -> str:
    """A band's name as weights and data may both spell it: B01 = B1, B8a = B8A.

    Colour names are RGB's Sentinel-2 bands: red (R) = B4, green (G) = B3, blue
    (B) = B2.

    Args:
        name: e.g. ``B01``, ``B8a``, ``red``.

    Returns:
        ``B1``, ``B8A``, ``B4``; names that are not Sentinel-2's, upper-cased.
    """
    name = name.strip().upper()
    if match := re.fullmatch(r'B0*(\d+)(A?)', name):
        return f'B{match[1]}{match[2]}'
    return _COLOUR_BANDS.get(name, name)


def band_sources(
    weight_bands: Sequence[str], data_bands: Sequence[str], source: str | Path
) -> list[int | None] | None:
    """For each band of the data, the weights' band of the same name.

    Data whose bands have no names (1, 2, ...) and as many as the weights is taken
    in the weights' order, with a warning; weights whose bands have no names are
    not matched.

    Args:
        weight_bands: the weights' band order.
        data_bands: the data's band order.
        source: the weights, for errors.

    Returns:
        The weights' index of each data band (None for a band they lack), or None
        where there are no names to go by.

    Raises:
        GeosslInputError: if the data shares no band with the weights.
    """
    if are_numbered(weight_bands):
        return None
    weights = [canonical_band(band) for band in weight_bands]
    data = [canonical_band(band) for band in data_bands]
    if are_numbered(data_bands) and len(data) == len(weights):
        warnings.warn(
            f"the data's bands have no names; taking them as {source}'s "
            f'{", ".join(weight_bands)}, in that order',
            UserWarning,
            stacklevel=3,
        )
        return list(range(len(weights)))
    if not set(data) & set(weights):
        raise GeosslInputError(
            source,
            f'holds weights for bands {", ".join(weight_bands)}, none of which the '
            f'data has ({", ".join(data_bands)})',
        )
    return [weights.index(band) if band in weights else None for band in data]


def match_bands(
    kernel: Tensor,
    weight_bands: Sequence[str],
    data_bands: Sequence[str],
    source: str | Path,
) -> Tensor:
    """A first layer's kernel with its input channels in the data's band order.

    Each band of the data takes the weights' kernel of the band of the same name
    (:func:`band_sources`); bands the data lacks are dropped. A band the weights
    lack starts from the mean of the weights' kernels, and then the whole layer is
    scaled by (the weights' bands) / (the data's bands): timm's
    ``adapt_input_conv`` rule for RGB to N bands, which keeps the layer's response
    to a uniform image.

    Args:
        kernel: ``out x W x ...``, W the weights' bands.
        weight_bands: the weights' band order.
        data_bands: the data's band order.
        source: the weights, for errors.

    Returns:
        ``out x D x ...``, D the data's bands (the kernel as it is where there are
        no names to go by).

    Raises:
        GeosslInputError: if the data shares no band with the weights.
    """
    sources = band_sources(weight_bands, data_bands, source)
    if sources is None:
        return kernel
    mean = kernel.mean(dim=1)
    matched = torch.stack([mean if i is None else kernel[:, i] for i in sources], dim=1)
    if None in sources:
        matched = matched * (len(weight_bands) / len(data_bands))
    return matched
