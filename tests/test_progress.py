import io
import os
import subprocess
import sys

import pytest

from geossl.errors import GeosslInputError
from geossl.progress import INTERVAL_VARIABLE, LOG_INTERVAL, Tqdm, log_interval


def test_log_interval_defaults_and_takes_the_variable(monkeypatch):
    # pytest captures standard error: it is not a terminal.
    monkeypatch.delenv(INTERVAL_VARIABLE, raising=False)
    assert log_interval() == LOG_INTERVAL
    monkeypatch.setenv(INTERVAL_VARIABLE, '0.5')
    assert log_interval() == 0.5


@pytest.mark.parametrize('value', ['soon', '-1', 'inf', 'nan'])
def test_a_bad_interval_is_refused_by_name(monkeypatch, value):
    monkeypatch.setenv(INTERVAL_VARIABLE, value)
    with pytest.raises(GeosslInputError, match=INTERVAL_VARIABLE):
        log_interval()


def test_on_a_terminal_bars_redraw(monkeypatch):
    monkeypatch.setattr(sys.stderr, 'isatty', lambda: True, raising=False)
    assert log_interval() is None


def test_tqdm_in_a_log_writes_its_first_and_last_lines(monkeypatch):
    monkeypatch.setenv(INTERVAL_VARIABLE, '60')
    stream = io.StringIO()
    for _ in Tqdm(range(10_000), desc='Reading', file=stream, leave=False):
        pass
    lines = stream.getvalue().split('\n')
    assert '\r' not in stream.getvalue()
    assert [line.split('|')[0] for line in lines if line] == [
        'Reading:   0%',
        'Reading: 100%',
    ]


def test_tqdm_in_a_log_writes_a_line_per_interval(monkeypatch):
    monkeypatch.setenv(INTERVAL_VARIABLE, '0')
    stream = io.StringIO()
    with Tqdm(total=3, file=stream) as bar:
        for _ in range(3):
            bar.update()
    percents = [line.split('|')[0] for line in stream.getvalue().splitlines()]
    assert percents[:4] == ['  0%', ' 33%', ' 67%', '100%']


def test_fit_and_index_logged_to_a_file_write_a_few_lines(shared_data, tmp_path):
    """What a scheduler's log of fit and index holds: a handful of lines, no bars."""
    environment = {k: v for k, v in os.environ.items() if k != INTERVAL_VARIABLE}
    root = shared_data / 'eurosat-ms-sample'
    commands = {
        'index': ['index', str(root), '-o', str(tmp_path / 'index.gpkg')],
        'fit': [
            'fit',
            '--config',
            'configs/eurosat-ms.yaml',
            '--data.root',
            str(root),
            '--data.num_workers',
            '0',
            '--data.mu',
            '2',
            '--data.batch_size',
            '4',
            '--model.model',
            'test_resnet',
            '--trainer.max_epochs',
            '2',
            '--trainer.logger',
            'false',
            '--trainer.default_root_dir',
            str(tmp_path / 'run'),
        ],
    }
    for name, arguments in commands.items():
        log = tmp_path / f'{name}.log'
        with log.open('w') as file:
            subprocess.run(
                [sys.executable, '-m', 'geossl.cli', *arguments],
                stdout=file,
                stderr=subprocess.STDOUT,
                env=environment,
                check=True,
            )
        text = log.read_text()
        assert '\r' not in text
        progress = [line for line in text.splitlines() if '%|' in line]
        if name == 'index':
            # Its bar's first and last lines, and nothing between.
            assert [line.split('|')[0] for line in progress] == [
                'Indexing eurosat-ms-sample:   0%',
                'Indexing eurosat-ms-sample: 100%',
            ]
        else:
            # Band statistics' two lines, and training's first and last: the run
            # is shorter than one interval.
            stages = [line.split(':')[0] for line in progress]
            assert stages.count('Band statistics') == 2
            assert stages[-2:] == ['Epoch 0/1', 'Validation']
            assert len([s for s in stages if s.startswith('Epoch')]) == 1
