"""Test-time augmentation: class probabilities averaged over flips and turns.

A window's class does not change when it is flipped or turned, so averaging the
model's probabilities over the 2 flips (``flips``) or the 8 symmetries of the square
(``dihedral``, the weak view's moves) removes some of the noise of one look. The
moved copies go through the model as one batch.
"""

from collections.abc import Callable

import torch
from torch import Tensor

from geossl.augment.views import dihedral_move
from geossl.inference.options import TestTimeAugmentation

#: The moves of :func:`~geossl.augment.views.dihedral_move` each choice averages.
TTA_MOVES: dict[str, tuple[int, ...]] = {
    'none': (0,),
    'flips': (0, 1),
    'dihedral': tuple(range(8)),
}


def augmented_probabilities(
    probabilities: Callable[[Tensor], Tensor],
    images: Tensor,
    tta: TestTimeAugmentation = 'none',
) -> Tensor:
    """Class probabilities averaged over moved copies of the images.

    Args:
        probabilities: the model's class probabilities of a batch, e.g. a task's
            :meth:`~geossl.tasks.semi_supervised.SemiSupervisedTask.probabilities`
            of normalised images, or a map's of raw windows
            (:mod:`geossl.inference.engines`): moves commute with per-band scaling.
        images: ``B x C x H x W`` square images.
        tta: which moves to average over.

    Returns:
        ``B x K`` probabilities.
    """
    moves = TTA_MOVES[tta]
    copies = torch.cat([dihedral_move(images, move) for move in moves])
    return probabilities(copies).view(len(moves), len(images), -1).mean(dim=0)
