"""What runs a trained student over a map's windows: PyTorch, or onnxruntime.

On the CPU, onnxruntime runs the exported student (``geossl export``'s graph: raw
band values in, class probabilities out) faster than eager PyTorch: over 64 windows
of 13 x 32 x 32 on 2 cores, the demo's ResNet-18 took 21.7 ms against 31 ms, and a
``tf_efficientnet_lite0`` 8.3 ms against 27 ms (channels-last; 97 ms
channels-first). It folds each batch norm into its convolution and fuses the
activations, which eager PyTorch cannot. ``auto`` runs onnxruntime where the map
runs on the CPU and PyTorch on a GPU (geossl's onnxruntime is the CPU build).

The student is exported once per model into geossl's cache
(:func:`exported_student`), checked against PyTorch as ``geossl export`` checks it,
and found again by the model's weights and settings.
"""

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

import geossl
from geossl.cache import cache_dir
from geossl.inference.options import Engine
from geossl.tasks.semi_supervised import SemiSupervisedTask

#: Class probabilities of a batch of raw windows (``B x C x H x W`` band values).
Probabilities = Callable[[Tensor], Tensor]


def chosen_engine(
    engine: Engine, accelerator: str
) -> Literal['pytorch', 'onnxruntime']:
    """The engine a map runs with.

    Args:
        engine: ``pytorch``, ``onnxruntime``, or ``auto``: onnxruntime where the
            map runs on the CPU.
        accelerator: Lightning's accelerator of the map (``auto``, ``cpu``,
            ``cuda``, ``mps``).

    Returns:
        ``pytorch`` or ``onnxruntime``.
    """
    if engine != 'auto':
        return engine
    on_cpu = accelerator == 'cpu' or (
        accelerator == 'auto'
        and not torch.cuda.is_available()
        and not torch.backends.mps.is_available()
    )
    return 'onnxruntime' if on_cpu else 'pytorch'


def pytorch_probabilities(task: SemiSupervisedTask) -> Probabilities:
    """The task's class probabilities of raw windows, in PyTorch.

    Args:
        task: the trained task, on its device.

    Returns:
        The function.
    """

    def probabilities(windows: Tensor) -> Tensor:
        return task.probabilities(task.views.normalise(windows))

    return probabilities


def model_key(task: SemiSupervisedTask) -> str:
    """A name for a trained model: its weights, its settings, and the exporter's.

    Args:
        task: the trained task.

    Returns:
        A SHA-256 hex digest.
    """
    digest = hashlib.sha256()
    for name, tensor in task.state_dict().items():
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(tensor.detach().cpu().numpy()).tobytes())
    settings = json.dumps(dict(task.hparams), sort_keys=True, default=str)
    versions = f'{geossl.__version__} {torch.__version__}'
    digest.update(f'{settings} {versions}'.encode())
    return digest.hexdigest()


def exported_student(task: SemiSupervisedTask) -> Path:
    """The student exported to ONNX (``geossl export``'s graph), made once per model.

    Args:
        task: the trained task; exporting moves it to the CPU.

    Returns:
        The ``.onnx`` file in geossl's cache (``onnx/``).
    """
    from geossl.inference.export import export_onnx

    path = cache_dir('onnx') / f'{model_key(task)}.onnx'
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        export_onnx(task, path, overwrite=True)
    return path


class OnnxProbabilities:
    """Class probabilities of raw windows, by the exported student in onnxruntime.

    Args:
        task: the trained task.
        threads: onnxruntime's threads (PyTorch's, by default).
    """

    def __init__(self, task: SemiSupervisedTask, threads: int | None = None) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        # Its threads sleep between batches instead of spinning, leaving the cores
        # to the reading and blending of strips.
        options.add_session_config_entry('session.intra_op.allow_spinning', '0')
        self.session = onnxruntime.InferenceSession(
            str(exported_student(task)), options, providers=['CPUExecutionProvider']
        )

    def __call__(self, windows: Tensor) -> Tensor:
        """Class probabilities of a batch.

        Args:
            windows: ``B x C x H x W`` raw band values.

        Returns:
            ``B x K`` probabilities, on the windows' device.
        """
        raw = windows.detach().float().cpu().numpy()
        (probabilities,) = self.session.run(None, {'image': raw})
        return torch.from_numpy(probabilities).to(windows.device)


def window_probabilities(
    task: SemiSupervisedTask, engine: Literal['pytorch', 'onnxruntime']
) -> Probabilities:
    """The class probabilities of raw windows that a map runs.

    Args:
        task: the trained task, on its device.
        engine: ``pytorch`` or ``onnxruntime`` (:func:`chosen_engine`).

    Returns:
        The function.
    """
    if engine == 'onnxruntime':
        return OnnxProbabilities(task)
    return pytorch_probabilities(task)
