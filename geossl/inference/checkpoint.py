"""Read checkpoints safely, and load a trained geossl model from one.

Every checkpoint geossl reads, for ``map`` and ``export`` and for Lightning's
``fit``/``validate``/``test``/``predict`` (through :class:`SafeCheckpointIO`), is
read with ``torch.load(weights_only=True)``, which refuses pickled code: a
checkpoint is data, never a program.
"""

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning import LightningModule
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from geossl.errors import GeosslInputError
from geossl.models.memory_format import use_memory_format
from geossl.models.weight_sources import read_checkpoint
from geossl.models.weights import check_weights_fit
from geossl.tasks.renamed import upgrade_hparams
from geossl.tasks.semi_supervised import SemiSupervisedTask

#: Hyperparameters every geossl checkpoint has, which mapping and export need.
REQUIRED_HPARAMS = ('num_classes', 'in_channels', 'data')


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint reading and writing, with :func:`~.read_checkpoint`.

    Lightning would leave ``weights_only`` to the caller; geossl never unpickles
    code, whatever ``--weights_only`` says.
    """

    def load_checkpoint(
        self,
        path: str | Path,
        map_location: Callable | None = None,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        """Read a checkpoint for the Trainer.

        Args:
            path: the file.
            map_location: where tensors go.
            weights_only: ignored: always True.

        Returns:
            The checkpoint.
        """
        if '://' in str(path):  # Remote: Lightning's fsspec reading, still safe.
            return super().load_checkpoint(path, map_location, weights_only=True)
        return read_checkpoint(path, map_location)


def check_checkpoint_fits(path: str | Path, task: SemiSupervisedTask) -> None:
    """Refuse a checkpoint whose weights do not fit a task, before any work.

    Args:
        path: a ``.ckpt`` to resume or evaluate.
        task: the task the command line or config built.

    Raises:
        GeosslInputError: if the file is unsafe or corrupt, not a Lightning
            checkpoint, or holds weights of another shape or set.
    """
    checkpoint = read_checkpoint(path, 'cpu')
    state = checkpoint.get('state_dict') if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise GeosslInputError(path, 'is not a Lightning checkpoint (no state_dict)')
    expected = task.state_dict()
    check_weights_fit(
        state, expected, path, 'it was written for other data or model settings'
    )
    if extra := sorted(set(state) - set(expected)):
        raise GeosslInputError(
            path,
            f'holds {extra[0]}, which this model does not have: it was written for '
            'other model settings',
        )


def load_task(
    path: str | Path, device: str | torch.device = 'cpu'
) -> SemiSupervisedTask:
    """The trained task of a checkpoint, in evaluation mode.

    The weights are those the checkpoint evaluates with (the EMA when training
    used one); the student is what :meth:`~.SemiSupervisedTask.forward` runs.

    Args:
        path: a ``.ckpt`` written by ``geossl fit``.
        device: where to put the model.

    Returns:
        The task.

    Raises:
        GeosslInputError: if the file is missing, corrupt, not a geossl checkpoint,
            or holds pickled code.
    """
    return fit_task_from(read_checkpoint(path, 'cpu'), path, device)


def fit_task_from(
    checkpoint: Any, path: str | Path, device: str | torch.device = 'cpu'
) -> SemiSupervisedTask:
    """The trained task of a checkpoint of ``geossl fit`` already read.

    Args:
        checkpoint: the contents, from :func:`~.read_checkpoint`.
        path: its file, for errors.
        device: where to put the model.

    Returns:
        The task, in evaluation mode.

    Raises:
        GeosslInputError: if it is not a geossl checkpoint or its weights do not fit.
    """
    hparams = (
        checkpoint.get('hyper_parameters') if isinstance(checkpoint, dict) else None
    )
    # Checkpoints of earlier versions keep some settings under other names.
    hparams = upgrade_hparams(hparams) if isinstance(hparams, dict) else {}
    if not set(REQUIRED_HPARAMS) <= set(hparams):
        raise GeosslInputError(
            path, 'is not a geossl checkpoint (no geossl model settings)'
        )
    # The trained weights are in the checkpoint: its initial ones are not needed.
    hparams = hparams | {'initial_weights': False}
    return restore_task(SemiSupervisedTask, hparams, checkpoint, path, device)


def restore_task[T: LightningModule](
    task_class: type[T],
    hparams: dict[str, Any],
    checkpoint: dict[str, Any],
    path: str | Path,
    device: str | torch.device,
) -> T:
    """A task built from its hyperparameters, with a checkpoint's weights.

    Args:
        task_class: the task's class.
        hparams: the checkpoint's hyperparameters; those the class does not take
            (e.g. ones a base class adds) are left out.
        checkpoint: the checkpoint, read safely.
        path: its file, for errors.
        device: where to put the task.

    Returns:
        The task, in evaluation mode, its weights laid out for the device
        (:mod:`~geossl.models.memory_format`).

    Raises:
        GeosslInputError: if the weights do not fit the task.
    """
    accepted = inspect.signature(task_class.__init__).parameters
    task = task_class(**{k: v for k, v in hparams.items() if k in accepted})
    task.on_load_checkpoint(checkpoint)  # as Lightning calls it before the weights
    try:
        task.load_state_dict(checkpoint['state_dict'])
    except (KeyError, RuntimeError) as error:
        reason = str(error).splitlines()[0]
        raise GeosslInputError(
            path, f'holds weights that do not fit ({reason})'
        ) from None
    task.eval().to(device)
    choice = task.hparams.get('memory_format', 'auto')
    use_memory_format(task, torch.device(device), choice)
    return task
