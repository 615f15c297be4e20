import pandas as pd
import pytest
import torch
from lightning import Trainer, seed_everything
from lightning.pytorch.callbacks import EMAWeightAveraging, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from geossl.data.datamodule import SemiSupervisedDataModule
from geossl.data.datasets import ImageFolderDataset
from geossl.data.splits import SplitConfig
from geossl.errors import GeosslInputError
from geossl.tasks.semi_supervised import SemiSupervisedTask


@pytest.fixture(scope='module')
def eurosat_ms(shared_data):
    return ImageFolderDataset(shared_data / 'eurosat-ms-sample', progress=False)


def _datamodule(dataset, run_dir, batch_size=4, mu=2, **split):
    config = SplitConfig(**({'labels_per_class': 2} | split))
    return SemiSupervisedDataModule(dataset, config, run_dir, batch_size, mu)


def _task(dataset, algorithm='fixmatch', **options):
    return SemiSupervisedTask(
        num_classes=len(dataset.classes),
        in_channels=len(dataset.band_names),
        multilabel=dataset.multilabel,
        algorithm=algorithm,
        num_samples=len(dataset),
        class_names=dataset.classes,
        **options,
    )


def _trainer(run_dir, max_steps, **options):
    return Trainer(
        max_steps=max_steps,
        accelerator='cpu',
        logger=CSVLogger(run_dir, name='logs'),
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        **({'enable_checkpointing': False} | options),
    )


@pytest.mark.parametrize(
    ('algorithm', 'options'),
    [('fixmatch', {'threshold': 0.7}), ('freematch', None)],
)
def test_training_reduces_loss_and_uses_unlabelled_data(
    eurosat_ms, tmp_path, algorithm, options
):
    seed_everything(0)
    task = _task(eurosat_ms, algorithm, algorithm_options=options)
    trainer = _trainer(tmp_path, max_steps=30, limit_val_batches=0)
    trainer.fit(task, _datamodule(eurosat_ms, tmp_path, batch_size=8))
    log = pd.read_csv(f'{trainer.logger.log_dir}/metrics.csv')
    steps = log.dropna(subset=['train/loss'])
    assert len(steps) == 30
    loss = steps['train/loss'].to_numpy()
    assert loss[-5:].mean() < loss[:5].mean()
    assert steps['train/mask_ratio'].max() > 0
    assert (steps['train/unsupervised_loss'] > 0).any()
    assert steps['train/pseudo_label_accuracy'].notna().any()
    assert {f'train/utilisation/{c}' for c in eurosat_ms.classes} <= set(log.columns)


def test_checkpoint_restores_policy_state_exactly(eurosat_ms, tmp_path):
    seed_everything(0)
    task = _task(eurosat_ms, 'flexmatch', algorithm_options={'threshold': 0.3})
    checkpoint = ModelCheckpoint(tmp_path / 'checkpoints', save_last=True)
    trainer = _trainer(
        tmp_path, max_steps=4, callbacks=[checkpoint], enable_checkpointing=True
    )
    datamodule = _datamodule(eurosat_ms, tmp_path)
    trainer.fit(task, datamodule)
    assert (task.policy.selected >= 0).any()
    restored = SemiSupervisedTask.load_from_checkpoint(checkpoint.last_model_path)
    for key, value in task.state_dict().items():
        assert torch.equal(restored.state_dict()[key], value), key
    assert torch.equal(restored.views.mean, task.views.mean)
    assert restored.views.mean.flatten().tolist() == datamodule.mean.tolist()
    resumed = _trainer(tmp_path, max_steps=6)
    resumed.fit(restored, datamodule, ckpt_path=checkpoint.last_model_path)
    assert resumed.global_step == 6


def test_multilabel_training_on_bigearthnet(shared_data, tmp_path):
    dataset = ImageFolderDataset(
        shared_data / 'bigearthnet-s2-examples', progress=False
    )
    seed_everything(0)
    task = _task(dataset, 'multilabel_freematch')
    trainer = _trainer(tmp_path, max_steps=-1, max_epochs=1)
    datamodule = _datamodule(
        dataset,
        tmp_path,
        batch_size=2,
        mu=1,
        labels_per_class=None,
        label_fraction=1.0,
        val_fraction=0.34,
        test_fraction=0.0,
    )
    trainer.fit(task, datamodule)
    assert 0 <= trainer.callback_metrics['val/map_macro'] <= 1
    assert 'train/threshold/Urban fabric' in trainer.callback_metrics


def test_validation_saves_the_confusion_matrix_and_runs_with_ema(eurosat_ms, tmp_path):
    seed_everything(0)
    task = _task(eurosat_ms, 'softmatch')
    trainer = _trainer(
        tmp_path,
        max_steps=-1,
        max_epochs=1,
        limit_train_batches=3,
        callbacks=[EMAWeightAveraging(decay=0.9)],
    )
    trainer.fit(task, _datamodule(eurosat_ms, tmp_path))
    assert (tmp_path / 'logs' / 'version_0' / 'confusion_val_epoch0.png').stat().st_size
    assert 'val/kappa' in trainer.callback_metrics
    assert 'val/f1/Forest' in trainer.callback_metrics


def test_supervised_baseline_ignores_unlabelled_batches(eurosat_ms, tmp_path):
    task = _task(eurosat_ms, 'supervised')
    trainer = _trainer(tmp_path, max_steps=2, limit_val_batches=0)
    trainer.fit(task, _datamodule(eurosat_ms, tmp_path))
    assert task.policy is None
    assert 'train/mask_ratio' not in trainer.callback_metrics


def test_bad_configurations_fail_before_training(eurosat_ms, tmp_path):
    with pytest.raises(GeosslInputError, match="backbone: 'resnet1' is not a timm"):
        _task(eurosat_ms, backbone='resnet1')
    with pytest.raises(GeosslInputError, match='algorithm: fixmatch does not fit'):
        SemiSupervisedTask(num_classes=19, in_channels=12, multilabel=True)
    wrong_bands = SemiSupervisedTask(num_classes=10, in_channels=3)
    with pytest.raises(GeosslInputError, match='in_channels: is 3 but the data has 13'):
        _trainer(tmp_path, max_steps=1).fit(
            wrong_bands, _datamodule(eurosat_ms, tmp_path)
        )
    with pytest.raises(GeosslInputError, match='mu: is 0; fixmatch needs unlabelled'):
        _trainer(tmp_path, max_steps=1).fit(
            _task(eurosat_ms), _datamodule(eurosat_ms, tmp_path, mu=0)
        )
