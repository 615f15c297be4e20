"""Checkpoints as data: read them safely, and take a backbone's weights out of one.

Every checkpoint geossl reads is read with ``torch.load(weights_only=True)``, which
refuses pickled code: a checkpoint is data, never a program.

A backbone is found in a checkpoint of ``geossl fit`` (the student's), of
``geossl pretrain`` (the online network of every method) or of TorchGeo's own
SimCLR, MoCo and BYOL tasks, by the prefix its weights carry there.
"""

import pickle
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from geossl.errors import GeosslInputError, reading

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


def read_backbone(path: str | Path) -> tuple[str, dict[str, Tensor]]:
    """The timm model name and backbone weights a checkpoint holds.

    Args:
        path: a ``.ckpt`` of ``geossl fit``, ``geossl pretrain`` or a TorchGeo
            self-supervised task.

    Returns:
        The model name and the backbone's state dict (its own parameter names).

    Raises:
        GeosslInputError: if the file is unsafe or corrupt, or holds no backbone.
    """
    checkpoint = read_checkpoint(path, 'cpu')
    if not isinstance(checkpoint, dict) or not isinstance(
        checkpoint.get('state_dict'), dict
    ):
        raise GeosslInputError(path, 'is not a Lightning checkpoint (no state_dict)')
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


def load_backbone_weights(
    backbones: Sequence[nn.Module], name: str, path: str | Path
) -> None:
    """Initialise backbones from the backbone a checkpoint holds, read once.

    Args:
        backbones: the timm models to initialise (e.g. student's and teacher's).
        name: their timm model name.
        path: the checkpoint (see :func:`read_backbone`).

    Raises:
        GeosslInputError: if the checkpoint holds another model, or weights of
            other shapes (say, for another number of bands).
    """
    source, weights = read_backbone(path)
    if source != name:
        raise GeosslInputError(
            path, f'holds a {source} backbone, but the model is a {name}'
        )
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
