"""A backbone taken out of a checkpoint, and fit started from it."""

import os
from pathlib import Path

import pytest
import torch

from geossl.errors import GeosslInputError
from geossl.models.backbones import create_backbone
from geossl.models.weights import load_backbone_weights, read_backbone
from geossl.tasks.pretrain import METHODS
from geossl.tasks.semi_supervised import SemiSupervisedTask

BANDS = 4
CHIP = 32


def _pretrained(method: str, path: Path, model: str = 'test_resnet') -> Path:
    """A checkpoint as geossl pretrain writes it, with weights unlike a fresh init."""
    torch.manual_seed(1)
    task = METHODS[method](model=model, in_channels=BANDS, chip_size=CHIP)
    with torch.no_grad():
        for parameter in task.parameters():
            parameter.add_(1.0)
    torch.save(
        {'hyper_parameters': dict(task.hparams), 'state_dict': task.state_dict()}, path
    )
    return path


@pytest.mark.parametrize('method', sorted(METHODS))
def test_the_backbone_of_every_method_is_found(method, tmp_path):
    path = _pretrained(method, tmp_path / 'pretrained.ckpt')
    name, weights = read_backbone(path)
    assert name == 'test_resnet'
    backbone = create_backbone(name, BANDS, CHIP)
    assert weights.keys() == backbone.state_dict().keys()
    load_backbone_weights([backbone], name, path)
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, weights[key]), key


def _task(**options: object) -> SemiSupervisedTask:
    return SemiSupervisedTask(
        **(
            {
                'num_classes': 3,
                'in_channels': BANDS,
                'chip_size': CHIP,
                'backbone': 'test_resnet',
            }
            | options
        )
    )


@pytest.mark.parametrize('teacher_student', [False, True])
def test_fit_starts_student_and_teacher_from_the_pretrained_backbone(
    teacher_student, tmp_path
):
    path = _pretrained('simclr', tmp_path / 'pretrained.ckpt')
    _, weights = read_backbone(path)
    task = _task(backbone_weights=str(path), teacher_student=teacher_student)
    networks = [task.student] + ([task.teacher] if teacher_student else [])
    for network in networks:
        for key, value in network.backbone.state_dict().items():
            assert torch.equal(value, weights[key]), key
    # A checkpoint of fit holds its student's backbone for the next fit.
    fitted = tmp_path / 'fitted.ckpt'
    torch.save(
        {'hyper_parameters': dict(task.hparams), 'state_dict': task.state_dict()},
        fitted,
    )
    name, again = read_backbone(fitted)
    assert name == 'test_resnet'
    assert all(torch.equal(again[key], weights[key]) for key in weights)


def test_another_backbone_is_refused_with_both_names(tmp_path):
    path = _pretrained('simsiam', tmp_path / 'pretrained.ckpt')
    with pytest.raises(GeosslInputError, match='holds a test_resnet backbone, but the'):
        _task(backbone='resnet10t', backbone_weights=str(path))


def test_another_band_count_is_refused_with_the_shapes(tmp_path):
    path = _pretrained('byol', tmp_path / 'pretrained.ckpt')
    with pytest.raises(GeosslInputError, match=r'of shape \(.*for another band count'):
        _task(in_channels=BANDS + 1, backbone_weights=str(path))


def test_backbone_weights_and_pretrained_exclude_each_other(tmp_path):
    path = _pretrained('moco', tmp_path / 'pretrained.ckpt')
    with pytest.raises(GeosslInputError, match='choose one'):
        _task(backbone_weights=str(path), pretrained=True)


def test_a_checkpoint_without_a_backbone_is_refused(tmp_path):
    path = tmp_path / 'other.ckpt'
    torch.save({'hyper_parameters': {'model': 'x'}, 'state_dict': {'w': 1}}, path)
    with pytest.raises(GeosslInputError, match='holds no backbone'):
        read_backbone(path)
    torch.save({'weights': torch.zeros(1)}, path)
    with pytest.raises(GeosslInputError, match='no state_dict'):
        read_backbone(path)


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.mkdir, (str(self.marker),))


def test_pickled_code_is_refused_and_never_runs(tmp_path):
    path = tmp_path / 'pretrained.ckpt'
    marker = tmp_path / 'ran'
    torch.save({'state_dict': {}, 'hyper_parameters': _Payload(marker)}, path)
    with pytest.raises(GeosslInputError, match='holds pickled code'):
        _task(backbone_weights=str(path))
    assert not marker.exists()
