"""``geossl fit`` with DDP on the CPU (gloo): two processes against one.

Each process draws its own augmentations, so weights after a few steps are not
comparable between the two runs; what must hold exactly is that the two processes
share each step's samples between them as one process with the same global batch
draws them, and that they end with the same weights and the same policy state.
"""

import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
from lightning import Callback, LightningModule, Trainer

from tests.conftest import sample_fit_args

REPO = Path(__file__).parents[1]
STEPS = 6


class RecordRankState(Callback):
    """Save, per process, the samples of every step and the final module state."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)
        self.samples: list[dict[str, list[int]]] = []

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.samples.append({k: v['index'].tolist() for k, v in batch.items()})

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        torch.save(
            {'samples': self.samples, 'state': pl_module.state_dict()},
            self.folder / f'rank{trainer.global_rank}.pt',
        )


def _fit(shared_data: Path, folder: Path, *options: str) -> None:
    folder.mkdir()
    callback = f'{__name__}.RecordRankState'
    options = [
        *['--data.mu', '2', '--model.algorithm', 'freematch'],
        *['--trainer.accelerator', 'cpu', '--trainer.max_steps', str(STEPS)],
        *['--trainer.callbacks+', callback, '--trainer.callbacks.folder', str(folder)],
        *options,
    ]
    subprocess.run(
        [
            sys.executable,
            '-m',
            'geossl.cli',
            *sample_fit_args(shared_data, folder, *options),
        ],
        cwd=REPO,  # DDP starts the second process by running the command again.
        check=True,
        timeout=600,
        capture_output=True,
    )


def test_two_ddp_processes_share_the_steps_of_one_and_stay_in_sync(
    shared_data, tmp_path
):
    _fit(shared_data, tmp_path / 'one', '--data.batch_size', '4')
    _fit(
        shared_data,
        tmp_path / 'ddp',
        '--data.batch_size',
        '2',
        '--trainer.strategy',
        'ddp',
        '--trainer.devices',
        '2',
    )
    one = torch.load(tmp_path / 'one' / 'rank0.pt', weights_only=True)
    ranks = [
        torch.load(tmp_path / 'ddp' / f'rank{r}.pt', weights_only=True) for r in (0, 1)
    ]

    # The same samples at every step: the two halves of one process's batch.
    assert len(one['samples']) == len(ranks[0]['samples']) == STEPS
    for step, whole in enumerate(one['samples']):
        halves = [rank['samples'][step] for rank in ranks]
        for stream in ('labelled', 'unlabelled'):
            assert len(halves[0][stream]) == len(halves[1][stream])
            assert sorted(halves[0][stream] + halves[1][stream]) == sorted(
                whole[stream]
            )

    # Weights and policy state (FreeMatch's thresholds) end equal in both processes.
    # Batch-norm statistics are each process's own (DDP copies the first one's at
    # every forward pass, and the checkpoint keeps those); SyncBatchNorm, which
    # would share them, needs CUDA.
    state0, state1 = (rank['state'] for rank in ranks)
    assert state0.keys() == state1.keys()
    shared = [name for name in state0 if 'running_' not in name]
    assert any(name.startswith('policy.') for name in shared)
    for name in shared:
        torch.testing.assert_close(state0[name], state1[name], rtol=0, atol=0, msg=name)
    # ... and the policy state moved, as it did in one process.
    threshold = 'policy.global_threshold'
    start = torch.tensor(0.1)  # 1 / K for EuroSAT's 10 classes
    assert not torch.equal(state0[threshold], start)
    torch.testing.assert_close(
        state0[threshold] - start, one['state'][threshold] - start, rtol=0.5, atol=0
    )
    last = torch.load(tmp_path / 'ddp' / 'checkpoints' / 'last.ckpt', weights_only=True)
    assert last['global_step'] == STEPS
