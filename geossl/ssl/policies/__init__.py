"""Pseudo-label policies, one module each, and the registry that names them.

Every module of this package is imported here, and each policy class in it
registers itself in :data:`~.POLICIES` by its class keywords (see
:class:`~geossl.ssl.policies.base.PseudoLabelPolicy`): adding an algorithm is adding
its module (plus its config and its tests), and everything that lists algorithms
(``geossl fit``, the QGIS plugin, the benchmarks) reads the registry.
"""

import importlib
import inspect
import pkgutil
import textwrap
from collections.abc import Mapping

from geossl.errors import GeosslInputError
from geossl.ssl.policies.base import (
    POLICIES,
    PseudoLabelPolicy,
    PseudoLabels,
    ViewRows,
    WeakViewPolicy,
)

__all__ = [
    'POLICIES',
    'SUPERVISED',
    'PseudoLabelPolicy',
    'PseudoLabels',
    'ViewRows',
    'WeakViewPolicy',
    'algorithm_names',
    'build_policy',
    'check_options',
    'describe_algorithms',
    'display_name',
    'policy_parameters',
]

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f'{__name__}.{_module.name}')

#: The algorithm name of supervised training (labelled data only, no policy).
SUPERVISED = 'supervised'


def algorithm_names(multilabel: bool) -> list[str]:
    """Supervised and every policy for one kind of data, as ``algorithm`` takes them.

    Args:
        multilabel: True for multi-label data, False for multi-class.

    Returns:
        ``supervised`` first, then the policies' names in registry order.
    """
    fitting = [name for name, cls in POLICIES.items() if cls.multilabel == multilabel]
    return [SUPERVISED, *fitting]


def display_name(algorithm: str) -> str:
    """An algorithm's name in tables and menus.

    Args:
        algorithm: ``supervised`` or a key of :data:`~.POLICIES`.

    Returns:
        ``Supervised``, or the policy's ``display_name``.
    """
    return 'Supervised' if algorithm == SUPERVISED else POLICIES[algorithm].display_name


def policy_parameters(algorithm: str) -> list[inspect.Parameter]:
    """The options ``algorithm_options`` takes for an algorithm, typed.

    Args:
        algorithm: ``supervised`` or a key of :data:`~.POLICIES`.

    Returns:
        The policy's keyword parameters beyond what the data sets (the class and
        sample counts), with their annotations and defaults; none for supervised.
    """
    if algorithm == SUPERVISED:
        return []
    parameters = inspect.signature(POLICIES[algorithm].__init__).parameters
    given = ('self', 'num_classes', 'num_samples')
    return [p for name, p in parameters.items() if name not in given]


def describe_algorithms() -> str:
    """Every algorithm and its options, one per line, as ``geossl fit --help`` ends.

    Returns:
        Lines of ``name (display name): option: type = default, ...``.
    """
    lines = []
    for name in [SUPERVISED, *POLICIES]:
        kind = ', multi-label' if name in POLICIES and POLICIES[name].multilabel else ''
        options = ', '.join(
            f'{p.name}: {getattr(p.annotation, "__name__", p.annotation)} = '
            f'{p.default!r}'
            for p in policy_parameters(name)
        )
        line = f'{name} ({display_name(name)}{kind}): {options or "-"}'
        lines.append(
            textwrap.fill(line, 88, initial_indent='  ', subsequent_indent='      ')
        )
    return '\n'.join(lines)


def _fits(value: object, annotation: object) -> bool:
    """Whether a value fits an option's type (ints are floats; bools are neither)."""
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return True  # Annotations beyond these are the policy's to check.


def check_options(algorithm: str, options: Mapping[str, object]) -> None:
    """Refuse options an algorithm does not take, or values of the wrong type.

    Args:
        algorithm: ``supervised`` or a key of :data:`~.POLICIES`.
        options: the ``algorithm_options`` given.

    Raises:
        GeosslInputError: naming the option and what the algorithm takes.
    """
    taken = {p.name: p for p in policy_parameters(algorithm)}
    for name, value in options.items():
        if name not in taken:
            names = ', '.join(taken) or 'none'
            raise GeosslInputError(
                'algorithm_options',
                f'{algorithm} has no option {name!r} (its options: {names})',
            )
        annotation = taken[name].annotation
        if not _fits(value, annotation):
            kind = getattr(annotation, '__name__', annotation)
            raise GeosslInputError(
                f'algorithm_options.{name}', f'is {value!r}; {algorithm} takes a {kind}'
            )


def build_policy(
    algorithm: str,
    num_classes: int,
    multilabel: bool,
    num_samples: int | None = None,
    options: Mapping[str, object] | None = None,
) -> PseudoLabelPolicy | None:
    """Build the policy an algorithm name stands for.

    Args:
        algorithm: ``'supervised'`` or a key of :data:`~.POLICIES`.
        num_classes: number of classes.
        multilabel: whether the data is multi-label.
        num_samples: dataset size, for policies that remember samples (FlexMatch).
        options: keyword arguments of the policy (e.g. ``{'threshold': 0.9}``).

    Returns:
        The policy, or None for supervised training.

    Raises:
        GeosslInputError: for an unknown name, a policy of the other kind of data
            (multi-class vs multi-label), or bad options.
    """
    if algorithm == SUPERVISED:
        return None
    if algorithm not in POLICIES:
        names = ', '.join([SUPERVISED, *POLICIES])
        raise GeosslInputError('algorithm', f'{algorithm!r} is not one of {names}')
    policy_class = POLICIES[algorithm]
    if policy_class.multilabel != multilabel:
        kind = 'multi-label' if multilabel else 'multi-class'
        raise GeosslInputError(
            'algorithm',
            f'{algorithm} does not fit {kind} data; use one of '
            f'{", ".join(algorithm_names(multilabel))}',
        )
    check_options(algorithm, options or {})
    return policy_class.from_data(num_classes, num_samples, **(options or {}))
