import io
from types import SimpleNamespace

from geossl.tasks.progress import LogProgressBar


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _trainer(batches=100, max_epochs=2, max_steps=-1):
    return SimpleNamespace(
        max_epochs=max_epochs,
        max_steps=max_steps,
        global_step=0,
        current_epoch=0,
        num_training_batches=batches,
        sanity_checking=False,
        num_val_batches=[4],
        fit_loop=None,
        is_global_zero=True,
    )


def test_lightning_lines_come_once_per_interval_and_the_last_at_teardown():
    clock = Clock()
    stream = io.StringIO()
    bar = LogProgressBar(10, stream, clock)
    trainer = _trainer()
    bar._trainer = trainer
    module = SimpleNamespace()
    bar.get_metrics = lambda trainer, module: {'train_loss': 0.12345}
    bar.on_train_epoch_start(trainer, module)
    for step in range(100):
        clock.now = step * 0.5  # 50 s in all: lines at 0, 10, 20, 30, 40 s.
        bar.on_train_batch_end(trainer, module, None, None, step)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 5
    assert lines[0] == 'Epoch 0/1:   1%| 1/100 [00:00] train_loss=0.123'
    assert lines[1].startswith('Epoch 0/1:  21%| 21/100 [00:10]')
    bar.teardown(trainer, module, 'fit')
    last = stream.getvalue().splitlines()[-1]
    assert last.startswith('Epoch 0/1: 100%| 100/100 [00:49]')
    bar.teardown(trainer, module, 'fit')
    assert len(stream.getvalue().splitlines()) == 6


def test_an_epoch_cut_by_max_steps_counts_its_steps_to_the_end():
    stream = io.StringIO()
    bar = LogProgressBar(0, stream, Clock())
    trainer = _trainer(max_epochs=-1, max_steps=3)
    bar._trainer = trainer
    bar.get_metrics = lambda trainer, module: {}
    bar.on_train_epoch_start(trainer, None)
    for step in range(3):
        trainer.global_step = step + 1
        bar.on_train_batch_end(trainer, None, None, None, step)
    lines = stream.getvalue().splitlines()
    assert lines[-1].startswith('Epoch 0: 100%| 3/3')


def test_lightning_lines_stop_when_disabled():
    stream = io.StringIO()
    bar = LogProgressBar(0, stream, Clock())
    trainer = _trainer()
    bar._trainer = trainer
    bar.disable()
    bar.on_validation_batch_end(trainer, None, None, None, 0)
    bar.teardown(trainer, None, 'validate')
    assert stream.getvalue() == ''
