"""The task's options renamed to TorchGeo's names, kept for a release.

``backbone``, ``backbone_weights`` and ``pretrained``, and ``multilabel`` became
``model``, ``weights`` and ``task``. The old names still work, with a
``FutureWarning``; checkpoints of older versions are upgraded silently. Delete this
module with the old names.
"""

import warnings
from collections.abc import Mapping
from typing import Any, Literal

from geossl.errors import GeosslInputError

Task = Literal['multiclass', 'multilabel']

#: Options renamed to TorchGeo's names, and what replaces each; the old names keep
#: working for a release, with a warning.
DEPRECATED_OPTIONS = {
    'backbone': 'model',
    'pretrained': 'weights=True',
    'backbone_weights': 'weights',
    'multilabel': "task='multilabel'",
}


def renamed_options(
    model: str,
    weights: str | bool | None,
    task: Task,
    backbone: str | None = None,
    pretrained: bool | None = None,
    backbone_weights: str | None = None,
    multilabel: bool | None = None,
) -> tuple[str, str | bool | None, Task]:
    """``model``, ``weights`` and ``task``, from their deprecated names where given.

    Args:
        model: the ``model`` given.
        weights: the ``weights`` given.
        task: the ``task`` given.
        backbone: deprecated ``model``; wins where given.
        pretrained: deprecated ``weights=True``.
        backbone_weights: deprecated ``weights``; wins where given.
        multilabel: deprecated ``task='multilabel'`` (False: ``multiclass``).

    Returns:
        ``model``, ``weights`` and ``task``; each deprecated name given warns.

    Raises:
        GeosslInputError: for both ``pretrained`` and ``backbone_weights``.
    """
    given = {
        'backbone': backbone,
        'pretrained': pretrained,
        'backbone_weights': backbone_weights,
        'multilabel': multilabel,
    }
    for name, value in given.items():
        if value is not None:
            warnings.warn(
                f'{name} is deprecated and will be removed; use '
                f'{DEPRECATED_OPTIONS[name]}',
                FutureWarning,
                stacklevel=4,  # the task's caller, through upgrade_hparams
            )
    if backbone_weights is not None and pretrained:
        raise GeosslInputError(
            'backbone_weights', 'and pretrained both give initial weights: choose one'
        )
    if backbone is not None:
        model = backbone
    if backbone_weights is not None:
        weights = backbone_weights
    elif pretrained:
        weights = True
    if multilabel is not None:
        task = 'multilabel' if multilabel else 'multiclass'
    return model, weights, task


def upgrade_hparams(hparams: Mapping[str, Any], warn: bool = False) -> dict[str, Any]:
    """Hyperparameters under today's names.

    Args:
        hparams: a task's hyperparameters, old names and all: as an older geossl
            saved them in a checkpoint, or as given to the task.
        warn: warn of each old name given (the task does; reading an older
            checkpoint does not).

    Returns:
        The same, with ``backbone``, ``pretrained``, ``backbone_weights`` and
        ``multilabel`` as ``model``, ``weights`` and ``task``.
    """
    upgraded = dict(hparams)
    old = {name: upgraded.pop(name, None) for name in DEPRECATED_OPTIONS}
    with warnings.catch_warnings():
        if not warn:
            warnings.simplefilter('ignore', FutureWarning)
        model, weights, task = renamed_options(
            upgraded.get('model', 'resnet18'),
            upgraded.get('weights'),
            upgraded.get('task', 'multiclass'),
            **old,
        )
    return upgraded | {'model': model, 'weights': weights, 'task': task}
