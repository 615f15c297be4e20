"""The task's hyperparameters of earlier geossl versions, under today's names.

Checkpoints and configs written before the task's options were grouped hold them
flat: ``teacher_student: true`` and ``lambda_d``, ``lr``, ``num_ops``; the oldest
hold names since changed to TorchGeo's (``backbone``, ``backbone_weights``,
``pretrained``, ``multilabel``). :func:`upgrade_hparams` maps them all onto today's
groups (:class:`~geossl.tasks.teacher_student.TeacherStudentOptions`,
:class:`~geossl.tasks.recipes.Recipe`, :class:`~geossl.augment.views.ViewOptions`,
:class:`~geossl.tasks.sizing.DataDescription`):
checkpoints silently, configs and command lines with a warning naming the new
option (:func:`upgrade_arguments`).
"""

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any

import yaml

from geossl.augment.views import ViewOptions
from geossl.tasks.recipes import Recipe
from geossl.tasks.sizing import DataDescription
from geossl.tasks.teacher_student import TeacherStudentOptions

#: Each flat option of earlier versions, and the group and setting that hold it now.
GROUPED = {
    field.name: (group, field.name)
    for group, options in (
        ('teacher', TeacherStudentOptions),
        ('recipe', Recipe),
        ('views', ViewOptions),
        ('data', DataDescription),
    )
    for field in fields(options)
}
# The data's metadata parts were the task's data_metadata.
GROUPED['data_metadata'] = GROUPED.pop('metadata_parts')

#: Options renamed to TorchGeo's, and their names now.
RENAMED = {'backbone': 'model', 'backbone_weights': 'weights'}

#: Earlier options whose value moved to another option, and that option.
SWITCHES = {'teacher_student': 'teacher', 'pretrained': 'weights', 'multilabel': 'task'}

#: Every name :func:`upgrade_hparams` upgrades.
EARLIER_NAMES = frozenset(GROUPED) | frozenset(RENAMED) | frozenset(SWITCHES)


def upgrade_hparams(
    hparams: Mapping[str, Any], warn: bool = False, prefix: str = ''
) -> dict[str, Any]:
    """A task's hyperparameters under today's names and groups.

    Args:
        hparams: the hyperparameters, earlier names and all: as a checkpoint or a
            config of an earlier geossl holds them.
        warn: warn once for each earlier name, naming its option now (configs and
            command lines; a checkpoint, which its user cannot edit, does not).
        prefix: what the warning puts before each name, e.g. ``--model.``.

    Returns:
        The same settings: flat teacher, recipe, view and data options in their
        groups (``teacher_student: false`` drops the teacher's), and ``backbone``,
        ``backbone_weights``, ``pretrained`` and ``multilabel`` as ``model``,
        ``weights`` and ``task``.
    """
    upgraded = {
        name: value for name, value in hparams.items() if name not in EARLIER_NAMES
    }
    teacher: dict[str, Any] = {}
    for name in [name for name in hparams if name in EARLIER_NAMES]:
        value = hparams[name]
        group, setting = GROUPED.get(name, (None, None))
        if group == 'teacher':
            teacher[setting] = value
        elif group is not None:
            upgraded.setdefault(group, {})[setting] = value
        elif name in RENAMED:
            upgraded.setdefault(RENAMED[name], value)
        elif name == 'pretrained' and value:
            upgraded.setdefault('weights', True)
        elif name == 'multilabel':
            upgraded.setdefault('task', 'multilabel' if value else 'multiclass')
        if warn:
            new = _moved(name) or SWITCHES[name]
            warnings.warn(
                f'{prefix}{name} is now {prefix}{new}', FutureWarning, stacklevel=2
            )
    switch = hparams.get('teacher_student')
    given = upgraded.get('teacher')
    if 'teacher_student' in hparams and not switch:
        upgraded['teacher'] = None
    elif switch or (teacher and (isinstance(given, dict) or given is True)):
        upgraded['teacher'] = (given if isinstance(given, dict) else {}) | teacher
    elif teacher and warn:
        # Setting one now turns the teacher on, which these settings did not ask.
        warnings.warn(
            f"{prefix}{', '.join(teacher)} left out: they are the teacher's "
            f'settings, and these settings do not turn it on ({prefix}teacher)',
            FutureWarning,
            stacklevel=2,
        )
    return upgraded


def upgrade_arguments(argv: Sequence[str], prefix: str = '--model.') -> list[str]:
    """Command-line arguments with the task's earlier names in today's form.

    ``--model.lambda_d 0.1`` becomes ``--model.teacher.lambda_d 0.1``,
    ``--model.teacher_student true`` becomes ``--model.teacher {}``, each with a
    warning (:func:`upgrade_hparams`, which reads them together, in place of the
    first).

    Args:
        argv: the arguments, as ``OPTION VALUE`` or ``OPTION=VALUE``.
        prefix: the task's options' prefix.

    Returns:
        The arguments, upgraded.
    """
    kept: list[str] = []
    earlier: dict[str, Any] = {}
    texts: dict[str, str] = {}
    first = None
    arguments = iter(argv)
    for argument in arguments:
        option, equals, value = argument.partition('=')
        name = option.removeprefix(prefix)
        if not option.startswith(prefix) or name not in EARLIER_NAMES:
            kept.append(argument)
            continue
        if not equals:
            value = next(arguments, '')
        first = len(kept) if first is None else first
        earlier[name] = yaml.safe_load(value) if value else None
        # A value only moved keeps its text: YAML reads 1e-3 as a string.
        texts[_moved(name) or name] = value
    if first is None:
        return kept
    upgraded = []
    for key, setting in _flat(upgrade_hparams(earlier, True, prefix)):
        upgraded += [f'{prefix}{key}', texts.get(key) or json.dumps(setting)]
    return [*kept[:first], *upgraded, *kept[first:]]


def _moved(name: str) -> str | None:
    """An earlier option's name now, if only its name changed; None for a switch."""
    return '.'.join(GROUPED[name]) if name in GROUPED else RENAMED.get(name)


def _flat(settings: Mapping[str, Any], above: str = '') -> list[tuple[str, Any]]:
    """Dotted option names and their values, for the command line."""
    flat = []
    for key, value in settings.items():
        if isinstance(value, dict) and value:
            flat += _flat(value, f'{above}{key}.')
        else:
            flat.append((f'{above}{key}', value))
    return flat
