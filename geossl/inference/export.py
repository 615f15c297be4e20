"""ONNX export of the student, with normalisation folded in and its settings embedded.

The exported graph takes raw band values (``B x C x H x W`` float32, the bands in
``band_names`` order) and returns class probabilities (softmax, or sigmoid for
multi-label models), so a user of the ONNX file needs no geossl and no statistics.
The class names, colours, band names, chip size and normalisation go into the
model's metadata (``metadata_props``). Every export is checked by running
onnxruntime on the same chips as PyTorch and comparing the outputs.
"""

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch
from torch import Tensor, nn

from geossl.atomic import atomic_output, check_output
from geossl.errors import GeosslInputError
from geossl.inference.checkpoint import load_task
from geossl.tasks.semi_supervised import SemiSupervisedTask


class ExportedStudent(nn.Module):
    """Raw band values in, class probabilities out: the student with its scaling."""

    def __init__(self, task: SemiSupervisedTask) -> None:
        """Wrap a trained task.

        Args:
            task: the trained task.
        """
        super().__init__()
        self.student = task.student
        self.views = task.views
        self.multilabel = task.multilabel

    def forward(self, image: Tensor) -> Tensor:
        """Class probabilities of raw images.

        Args:
            image: ``B x C x H x W`` raw band values.

        Returns:
            ``B x K`` probabilities.
        """
        logits = self.student(self.views.normalise(image))[0]
        return logits.sigmoid() if self.multilabel else logits.softmax(dim=1)


def onnx_metadata(task: SemiSupervisedTask) -> dict[str, str]:
    """What a user of the ONNX file needs to know, as text.

    Args:
        task: the trained task.

    Returns:
        Key -> value (JSON for lists).
    """
    hparams = task.hparams
    return {
        'geossl.class_names': json.dumps(list(hparams['class_names'])),
        'geossl.class_colours': json.dumps(list(hparams['class_colours'])),
        'geossl.band_names': json.dumps(list(hparams['band_names'])),
        'geossl.chip_size': str(hparams['chip_size']),
        'geossl.multilabel': str(task.multilabel).lower(),
        'geossl.input': 'raw band values, float32, B x C x H x W',
        'geossl.mean': json.dumps(task.views.mean.flatten().tolist()),
        'geossl.std': json.dumps(task.views.std.flatten().tolist()),
        'geossl.algorithm': str(hparams['algorithm']),
        'geossl.teacher_student': str(bool(hparams['teacher_student'])).lower(),
    }


def export_onnx(
    task: SemiSupervisedTask,
    path: str | Path,
    chips: Tensor | None = None,
    overwrite: bool = False,
    tolerance: float = 1e-4,
) -> float:
    """Export the student to ONNX and check it against PyTorch.

    Args:
        task: the trained task.
        path: the ``.onnx`` file (written whole, then renamed).
        chips: raw ``B x C x H x W`` chips to compare on; None draws 8 chips from
            the model's normalisation statistics.
        overwrite: replace an existing file.
        tolerance: largest allowed difference between the two outputs.

    Returns:
        The largest difference between onnxruntime's and PyTorch's probabilities.

    Raises:
        GeosslInputError: if the output cannot be written or the exported model
            does not reproduce PyTorch's outputs.
    """
    path = Path(path)
    check_output(path, overwrite)
    module = ExportedStudent(task.cpu().eval()).eval()
    size = int(task.hparams['chip_size'])
    if chips is None:
        generator = torch.Generator().manual_seed(0)
        noise = torch.randn(8, task.views.bands, size, size, generator=generator)
        chips = (task.views.mean + task.views.std * noise).clamp(min=0)
    chips = chips.float().cpu()
    with atomic_output(path) as partial:
        batch = torch.export.Dim('batch', min=1)
        torch.onnx.export(
            module,
            (chips,),
            partial,
            dynamo=True,
            input_names=['image'],
            output_names=['probabilities'],
            dynamic_shapes=({0: batch},),
            external_data=False,
            verbose=False,
        )
        model = onnx.load(partial)
        onnx.helper.set_model_props(model, onnx_metadata(task))
        onnx.save(model, partial)
        session = onnxruntime.InferenceSession(
            str(partial), providers=['CPUExecutionProvider']
        )
        exported = session.run(None, {'image': chips.numpy()})[0]
        with torch.no_grad():
            expected = module(chips).numpy()
        difference = float(np.abs(exported - expected).max())
        if difference > tolerance:
            raise GeosslInputError(
                path,
                f'the exported model differs from PyTorch by {difference:.2g} '
                f'(more than {tolerance:g}); nothing was written',
            )
    return difference


def export(checkpoint: str, output: str, overwrite: bool = False) -> None:
    """Export the student of a checkpoint to ONNX.

    Raw band values in, class probabilities out (normalisation folded in), with
    class names, colours, bands, chip size and scaling in the model metadata. The
    export is checked against PyTorch with onnxruntime before it is kept.

    Args:
        checkpoint: A .ckpt from geossl fit.
        output: The .onnx file to write.
        overwrite: Replace an existing file.
    """
    difference = export_onnx(load_task(checkpoint), output, overwrite=overwrite)
    print(
        f'Exported {output} (onnxruntime vs PyTorch: max difference {difference:.1e})'
    )
