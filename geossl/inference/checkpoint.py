"""Load a trained geossl model from a checkpoint, safely.

Checkpoints are read with ``torch.load(weights_only=True)``, which refuses pickled
code: a checkpoint is data, never a program.
"""

import inspect
import pickle
import zipfile
from pathlib import Path

import torch

from geossl.errors import GeosslInputError
from geossl.tasks.semi_supervised import SemiSupervisedTask

#: Hyperparameters every geossl checkpoint has, which mapping and export need.
REQUIRED_HPARAMS = ('num_classes', 'in_channels', 'class_names', 'band_names')


def load_task(
    path: str | Path, device: str | torch.device = 'cpu'
) -> SemiSupervisedTask:
    """The trained task of a checkpoint, in evaluation mode.

    The weights are those the checkpoint evaluates with (the EMA when training
    used one); the student is what :meth:`SemiSupervisedTask.forward` runs.

    Args:
        path: a ``.ckpt`` written by ``geossl fit``.
        device: where to put the model.

    Returns:
        The task.

    Raises:
        GeosslInputError: if the file is missing, corrupt, not a geossl checkpoint,
            or holds pickled code.
    """
    path = Path(path)
    if not path.is_file():
        raise GeosslInputError(path, 'does not exist')
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    except (
        pickle.UnpicklingError,
        zipfile.BadZipFile,
        RuntimeError,
        EOFError,
    ) as error:
        reason = str(error).splitlines()[0]
        raise GeosslInputError(
            path, f'cannot be read as a safe checkpoint ({reason})'
        ) from None
    hparams = (
        checkpoint.get('hyper_parameters') if isinstance(checkpoint, dict) else None
    )
    if not isinstance(hparams, dict) or not set(REQUIRED_HPARAMS) <= set(hparams):
        raise GeosslInputError(
            path, 'is not a geossl checkpoint (no geossl model settings)'
        )
    accepted = inspect.signature(SemiSupervisedTask.__init__).parameters
    task = SemiSupervisedTask(**{k: v for k, v in hparams.items() if k in accepted})
    try:
        task.load_state_dict(checkpoint['state_dict'])
    except (KeyError, RuntimeError) as error:
        reason = str(error).splitlines()[0]
        raise GeosslInputError(
            path, f'holds weights that do not fit ({reason})'
        ) from None
    return task.eval().to(device)
