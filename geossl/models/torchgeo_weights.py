"""TorchGeo's pretrained weights by name: backbones and SatCLIP's location encoder.

Weights are named as TorchGeo names them (``ResNet18_Weights.SENTINEL2_ALL_MOCO``)
and read through torch.hub's cache, as TorchGeo's own ``get_state_dict`` does.
TorchGeo is imported here, where its weights are asked for, not by the rest of
the models.
"""

import difflib
from pathlib import Path
from typing import Any

import torch
import torch.hub
import torchgeo.models
from torch import Tensor, nn
from torchvision.models import WeightsEnum

from geossl.errors import GeosslInputError, first_line, reading
from geossl.models.weights import BackboneWeights, InputNormalisation


def _normalise_transform(transforms: object) -> InputNormalisation | None:
    """The ``Normalize`` among TorchGeo weights' transforms, in raw units."""
    modules = transforms.modules() if isinstance(transforms, nn.Module) else []
    for module in modules:
        mean, std = getattr(module, 'mean', None), getattr(module, 'std', None)
        if mean is not None and std is not None:
            mean = torch.as_tensor(mean, dtype=torch.float64).flatten()
            std = torch.as_tensor(std, dtype=torch.float64).flatten()
            return InputNormalisation(tuple(mean.tolist()), tuple(std.tolist()))
    return None


def torchgeo_weights_names() -> list[str]:
    """Every weights name TorchGeo's :func:`~torchgeo.models.get_weight` resolves.

    Returns:
        The names, e.g. ``ResNet18_Weights.SENTINEL2_ALL_MOCO``.
    """
    enums = [
        value
        for key, value in vars(torchgeo.models).items()
        if key.endswith('_Weights')
        and isinstance(value, type)
        and issubclass(value, WeightsEnum)
    ]
    return sorted(str(member) for enum in enums for member in enum)


def read_torchgeo_weights(name: str) -> tuple[WeightsEnum, Any]:
    """TorchGeo's weights by name, and the file's contents.

    The file comes through torch.hub's cache (``$TORCH_HOME/hub/checkpoints``),
    downloaded on first use, as TorchGeo's own ``get_state_dict`` does.

    Args:
        name: a :class:`~torchvision.models.WeightsEnum` member's full name.

    Returns:
        The weights' member (its ``meta`` and ``transforms``) and the contents.

    Raises:
        GeosslInputError: if no weights have that name, the download fails, or the
            cached file cannot be read safely.
    """
    try:
        weights = torchgeo.models.get_weight(name)
    except ValueError:
        close = difflib.get_close_matches(name, torchgeo_weights_names(), n=3)
        hint = f'; did you mean {", ".join(close)}?' if close else ''
        raise GeosslInputError(name, f'is not a TorchGeo weights name{hint}') from None
    file = Path(torch.hub.get_dir()) / 'checkpoints' / Path(weights.url).name
    options = {'progress': True, 'map_location': 'cpu', 'weights_only': True}
    if file.exists():
        with reading(file, 'a safe checkpoint'):
            return weights, weights.get_state_dict(**options)
    try:
        return weights, weights.get_state_dict(**options)
    except Exception as error:
        raise GeosslInputError(
            name,
            f'could not be downloaded ({first_line(error)}); with no internet, '
            f'put the file from {weights.url} at {file}',
        ) from None


def read_torchgeo_backbone(name: str) -> BackboneWeights:
    """TorchGeo's backbone weights by name, with their bands and normalisation.

    The bands are the weights' ``meta['bands']``; the normalisation is the
    ``Normalize`` of their ``transforms`` (SSL4EO-S12's: mean 0, std 10000).

    Args:
        name: e.g. ``ResNet18_Weights.SENTINEL2_ALL_MOCO``.

    Returns:
        The weights.

    Raises:
        GeosslInputError: as :func:`read_torchgeo_weights`.
    """
    weights, state = read_torchgeo_weights(name)
    bands = weights.meta.get('bands')
    return BackboneWeights(
        weights.meta['model'],
        state,
        'torchgeo',
        tuple(bands) if bands else None,
        _normalise_transform(weights.transforms),
    )


#: The name of the weights of SatCLIP's location encoder in TorchGeo.
SATCLIP_WEIGHTS = 'SatCLIP_Weights.SATCLIP_VIT16_L40'


def read_satclip(
    name: str = SATCLIP_WEIGHTS,
) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """SatCLIP's pretrained location encoder: its sizes and weights.

    SatCLIP's releases are Lightning checkpoints of the whole model; the location
    encoder's network is under ``model.location.nnet.`` (as TorchGeo's
    :func:`~torchgeo.models.satclip` reads it).

    Args:
        name: TorchGeo's weights name.

    Returns:
        The :class:`~torchgeo.models.SatCLIP` arguments of the weights'
        ``meta``, and the state dict of the encoder.

    Raises:
        GeosslInputError: if the weights cannot be read, or hold no location
            encoder.
    """
    weights, checkpoint = read_torchgeo_weights(name)
    prefix = 'model.location.'
    state = checkpoint.get('state_dict') if isinstance(checkpoint, dict) else None
    encoder = {
        key.removeprefix(prefix): value
        for key, value in (state or {}).items()
        if key.startswith(prefix + 'nnet.')
    }
    if not encoder:
        raise GeosslInputError(name, f'holds no location encoder ({prefix}nnet.*)')
    sizes = ('legendre_polys', 'capacity', 'embed_dim', 'num_hidden_layers')
    return {key: weights.meta[key] for key in sizes}, encoder
