"""The choices of the inference commands, as types.

Kept apart from the modules that act on them, which import torch, Lightning and
GDAL, so that a command's ``--help`` is made without those.
"""

from typing import Literal

#: The test-time augmentation of maps, over no moves, the 2 flips, or the 8 flips
#: and turns (:mod:`geossl.inference.tta`).
TestTimeAugmentation = Literal['none', 'flips', 'dihedral']

#: How a map's class probabilities are written (:mod:`geossl.inference.map_writer`).
ProbabilityFormat = Literal['uint8', 'float16']

#: What runs the model over a map's windows (:mod:`geossl.inference.engines`).
Engine = Literal['auto', 'pytorch', 'onnxruntime']
