"""The package's layers import downwards only: data flows one way (docs/index.md)."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / 'geossl'

#: Each layer and the layers above it, which it must not import.
ABOVE = {
    'data': ('models', 'ssl', 'tasks', 'inference', 'cli'),
    'augment': ('tasks', 'inference', 'cli'),
    'models': ('ssl', 'tasks', 'inference', 'cli'),
    'ssl': ('tasks', 'inference', 'cli'),
    'tasks': ('inference', 'cli'),
    'inference': ('cli',),
}


def _imports(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return modules


@pytest.mark.parametrize('layer', sorted(ABOVE))
def test_no_layer_imports_one_above_it(layer):
    above = tuple(f'geossl.{name}' for name in ABOVE[layer])
    for path in sorted((PACKAGE / layer).rglob('*.py')):
        upward = sorted(m for m in _imports(path) if m.startswith(above))
        assert not upward, f'{path.relative_to(PACKAGE)} imports {upward}'
