import inspect

import pytest
import torch
from lightning import Trainer, seed_everything

from geossl.data.datamodule import SemiSupervisedDataModule, collate_samples
from geossl.data.splits import SplitConfig
from geossl.errors import GeosslInputError
from geossl.models.classifier import Classifier
from geossl.tasks.semi_supervised import SemiSupervisedTask
from tests.tasks.conftest import task_for


def _task(dataset, algorithm='fixmatch', **teacher):
    return task_for(dataset, algorithm, teacher={'metadata': 'location'} | teacher)


def _fit(task, dataset, run_dir, steps=2, **split):
    config = SplitConfig(**({'labels_per_class': 2} | split))
    datamodule = SemiSupervisedDataModule(dataset, config, run_dir, batch_size=2, mu=2)
    trainer = Trainer(
        max_steps=steps,
        accelerator='cpu',
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        default_root_dir=run_dir,  # Where the compute report goes.
    )
    trainer.fit(task, datamodule)
    return trainer, datamodule


def _batch(dataset, positions):
    return collate_samples([dataset[p] for p in positions])


@pytest.mark.parametrize(
    'algorithm', ['fixmatch', 'freematch', 'flexmatch', 'softmatch', 'dash', 'comatch']
)
def test_every_policy_runs_wrapped(eurosat_ms, tmp_path, algorithm):
    seed_everything(0)
    task = _task(eurosat_ms, algorithm)
    trainer, _ = _fit(task, eurosat_ms, tmp_path)
    metrics = trainer.callback_metrics
    names = ['distillation_loss', 'teacher_unsupervised_loss', 'unsupervised_loss']
    if algorithm == 'comatch':
        names += ['teacher_contrastive_loss', 'contrastive_loss']
    for name in names:
        assert torch.isfinite(metrics[f'train_{name}']), name


def test_multilabel_teacher_student_with_location_and_time(bigearthnet, tmp_path):
    seed_everything(0)
    task = _task(
        bigearthnet,
        'multilabel',
        metadata='location+time',
        distillation='kl',
    )
    trainer, _ = _fit(
        task,
        bigearthnet,
        tmp_path,
        labels_per_class=None,
        label_fraction=1.0,
        val_fraction=0.0,
        test_fraction=0.0,
    )
    assert trainer.callback_metrics['train_distillation_loss'] >= 0


def test_vision_transformer_token_fusion(eurosat_ms, tmp_path):
    seed_everything(0)
    task = task_for(
        eurosat_ms,
        model='vit_small_patch16_224',
        chip_size=64,
        teacher={'metadata': 'location'},
    )
    assert task.teacher.fusion == 'token'
    assert task.student.context_token is not None
    _fit(task, eurosat_ms, tmp_path, steps=1)
    batch = _batch(eurosat_ms, [0, 1])
    outputs = task.teacher(
        task.views.normalise(batch['image']), batch['meta'], batch['meta_mask']
    )
    assert outputs.logits.shape == (2, 10)
    assert outputs.context.shape == (2, 384)
    assert outputs.embeddings is None  # no projection head without CoMatch


def test_student_sees_images_only_and_is_what_is_evaluated(eurosat_ms, tmp_path):
    assert list(inspect.signature(Classifier.forward).parameters) == ['self', 'images']
    seed_everything(0)
    task = _task(eurosat_ms)
    calls = []
    student_forward = task.student.forward
    task.student.forward = lambda *args, **kwargs: (
        calls.append((args, kwargs)) or student_forward(*args, **kwargs)
    )
    trainer, datamodule = _fit(task, eurosat_ms, tmp_path, steps=1)
    assert calls
    assert all(len(args) == 1 and not kwargs for args, kwargs in calls)
    # Validation runs the student only: a teacher that fails is never called.
    task.teacher.forward = lambda *args: pytest.fail('teacher used in validation')
    trainer.validate(task, datamodule, verbose=False)
    assert any(key.startswith('teacher.') for key in task.state_dict())


def test_teacher_pseudo_labels_depend_on_metadata(eurosat_ms):
    torch.manual_seed(0)
    task = _task(eurosat_ms).eval()
    # FiLM starts as the identity; give it weights, as training does.
    torch.nn.init.normal_(task.teacher.film.weight, std=0.5)
    batch = _batch(eurosat_ms, range(0, 100, 5))
    images = task.views.normalise(batch['image'])
    with torch.no_grad():
        with_meta = task.teacher(images, batch['meta'], batch['meta_mask'])[0]
        missing = torch.zeros_like(batch['meta_mask'])
        without = task.teacher(images, batch['meta'], missing)[0]
    assert batch['meta_mask'][:, :2].all()
    assert (with_meta.argmax(dim=1) != without.argmax(dim=1)).any()


def test_gradients_reach_the_metadata_encoder(eurosat_ms, tmp_path):
    seed_everything(0)
    task = _task(eurosat_ms)
    before = {k: v.clone() for k, v in task.teacher.encoder.state_dict().items()}
    film = task.teacher.film.weight.clone()
    _fit(task, eurosat_ms, tmp_path, steps=3)
    assert not torch.equal(task.teacher.film.weight, film)
    changed = [
        key
        for key, value in task.teacher.encoder.state_dict().items()
        if not torch.equal(value, before[key])
    ]
    assert any(key.startswith('mlp.') for key in changed)


def test_bad_teacher_student_configurations(eurosat_ms, tmp_path):
    with pytest.raises(GeosslInputError, match='fusion: token fusion needs a vision'):
        _task(eurosat_ms, fusion='token')
    with pytest.raises(GeosslInputError, match='teacher: needs a semi-supervised'):
        _task(eurosat_ms, 'supervised')
    with pytest.raises(GeosslInputError, match=r"teacher\.distillation: is 'mse'"):
        _task(eurosat_ms, distillation='mse')
    # EuroSAT has no acquisition dates at all.
    dated = _task(eurosat_ms, metadata='location+time')
    with pytest.raises(
        GeosslInputError,
        match=r"teacher.metadata: is 'location\+time' but the acquisition date of "
        "every sample is missing; use metadata='location'",
    ):
        _fit(dated, eurosat_ms, tmp_path)


def test_the_neighbours_labels_and_predictions_weight_the_teachers(
    eurosat_ms, tmp_path
):
    seed_everything(0)
    task = _task(eurosat_ms, neighbours=4, neighbour_radius_km=400)
    _, datamodule = _fit(task, eurosat_ms, tmp_path, steps=3)
    memory = task.neighbour_memory
    labelled = torch.as_tensor(datamodule.positions['labelled'])
    # The labels are remembered as they are; every unlabelled tile drawn, as the
    # teacher's probabilities on its weak view.
    assert memory.labelled[labelled].all()
    assert memory.labelled.sum() == len(labelled)
    targets = torch.as_tensor(eurosat_ms.targets[labelled])
    assert (memory.memory[labelled].argmax(1) == targets).all()
    remembered = memory.known & ~memory.labelled
    # 3 steps of 4 unlabelled tiles (some drawn twice, some labelled).
    assert 0 < remembered.sum() <= 3 * 4
    totals = memory.memory[remembered].sum(1).float()
    assert ((totals - 255).abs() <= 5).all()  # probabilities, rounded to 1/255
    assert not memory.known[torch.as_tensor(datamodule.positions['test'])].any()
    assert 'neighbour_memory.memory' in task.state_dict()
    # The teacher's prediction is its network's weighted by its neighbours' prior.
    task.eval()
    test = _batch(eurosat_ms, datamodule.positions['test'][:4])
    images = task.views.normalise(test['image'])
    outputs = task.teacher_student.predict(images, test)
    network = task.teacher(images, test['meta'], test['meta_mask'])
    prior = memory.log_prior(test['index'])
    assert prior.std(dim=1).gt(0).any()  # some test tile has known neighbours
    torch.testing.assert_close(outputs.logits, network.logits + prior)


def test_the_location_encoding_resolution_is_an_option(eurosat_ms):
    task = _task(eurosat_ms, location_scales=8)
    assert task.teacher.encoder.location_scales == 8
    assert task.hparams['teacher']['location_scales'] == 8


def test_neighbours_need_the_dataset_size(eurosat_ms):
    with pytest.warns(UserWarning, match=r"teacher.neighbours: the dataset's size"):
        task = SemiSupervisedTask(
            num_classes=10,
            in_channels=13,
            algorithm='fixmatch',
            teacher={'neighbours': 8},
        )
    assert task.teacher_student.memory is None
    with pytest.raises(GeosslInputError, match=r'teacher\.neighbours: is -1'):
        _task(eurosat_ms, neighbours=-1)


def test_the_teacher_sees_what_the_data_has_by_default(eurosat_ms, bigearthnet, caplog):
    # EuroSAT-MS: every tile located, none dated; BigEarthNet: both.
    assert eurosat_ms.metadata_parts == 'location'
    assert bigearthnet.metadata_parts == 'location+time'
    with caplog.at_level('INFO'):
        task = task_for(eurosat_ms, 'fixmatch', teacher=True)
    assert task.teacher.encoder.parts == 'location'
    assert task.hparams['teacher']['metadata'] == 'location'  # checkpoints keep it
    assert 'teacher.metadata: auto, so the teacher sees location' in caplog.text
    assert (
        task_for(
            bigearthnet, 'multilabel_freematch', teacher=True
        ).teacher.encoder.parts
        == 'location+time'
    )


def test_metadata_dropout_hides_the_metadata_of_a_share_of_training_rows(eurosat_ms):
    seed_everything(0)
    task = _task(eurosat_ms, metadata_dropout=0.5)
    teacher_student = task.teacher_student
    seen = []
    forward = task.teacher.forward

    def recording(images, meta, mask):
        seen.append(mask)
        return forward(images, meta, mask)

    task.teacher.forward = recording
    labelled = _batch(eurosat_ms, range(4))
    unlabelled = _batch(eurosat_ms, range(4, 36))
    images = task.views.normalise(
        torch.cat([labelled['image'], unlabelled['image'], unlabelled['image']])
    )
    teacher_student.outputs(images, labelled, unlabelled, 2, task.student(images))
    (mask,) = seen
    assert mask.shape == (68, 3)
    hidden = ~mask[:, :2].any(dim=1)  # EuroSAT-MS tiles are all located
    assert 0.3 < hidden.float().mean() < 0.7
    assert labelled['meta_mask'][:, :2].all()  # the batch itself is left as it was
    # Evaluation sees every tile's metadata.
    teacher_student.predict(images[:4], labelled)
    assert seen[-1][:, :2].all()


def test_metadata_dropout_is_a_share(eurosat_ms):
    with pytest.raises(GeosslInputError, match=r'teacher.metadata_dropout: is 1\.0'):
        _task(eurosat_ms, metadata_dropout=1.0)


def test_a_teacher_sharing_the_students_backbone_costs_one_backbone_pass(
    eurosat_ms, tmp_path
):
    from geossl.inference.checkpoint import load_task

    seed_everything(0)
    task = _task(eurosat_ms, image_backbone='shared', neighbours=8)
    assert task.teacher.backbone is None
    assert not any(k.startswith('teacher.backbone.') for k in task.state_dict())
    passes = []
    task.student.backbone.register_forward_hook(lambda *_: passes.append(1))
    film = task.teacher.film.weight.clone()
    trainer, _ = _fit(task, eurosat_ms, tmp_path, steps=2)
    assert len(passes) == 2  # one pass over every view per step, for both networks
    assert torch.isfinite(trainer.callback_metrics['train_teacher_unsupervised_loss'])
    assert not torch.equal(task.teacher.film.weight, film)
    # Tested alone, the teacher reads the images through the student's backbone.
    batch = _batch(eurosat_ms, [0, 1, 2])
    images = task.views.normalise(batch['image'])
    task.eval()
    with torch.no_grad():
        pooled = task.student.backbone(images)
        expected = task.teacher(pooled, batch['meta'], batch['meta_mask']).logits
        predicted = task.teacher_student.predict(images, batch).logits
    prior = task.teacher_student.memory.log_prior(batch['index'], False)
    torch.testing.assert_close(predicted, expected + prior)
    # A checkpoint keeps the choice and reads back to the same teacher.
    trainer.save_checkpoint(tmp_path / 'shared.ckpt')
    loaded = load_task(tmp_path / 'shared.ckpt').eval()
    assert loaded.hparams['teacher']['image_backbone'] == 'shared'
    with torch.no_grad():
        again = loaded.teacher_student.predict(images, batch).logits
    torch.testing.assert_close(again, predicted)


def test_a_shared_backbone_needs_fusion_of_pooled_features(eurosat_ms):
    with pytest.raises(
        GeosslInputError,
        match=r'teacher\.image_backbone: is shared, which gives pooled',
    ):
        task_for(
            eurosat_ms,
            model='vit_small_patch16_224',
            chip_size=64,
            teacher={'metadata': 'location', 'image_backbone': 'shared'},
        )


def test_an_ema_teacher_follows_the_students_backbone_and_trains_only_its_head(
    eurosat_ms, tmp_path
):
    from geossl.inference.checkpoint import load_task

    seed_everything(0)
    task = _task(eurosat_ms, image_backbone='ema')
    teacher, student = task.teacher.backbone, task.student.backbone
    assert not any(p.requires_grad for p in teacher.parameters())
    start = {name: p.detach().clone() for name, p in teacher.named_parameters()}
    assert all(torch.equal(start[name], p) for name, p in student.named_parameters())
    # After the first step the average keeps min(decay, 2/11) of itself; a step
    # already followed is not followed again.
    with torch.no_grad():
        for p in student.parameters():
            p.add_(0.5)
    task.teacher_student.follow_student(1)
    task.teacher_student.follow_student(1)
    for name, p in teacher.named_parameters():
        expected = 2 / 11 * start[name] + 9 / 11 * (start[name] + 0.5)
        torch.testing.assert_close(p, expected)
    # Trained, only the teacher's fusion and head take gradients; the backbone
    # follows the student before the third step (the first after one followed).
    followed = {name: p.detach().clone() for name, p in teacher.named_parameters()}
    film = task.teacher.film.weight.clone()
    trainer, _ = _fit(task, eurosat_ms, tmp_path, steps=3)
    assert not torch.equal(task.teacher.film.weight, film)
    assert all(p.grad is None for p in teacher.parameters())
    assert any(not torch.equal(followed[n], p) for n, p in teacher.named_parameters())
    # A checkpoint keeps the choice and the followed weights.
    trainer.save_checkpoint(tmp_path / 'ema.ckpt')
    loaded = load_task(tmp_path / 'ema.ckpt')
    assert loaded.hparams['teacher']['image_backbone'] == 'ema'
    torch.testing.assert_close(
        dict(loaded.teacher.backbone.named_parameters()),
        dict(teacher.named_parameters()),
    )


def test_an_ema_teacher_needs_the_recipes_average(eurosat_ms):
    with pytest.raises(
        GeosslInputError,
        match=r'teacher\.image_backbone: is ema, .* recipe\.ema_decay is off',
    ):
        task_for(
            eurosat_ms,
            recipe={'ema_decay': None},
            teacher={'metadata': 'location', 'image_backbone': 'ema'},
        )


def test_the_teachers_backbone_is_one_of_three(eurosat_ms):
    with pytest.raises(
        GeosslInputError,
        match=r"teacher\.image_backbone: is 'mean'; use own, shared or ema",
    ):
        _task(eurosat_ms, image_backbone='mean')


def test_during_its_warm_up_the_teacher_learns_from_the_students_pseudo_labels(
    eurosat_ms, tmp_path
):
    seed_everything(0)
    task = _task(eurosat_ms, warmup_steps=2)
    teachers, labellers = [], []
    outputs, pseudo_labels = task.teacher_student.outputs, task._pseudo_labels
    task.teacher_student.outputs = lambda *args: (
        teachers.append(outputs(*args)) or (teachers[-1])
    )
    task._pseudo_labels = lambda labeller, *args: (
        labellers.append(labeller) or (pseudo_labels(labeller, *args))
    )
    trainer, _ = _fit(task, eurosat_ms, tmp_path, steps=3)
    pairs = zip(labellers, teachers, strict=True)
    assert [labeller is teacher for labeller, teacher in pairs] == [False, False, True]
    assert torch.isfinite(trainer.callback_metrics['train_teacher_unsupervised_loss'])
    with pytest.raises(GeosslInputError, match=r'teacher\.warmup_steps: is -1'):
        _task(eurosat_ms, warmup_steps=-1)
