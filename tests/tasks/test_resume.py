import torch

from geossl.tasks.resume import RandomStateCheckpoint, ResumeCheckpoint


def test_random_state_is_restored_when_training_starts():
    callback = RandomStateCheckpoint()
    state = callback.state_dict()
    expected = torch.rand(5)
    restored = RandomStateCheckpoint()
    restored.load_state_dict(state)
    torch.rand(3)  # what the Trainer might draw between loading and training
    restored.on_train_start(None, None)
    assert torch.equal(torch.rand(5), expected)
    # Restored once: a later start of training does not rewind.
    restored.on_train_start(None, None)
    assert not torch.equal(torch.rand(5), expected)


def test_resume_checkpoint_writes_only_last():
    callback = ResumeCheckpoint(every_n_train_steps=7)
    assert callback.save_last is True
    assert callback.save_top_k == 0
    assert callback._every_n_train_steps == 7
