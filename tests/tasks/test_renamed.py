import warnings

import pytest
import torch

from geossl.errors import GeosslInputError
from geossl.tasks.renamed import renamed_options, upgrade_hparams
from geossl.tasks.semi_supervised import SemiSupervisedTask


def test_old_option_names_still_work_with_a_warning():
    with pytest.warns(FutureWarning) as caught:
        task = SemiSupervisedTask(
            num_classes=3,
            in_channels=4,
            algorithm='multilabel',
            backbone='resnet10t',
            multilabel=True,
        )
    assert sorted(str(warning.message) for warning in caught) == [
        'backbone is deprecated and will be removed; use model',
        "multilabel is deprecated and will be removed; use task='multilabel'",
    ]
    assert task.hparams['model'] == 'resnet10t'
    assert task.hparams['task'] == 'multilabel'
    assert task.multilabel
    # Checkpoints keep today's names only.
    assert not {'backbone', 'multilabel', 'pretrained', 'backbone_weights'} & set(
        task.hparams
    )


def test_a_checkpoint_of_an_older_geossl_loads_without_warnings(tmp_path):
    from geossl.inference.checkpoint import load_task
    from tests.inference.conftest import save_checkpoint

    path = save_checkpoint(tmp_path / 'new.ckpt', num_classes=3, in_channels=4)
    checkpoint = torch.load(path, weights_only=True)
    hparams = checkpoint['hyper_parameters']
    hparams['backbone'] = hparams.pop('model')
    hparams['backbone_weights'] = hparams.pop('weights')
    hparams['pretrained'] = False
    hparams['multilabel'] = hparams.pop('task') == 'multilabel'
    torch.save(checkpoint, tmp_path / 'old.ckpt')
    with warnings.catch_warnings():
        warnings.simplefilter('error', FutureWarning)
        task = load_task(tmp_path / 'old.ckpt')
    assert task.hparams['model'] == 'resnet18'
    assert not task.multilabel


def test_the_old_names_map_onto_the_new_ones():
    with pytest.warns(FutureWarning):
        assert renamed_options('resnet18', None, 'multiclass', pretrained=True) == (
            'resnet18',
            True,
            'multiclass',
        )
    with warnings.catch_warnings():
        warnings.simplefilter('error', FutureWarning)
        # Nothing old given: nothing warns, nothing changes.
        assert renamed_options('vit_small_patch16_224', 'w.pth', 'multilabel') == (
            'vit_small_patch16_224',
            'w.pth',
            'multilabel',
        )
    with (
        pytest.warns(FutureWarning),
        pytest.raises(GeosslInputError, match='choose one'),
    ):
        renamed_options(
            'resnet18', None, 'multiclass', pretrained=True, backbone_weights='w.pth'
        )
    assert upgrade_hparams({'backbone': 'resnet50', 'multilabel': False}) == {
        'model': 'resnet50',
        'weights': None,
        'task': 'multiclass',
    }


def test_a_teacher_of_an_older_geossl_without_neighbours_loads_as_trained(tmp_path):
    from geossl.inference.checkpoint import load_task
    from tests.inference.conftest import save_checkpoint

    path = save_checkpoint(
        tmp_path / 'new.ckpt',
        num_classes=3,
        in_channels=4,
        algorithm='fixmatch',
        teacher_student=True,
        metadata='location',
        num_samples=50,
    )
    checkpoint = torch.load(path, weights_only=True)
    assert 'neighbour_memory.links' in checkpoint['state_dict']
    # As geossl wrote it before the teacher had neighbours.
    del checkpoint['hyper_parameters']['neighbours']
    for key in [k for k in checkpoint['state_dict'] if k.startswith('neighbour_')]:
        del checkpoint['state_dict'][key]
    torch.save(checkpoint, tmp_path / 'old.ckpt')
    task = load_task(tmp_path / 'old.ckpt')
    assert task.teacher_student.memory is None
    assert task.hparams['neighbours'] == 0
    assert load_task(path).teacher_student.memory is not None
