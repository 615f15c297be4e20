"""How a network's weights are laid out in memory: chosen per backbone and device.

A convolution's weights and activations can be stored channels-first (NCHW,
PyTorch's default) or channels-last (NHWC). On the CPU, oneDNN runs the depthwise
convolutions of the EfficientNet and MobileNet families in its own channels-last
layout, and with NCHW weights it converts at every layer: laying those networks out
channels-last made a ``tf_efficientnet_lite0`` training step of 40 RGB tiles of
32 x 32 px 2.3 times faster on 2 cores, and its forward pass in evaluation 4 times
faster (``benchmarks/training_step.py``, ``benchmarks/mapping.py``). ResNets and
ConvNeXts gain nothing or lose a little (ResNet-18: 246 against 265 ms a step), and
on a GPU it has not been measured, so ``auto`` leaves those as they are. Results are
the same up to floating-point rounding.

The layout is a property of the weights (the activations follow the weights'), so
it is applied to the module once it is on its device: by the tasks' ``setup`` for
Lightning's loops, and by :func:`~geossl.inference.checkpoint.restore_task` for
``map``, ``export`` and ``embed``.
"""

from typing import Literal

import torch
from timm.models.efficientnet import EfficientNet
from timm.models.mobilenetv3 import MobileNetV3
from torch import nn

from geossl.errors import GeosslInputError

MemoryFormat = Literal['auto', 'channels_last', 'contiguous']

#: The timm networks whose step is faster channels-last on the CPU (measured).
CHANNELS_LAST_ON_CPU = (EfficientNet, MobileNetV3)


def memory_format_for(
    module: nn.Module, device: torch.device, choice: MemoryFormat = 'auto'
) -> torch.memory_format:
    """The layout a module's weights get on a device.

    Args:
        module: the network, or a task that holds networks.
        device: where it runs.
        choice: ``channels_last``, ``contiguous`` (channels-first), or ``auto``:
            channels-last on the CPU where the module holds a network of
            :data:`CHANNELS_LAST_ON_CPU`, else channels-first.

    Returns:
        ``torch.channels_last`` or ``torch.contiguous_format``.

    Raises:
        GeosslInputError: for another choice.
    """
    if choice == 'channels_last':
        return torch.channels_last
    if choice == 'contiguous':
        return torch.contiguous_format
    if choice != 'auto':
        raise GeosslInputError(
            'memory_format', f'is {choice!r}; use auto, channels_last or contiguous'
        )
    faster = torch.device(device).type == 'cpu' and any(
        isinstance(part, CHANNELS_LAST_ON_CPU) for part in module.modules()
    )
    return torch.channels_last if faster else torch.contiguous_format


def use_memory_format(
    module: nn.Module, device: torch.device, choice: MemoryFormat = 'auto'
) -> torch.memory_format:
    """Lay out a module's four-dimensional weights for a device, in place.

    Args:
        module: the network or task, already on ``device``.
        device: where it runs.
        choice: see :func:`memory_format_for`.

    Returns:
        The layout applied.
    """
    layout = memory_format_for(module, device, choice)
    module.to(memory_format=layout)
    return layout
