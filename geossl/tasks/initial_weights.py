"""The task's initial weights, and the input normalisation that goes with them.

The student's and the teacher's backbones start from the same weights (timm's
ImageNet weights, TorchGeo's by name, a state dict or a checkpoint; see
:mod:`geossl.models.weight_sources`), their first layer matched to the data's
bands. Weights that were trained with a normalisation rule bring it
(:func:`choose_normalisation`).
"""

from collections.abc import Sequence
from typing import Literal

from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from geossl.errors import GeosslInputError
from geossl.models.weight_sources import read_initial_weights, timm_pretrained_weights
from geossl.models.weights import (
    BackboneWeights,
    load_backbone_weights,
)

Normalisation = Literal['auto', 'data', 'weights']


def load_initial_weights(
    backbones: Sequence[nn.Module],
    model: str,
    source: bool | str,
    band_names: Sequence[str] | None,
) -> BackboneWeights:
    """Load the initial weights into every backbone, their first layer band-matched.

    Args:
        backbones: the student's and the teacher's backbones.
        model: their timm model name.
        source: True for timm's pretrained weights, else what ``weights`` names
            (see :func:`~geossl.models.weight_sources.read_initial_weights`).
        band_names: the data's bands, in order.

    Returns:
        The weights as understood: their kind, bands and normalisation.
    """
    if source is True:
        weights, source = timm_pretrained_weights(model), 'pretrained'
    else:
        weights = read_initial_weights(source, model)
    return load_backbone_weights(backbones, model, weights, source, band_names)


def choose_normalisation(
    chosen: Normalisation, weights: BackboneWeights | None
) -> Literal['data', 'weights']:
    """Resolve ``normalisation`` against the initial weights, and say so.

    Args:
        chosen: the task's ``normalisation``.
        weights: the initial weights loaded, or None.

    Returns:
        ``weights`` where the weights carry a rule and ``auto`` or ``weights`` was
        chosen, else ``data``.

    Raises:
        GeosslInputError: for ``weights`` without a rule to take.
    """
    has_rule = weights is not None and weights.normalisation is not None
    if chosen == 'weights' and not has_rule:
        what = 'no initial weights' if weights is None else 'no normalisation'
        raise GeosslInputError(
            'normalisation',
            f"is 'weights' but there are {what} to take it from; use data",
        )
    if chosen == 'auto':
        # Measured (docs/pretrained-weights.md): as good as the data's statistics.
        chosen = 'weights' if has_rule else 'data'
        if weights is not None:
            rule = "the weights' own" if has_rule else "the data's statistics"
            rank_zero_info(
                f'normalisation: auto, so {rule} for {weights.kind} weights '
                '(set --model.normalisation to choose)'
            )
    return chosen
