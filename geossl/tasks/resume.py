"""What a stopped run needs to carry on exactly: resume points and random state.

Lightning checkpoints weights, optimiser, schedulers and loop counters, but only
when a checkpoint callback says so, and never the random generators. The training
step draws its views (flips, shifts, RandAugment, erasing) from torch's global
generator, so without its state a resumed run would augment differently from the
run it continues. The training samplers need nothing here: they start from the
restored step count (:mod:`geossl.data.samplers`).
"""

from typing import Any

import torch
from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint


class ResumeCheckpoint(ModelCheckpoint):
    """Write ``last.ckpt`` every few training steps, for ``--ckpt_path last``.

    A crash or a kill then loses at most that many steps. Lightning writes each
    checkpoint to a temporary file and renames it, so ``last.ckpt`` is always
    whole.

    Args:
        every_n_train_steps: training steps between resume points.
    """

    def __init__(self, every_n_train_steps: int = 100) -> None:
        """Initialise the callback."""
        super().__init__(
            every_n_train_steps=every_n_train_steps,
            save_top_k=0,
            save_last=True,
            # A resumed run carries on the same last.ckpt.
            enable_version_counter=False,
        )


class RandomStateCheckpoint(Callback):
    """Save torch's CPU and CUDA generator states; restore them when training starts.

    The state is restored at the start of training rather than on loading, so
    that nothing the Trainer does in between (setting up loaders, the sanity
    check) changes what the first resumed step draws.
    """

    def __init__(self) -> None:
        """Initialise with nothing to restore."""
        self._restore: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        """The generator states at the moment of the checkpoint.

        Returns:
            ``cpu``: the CPU state; ``cuda``: one state per CUDA device (empty if
            CUDA was never used).
        """
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []
        return {'cpu': torch.get_rng_state(), 'cuda': cuda}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Keep a checkpoint's states for the start of training.

        Args:
            state_dict: from :meth:`state_dict`.
        """
        self._restore = state_dict

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Restore the checkpoint's generator states, if resuming.

        Args:
            trainer: the Trainer.
            pl_module: the task.
        """
        if self._restore is None:
            return
        torch.set_rng_state(self._restore['cpu'])
        cuda = self._restore['cuda']
        # A checkpoint from other CUDA devices keeps this machine's seeding.
        if torch.cuda.is_available() and len(cuda) == torch.cuda.device_count() > 0:
            torch.cuda.set_rng_state_all(cuda)
        self._restore = None
