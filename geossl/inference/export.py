"""ONNX export of the student, with normalisation folded in and its settings embedded.

Two formats. ``geossl``: the graph takes raw band values (``B x C x H x W`` float32,
the bands in ``band_names`` order) and returns class probabilities (softmax, or
sigmoid for multi-label models), so a user of the ONNX file needs no geossl and no
statistics; the class names, colours, band names, chip size and normalisation go
into the model's metadata (``metadata_props``). ``deepness``: a model the QGIS plugin
Deepness runs as a segmentor. Deepness divides each tile's raw values by 255, then
standardises them with the model's ``standardization_mean``/``standardization_std``
(here 0 and 1, so nothing changes), and argmaxes a ``B x K x H x W`` output per pixel;
so this graph multiplies by 255 before geossl's normalisation and spreads each
window's class probabilities over its pixels, and its metadata holds the keys
Deepness reads (``model_type``, ``class_names``, ``resolution`` in cm per pixel,
``tiles_size``, ``tiles_overlap`` in percent, the standardisation, and
``seg_thresh`` 0 so that no unsure pixel falls to class 0), each as JSON, beside
geossl's own. Every export is checked by running onnxruntime on the same chips as
PyTorch and comparing the outputs.
"""

import json
from pathlib import Path
from typing import Literal

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


class DeepnessSegmentor(nn.Module):
    """Deepness's input (raw values / 255) in, each window's probabilities per pixel."""

    def __init__(self, task: SemiSupervisedTask) -> None:
        """Wrap a trained multi-class task.

        Args:
            task: the trained task.
        """
        super().__init__()
        self.student = ExportedStudent(task)

    def forward(self, image: Tensor) -> Tensor:
        """Class probabilities of each window, at every one of its pixels.

        Args:
            image: ``B x C x H x W`` raw band values divided by 255.

        Returns:
            ``B x K x H x W`` probabilities.
        """
        probabilities = self.student(image * 255)
        height, width = image.shape[-2:]
        return probabilities[:, :, None, None].expand(-1, -1, height, width)


ExportFormat = Literal['geossl', 'deepness']

#: The overlap of Deepness's tiles in percent, as geossl map's default stride has it.
DEEPNESS_OVERLAP = 50


def deepness_metadata(task: SemiSupervisedTask, resolution: float) -> dict[str, str]:
    """The metadata Deepness reads from a model, each value as JSON.

    Args:
        task: the trained task.
        resolution: metres per pixel of the grid the model was trained on.

    Returns:
        Key -> value.
    """
    bands = task.views.bands
    values: dict[str, object] = {
        'model_type': 'Segmentor',
        'class_names': dict(enumerate(task.class_names)),
        'resolution': resolution * 100,
        'tiles_size': int(task.hparams['chip_size']),
        'tiles_overlap': DEEPNESS_OVERLAP,
        'standardization_mean': [0.0] * bands,
        'standardization_std': [1.0] * bands,
        'seg_thresh': 0.0,
        'seg_small_segment': 0,
    }
    return {key: json.dumps(value) for key, value in values.items()}


def onnx_metadata(task: SemiSupervisedTask) -> dict[str, str]:
    """What a user of the ONNX file needs to know, as text.

    Args:
        task: the trained task.

    Returns:
        Key -> value (JSON for lists).
    """
    hparams = task.hparams
    return {
        'geossl.class_names': json.dumps(task.class_names),
        'geossl.class_colours': json.dumps(list(hparams['class_colours'])),
        'geossl.band_names': json.dumps(task.band_names),
        'geossl.chip_size': str(hparams['chip_size']),
        'geossl.multilabel': str(task.multilabel).lower(),
        'geossl.input': 'raw band values, float32, B x C x H x W',
        'geossl.mean': json.dumps(task.views.mean.flatten().tolist()),
        'geossl.std': json.dumps(task.views.std.flatten().tolist()),
        'geossl.algorithm': str(hparams['algorithm']),
        'geossl.teacher_student': str(task.teacher is not None).lower(),
    }


def export_onnx(
    task: SemiSupervisedTask,
    path: str | Path,
    chips: Tensor | None = None,
    overwrite: bool = False,
    tolerance: float = 1e-4,
    format: ExportFormat = 'geossl',
    resolution: float = 10.0,
) -> float:
    """Export the student to ONNX and check it against PyTorch.

    Args:
        task: the trained task.
        path: the ``.onnx`` file (written whole, then renamed).
        chips: raw ``B x C x H x W`` chips to compare on; None draws 8 chips from
            the model's normalisation statistics.
        overwrite: replace an existing file.
        tolerance: largest allowed difference between the two outputs.
        format: ``geossl`` or ``deepness`` (see the module's description).
        resolution: for ``deepness``, metres per pixel of the model's grid.

    Returns:
        The largest difference between onnxruntime's and PyTorch's probabilities.

    Raises:
        GeosslInputError: if the output cannot be written or the exported model
            does not reproduce PyTorch's outputs.
    """
    path = Path(path)
    if format == 'deepness' and task.multilabel:
        raise GeosslInputError(
            'format',
            'deepness runs segmentors that take one class per pixel (argmax); a '
            'multi-label model has no such form: export it with --format geossl',
        )
    if resolution <= 0:
        raise GeosslInputError('resolution', f'is {resolution:g}; it must be > 0')
    check_output(path, overwrite)
    task = task.cpu().eval()
    if format == 'deepness':
        module: nn.Module = DeepnessSegmentor(task).eval()
        metadata = onnx_metadata(task) | deepness_metadata(task, resolution)
    else:
        module = ExportedStudent(task).eval()
        metadata = onnx_metadata(task)
    size = int(task.hparams['chip_size'])
    if chips is None:
        generator = torch.Generator().manual_seed(0)
        noise = torch.randn(8, task.views.bands, size, size, generator=generator)
        chips = (task.views.mean + task.views.std * noise).clamp(min=0)
    chips = chips.float().cpu()
    if format == 'deepness':
        chips = chips / 255
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
        onnx.helper.set_model_props(model, metadata)
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


def export(
    checkpoint: str,
    output: str,
    format: ExportFormat = 'geossl',
    resolution: float = 10.0,
    overwrite: bool = False,
) -> None:
    """Export the student of a checkpoint to ONNX.

    geossl format: raw band values in, class probabilities out (normalisation
    folded in), with class names, colours, bands, chip size and scaling in the model
    metadata. deepness format: a segmentor the QGIS plugin Deepness loads as it is
    (multi-class models only). The export is checked against PyTorch with
    onnxruntime before it is kept.

    Args:
        checkpoint: A .ckpt from geossl fit.
        output: The .onnx file to write.
        format: geossl, or deepness for the QGIS plugin Deepness.
        resolution: Metres per pixel of the grid the model was trained on, for
            deepness (Sentinel-2: 10).
        overwrite: Replace an existing file.
    """
    difference = export_onnx(
        load_task(checkpoint),
        output,
        overwrite=overwrite,
        format=format,
        resolution=resolution,
    )
    print(
        f'Exported {output} (onnxruntime vs PyTorch: max difference {difference:.1e})'
    )
