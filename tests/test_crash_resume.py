"""A ``geossl fit`` killed with SIGKILL resumes with ``--ckpt_path last`` exactly."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from geossl.cli import main
from tests.conftest import sample_fit_args

#: Steps between resume points, the kill's step, and the whole run (the sample's
#: epoch is 40 steps, so the resumed run crosses an epoch end and a validation).
EVERY = 5
STEPS = 45


def _fit_args(shared_data: Path, root: Path, algorithm: list[str]) -> list[str]:
    return sample_fit_args(
        shared_data,
        root,
        *['--data.batch_size', '2', '--data.mu', '1', *algorithm],
        *['--resume.every_n_train_steps', str(EVERY)],
        *['--trainer.max_steps', str(STEPS), '--trainer.deterministic', 'true'],
    )


def _kill_at_first_resume_point(args: list[str], last: Path) -> int:
    """Run ``geossl fit`` in a process, SIGKILL it once a resume point exists."""
    process = subprocess.Popen(
        [sys.executable, '-m', 'geossl.cli', *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not last.exists():
        if process.poll() is not None:
            pytest.fail(f'fit ended before its first resume point: {process.stderr}')
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail('fit wrote no resume point in 5 minutes')
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    process.stderr.close()
    return process.returncode


def _training_state(checkpoint: dict) -> dict:
    """What must continue exactly: weights, EMA, policy, optimiser, schedule, step."""
    return {
        key: checkpoint[key]
        for key in (
            'state_dict',  # student, teacher, policy buffers (the EMA when used)
            'current_model_state',  # the raw weights beside the EMA
            'averaging_state',
            'optimizer_states',
            'lr_schedulers',
            'global_step',
            'epoch',
        )
        if key in checkpoint
    }


def _assert_equal(resumed: object, uninterrupted: object, where: str = '') -> None:
    if isinstance(uninterrupted, dict):
        assert resumed.keys() == uninterrupted.keys(), where
        for key in uninterrupted:
            _assert_equal(resumed[key], uninterrupted[key], f'{where}/{key}')
    elif isinstance(uninterrupted, list | tuple):
        assert len(resumed) == len(uninterrupted), where
        for i, (a, b) in enumerate(zip(resumed, uninterrupted, strict=True)):
            _assert_equal(a, b, f'{where}/{i}')
    elif isinstance(uninterrupted, torch.Tensor):
        assert torch.equal(resumed, uninterrupted), where
    else:
        assert resumed == uninterrupted, where


@pytest.mark.parametrize(
    'algorithm',
    [
        ['--model.algorithm', 'freematch', '--model.teacher_student', 'true'],
        ['--model.algorithm', 'flexmatch'],
        ['--model.algorithm', 'softmatch'],
    ],
    ids=['st-freematch', 'flexmatch', 'softmatch'],
)
def test_killed_fit_resumes_exactly(shared_data, tmp_path, algorithm):
    uninterrupted = tmp_path / 'uninterrupted'
    assert main(_fit_args(shared_data, uninterrupted, algorithm)) == 0

    crashed = tmp_path / 'crashed'
    args = _fit_args(shared_data, crashed, algorithm)
    last = crashed / 'checkpoints' / 'last.ckpt'
    assert _kill_at_first_resume_point(args, last) == -signal.SIGKILL
    killed_at = torch.load(last, weights_only=True)['global_step']
    assert 0 < killed_at < STEPS
    splits = (crashed / 'splits.csv').read_text()

    assert main([*args, '--ckpt_path', 'last']) == 0
    assert (crashed / 'splits.csv').read_text() == splits
    reference = torch.load(
        uninterrupted / 'checkpoints' / 'last.ckpt', weights_only=True
    )
    resumed = torch.load(last, weights_only=True)
    assert resumed['global_step'] == reference['global_step'] == STEPS
    _assert_equal(_training_state(resumed), _training_state(reference))
