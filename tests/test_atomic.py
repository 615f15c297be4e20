import os
import subprocess
import sys

import pytest

from geossl.atomic import atomic_output, partial_path, remove_stale_partials


def _dead_pid() -> int:
    process = subprocess.run(
        [sys.executable, '-c', 'import os; print(os.getpid())'],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(process.stdout)


def test_output_appears_only_when_complete(tmp_path):
    output = tmp_path / 'out.txt'

    def fail_half_way() -> None:
        with atomic_output(output) as partial:
            partial.write_text('half')
            assert not output.exists()
            raise RuntimeError

    with pytest.raises(RuntimeError):
        fail_half_way()
    assert list(tmp_path.iterdir()) == []
    with atomic_output(output) as partial:
        partial.write_text('whole')
    assert output.read_text() == 'whole'
    assert list(tmp_path.iterdir()) == [output]


def test_only_work_of_dead_processes_is_removed(tmp_path):
    output = tmp_path / 'map.tif'
    dead = [
        partial_path(output, owner=_dead_pid()),
        partial_path(output, '.part1.tif', owner=_dead_pid()),
    ]
    alive = partial_path(output, '.part0.tif', owner=os.getppid())
    other_output = partial_path(tmp_path / 'map.tif.bak', owner=_dead_pid())
    for path in [*dead, alive, other_output]:
        path.touch()
    assert sorted(remove_stale_partials(output)) == sorted(dead)
    assert sorted(tmp_path.iterdir()) == sorted([alive, other_output])
