"""Checkpoints as data: read them safely, and take a backbone's weights out of one.

Every checkpoint geossl reads is read with ``torch.load(weights_only=True)``, which
refuses pickled code: a checkpoint is data, never a program.

A backbone is found in a checkpoint of ``geossl fit`` (the student's), of
``geossl pretrain`` (the online network of every method) or of TorchGeo's own
SimCLR, MoCo and BYOL tasks, by the prefix its weights carry there.
"""

import difflib
import pickle
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
import torch.hub
import torchgeo.models
from timm.layers import resample_abs_pos_embed
from torch import Tensor, nn
from torchvision.models import WeightsEnum

from geossl.data.raster import are_numbered
from geossl.errors import GeosslInputError, first_line, reading

#: Where each kind of checkpoint keeps its backbone: the prefix of its weights.
BACKBONE_PREFIXES = ('student.backbone.', 'backbone.', 'model.backbone.model.')

#: The hyperparameter naming the timm model: geossl fit's, then TorchGeo's.
BACKBONE_NAME_KEYS = ('backbone', 'model')


def read_checkpoint(
    path: str | Path, map_location: str | torch.device | Callable | None = None
) -> Any:
    """The contents of a checkpoint file, refusing anything but data.

    Args:
        path: the file.
        map_location: where tensors go, as for :func:`torch.load`.

    Returns:
        The checkpoint.

    Raises:
        GeosslInputError: if the file is missing, corrupt or holds pickled code.
    """
    path = Path(path)
    if not path.exists():
        raise GeosslInputError(path, 'does not exist')
    with reading(path, 'a safe checkpoint'):
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as error:
            # torch names the refused code on a line of its own, after advice.
            lines = str(error).splitlines()
            if code := next((line.strip() for line in lines if 'GLOBAL' in line), None):
                raise GeosslInputError(
                    path, f'holds pickled code, which geossl never runs ({code})'
                ) from None
            raise


def read_backbone(
    path: str | Path, model: str | None = None
) -> tuple[str | None, dict[str, Tensor]]:
    """The timm model name and backbone weights a file holds.

    Args:
        path: a ``.ckpt`` of ``geossl fit``, ``geossl pretrain`` or a TorchGeo
            self-supervised task; or a state dict of a timm model (``.pth``,
            ``.pt``, or ``.safetensors``), taken to be ``model``'s.
        model: the timm model a plain state dict is for.

    Returns:
        The model name (``model`` for a plain state dict) and the backbone's state
        dict (its own parameter names).

    Raises:
        GeosslInputError: if the file is unsafe or corrupt, or holds no backbone.
    """
    if Path(path).suffix == '.safetensors':
        if not Path(path).exists():
            raise GeosslInputError(path, 'does not exist')
        with reading(path, 'safetensors'):
            return model, safetensors.torch.load_file(path)
    checkpoint = read_checkpoint(path, 'cpu')
    if not isinstance(checkpoint, dict):
        raise GeosslInputError(path, 'holds no state dict and no checkpoint')
    if checkpoint and all(isinstance(v, Tensor) for v in checkpoint.values()):
        return model, dict(checkpoint)
    if not isinstance(checkpoint.get('state_dict'), dict):
        raise GeosslInputError(
            path, 'is neither a state dict nor a Lightning checkpoint (no state_dict)'
        )
    hparams = checkpoint.get('hyper_parameters') or {}
    name = next((hparams[key] for key in BACKBONE_NAME_KEYS if key in hparams), None)
    state = checkpoint['state_dict']
    for prefix in BACKBONE_PREFIXES:
        weights = {
            key.removeprefix(prefix): value
            for key, value in state.items()
            if key.startswith(prefix)
        }
        if weights and isinstance(name, str):
            return name, weights
    raise GeosslInputError(
        path,
        'holds no backbone (expected a checkpoint of geossl fit or pretrain, or of '
        "TorchGeo's SimCLR, MoCo or BYOL)",
    )


def is_weights_name(text: str) -> bool:
    """Whether a ``backbone_weights`` value names TorchGeo weights, not a file.

    Args:
        text: e.g. ``ResNet18_Weights.SENTINEL2_ALL_MOCO``.

    Returns:
        True for ``<Model>_Weights.<MEMBER>`` that is no existing file.
    """
    return '_Weights.' in text and not Path(text).exists()


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


def read_torchgeo_backbone(
    name: str,
) -> tuple[str, dict[str, Tensor], list[str] | None]:
    """The timm model, weights and band order of TorchGeo weights, by name.

    The file comes through torch.hub's cache (``$TORCH_HOME/hub/checkpoints``),
    downloaded on first use, as TorchGeo's own ``get_state_dict`` does.

    Args:
        name: a :class:`~torchvision.models.WeightsEnum` member's full name.

    Returns:
        The timm model name, its state dict, and the bands its first layer takes
        (None where the weights do not say).

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
            state = weights.get_state_dict(**options)
    else:
        try:
            state = weights.get_state_dict(**options)
        except Exception as error:
            raise GeosslInputError(
                name,
                f'could not be downloaded ({first_line(error)}); with no internet, '
                f'put the file from {weights.url} at {file}',
            ) from None
    bands = weights.meta.get('bands')
    return weights.meta['model'], state, list(bands) if bands else None


def canonical_band(name: str) -> str:
    """A band's name as weights and data may both spell it: B01 = B1, B8a = B8A.

    Args:
        name: e.g. ``B01``, ``B8a``.

    Returns:
        ``B1``, ``B8A``; names that are not Sentinel-2's, upper-cased.
    """
    name = name.strip().upper()
    if match := re.fullmatch(r'B0*(\d+)(A?)', name):
        return f'B{match[1]}{match[2]}'
    return name


def match_bands(
    kernel: Tensor,
    weight_bands: Sequence[str],
    data_bands: Sequence[str],
    source: str | Path,
) -> Tensor:
    """A first layer's kernel with its input channels in the data's band order.

    Each band of the data takes the weights' kernel of the band of the same name;
    bands the data lacks are dropped. A band the weights lack starts from the
    mean of the weights' kernels, and then the whole layer is scaled by (the
    weights' bands) / (the data's bands): timm's ``adapt_input_conv`` rule for
    RGB to N bands, which keeps the layer's response to a uniform image. Data
    whose bands have no names (1, 2, ...) and as many as the weights is taken in
    the weights' order, with a warning.

    Args:
        kernel: ``out x W x ...``, W the weights' bands.
        weight_bands: the weights' band order.
        data_bands: the data's band order.
        source: the weights, for errors.

    Returns:
        ``out x D x ...``, D the data's bands.

    Raises:
        GeosslInputError: if the data shares no band with the weights.
    """
    weights = [canonical_band(band) for band in weight_bands]
    data = [canonical_band(band) for band in data_bands]
    if are_numbered(data_bands) and len(data) == len(weights):
        warnings.warn(
            f"the data's bands have no names; taking them as {source}'s "
            f'{", ".join(weight_bands)}, in that order',
            UserWarning,
            stacklevel=2,
        )
        return kernel
    if not set(data) & set(weights):
        raise GeosslInputError(
            source,
            f'holds weights for bands {", ".join(weight_bands)}, none of which the '
            f'data has ({", ".join(data_bands)})',
        )
    mean = kernel.mean(dim=1)
    channels = [kernel[:, weights.index(b)] if b in weights else mean for b in data]
    matched = torch.stack(channels, dim=1)
    if any(band not in weights for band in data):
        matched = matched * (len(weights) / len(data))
    return matched


def first_layer_key(backbone: nn.Module) -> str:
    """The state-dict key of a timm model's first layer's kernel.

    Args:
        backbone: the timm model.

    Returns:
        e.g. ``conv1.weight`` (ResNet), ``patch_embed.proj.weight`` (ViT).
    """
    return f'{backbone.pretrained_cfg["first_conv"]}.weight'


def resample_position_embeddings(
    weights: dict[str, Tensor], backbone: nn.Module
) -> dict[str, Tensor]:
    """A vision transformer's position embeddings resampled to the backbone's grid.

    Weights trained on 224 px images hold a 14 x 14 grid of position embeddings;
    a model for 64 px chips has 4 x 4. The grid is resampled bicubically (timm's
    ``resample_abs_pos_embed``), the class and register tokens' kept as they are.

    Args:
        weights: the backbone's weights by name.
        backbone: the timm model they are for.

    Returns:
        The weights, ``pos_embed`` resampled where its grid differs.
    """
    expected = backbone.state_dict().get('pos_embed')
    given = weights.get('pos_embed')
    if expected is None or given is None or given.shape == expected.shape:
        return weights
    resampled = resample_abs_pos_embed(
        given,
        new_size=list(backbone.patch_embed.grid_size),
        num_prefix_tokens=backbone.num_prefix_tokens,
    )
    return {**weights, 'pos_embed': resampled}


def load_backbone_weights(
    backbones: Sequence[nn.Module],
    name: str,
    path: str | Path,
    band_names: Sequence[str] | None = None,
) -> None:
    """Initialise backbones from TorchGeo weights or a checkpoint's, read once.

    Args:
        backbones: the timm models to initialise (e.g. student's and teacher's).
        name: their timm model name.
        path: TorchGeo weights by name (see :func:`read_torchgeo_backbone`), a
            checkpoint or a state-dict file of the model (see :func:`read_backbone`).
        band_names: the data's bands, in order, to match the first layer to
            weights that name their bands.

    Raises:
        GeosslInputError: if the weights are for another model, share no band
            with the data, or have other shapes (say, another number of bands).
    """
    bands = None
    if is_weights_name(str(path)):
        source, weights, bands = read_torchgeo_backbone(str(path))
    else:
        source, weights = read_backbone(path, name)
    if source != name:
        raise GeosslInputError(
            path, f'holds a {source} backbone, but the model is a {name}'
        )
    # A whole timm model's classifier has no place in a backbone.
    classifier = f'{backbones[0].pretrained_cfg.get("classifier")}.'
    weights = {k: v for k, v in weights.items() if not k.startswith(classifier)}
    if extra := sorted(set(weights) - set(backbones[0].state_dict())):
        raise GeosslInputError(
            path,
            f'holds {", ".join(extra[:3])}{" ..." if len(extra) > 3 else ""}, '
            f'which a {name} does not have: are these weights for another model?',
        )
    weights = resample_position_embeddings(weights, backbones[0])
    if bands is not None and band_names is not None:
        key = first_layer_key(backbones[0])
        if key in weights:
            weights = {
                **weights,
                key: match_bands(weights[key], bands, band_names, path),
            }
    for backbone in backbones:
        expected = backbone.state_dict()
        check_weights_fit(
            weights, expected, path, 'it holds a backbone for another band count'
        )
        backbone.load_state_dict({key: weights[key] for key in expected})


def check_weights_fit(
    weights: Mapping[str, Tensor],
    expected: Mapping[str, Tensor],
    path: str | Path,
    reason: str,
) -> None:
    """Refuse weights that lack one of a model's, or have another shape.

    Args:
        weights: the checkpoint's weights by name.
        expected: the model's state dict.
        path: the checkpoint, for errors.
        reason: the likely cause, for errors.

    Raises:
        GeosslInputError: naming the first weight that does not fit.
    """
    for name, tensor in expected.items():
        if name not in weights:
            raise GeosslInputError(path, f'has no {name}: {reason}')
        if weights[name].shape != tensor.shape:
            raise GeosslInputError(
                path,
                f'holds {name} of shape {tuple(weights[name].shape)} where the model '
                f'has {tuple(tensor.shape)}: {reason}',
            )
