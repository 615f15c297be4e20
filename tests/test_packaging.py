"""What pip sees: ranges it can meet beside the user's own PyTorch."""

import tomllib
from pathlib import Path

from packaging.requirements import Requirement

PYPROJECT = tomllib.loads((Path(__file__).parents[1] / 'pyproject.toml').read_text())


def test_every_runtime_dependency_is_a_range_from_a_tested_lowest_version():
    """No pin replaces an installed torch; every floor is what make test-oldest runs."""
    for line in PYPROJECT['project']['dependencies']:
        requirement = Requirement(line)
        operators = {specifier.operator for specifier in requirement.specifier}
        assert operators == {'>='}, line


def test_torch_keeps_the_versions_users_run():
    """The GPU machine's torch 2.11 and this machine's 2.14 both satisfy the range."""
    (torch,) = [
        Requirement(line)
        for line in PYPROJECT['project']['dependencies']
        if Requirement(line).name == 'torch'
    ]
    assert torch.specifier.contains('2.11.0')
    assert torch.specifier.contains('2.14.1')
    assert torch.specifier.contains('3.0.0')
