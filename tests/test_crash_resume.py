"""``geossl fit`` and ``pretrain`` killed with SIGKILL resume exactly with ``--ckpt_path
last``."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from geossl.cli import main
from tests.conftest import sample_fit_args

#: Steps between resume points, the kill's step, and the whole run (the sample's
#: 80 unlabelled tiles make 10 steps an epoch of B=4, mu=2, so the resumed run
#: crosses an epoch end and a validation).
EVERY = 5
STEPS = 15


def _fit_args(shared_data: Path, root: Path, algorithm: list[str]) -> list[str]:
    return sample_fit_args(
        shared_data,
        root,
        *['--data.batch_size', '4', '--data.mu', '2', '--data.chip_size', '32'],
        *algorithm,
        *['--resume.every_n_train_steps', str(EVERY)],
        *['--trainer.max_steps', str(STEPS), '--trainer.deterministic', 'true'],
    )


def _kill_at_first_resume_point(args: list[str], last: Path) -> int:
    """Run ``geossl`` in a process, SIGKILL it once a resume point exists."""
    process = subprocess.Popen(
        [sys.executable, '-m', 'geossl.cli', *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not last.exists():
        if process.poll() is not None:
            pytest.fail(f'{args[0]} ended before its first resume point')
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f'{args[0]} wrote no resume point in 5 minutes')
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
        ['--model.algorithm', 'freematch', '--model.teacher', 'true'],
        ['--model.algorithm', 'flexmatch'],
        ['--model.algorithm', 'softmatch'],
        # A bank of 3 steps (12 rows a step): full, smoothing and overwritten
        # across the kill.
        [
            '--model.algorithm',
            'comatch',
            '--model.algorithm_options',
            '{bank_size: 36}',
        ],
    ],
    ids=['st-freematch', 'flexmatch', 'softmatch', 'comatch'],
)
def test_killed_fit_resumes_exactly(shared_data, tmp_path, algorithm):
    _assert_resumes_exactly(
        lambda root: _fit_args(shared_data, root, algorithm), tmp_path
    )


def _pretrain_args(shared_data: Path, root: Path) -> list[str]:
    # The sample's 80 training tiles make 10 steps an epoch: the run crosses one.
    return [
        'pretrain',
        *['--model', 'SimSiam', '--model.model', 'test_resnet'],
        *['--data.root', str(shared_data / 'eurosat-ms-sample')],
        *['--data.in_memory', 'true', '--data.chip_size', '32'],
        *['--data.batch_size', '8', '--data.labels_per_class', '2'],
        *['--resume.every_n_train_steps', str(EVERY)],
        *['--trainer.max_steps', '15', '--trainer.deterministic', 'true'],
        *['--trainer.logger', 'false', '--trainer.enable_progress_bar', 'false'],
        *['--trainer.default_root_dir', str(root)],
    ]


def test_killed_pretraining_resumes_exactly(shared_data, tmp_path):
    # SimSiam: SGD momentum, a cosine schedule over the steps, random views.
    _assert_resumes_exactly(lambda root: _pretrain_args(shared_data, root), tmp_path)


def _assert_resumes_exactly(
    arguments: Callable[[Path], list[str]], tmp_path: Path
) -> None:
    """Run to the end; run, kill and resume; the two end in the same state."""
    uninterrupted = tmp_path / 'uninterrupted'
    assert main(arguments(uninterrupted)) == 0

    crashed = tmp_path / 'crashed'
    args = arguments(crashed)
    last = crashed / 'checkpoints' / 'last.ckpt'
    assert _kill_at_first_resume_point(args, last) == -signal.SIGKILL
    killed_at = torch.load(last, weights_only=True)['global_step']
    assert killed_at > 0
    splits = (crashed / 'splits.csv').read_text()

    assert main([*args, '--ckpt_path', 'last']) == 0
    assert (crashed / 'splits.csv').read_text() == splits
    reference = torch.load(
        uninterrupted / 'checkpoints' / 'last.ckpt', weights_only=True
    )
    resumed = torch.load(last, weights_only=True)
    assert resumed['global_step'] == reference['global_step'] > killed_at
    _assert_equal(_training_state(resumed), _training_state(reference))
