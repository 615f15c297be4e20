"""The configs that ship with geossl, found by name: ``--config eurosat-ms``.

They are package data (``geossl/configs``; a clone also has them as
``configs/``). A ``--config`` value that names no file but names a shipped config,
with or without ``.yaml``, is that config; ``geossl config NAME`` prints one to
start a config of your own from.
"""

import sys
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path

from geossl.errors import GeosslInputError


def shipped_configs() -> dict[str, Path]:
    """Every shipped config by its name, its path under ``configs`` less ``.yaml``.

    Returns:
        Name (``eurosat-ms``, ``algorithms/fixmatch``) -> file, sorted by name.
    """
    folder = Path(str(files('geossl') / 'configs'))
    paths = sorted(folder.rglob('*.yaml'))
    return {path.relative_to(folder).with_suffix('').as_posix(): path for path in paths}


def config_file(value: str) -> str:
    """A ``--config`` value, with a shipped config's name made its path.

    Args:
        value: a file, a shipped config's name, or YAML text.

    Returns:
        The value as it was, unless it names no file but a shipped config.
    """
    if Path(value).exists():
        return value
    path = shipped_configs().get(value.removesuffix('.yaml'))
    return value if path is None else str(path)


def with_shipped_configs(argv: Sequence[str]) -> list[str]:
    """Arguments with every ``--config NAME`` (or ``--config=NAME``) made a path.

    Args:
        argv: a command's arguments.

    Returns:
        The arguments, shipped configs' names replaced by their files.
    """
    resolved = list(argv)
    for position, argument in enumerate(resolved):
        if argument.startswith('--config='):
            resolved[position] = f'--config={config_file(argument[9:])}'
        elif argument == '--config' and position + 1 < len(resolved):
            resolved[position + 1] = config_file(resolved[position + 1])
    return resolved


def config(name: str) -> None:
    """Print a shipped config, to start one of your own from (``> my.yaml``).

    Args:
        name: the config's name, e.g. ``eurosat-ms``, ``algorithms/fixmatch``,
            ``teacher-student``, ``pretrain/simclr``.

    Raises:
        GeosslInputError: if no shipped config has that name.
    """
    configs = shipped_configs()
    path = configs.get(name.removesuffix('.yaml'))
    if path is None:
        raise GeosslInputError(
            'config',
            f'{name!r} is not a shipped config: choose from {", ".join(configs)}',
        )
    sys.stdout.write(path.read_text(encoding='utf-8'))
