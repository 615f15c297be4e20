"""The task's groups of options, kept as mappings of every setting.

A group (the recipe, the views, the teacher, the data) is a dataclass beside what it
sets; the task saves each as a mapping, so that checkpoints are read without
unpickling and the loggers write the hyperparameters as YAML.
"""

from collections.abc import Mapping
from dataclasses import asdict, fields
from typing import Any

from geossl.errors import GeosslInputError


def option_group(
    name: str, group: type, settings: object | Mapping[str, Any]
) -> dict[str, Any]:
    """A group of the task's options as a mapping, every setting named and checked.

    Args:
        name: the task's option.
        group: its dataclass.
        settings: an instance, or a mapping of some of its fields.

    Returns:
        Every field of the group and its value.

    Raises:
        GeosslInputError: for a setting the group does not have.
    """
    if not isinstance(settings, Mapping):
        return asdict(settings)
    known = {field.name for field in fields(group)}
    unknown = sorted(set(settings) - known)
    if unknown:
        listed = ', '.join(sorted(known))
        raise GeosslInputError(
            name, f'has no setting {unknown[0]!r}; its settings are {listed}'
        )
    return asdict(group(**settings))
