"""Where initial weights come from: checkpoints, state-dict files, timm's hub.

Every checkpoint geossl reads is read with ``torch.load(weights_only=True)``, which
refuses pickled code: a checkpoint is data, never a program.

A backbone's weights are taken from a checkpoint of ``geossl fit`` (the student's
backbone), of ``geossl pretrain`` (the online network of every method) or of
TorchGeo's own SimCLR, MoCo and BYOL tasks, found by the prefix its weights carry
there; from a plain state dict (``.pth``, ``.pt``, ``.safetensors``); from timm's
hub (``pretrained``); or from TorchGeo's weights by name
(:mod:`geossl.models.torchgeo_weights`, imported only then).
"""

import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import safetensors.torch
import timm
import torch
from torch import Tensor

from geossl.errors import GeosslInputError, first_line, reading
from geossl.models.weights import (
    BACKBONE_NAME_KEYS,
    BACKBONE_PREFIXES,
    BackboneWeights,
    InputNormalisation,
    imagenet_weights,
)


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


def read_backbone(path: str | Path, model: str | None = None) -> BackboneWeights:
    """The backbone weights a file holds.

    Args:
        path: a ``.ckpt`` of ``geossl fit``, ``geossl pretrain`` or a TorchGeo
            self-supervised task; or a state dict of a timm model (``.pth``,
            ``.pt``, or ``.safetensors``), taken to be ``model``'s.
        model: the timm model a plain state dict is for.

    Returns:
        The weights (the backbone's own parameter names). A geossl checkpoint's
        carry its bands and the normalisation it trained with.

    Raises:
        GeosslInputError: if the file is unsafe or corrupt, or holds no backbone.
    """
    if Path(path).suffix == '.safetensors':
        if not Path(path).exists():
            raise GeosslInputError(path, 'does not exist')
        with reading(path, 'safetensors'):
            return BackboneWeights(
                model, safetensors.torch.load_file(path), 'state_dict'
            )
    checkpoint = read_checkpoint(path, 'cpu')
    if not isinstance(checkpoint, dict):
        raise GeosslInputError(path, 'holds no state dict and no checkpoint')
    if checkpoint and all(isinstance(v, Tensor) for v in checkpoint.values()):
        return BackboneWeights(model, dict(checkpoint), 'state_dict')
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
            # geossl fit's checkpoints keep them with their data, pretrain's flat.
            bands = (hparams.get('data') or {}).get('band_names')
            bands = bands or hparams.get('band_names')
            return BackboneWeights(
                name,
                weights,
                'checkpoint',
                tuple(bands) if isinstance(bands, list) else None,
                _trained_normalisation(state),
            )
    raise GeosslInputError(
        path,
        'holds no backbone (expected a checkpoint of geossl fit or pretrain, or of '
        "TorchGeo's SimCLR, MoCo or BYOL)",
    )


def _trained_normalisation(state: Mapping[str, Any]) -> InputNormalisation | None:
    """The normalisation a geossl checkpoint's task applied (its views' buffers)."""
    mean, std = state.get('views.mean'), state.get('views.std')
    if not isinstance(mean, Tensor) or not isinstance(std, Tensor):
        return None
    return InputNormalisation(
        tuple(mean.flatten().tolist()), tuple(std.flatten().tolist())
    )


def timm_pretrained_weights(model: str) -> BackboneWeights:
    """The pretrained weights timm has for a model (downloaded on first use).

    Args:
        model: the timm model name.

    Returns:
        Its ImageNet weights (see :func:`~geossl.models.weights.imagenet_weights`).

    Raises:
        GeosslInputError: if the download fails.
    """
    try:
        network = timm.create_model(model, pretrained=True, num_classes=0)
    except Exception as error:
        raise GeosslInputError(
            'weights',
            f"timm's weights of {model} could not be loaded ({first_line(error)})",
        ) from None
    return imagenet_weights(network.state_dict(), network, model)


def is_weights_name(text: str) -> bool:
    """Whether a ``weights`` value names TorchGeo weights, not a file.

    Args:
        text: e.g. ``ResNet18_Weights.SENTINEL2_ALL_MOCO``.

    Returns:
        True for ``<Model>_Weights.<MEMBER>`` that is no existing file.
    """
    return '_Weights.' in text and not Path(text).exists()


def read_initial_weights(path: str | Path, model: str) -> BackboneWeights:
    """What ``weights`` names: TorchGeo's weights, a checkpoint or a file.

    Args:
        path: TorchGeo weights by name (see
            :func:`~geossl.models.torchgeo_weights.read_torchgeo_backbone`), a
            checkpoint or a state-dict file of the model (see :func:`read_backbone`).
        model: the timm model a plain state dict is for.

    Returns:
        The weights.
    """
    if is_weights_name(str(path)):
        from geossl.models.torchgeo_weights import read_torchgeo_backbone

        return read_torchgeo_backbone(str(path))
    return read_backbone(path, model)
