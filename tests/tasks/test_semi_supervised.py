import json
from typing import Any

import pandas as pd
import pytest
import torch
from lightning import Callback, Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint, WeightAveraging
from lightning.pytorch.loggers import CSVLogger, Logger

from geossl.data.datamodule import SemiSupervisedDataModule, collate_samples
from geossl.data.splits import SplitConfig
from geossl.errors import GeosslInputError
from geossl.tasks.recipes import Recipe
from geossl.tasks.semi_supervised import SemiSupervisedTask
from tests.tasks.conftest import task_for


def _datamodule(dataset, run_dir, batch_size=4, mu=2, **split):
    config = SplitConfig(**({'labels_per_class': 2} | split))
    return SemiSupervisedDataModule(dataset, config, run_dir, batch_size, mu)


def _trainer(run_dir, max_steps, **options):
    return Trainer(
        max_steps=max_steps,
        accelerator='cpu',
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=run_dir,  # where a test's metrics report goes
        **(
            {'enable_checkpointing': False, 'logger': CSVLogger(run_dir, name='logs')}
            | options
        ),
    )


@pytest.mark.parametrize(
    ('algorithm', 'options'),
    [('fixmatch', {'threshold': 0.7}), ('freematch', None)],
)
def test_training_reduces_loss_and_uses_unlabelled_data(
    eurosat_ms, tmp_path, algorithm, options
):
    seed_everything(0)
    task = task_for(eurosat_ms, algorithm, algorithm_options=options)
    trainer = _trainer(tmp_path, max_steps=30, limit_val_batches=0)
    trainer.fit(task, _datamodule(eurosat_ms, tmp_path, batch_size=8))
    log = pd.read_csv(f'{trainer.logger.log_dir}/metrics.csv')
    steps = log.dropna(subset=['train_loss'])
    assert len(steps) == 30
    loss = steps['train_loss'].to_numpy()
    assert loss[-5:].mean() < loss[:5].mean()
    assert steps['train_mask_ratio'].max() > 0
    assert (steps['train_unsupervised_loss'] > 0).any()
    assert steps['train_pseudo_label_accuracy'].notna().any()
    assert {f'train_utilisation_{c}' for c in eurosat_ms.classes} <= set(log.columns)


@pytest.mark.parametrize('teacher_student', [False, True])
def test_dash_warms_up_on_the_labelled_loss_of_the_pseudo_labelling_network(
    eurosat_ms, tmp_path, teacher_student
):
    seed_everything(0)
    task = task_for(
        eurosat_ms,
        'dash',
        algorithm_options={'warmup_steps': 4, 'decay_every': 2},
        teacher={'metadata': 'location'} if teacher_student else None,
    )
    trainer = _trainer(tmp_path, max_steps=8, limit_val_batches=0)
    trainer.fit(task, _datamodule(eurosat_ms, tmp_path, batch_size=8))
    log = pd.read_csv(f'{trainer.logger.log_dir}/metrics.csv')
    steps = log.dropna(subset=['train_loss'])
    # Supervised warm-up: nothing kept for 4 steps, then the threshold is set.
    assert (steps['train_mask_ratio'].iloc[:4] == 0).all()
    assert (steps['train_threshold'].iloc[:4] == 0).all()
    assert (steps['train_threshold'].iloc[4:] > 0).all()
    assert task.policy.step.item() == 8
    # rho_hat is the moving average (momentum 0.99) of the labelled cross-entropy
    # of the network that pseudo-labels (the teacher's, in teacher-student), over
    # warm-up: mostly its first step's.
    name = 'teacher_supervised_loss' if teacher_student else 'supervised_loss'
    losses = steps[f'train_{name}'].iloc[:4].to_numpy()
    expected = losses[0]
    for loss in losses[1:]:
        expected = 0.99 * expected + 0.01 * loss
    assert task.policy.labelled_loss.item() == pytest.approx(expected, rel=1e-4)
    assert steps['train_rho_hat'].iloc[-1] == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize('teacher_student', [False, True])
def test_comatch_remembers_the_pseudo_labelling_networks_embeddings(
    eurosat_ms, teacher_student
):
    seed_everything(0)
    task = task_for(
        eurosat_ms,
        'comatch',
        algorithm_options={'projection_dim': 8, 'bank_size': 64},
        teacher={'metadata': 'location'} if teacher_student else None,
    ).train()
    samples = [eurosat_ms[i] for i in range(5)]
    batch = task.on_after_batch_transfer(
        {
            'labelled': collate_samples(samples[:2]),
            'unlabelled': collate_samples(samples[2:]),
        },
        0,
    )
    assert batch['unlabelled']['strong'].shape[0] == 2 * 3  # two strong views each
    pseudo_labelling = task.teacher if teacher_student else task.student
    embeddings = []
    pseudo_labelling.projection.register_forward_hook(
        lambda module, inputs, output: embeddings.append(output.detach())
    )
    loss = task.training_step(batch, 0)
    # Rows: 2 labelled, 3 weak, 3 + 3 strong. The bank takes the weak views with
    # their (aligned) probabilities, then the labelled views with one-hot labels.
    (rows,) = embeddings
    bank = task.policy.bank
    assert bank.pushed.item() == 5
    torch.testing.assert_close(bank.rows[:3, :8], rows[2:5])
    torch.testing.assert_close(bank.rows[3:5, :8], rows[:2])
    labels = batch['labelled']['label']
    assert torch.equal(bank.rows[3:5, 8:].argmax(dim=1), labels)
    assert bank.rows[3:5, 8:].sum().item() == 2
    torch.testing.assert_close(bank.rows[:3, 8:].sum(dim=1), torch.ones(3))
    # Every network learns its own embeddings from the pseudo-label graph.
    loss.backward()
    for network in filter(None, (task.student, task.teacher)):
        assert network.projection.mlp[0].weight.grad.abs().sum() > 0
    # `geossl embed` writes the student's projections beside its features.
    embedded = task.eval().embed(batch['labelled']['weak'])
    assert embedded.keys() == {'features', 'projection'}
    torch.testing.assert_close(embedded['projection'].norm(dim=1), torch.ones(2))


class _PolicyAtSave(Callback):
    """Keeps the live policy state at each checkpoint save."""

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        self.state = {k: v.clone() for k, v in pl_module.policy.state_dict().items()}


@pytest.mark.parametrize('ema_decay', [None, 0.999])
def test_checkpoint_restores_policy_state_exactly(eurosat_ms, tmp_path, ema_decay):
    seed_everything(0)
    task = task_for(
        eurosat_ms,
        'flexmatch',
        algorithm_options={'threshold': 0.3},
        recipe=Recipe(ema_decay=ema_decay),
    )
    checkpoint = ModelCheckpoint(tmp_path / 'checkpoints', save_last=True)
    at_save = _PolicyAtSave()
    trainer = _trainer(
        tmp_path,
        max_steps=4,
        limit_val_batches=0,
        callbacks=[checkpoint, at_save],
        enable_checkpointing=True,
    )
    datamodule = _datamodule(eurosat_ms, tmp_path)
    trainer.fit(task, datamodule)
    assert (at_save.state['selected'] >= 0).any()
    saved = torch.load(checkpoint.last_model_path, weights_only=False)
    # With the EMA, Lightning keeps the live (not averaged) state for resuming.
    live = saved['state_dict'] if ema_decay is None else saved['current_model_state']
    for key, value in at_save.state.items():
        assert torch.equal(live[f'policy.{key}'], value), key
    restored = SemiSupervisedTask.load_from_checkpoint(checkpoint.last_model_path)
    assert restored.views.mean.flatten().tolist() == datamodule.mean.tolist()
    resumed = _trainer(tmp_path, max_steps=6, limit_val_batches=0)
    resumed.fit(restored, datamodule, ckpt_path=checkpoint.last_model_path)
    assert resumed.global_step == 6
    averaging = [c for c in resumed.callbacks if isinstance(c, WeightAveraging)]
    assert len(averaging) == (ema_decay is not None)


def test_multilabel_training_on_bigearthnet(bigearthnet, tmp_path):
    dataset = bigearthnet
    seed_everything(0)
    task = task_for(dataset, 'multilabel_freematch')
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
    assert 0 <= trainer.callback_metrics['val_map_macro'] <= 1
    assert 'train_threshold_Urban fabric' in trainer.callback_metrics


def test_validation_saves_the_confusion_matrix_and_runs_with_ema(eurosat_ms, tmp_path):
    seed_everything(0)
    task = task_for(eurosat_ms, 'softmatch', recipe=Recipe(ema_decay=0.9))
    trainer = _trainer(tmp_path, max_steps=-1, max_epochs=1, limit_train_batches=3)
    datamodule = _datamodule(eurosat_ms, tmp_path)
    trainer.fit(task, datamodule)
    logs = tmp_path / 'logs' / 'version_0'
    assert (logs / 'confusion_val_epoch0.png').stat().st_size
    assert 'val_kappa' in trainer.callback_metrics
    assert 'val_f1_Forest' in trainer.callback_metrics
    assert any(isinstance(c, WeightAveraging) for c in trainer.callbacks)
    trainer.test(task, datamodule)
    assert (logs / 'confusion_test_epoch1.png').stat().st_size
    assert (
        'test_kappa'
        in json.loads((tmp_path / 'test_metrics.json').read_text())['metrics']
    )


class _FolderlessLogger(Logger):
    """A logger that keeps nothing on disk, as some experiment trackers do."""

    name = 'folderless'
    version = 0

    def log_hyperparams(self, params: Any) -> None:
        """Keep nothing."""

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Keep nothing."""


def test_a_logger_without_a_folder_gets_no_confusion_picture(
    eurosat_ms, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    seed_everything(0)
    trainer = _trainer(
        tmp_path, max_steps=2, logger=_FolderlessLogger(), val_check_interval=2
    )
    trainer.fit(task_for(eurosat_ms, 'fixmatch'), _datamodule(eurosat_ms, tmp_path))
    assert 'val_kappa' in trainer.callback_metrics
    assert not list(tmp_path.rglob('confusion_*.png'))


def test_supervised_baseline_ignores_unlabelled_batches(eurosat_ms, tmp_path):
    task = task_for(eurosat_ms, 'supervised')
    trainer = _trainer(tmp_path, max_steps=2, limit_val_batches=0)
    trainer.fit(task, _datamodule(eurosat_ms, tmp_path))
    assert task.policy is None
    assert 'train_mask_ratio' not in trainer.callback_metrics


def test_vision_transformer_backbone(eurosat_ms):
    task = task_for(eurosat_ms, model='vit_small_patch16_224', chip_size=64)
    assert task(torch.zeros(2, 13, 64, 64)).shape == (2, 10)
    assert task.student.head.in_features == 384


def test_bad_configurations_fail_before_training(eurosat_ms, tmp_path):
    with pytest.raises(GeosslInputError, match="model: 'resnet1' is not a timm"):
        task_for(eurosat_ms, model='resnet1')
    with pytest.raises(GeosslInputError, match='algorithm: fixmatch does not fit'):
        SemiSupervisedTask(num_classes=19, in_channels=12, task='multilabel')
    wrong_bands = SemiSupervisedTask(num_classes=10, in_channels=3)
    with pytest.raises(GeosslInputError, match='in_channels: is 3 but the data has 13'):
        _trainer(tmp_path, max_steps=1).fit(
            wrong_bands, _datamodule(eurosat_ms, tmp_path)
        )
    with pytest.raises(GeosslInputError, match='mu: is 0; fixmatch needs unlabelled'):
        _trainer(tmp_path, max_steps=1).fit(
            task_for(eurosat_ms), _datamodule(eurosat_ms, tmp_path, mu=0)
        )


def test_initial_weights_get_the_fine_tuning_recipe_unless_one_is_set(
    eurosat_ms, tmp_path, caplog
):
    from geossl.tasks.recipes import FINE_TUNING_RECIPE, SCRATCH_RECIPES

    # A checkpoint of a task: its backbone is the initial weights of the next.
    path = tmp_path / 'weights.ckpt'
    first = task_for(eurosat_ms)
    torch.save(
        {
            'hyper_parameters': dict(first.hparams),
            'state_dict': {k: v for k, v in first.state_dict().items()},
        },
        path,
    )
    with caplog.at_level('INFO'):
        task = task_for(eurosat_ms, weights=str(path))
    recipe = FINE_TUNING_RECIPE
    assert [task.hparams['recipe'][k] for k in ('optimizer', 'lr', 'warmup')] == [
        recipe.optimizer,
        recipe.lr,
        recipe.warmup,
    ]
    assert 'so the fine-tuning recipe: adamw' in caplog.text
    # Set by the user: kept, the rest from the optimiser's own recipe.
    task = task_for(eurosat_ms, weights=str(path), recipe=Recipe(optimizer='sgd'))
    assert (task.recipe.lr, task.recipe.warmup) == (
        SCRATCH_RECIPES['sgd'].lr,
        0.0,
    )
    # From scratch: FixMatch's SGD, as before.
    assert task_for(eurosat_ms).hparams['recipe']['optimizer'] == 'sgd'


def test_the_backbones_learning_rate_is_a_fraction_of_the_heads(eurosat_ms):
    task = task_for(
        eurosat_ms,
        teacher=True,
        recipe=Recipe(optimizer='adamw', lr=1e-3, backbone_lr_factor=0.1),
    )
    optimizer = task.configure_optimizers()['optimizer']
    rate = {
        id(p): (group['lr'], group['weight_decay'])
        for group in optimizer.param_groups
        for p in group['params']
    }
    for network in (task.student, task.teacher):
        for parameter in network.backbone.parameters():
            decay = task.recipe.weight_decay if parameter.ndim > 1 else 0.0
            assert rate[id(parameter)] == (pytest.approx(1e-4), decay)
        assert rate[id(network.head.weight)][0] == 1e-3
    assert rate[id(task.teacher.encoder.mlp[0].weight)][0] == 1e-3
    trained = [p for p in task.parameters() if p.requires_grad]
    assert len(rate) == len(trained)


def test_training_lays_out_an_efficientnet_channels_last_on_the_cpu(
    eurosat_ms, tmp_path
):
    seed_everything(0)
    task = task_for(
        eurosat_ms,
        model='test_efficientnet',
        teacher={'metadata': 'location'},
    )
    assert task.hparams['memory_format'] == 'auto'
    trainer = _trainer(tmp_path, max_steps=1, limit_val_batches=0)
    trainer.fit(task, _datamodule(eurosat_ms, tmp_path))
    for network in (task.student, task.teacher):
        stem = network.backbone.conv_stem.weight
        assert stem.is_contiguous(memory_format=torch.channels_last)
    # Asked for, the weights stay channels-first.
    task = task_for(eurosat_ms, model='test_efficientnet', memory_format='contiguous')
    _trainer(tmp_path, max_steps=1, limit_val_batches=0).fit(
        task, _datamodule(eurosat_ms, tmp_path)
    )
    assert task.student.backbone.conv_stem.weight.is_contiguous()


def test_settings_that_do_not_fit_are_one_line_naming_them():
    with pytest.raises(
        GeosslInputError, match=r'data\.class_names: lists 2 names for 3 classes'
    ):
        SemiSupervisedTask(
            3, 4, algorithm='supervised', data={'class_names': ['a', 'b']}
        )
    with pytest.raises(GeosslInputError, match=r"data: has no setting 'classes'; its"):
        SemiSupervisedTask(3, 4, algorithm='supervised', data={'classes': ['a']})
    with pytest.raises(GeosslInputError, match=r"recipe: has no setting 'rate'"):
        SemiSupervisedTask(3, 4, algorithm='supervised', recipe={'rate': 0.1})
