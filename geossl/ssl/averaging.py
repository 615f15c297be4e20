"""The exponential moving average that policies keep their statistics with."""

from torch import Tensor

from geossl.errors import GeosslInputError


def check_momentum(value: float, name: str = 'ema') -> None:
    """Refuse a momentum outside [0, 1).

    Args:
        value: the momentum.
        name: the option that gave it.

    Raises:
        GeosslInputError: if the value is outside [0, 1).
    """
    if not 0.0 <= value < 1.0:
        raise GeosslInputError(name, f'is {value}; it must be in [0, 1)')


def update_ema_(average: Tensor, value: Tensor, momentum: float) -> Tensor:
    """Move an average towards a new value in place: ``m a + (1 - m) v``.

    Args:
        average: the average (a buffer), updated in place.
        value: the new observation, of the same shape.
        momentum: the share of the old average that is kept, in [0, 1).

    Returns:
        ``average``.
    """
    return average.lerp_(value.to(average.dtype), 1.0 - momentum)
