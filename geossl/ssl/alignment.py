"""Distribution alignment: pull predictions towards balanced classes.

SoftMatch and CoMatch divide the weak views' class probabilities by the class
distribution the model has recently predicted (SoftMatch keeps it as a moving
average, CoMatch as the mean of the last batches) and renormalise, so that classes
the model over-predicts lose weight (Berthelot et al., ReMixMatch, ICLR 2020).
"""

from torch import Tensor

#: Keeps the division finite for a class the model has never predicted.
EPSILON = 1e-6


def align_distribution(probs: Tensor, predicted: Tensor) -> Tensor:
    """Divide class probabilities by the predicted class distribution, renormalised.

    Args:
        probs: ``(B, K)`` class probabilities.
        predicted: ``(K,)`` the class distribution the model has been predicting.

    Returns:
        ``(B, K)`` aligned probabilities, rows summing to 1.
    """
    aligned = probs / (predicted + EPSILON)
    return aligned / aligned.sum(dim=1, keepdim=True)
