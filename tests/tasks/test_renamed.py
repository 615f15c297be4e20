import warnings

import pytest
import torch
import yaml

from geossl.tasks.renamed import upgrade_arguments, upgrade_hparams
from geossl.tasks.semi_supervised import SemiSupervisedTask


def _flat(hparams):
    """Hyperparameters as geossl wrote them before its options had groups."""
    flat = dict(hparams)
    teacher = flat.pop('teacher')
    flat['teacher_student'] = teacher is not None
    data = dict(flat.pop('data'))
    data['data_metadata'] = data.pop('metadata_parts')
    return flat | (teacher or {}) | flat.pop('recipe') | flat.pop('views') | data


def test_the_earlier_names_map_onto_the_groups():
    with pytest.warns(FutureWarning) as caught:
        upgraded = upgrade_hparams(
            {
                'teacher_student': True,
                'lambda_d': 0.1,
                'lr': 0.01,
                'num_ops': 3,
                'backbone': 'resnet50',
                'pretrained': True,
                'multilabel': False,
                'num_classes': 3,
            },
            warn=True,
            prefix='--model.',
        )
    assert upgraded == {
        'teacher': {'lambda_d': 0.1},
        'recipe': {'lr': 0.01},
        'views': {'num_ops': 3},
        'model': 'resnet50',
        'weights': True,
        'task': 'multiclass',
        'num_classes': 3,
    }
    assert '--model.lambda_d is now --model.teacher.lambda_d' in {
        str(warning.message) for warning in caught
    }
    assert len(caught) == 7  # one for each earlier name
    # No teacher: its settings go with it.
    assert upgrade_hparams({'teacher_student': False, 'lambda_d': 0.1}) == {
        'teacher': None
    }
    # Settings of a teacher that nothing here turns on: a teacher setting now
    # turns it on, so they are left out, and said so.
    with pytest.warns(FutureWarning, match=r'--model\.metadata left out'):
        assert upgrade_hparams({'metadata': 'time'}, True, '--model.') == {}
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert upgrade_hparams({'teacher': True, 'model': 'x'}) == {
            'teacher': True,
            'model': 'x',
        }


def test_earlier_names_on_the_command_line_take_todays_form():
    with pytest.warns(FutureWarning, match='--model.lr is now --model.recipe.lr'):
        upgraded = upgrade_arguments(
            [
                *['--model.lambda_d', '0.1', '--model.teacher_student=true'],
                *['--model.lr', '1e-3', '--data.lr', '1', '--model.multilabel', 'true'],
            ]
        )
    # Read together, in place of the first: the teacher is on, with its setting.
    assert upgraded == [
        # The value as given: YAML would read 1e-3 as text.
        *['--model.recipe.lr', '1e-3', '--model.task', '"multilabel"'],
        *['--model.teacher.lambda_d', '0.1', '--data.lr', '1'],
    ]


def test_a_checkpoint_with_the_earlier_names_loads_as_trained(tmp_path):
    from geossl.inference.checkpoint import load_task

    torch.manual_seed(0)
    task = SemiSupervisedTask(
        num_classes=3,
        in_channels=4,
        model='resnet10t',
        teacher={'metadata': 'location', 'lambda_d': 0.25, 'neighbours': 0},
        recipe={'lr': 0.01, 'ema_decay': None},
        views={'num_ops': 1},
    )
    hparams = _flat(task.hparams)
    assert {'teacher_student', 'lambda_d', 'lr', 'num_ops', 'band_names'} <= set(
        hparams
    )
    # The oldest names too.
    hparams['backbone'] = hparams.pop('model')
    hparams['multilabel'] = hparams.pop('task') == 'multilabel'
    path = tmp_path / 'old.ckpt'
    torch.save({'hyper_parameters': hparams, 'state_dict': task.state_dict()}, path)
    with warnings.catch_warnings():
        warnings.simplefilter('error', FutureWarning)
        loaded = load_task(path)
    assert loaded.hparams['teacher'] == task.hparams['teacher']
    assert loaded.hparams['recipe'] == task.hparams['recipe']
    assert loaded.hparams['views'] == {'num_ops': 1, 'crop_padding': 0.125}
    assert loaded.hparams['data'] == task.hparams['data']
    assert loaded.teacher_student.options.lambda_d == 0.25
    for key, value in task.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_a_run_and_a_checkpoint_with_the_earlier_names_still_work(
    shared_data, tmp_path, capsys
):
    """A config and a command line with flat names fit; test reads the checkpoint."""
    from geossl.cli import main
    from tests.conftest import fit_one_step

    config = tmp_path / 'old.yaml'
    config.write_text(
        yaml.safe_dump(
            {'model': {'teacher_student': True, 'metadata': 'location', 'lr': 0.01}}
        )
    )
    with pytest.warns(FutureWarning) as caught:
        checkpoint = fit_one_step(
            shared_data,
            tmp_path / 'run',
            *['--config', str(config), '--model.num_ops', '1'],
        )
    messages = {str(warning.message) for warning in caught}
    assert f'{config}: model.lr is now {config}: model.recipe.lr' in messages
    assert '--model.num_ops is now --model.views.num_ops' in messages
    saved = torch.load(checkpoint, weights_only=True)
    hparams = saved['hyper_parameters']
    assert hparams['teacher']['metadata'] == 'location'
    assert hparams['recipe']['lr'] == 0.01
    assert hparams['views']['num_ops'] == 1
    # The config on disk is left as it was.
    assert 'teacher_student' in config.read_text()
    # A checkpoint with the flat names: Lightning parses its hyperparameters as the
    # model's options, upgraded first.
    old = tmp_path / 'old.ckpt'
    torch.save(saved | {'hyper_parameters': _flat(hparams)}, old)
    capsys.readouterr()
    arguments = [
        'validate',
        *['--data.root', str(shared_data / 'eurosat-ms-sample')],
        *['--data.labels_per_class', '2', '--data.in_memory', 'true'],
        *['--data.chip_size', '32', '--data.batch_size', '2'],
        *['--trainer.limit_val_batches', '1', '--trainer.logger', 'false'],
        *['--trainer.default_root_dir', str(tmp_path / 'validate')],
        *['--ckpt_path', str(old)],
    ]
    assert main(arguments) == 0
    assert 'val_loss' in capsys.readouterr().out


def test_a_teacher_of_an_older_geossl_without_neighbours_loads_as_trained(tmp_path):
    from geossl.inference.checkpoint import load_task
    from tests.inference.conftest import save_checkpoint

    path = save_checkpoint(
        tmp_path / 'new.ckpt',
        num_classes=3,
        in_channels=4,
        algorithm='fixmatch',
        teacher={'metadata': 'location', 'neighbours': 8},
        data={'num_samples': 50},
    )
    checkpoint = torch.load(path, weights_only=True)
    assert 'neighbour_memory.links' in checkpoint['state_dict']
    # As geossl wrote it before the teacher had neighbours.
    del checkpoint['hyper_parameters']['teacher']['neighbours']
    for key in [k for k in checkpoint['state_dict'] if k.startswith('neighbour_')]:
        del checkpoint['state_dict'][key]
    torch.save(checkpoint, tmp_path / 'old.ckpt')
    task = load_task(tmp_path / 'old.ckpt')
    assert task.teacher_student.memory is None
    assert task.hparams['teacher']['neighbours'] == 0
    assert load_task(path).teacher_student.memory is not None
