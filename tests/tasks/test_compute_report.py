import json

import pytest
from lightning import seed_everything

from geossl.tasks.compute_report import REPORT_NAME, parameter_counts, peak_rss_bytes
from tests.tasks.conftest import task_for
from tests.tasks.test_semi_supervised import _datamodule, _trainer


def test_every_fit_writes_its_compute_report(eurosat_ms, tmp_path):
    seed_everything(0)
    task = task_for(eurosat_ms, teacher={'metadata': 'location'})
    trainer = _trainer(tmp_path, max_steps=3, limit_val_batches=0)
    trainer.fit(task, _datamodule(eurosat_ms, tmp_path))
    report = json.loads((tmp_path / 'logs' / 'version_0' / REPORT_NAME).read_text())
    assert report['status'] == 'finished'
    assert report['steps'] == 3
    assert report['wall_time_s'] > 0
    assert report['seconds_per_step'] == pytest.approx(report['wall_time_s'] / 3, 1e-2)
    # Between the 3 steps' starts: 2 intervals, within the fit's time.
    assert 0 < report['median_step_s'] < report['wall_time_s'] / 2
    parameters = report['parameters']
    assert parameters['total'] == sum(p.numel() for p in task.parameters())
    assert parameters['student'] + parameters['teacher'] == parameters['total']
    assert report['device'].startswith('cpu')
    assert report['processes'] == 1
    # The process has at least loaded torch and the model by now.
    assert report['peak_rss_bytes'] > 100 * 2**20


def test_a_fit_stopped_by_an_error_still_reports(eurosat_ms, tmp_path):
    class Stop(Exception):
        pass

    task = task_for(eurosat_ms)

    def fail(*args):
        raise Stop

    task.on_train_batch_end = fail
    trainer = _trainer(tmp_path, max_steps=3, limit_val_batches=0)
    with pytest.raises(Stop):
        trainer.fit(task, _datamodule(eurosat_ms, tmp_path))
    report = json.loads((tmp_path / 'logs' / 'version_0' / REPORT_NAME).read_text())
    assert report['status'] == 'stopped: Stop'
    assert report['steps'] == 1


def test_parameter_counts_split_trainable_and_parts():
    from torch import nn

    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    model[2].weight.requires_grad_(False)
    assert parameter_counts(model) == {'total': 13, 'trainable': 10, '0': 9, '2': 4}


def test_peak_rss_is_reported_in_bytes():
    peak = peak_rss_bytes()
    # Between the size of an interpreter with torch and this machine's memory.
    assert 50 * 2**20 < peak < 1 << 40
