"""The semi-supervised Lightning task: one training step for every policy.

Per step the task gets a labelled batch and an unlabelled batch of raw pixels
(:class:`~geossl.data.datamodule.SemiSupervisedDataModule`). On the device, in
``on_after_batch_transfer``, it normalises them and makes the views: the weak view
of the labelled batch, and the weak and strong views (two for CoMatch) of the
unlabelled batch. One forward pass over all of them gives the supervised loss on
the labelled weak view; the pseudo-label policy turns the unlabelled weak-view
predictions into targets and weights, and the strong views' outputs into the
unsupervised losses; the loss is ``supervised + lambda_u * unsupervised`` (plus
CoMatch's weighted contrastive loss).
With ``algorithm='supervised'`` the unlabelled batch is ignored: the reference every
semi-supervised result is compared with.

The task's docstring is ``geossl fit``'s help for its ``--model.*`` options; its
groups of options are dataclasses beside what they set: the recipe
(:mod:`~geossl.tasks.recipes`), the views (:mod:`~geossl.augment.views`) and the
teacher-student (:mod:`~geossl.tasks.teacher_student`). The initial weights, the
metrics and the data checks live beside it (:mod:`~geossl.tasks.initial_weights`,
:mod:`~geossl.tasks.metrics`, :mod:`~geossl.tasks.sizing`).
"""

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any, Self

import torch
import torch.nn.functional as F
from lightning import Callback, LightningModule
from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig
from torch import Tensor, nn

import geossl
from geossl.augment.views import ViewOptions, Views
from geossl.data.datasets import GeoClassificationDataset
from geossl.errors import GeosslInputError
from geossl.models.classifier import Classifier, MetadataClassifier, NetworkOutputs
from geossl.models.memory_format import MemoryFormat, use_memory_format
from geossl.models.weights import InputNormalisation
from geossl.ssl.policies import (
    PseudoLabelPolicy,
    PseudoLabels,
    ViewRows,
    build_policy,
)
from geossl.tasks.averaging import ExponentialMovingAverage
from geossl.tasks.compute_report import ComputeReport
from geossl.tasks.figures import ConfusionMatrixFigure
from geossl.tasks.initial_weights import (
    Normalisation,
    choose_normalisation,
    load_initial_weights,
)
from geossl.tasks.metrics import (
    classification_metrics,
    per_class_values,
    pseudo_label_statistics,
)
from geossl.tasks.metrics_report import MetricsReport
from geossl.tasks.options import option_group
from geossl.tasks.recipes import Recipe, configure_optimizer
from geossl.tasks.resume import RandomStateCheckpoint
from geossl.tasks.sizing import (
    DataDescription,
    Task,
    check_data_fits,
    data_arguments,
    described,
)
from geossl.tasks.teacher_student import TeacherStudent, TeacherStudentOptions


class SemiSupervisedTask(LightningModule):
    """Supervised training, or semi-supervised with any pseudo-label policy.

    Args:
        num_classes: number of classes.
        in_channels: number of input bands.
        task: ``multiclass`` (one class per sample, softmax) or ``multilabel``
            (multi-hot targets with sigmoid outputs, as BigEarthNet's).
        algorithm: ``supervised`` or a pseudo-label policy's name (the end of
            ``geossl fit --help`` lists them with their options).
        algorithm_options: keyword arguments of the policy, e.g.
            ``{'threshold': 0.9}``.
        model: timm model name of the backbones.
        weights: the initial weights of the student's and the teacher's
            backbone: True for timm's pretrained (ImageNet, RGB) weights, TorchGeo
            weights by name (e.g. ``ResNet18_Weights.SENTINEL2_ALL_MOCO``), a
            state-dict file of the timm model (``.pth``, ``.pt``,
            ``.safetensors``; one whose first layer takes 3 bands is taken as
            ImageNet's RGB), or a checkpoint of ``geossl pretrain`` (or ``fit``, or
            a TorchGeo self-supervised task); None for random weights. The first
            layer is matched to ``band_names`` by band name
            (:func:`~geossl.models.band_matching.match_bands`).
        initial_weights: load ``weights`` (and SatCLIP's);
            False builds the networks only, as when a checkpoint's trained weights
            follow.
        normalisation: how raw pixels are normalised: ``data`` (per-band mean and
            standard deviation of the training data), ``weights`` (the rule the
            initial weights were trained with: SSL4EO-S12's DN / 10000, ImageNet's
            mean and std on 0-1 values, a geossl checkpoint's statistics) or
            ``auto`` (``weights`` where the initial weights carry a rule, else
            ``data``). Checkpoints keep the statistics used, so ``map`` and
            ``export`` apply the same.
        chip_size: input height and width.
        memory_format: how the networks' weights are laid out: ``auto``
            (channels-last on the CPU for the EfficientNet and MobileNet
            families, where it is 2 to 4 times faster; see
            :mod:`~geossl.models.memory_format`), ``channels_last`` or
            ``contiguous``. Results are the same up to rounding.
        lambda_u: weight of the unsupervised loss.
        recipe: how the weights are optimised and averaged
            (:class:`~geossl.tasks.recipes.Recipe`); what is left unset comes from
            the fine-tuning recipe with initial weights, else from FixMatch's.
        views: the weak and strong views (:class:`~geossl.augment.views.ViewOptions`).
        teacher: the spatiotemporal teacher-student (Bernhard et al., ECAI 2024):
            a teacher that also sees where and when each tile was taken makes the
            pseudo-labels; the image-only student learns from them and from
            distillation, and is the model that is evaluated and shipped. Its
            settings (:class:`~geossl.tasks.teacher_student.TeacherStudentOptions`,
            or a mapping of them: ``--model.teacher.help TeacherStudentOptions``
            lists them); True for the defaults; None for no teacher.
        class_colours: ``#rrggbb`` colour of each class on maps; None picks them
            from the names (:func:`~geossl.data.colours.class_colours`).
        data: what the task keeps of its data: class and band names, the
            reflectance offset, the metadata it has and its size
            (:class:`~geossl.tasks.sizing.DataDescription`, or a mapping of it);
            ``geossl fit`` and :meth:`for_dataset` take it from the data. None
            for classes and bands by number.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        task: Task = 'multiclass',
        algorithm: str = 'fixmatch',
        algorithm_options: dict[str, Any] | None = None,
        model: str = 'resnet18',
        weights: bool | str | None = None,
        initial_weights: bool = True,
        normalisation: Normalisation = 'auto',
        chip_size: int = 64,
        memory_format: MemoryFormat = 'auto',
        lambda_u: float = 1.0,
        recipe: Recipe = Recipe(),
        views: ViewOptions = ViewOptions(),
        teacher: TeacherStudentOptions | bool | None = None,
        class_colours: Sequence[str] | None = None,
        data: DataDescription | None = None,
    ) -> None:
        super().__init__()
        # Saved as mappings: checkpoints are read without unpickling, and the
        # loggers write the hyperparameters as YAML.
        data, class_colours = described(
            option_group('data', DataDescription, data or {}),
            class_colours,
            num_classes,
            in_channels,
        )
        recipe = option_group('recipe', Recipe, recipe)
        views = option_group('views', ViewOptions, views)
        if teacher is not None and teacher is not False:
            teacher = option_group(
                'teacher', TeacherStudentOptions, {} if teacher is True else teacher
            )
        self.save_hyperparameters()
        multilabel = task == 'multilabel'
        if num_classes < 2 and not multilabel:
            raise GeosslInputError('num_classes', f'is {num_classes}; need at least 2')
        self.policy: PseudoLabelPolicy | None = build_policy(
            algorithm, num_classes, multilabel, data['num_samples'], algorithm_options
        )
        projection_dim = None if self.policy is None else self.policy.projection_dim
        given = weights is not None and weights is not False
        self.recipe = Recipe(**recipe).filled(model, fine_tuning=given)
        options = None
        if teacher:
            options = TeacherStudentOptions(**teacher).resolved(
                model, self.policy, data['metadata_parts']
            )
        self.student = Classifier(
            model,
            in_channels,
            num_classes,
            chip_size,
            context_token=options is not None and options.fusion == 'token',
            projection_dim=projection_dim,
        )
        self.teacher: MetadataClassifier | None = None
        self.teacher_student: TeacherStudent | None = None
        if options is not None:
            self.teacher_student = TeacherStudent.build(
                options,
                self.student,
                model,
                in_channels,
                num_classes,
                chip_size,
                DataDescription(**data),
                load_satclip=initial_weights,
                multilabel=multilabel,
                ema_decay=self.recipe.ema_decay,
            )
            self.teacher = self.teacher_student.teacher
            # A module of the task, so that checkpoints keep what it remembers.
            self.neighbour_memory = self.teacher_student.memory
        self.hparams['teacher'] = None if options is None else asdict(options)
        loaded = None
        if initial_weights and given:
            loaded = load_initial_weights(
                self._backbones(), model, weights, data['band_names']
            )
        self.input_normalisation: InputNormalisation | None = (
            None if loaded is None else loaded.normalisation
        )
        if initial_weights:
            self.hparams['normalisation'] = choose_normalisation(
                self.hparams['normalisation'], loaded
            )
        self.hparams['recipe'] = asdict(self.recipe)
        self.hparams['views'] = views
        self.hparams['data'] = data
        self.hparams['class_colours'] = class_colours
        self.views = Views(torch.zeros(in_channels), torch.ones(in_channels), **views)
        self.class_names = data['class_names']
        self.metrics = nn.ModuleDict(
            {
                stage: classification_metrics(num_classes, multilabel).clone(
                    prefix=f'{stage}_'
                )
                for stage in ('val', 'test')
            }
        )

    @classmethod
    def for_dataset(
        cls, dataset: GeoClassificationDataset, algorithm: str, **options: Any
    ) -> Self:
        """A task sized for a dataset, as ``geossl fit`` sizes it from the data.

        Args:
            dataset: the data: classes, bands, label kind, size and names.
            algorithm: ``supervised`` or a pseudo-label policy name.
            **options: the task's other arguments.

        Returns:
            The task.
        """
        return cls(**data_arguments(dataset), algorithm=algorithm, **options)

    @property
    def band_names(self) -> list[str]:
        """The input bands, in order, as the model was trained on them."""
        return self.hparams['data']['band_names']

    @property
    def multilabel(self) -> bool:
        """Whether the task is multi-label (sigmoid outputs, multi-hot targets)."""
        return self.hparams['task'] == 'multilabel'

    def configure_callbacks(self) -> list[Callback]:
        """The compute and test reports, the random state, confusion figures, EMA.

        Returns:
            Callbacks the Trainer adds (replacing its own of the same type).
        """
        decay = self.recipe.ema_decay
        callbacks: list[Callback] = [
            ComputeReport(),
            RandomStateCheckpoint(),
            ConfusionMatrixFigure(),
            MetricsReport(),
        ]
        if decay is not None:
            callbacks.append(ExponentialMovingAverage(decay))
        return callbacks

    def forward(self, images: Tensor) -> Tensor:
        """Logits of normalised images, from the student (image only).

        Args:
            images: ``B x C x H x W`` normalised images.

        Returns:
            ``B x K`` logits.
        """
        return self.student(images).logits

    @torch.no_grad()
    def embed(self, images: Tensor) -> dict[str, Tensor]:
        """The student's pooled features (and projections) of normalised images.

        Args:
            images: ``B x C x H x W`` normalised images.

        Returns:
            ``features`` ``(B, F)``, and ``projection`` ``(B, P)`` if the student
            has a projection head (CoMatch).
        """
        features = self.student.features(images)[0]
        if self.student.projection is None:
            return {'features': features}
        return {'features': features, 'projection': self.student.projection(features)}

    def setup(self, stage: str) -> None:
        """Lay the weights out for the device; check and describe the data.

        The data is checked against the model and gives its normalisation
        statistics.

        Args:
            stage: the Lightning stage.

        Raises:
            GeosslInputError: if the data's bands, classes or unlabelled batch do
                not fit the model or the algorithm.
        """
        use_memory_format(self, self.device, self.hparams['memory_format'])
        datamodule = getattr(self.trainer, 'datamodule', None)
        if datamodule is None:
            return
        dataset = datamodule.dataset
        check_data_fits(self.hparams, dataset)
        if self.policy is not None and stage == 'fit' and datamodule.mu < 1:
            raise GeosslInputError(
                'mu',
                f'is {datamodule.mu}; {self.hparams["algorithm"]} needs unlabelled '
                'batches (mu >= 1)',
            )
        if self.teacher_student is not None:
            self.teacher_student.connect(dataset, datamodule.positions)
        rule = self.input_normalisation
        if self.hparams['normalisation'] == 'weights' and rule is not None:
            self.views.set_statistics(
                *rule.statistics(dataset.band_names, dataset.dtype)
            )
        else:
            self.views.set_statistics(datamodule.mean, datamodule.std)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record the geossl version beside Lightning's own.

        Args:
            checkpoint: the checkpoint, about to be saved.
        """
        checkpoint['geossl_version'] = geossl.__version__

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Normalise on the device and, in training, make the weak and strong views.

        Args:
            batch: a training batch ``{'labelled': ..., 'unlabelled': ...}`` or an
                evaluation batch.
            dataloader_idx: index of the loader.

        Returns:
            The batch with ``weak`` (and ``strong``) views or normalised ``image``.
        """
        if 'labelled' not in batch:
            batch['image'] = self.views.normalise(self._checked(batch['image']))
            return batch
        labelled = batch['labelled']
        labelled['weak'] = self.views.weak(
            self.views.normalise(self._checked(labelled['image']))
        )
        unlabelled = batch.get('unlabelled')
        if unlabelled is not None and self.policy is not None:
            images = self.views.normalise(self._checked(unlabelled['image']))
            unlabelled['weak'] = self.views.weak(images)
            unlabelled['strong'] = torch.cat(
                [self.views.strong(images) for _ in range(self.policy.strong_views)]
            )
        return batch

    def _checked(self, images: Tensor) -> Tensor:
        if images.shape[1] != self.views.bands:
            raise GeosslInputError(
                'data',
                f'batches have {images.shape[1]} bands but the model takes '
                f'{self.views.bands}',
            )
        return images

    def supervised_loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Cross-entropy (multi-class) or binary cross-entropy (multi-label).

        Args:
            logits: ``(B, K)`` logits.
            labels: class indices or multi-hot targets.

        Returns:
            The mean loss.
        """
        if self.multilabel:
            return F.binary_cross_entropy_with_logits(logits, labels.float())
        return F.cross_entropy(logits, labels)

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor:
        """One step: supervised loss, plus the policy's unsupervised loss.

        With the teacher-student (:class:`~geossl.tasks.teacher_student.TeacherStudent`)
        the teacher's outputs are pseudo-labelled instead of the student's (after
        its warm-up), and its losses (its own, and the student's distillation) are
        added; an ``ema`` teacher's backbone first follows the student's last step.

        Args:
            batch: ``{'labelled': ..., 'unlabelled': ...}`` after the views.
            batch_idx: index of the step in the epoch.

        Returns:
            The loss.
        """
        labelled = batch['labelled']
        unlabelled = batch.get('unlabelled')
        size = len(labelled['weak'])
        if self.policy is None or unlabelled is None:
            loss = self.supervised_loss(self(labelled['weak']), labelled['label'])
            self.log('train_loss', loss, prog_bar=True, batch_size=size)
            return loss
        images = torch.cat([labelled['weak'], unlabelled['weak'], unlabelled['strong']])
        labels = labelled['label']
        student = labeller = self.student(images)
        if self.teacher_student is not None:
            self.teacher_student.follow_student(self.global_step)
            teacher = self.teacher_student.outputs(
                images, labelled, unlabelled, 1 + self.policy.strong_views, student
            )
            if not self.teacher_student.warming_up(self.global_step):
                labeller = teacher
        pseudo = self._pseudo_labels(labeller, labels, unlabelled['index'])
        losses = self._semi_supervised_losses(student, labels, pseudo)
        if self.teacher_student is not None:
            losses |= self.teacher_student.losses(
                student,
                teacher,
                size,
                unlabelled['index'],
                lambda outputs: self._semi_supervised_losses(outputs, labels, pseudo),
            )
        loss = sum(value * self._loss_weight(name) for name, value in losses.items())
        self.log('train_loss', loss, prog_bar=True, batch_size=size)
        self.log_dict({f'train_{k}': v for k, v in losses.items()}, batch_size=size)
        self._log_pseudo_labels(pseudo, unlabelled['label'])
        return loss

    def _loss_weight(self, name: str) -> float:
        name = name.removeprefix('teacher_')
        if name == 'unsupervised_loss':
            return self.hparams['lambda_u']
        if name == 'distillation_loss':
            return self.teacher_student.options.lambda_d
        return self.policy.loss_weights.get(name, 1.0)

    def _by_view(
        self, outputs: NetworkOutputs, num_labelled: int
    ) -> tuple[ViewRows, ViewRows | None]:
        """A network's logits and embeddings on [labelled, weak, strong...] by view."""

        def split(rows: Tensor) -> ViewRows:
            return ViewRows.split(rows, num_labelled, self.policy.strong_views)

        embeddings = outputs.embeddings
        return split(outputs.logits), None if embeddings is None else split(embeddings)

    def _pseudo_labels(
        self, outputs: NetworkOutputs, labels: Tensor, index: Tensor
    ) -> PseudoLabels:
        """The policy's pseudo-labels from the pseudo-labelling network's outputs."""
        return self.policy.pseudo_label(
            *self._by_view(outputs, len(labels)), labels, index
        )

    def _semi_supervised_losses(
        self, outputs: NetworkOutputs, labels: Tensor, pseudo: PseudoLabels
    ) -> dict[str, Tensor]:
        """Supervised and unsupervised losses of a network's outputs."""
        logits, embeddings = self._by_view(outputs, len(labels))
        return {
            'supervised_loss': self.supervised_loss(logits.labelled, labels),
            **self.policy.unsupervised_losses(logits, embeddings, pseudo),
        }

    def _log_pseudo_labels(self, pseudo: PseudoLabels, labels: Tensor) -> None:
        """Mask ratio, pseudo-label accuracy where labels are known, use, thresholds."""
        values = pseudo_label_statistics(
            pseudo, labels, self.class_names, self.policy.diagnostics()
        )
        self.log_dict(values, batch_size=len(pseudo.weights))

    def _evaluation_step(self, batch: Mapping[str, Any], stage: str) -> Tensor:
        logits = self(batch['image'])
        labels = batch['label']
        loss = self.supervised_loss(logits, labels)
        self.log(
            f'{stage}_loss',
            loss,
            batch_size=len(labels),
            prog_bar=stage == 'val',
            sync_dist=True,
        )
        if self.multilabel:
            self.metrics[stage].update(logits.sigmoid(), labels.long())
        else:
            self.metrics[stage].update(logits.softmax(dim=1), labels)
        return logits

    def _evaluation_epoch_end(self, stage: str) -> None:
        results = self.metrics[stage].compute()
        per_class = results.pop(f'{stage}_f1_per_class')
        # The metrics are already gathered from every process; syncing says so.
        self.log_dict(
            results | per_class_values(f'{stage}_f1', per_class, self.class_names),
            sync_dist=True,
        )
        self.metrics[stage].reset()

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor:
        """Update the validation metrics.

        Args:
            batch: normalised images and labels.
            batch_idx: index of the batch.

        Returns:
            The logits, for callbacks (the confusion figure).
        """
        return self._evaluation_step(batch, 'val')

    def on_validation_epoch_end(self) -> None:
        """Log the validation metrics."""
        self._evaluation_epoch_end('val')

    def test_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor:
        """Update the test metrics.

        Args:
            batch: normalised images and labels.
            batch_idx: index of the batch.

        Returns:
            The logits, for callbacks (the confusion figure).
        """
        return self._evaluation_step(batch, 'test')

    def on_test_epoch_end(self) -> None:
        """Log the test metrics."""
        self._evaluation_epoch_end('test')

    def predict_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor:
        """Class probabilities of a batch.

        Args:
            batch: normalised images.
            batch_idx: index of the batch.

        Returns:
            ``(B, K)`` probabilities.
        """
        return self.probabilities(batch['image'])

    def probabilities(self, images: Tensor) -> Tensor:
        """Class probabilities: softmax, or sigmoid for multi-label models.

        Args:
            images: normalised ``B x C x H x W`` images.

        Returns:
            ``(B, K)`` probabilities.
        """
        logits = self(images)
        return logits.sigmoid() if self.multilabel else logits.softmax(dim=1)

    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        """The recipe's optimiser and schedule (:func:`~.configure_optimizer`).

        Returns:
            The optimiser and its per-step schedule.
        """
        return configure_optimizer(self, self.recipe, self._backbones())

    def _backbones(self) -> list[nn.Module]:
        """The student's backbone, and the teacher's where it has its own."""
        teacher = None if self.teacher is None else self.teacher.backbone
        return [net for net in (self.student.backbone, teacher) if net is not None]
