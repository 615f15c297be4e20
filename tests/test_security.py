"""Static guarantees over geossl's own source: no shell, no code from data."""

import ast
from pathlib import Path

import pytest

SOURCES = sorted((Path(__file__).parents[1] / 'geossl').rglob('*.py'))

#: Calls that run a command through a shell, or text as code.
SHELL_OR_CODE = {
    ('os', 'system'),
    ('os', 'popen'),
    ('subprocess', 'getoutput'),
    ('subprocess', 'getstatusoutput'),
    (None, 'eval'),
    (None, 'exec'),
}


def _calls(path: Path) -> list[ast.Call]:
    return [n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Call)]


def _name(call: ast.Call) -> tuple[str | None, str]:
    """``(module, function)`` of ``module.function(...)``; ``(None, name)`` of a
    bare ``name(...)`` such as a builtin; ``('', method)`` of other calls."""
    function = call.func
    if isinstance(function, ast.Attribute):
        owner = function.value
        return (owner.id if isinstance(owner, ast.Name) else '', function.attr)
    return (None, function.id if isinstance(function, ast.Name) else '')


def _keyword(call: ast.Call, name: str) -> object:
    for keyword in call.keywords:
        if keyword.arg == name:
            return ast.literal_eval(keyword.value)
    return None


@pytest.mark.parametrize('path', SOURCES, ids=lambda p: p.name)
def test_no_shell_and_no_code_from_text(path):
    for call in _calls(path):
        assert _name(call) not in SHELL_OR_CODE, f'{path}:{call.lineno}'
        assert _keyword(call, 'shell') in (None, False), f'{path}:{call.lineno}'


def test_every_checkpoint_is_read_as_data_only():
    loads = [
        (path, call)
        for path in SOURCES
        for call in _calls(path)
        if _name(call) == ('torch', 'load')
    ]
    assert loads  # geossl does read checkpoints
    for path, call in loads:
        assert _keyword(call, 'weights_only') is True, f'{path}:{call.lineno}'
