"""The spatiotemporal teacher-student (Bernhard et al., ECAI 2024) of a task.

A **teacher** sees the image *and* where and when it was taken; its weak-view
outputs are pseudo-labelled once by the task's policy. Teacher and student both
train on those pseudo-labels and on the labelled batch; the image-only student
also learns from the teacher by distillation, and is what is evaluated and
shipped. :class:`TeacherStudent` is that teaching; the teacher network is the
task's ``teacher`` module, so its weights checkpoint with the task.
"""

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Self

import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn

from geossl.data.datasets import GeoClassificationDataset
from geossl.errors import GeosslInputError
from geossl.models.classifier import (
    Classifier,
    Fusion,
    MetadataClassifier,
    NetworkOutputs,
    default_fusion,
)
from geossl.models.metadata import LocationEncoding, MetadataEncoder, MetadataParts
from geossl.ssl.distillation import context_distillation, logit_distillation
from geossl.ssl.neighbours import NeighbourMemory
from geossl.ssl.policies import PseudoLabelPolicy
from geossl.tasks.averaging import (
    Place,
    kept_share,
    move_average,
    paired_places,
    placed_tensors,
)
from geossl.tasks.sizing import DataDescription

Distillation = Literal['context', 'kl']

# Where the teacher's image features come from: ``own`` (a second backbone, the
# paper's), ``shared`` (the student's backbone) or ``ema`` (an exponential moving
# average of the student's backbone).
TeacherBackbone = Literal['own', 'shared', 'ema']


@dataclass
class TeacherStudentOptions:
    """The spatiotemporal teacher-student's settings: the task's ``teacher``.

    Attributes:
        metadata: what the teacher sees: ``auto`` (what the data has),
            ``location+time``, ``location``, ``time`` or ``none`` (ablations).
            Checkpoints keep the parts used, never ``auto``.
        location_encoding: ``sinusoidal``, ``harmonics`` (spherical) or
            ``satclip`` (SatCLIP's pretrained location encoder, TorchGeo's
            ``SatCLIP_Weights.SATCLIP_VIT16_L40``, read through torch.hub's cache).
        location_scales: octaves of the ``sinusoidal`` encoding; its finest
            wavelength is about 25,500 km / 2^scales (4: about 1,600 km; 8: about
            100 km; 12: about 6 km).
        freeze_location_encoder: keep SatCLIP's encoder as pretrained; False
            fine-tunes it with the teacher.
        metadata_year: add the year to the time features.
        metadata_time_of_day: add the time of day to the time features.
        metadata_dim: size of the metadata embedding.
        metadata_dropout: the share of the teacher's training rows that see no
            metadata (as if missing), so that it leans on the metadata no more than
            the images bear out; 0 for none (the default; the paper has none).
        fusion: how the teacher takes the metadata: ``token`` (vision
            transformers), ``film`` or ``concat``; None for ``token`` on vision
            transformers and ``film`` otherwise.
        distillation: ``context`` (the student's context regresses the teacher's
            metadata-conditioned context: token outputs for ``token`` fusion,
            pooled features otherwise) or ``kl`` (softened logits).
        lambda_d: weight of the distillation loss.
        distillation_temperature: temperature of the ``kl`` distillation.
        neighbours: how many nearest training tiles' labels and latest predictions
            weight the teacher's predictions
            (:class:`~geossl.ssl.neighbours.NeighbourMemory`), so that it uses that
            neighbouring tiles share their class; 0 for none (the default; the
            paper has none: the prior helps inside the regions trained on and costs
            accuracy in regions never seen). They need the dataset's size
            (``num_samples``, which ``geossl fit`` and
            ``SemiSupervisedTask.for_dataset`` give).
        neighbour_radius_km: the farthest such a neighbour may be.
        warmup_steps: the first steps, during which the student's own predictions
            are pseudo-labelled (as without a teacher) while the teacher learns
            from them; then the teacher's are. 0 for none, as in the paper.
        image_backbone: ``own`` for the paper's teacher, a second network of the
            student's architecture trained by its own losses (a step costs about
            twice a plain one); two variants, not the paper's, whose teacher trains
            only its metadata fusion and head: ``shared``, on the student's own
            backbone, so that one forward and backward pass serves both (about plain
            training's cost; ``film`` or ``concat`` fusion); ``ema``, on an
            exponential moving average of the student's backbone (a mean teacher:
            one more forward pass and no backward; the average's decay is the
            recipe's ``ema_decay``).
    """

    metadata: MetadataParts | Literal['auto'] = 'auto'
    location_encoding: LocationEncoding = 'sinusoidal'
    location_scales: int = 4
    freeze_location_encoder: bool = True
    metadata_year: bool = False
    metadata_time_of_day: bool = False
    metadata_dim: int = 128
    metadata_dropout: float = 0.0
    fusion: Fusion | None = None
    distillation: Distillation = 'context'
    lambda_d: float = 1.0
    distillation_temperature: float = 4.0
    neighbours: int = 0
    neighbour_radius_km: float = 5.0
    warmup_steps: int = 0
    image_backbone: TeacherBackbone = 'own'

    def check(self) -> None:
        """Refuse settings no teacher can have, naming the option.

        Raises:
            GeosslInputError: for an unknown distillation or image backbone, a
                dropout share out of [0, 1), or a negative count of neighbours or
                radius.
        """
        if self.distillation not in ('context', 'kl'):
            raise GeosslInputError(
                'teacher.distillation', f'is {self.distillation!r}; use context or kl'
            )
        if self.image_backbone not in ('own', 'shared', 'ema'):
            raise GeosslInputError(
                'teacher.image_backbone',
                f'is {self.image_backbone!r}; use own, shared or ema',
            )
        if not 0 <= self.metadata_dropout < 1:
            raise GeosslInputError(
                'teacher.metadata_dropout',
                f'is {self.metadata_dropout}; use a share from 0 up to (not) 1',
            )
        if self.warmup_steps < 0:
            raise GeosslInputError(
                'teacher.warmup_steps', f'is {self.warmup_steps}; use 0 or more'
            )
        if self.neighbours < 0 or self.neighbour_radius_km <= 0:
            raise GeosslInputError(
                'teacher.neighbours',
                f'is {self.neighbours} with a radius of {self.neighbour_radius_km} '
                'km; use a count from 0 and a positive radius',
            )

    def resolved(
        self,
        backbone: str,
        policy: PseudoLabelPolicy | None,
        data_metadata: MetadataParts,
    ) -> Self:
        """The settings a teacher is built with: checked, nothing left to choose.

        Args:
            backbone: timm model name of the networks.
            policy: the task's pseudo-label policy, whose pseudo-labels the teacher
                makes.
            data_metadata: the metadata the data has: what ``metadata='auto'``
                sees.

        Returns:
            The settings with the metadata the teacher sees (never ``auto``) and
            its fusion.

        Raises:
            GeosslInputError: for settings no teacher can have, or no policy.
        """
        if policy is None:
            raise GeosslInputError(
                'teacher',
                'needs a semi-supervised algorithm (the teacher makes the '
                'pseudo-labels), not supervised',
            )
        self.check()
        if self.metadata == 'auto':
            rank_zero_info(
                f'teacher.metadata: auto, so the teacher sees {data_metadata} (what '
                'the data has; set --model.teacher.metadata to choose)'
            )
        return replace(
            self,
            metadata=data_metadata if self.metadata == 'auto' else self.metadata,
            fusion=self.fusion or default_fusion(backbone),
        )


@dataclass
class TeacherStudent:
    """How the teacher teaches the student, around any pseudo-label policy.

    Attributes:
        teacher: the metadata-fed network (the task's ``teacher`` module).
        options: the settings it was built with (``metadata`` resolved).
        multilabel: whether the logits are multi-label (sigmoid).
        memory: what the teacher's neighbours were taken to be, which weights its
            predictions; None for none.
        student_backbone: the student's backbone, where the teacher shares it or
            follows its average (``image_backbone``); the student's module, not the
            teacher's.
        ema_decay: the largest share of itself the ``ema`` backbone keeps at each
            step.
    """

    teacher: MetadataClassifier
    options: TeacherStudentOptions = field(default_factory=TeacherStudentOptions)
    multilabel: bool = False
    memory: NeighbourMemory | None = None
    student_backbone: nn.Module | None = None
    ema_decay: float | None = None
    _followed_step: int = field(default=0, init=False, repr=False)
    _followed: list[tuple[Place, Place]] | None = field(
        default=None, init=False, repr=False
    )

    def __post_init__(self) -> None:
        """Refuse settings no teacher can have."""
        self.options.check()

    @classmethod
    def build(
        cls,
        options: TeacherStudentOptions,
        student: Classifier,
        backbone: str,
        in_channels: int,
        num_classes: int,
        chip_size: int,
        data: DataDescription,
        load_satclip: bool = True,
        multilabel: bool = False,
        ema_decay: float | None = None,
    ) -> Self:
        """The teacher network beside a student, and how it teaches.

        The network is the student's architecture (its own backbone, the
        student's, or an average of the student's: ``image_backbone``) plus a
        metadata encoder, with the student's heads.

        Args:
            options: the settings, :meth:`~TeacherStudentOptions.resolved`.
            student: the image-only network it teaches.
            backbone: timm model name.
            in_channels: number of input bands.
            num_classes: number of classes.
            chip_size: input height and width.
            data: what the task knows of its data: its size, which the neighbours'
                memory covers (not known: no neighbours, with a warning).
            load_satclip: load SatCLIP's pretrained weights (False when a
                checkpoint's trained weights follow).
            multilabel: whether the logits are multi-label (sigmoid).
            ema_decay: the recipe's ``ema_decay``, the largest share of itself an
                ``ema`` backbone keeps at each step.

        Returns:
            The teacher-student.

        Raises:
            GeosslInputError: for an ``ema`` backbone without a decay.
        """
        if options.image_backbone == 'ema' and ema_decay is None:
            raise GeosslInputError(
                'teacher.image_backbone',
                "is ema, which averages with the recipe's decay, but "
                'recipe.ema_decay is off; set it (e.g. 0.999) or use own or shared',
            )
        num_samples = data.num_samples
        memory = None
        if options.neighbours and num_samples is None:
            warnings.warn(
                "teacher.neighbours: the dataset's size (num_samples) is not known, "
                'so the teacher has no neighbours; give num_samples, or build the '
                'task with SemiSupervisedTask.for_dataset',
                stacklevel=3,
            )
        elif options.neighbours:
            memory = NeighbourMemory(
                num_samples,
                num_classes,
                options.neighbours,
                options.neighbour_radius_km,
            )
        encoder = MetadataEncoder(
            options.metadata,
            options.location_encoding,
            options.location_scales,
            year=options.metadata_year,
            time_of_day=options.metadata_time_of_day,
            dim=options.metadata_dim,
            freeze_location_encoder=options.freeze_location_encoder,
        )
        if load_satclip and encoder.satclip is not None:
            from geossl.models.torchgeo_weights import read_satclip

            encoder.load_satclip(*read_satclip())
        shared = student.backbone if options.image_backbone == 'shared' else None
        teacher = MetadataClassifier(
            backbone,
            in_channels,
            num_classes,
            chip_size,
            encoder,
            options.fusion,
            None if student.projection is None else student.projection.dim,
            shared=shared,
        )
        if options.image_backbone == 'ema':
            # Starts as the student's, then follows it (follow_student); only the
            # metadata fusion and head learn.
            teacher.backbone.load_state_dict(student.backbone.state_dict())
            teacher.backbone.requires_grad_(False)
        followed = None if options.image_backbone == 'own' else student.backbone
        return cls(teacher, options, multilabel, memory, followed, ema_decay)

    def outputs(
        self,
        images: Tensor,
        labelled: Mapping[str, Any],
        unlabelled: Mapping[str, Any],
        views: int,
        student: NetworkOutputs,
    ) -> NetworkOutputs:
        """The teacher's outputs on a step's views, each with its tile's metadata.

        Args:
            images: ``[labelled weak, unlabelled weak, unlabelled strong...]``.
            labelled: the labelled batch (``meta``, ``meta_mask``).
            unlabelled: the unlabelled batch, whose metadata goes with each view.
            views: views of each unlabelled tile in ``images`` (weak and strong).
            student: the student's outputs on ``images``; a teacher sharing its
                backbone conditions their pooled features (its context), so that
                one pass serves both.

        Returns:
            The teacher's outputs, rows as in ``images``.
        """
        batch = {
            key: torch.cat([labelled[key], *[unlabelled[key]] * views])
            for key in ('meta', 'meta_mask', 'index')
        }
        if self.options.metadata_dropout:
            # As if missing: the teacher cannot lean on places and dates more than
            # the images bear out (on EuroSAT, without it, the teacher tested 8
            # points worse than its student).
            kept = torch.rand(len(images), device=images.device)
            mask = batch['meta_mask'] & (kept >= self.options.metadata_dropout)[:, None]
            batch['meta_mask'] = mask
        shared = self.options.image_backbone == 'shared'
        return self._conditioned(student.context if shared else images, batch)

    def warming_up(self, step: int) -> bool:
        """Whether the student's own predictions are still the ones pseudo-labelled.

        Args:
            step: the optimiser step.

        Returns:
            True during the first ``warmup_steps``.
        """
        return step < self.options.warmup_steps

    def predict(self, images: Tensor, batch: Mapping[str, Any]) -> NetworkOutputs:
        """The teacher's outputs on images with their batch's metadata.

        Args:
            images: ``B x C x H x W`` normalised images.
            batch: their ``meta``, ``meta_mask`` and ``index`` (for the
                neighbours' prior).

        Returns:
            The teacher's outputs; with neighbours, its network's logits plus the
            neighbours' log prior.
        """
        if self.options.image_backbone == 'shared':
            images = self.student_backbone(images)
        return self._conditioned(images, batch)

    def follow_student(self, step: int) -> None:
        """Move an ``ema`` backbone towards the student's, once per optimiser step.

        The share it keeps warms up to ``ema_decay`` as the task's average of its
        weights does (:func:`~geossl.tasks.averaging.kept_share`). Other backbones
        are left as they are.

        Args:
            step: the optimiser steps made (the trainer's ``global_step``); a step
                already followed is not followed again.
        """
        if self.options.image_backbone != 'ema' or step <= self._followed_step:
            return
        if self._followed is None:
            self._followed = paired_places(self.teacher.backbone, self.student_backbone)
        move_average(placed_tensors(self._followed), kept_share(self.ema_decay, step))
        self._followed_step = step

    def _conditioned(self, inputs: Tensor, batch: Mapping[str, Any]) -> NetworkOutputs:
        """The teacher's outputs on images, or on the shared backbone's features."""
        outputs = self.teacher(inputs, batch['meta'], batch['meta_mask'])
        if self.memory is None:
            return outputs
        prior = self.memory.log_prior(batch['index'], self.multilabel)
        return outputs._replace(logits=outputs.logits + prior.to(outputs.logits.dtype))

    def connect(
        self, dataset: GeoClassificationDataset, positions: Mapping[str, Any]
    ) -> None:
        """Check the data has what the teacher sees; link neighbours, keep labels.

        Args:
            dataset: the data: every sample's metadata (``lon`` and ``lat`` NaN
                where unknown) and targets.
            positions: the split's ``labelled`` and ``unlabelled`` positions.

        Raises:
            GeosslInputError: if every sample lacks a part of the metadata the
                teacher sees.
        """
        encoder = self.teacher.encoder
        for used, column, what in (
            (encoder.uses_location, 'lon', 'location'),
            (encoder.uses_time, 'datetime', 'acquisition date'),
        ):
            if used and not dataset.index[column].notna().any():
                other = 'time' if what == 'location' else 'location'
                raise GeosslInputError(
                    'teacher.metadata',
                    f'is {encoder.parts!r} but the {what} of every sample is '
                    f'missing; use metadata={other!r} (or give the data its {what})',
                )
        if self.memory is None:
            return
        labelled = torch.as_tensor(positions['labelled'])
        unlabelled = torch.as_tensor(positions['unlabelled'])
        pool = torch.cat([labelled, unlabelled[~torch.isin(unlabelled, labelled)]])
        # Copies: the index's columns may be read-only views.
        lon, lat = (
            torch.tensor(dataset.index[name].to_numpy(dtype=float))
            for name in ('lon', 'lat')
        )
        self.memory.connect(lon, lat, pool)
        labels = torch.as_tensor(dataset.targets[positions['labelled']])
        if not self.multilabel:
            labels = torch.nn.functional.one_hot(labels, self.memory.num_classes)
        self.memory.remember(labelled, labels.float(), labels=True)

    def losses(
        self,
        student: NetworkOutputs,
        teacher: NetworkOutputs,
        num_labelled: int,
        index: Tensor,
        network_losses: Callable[[NetworkOutputs], dict[str, Tensor]],
    ) -> dict[str, Tensor]:
        """What the teacher-student adds to the student's losses, once pseudo-labelled.

        The teacher's predictions of the unlabelled tiles are remembered for their
        neighbours: all of them, not only those the policy keeps, as a prior from
        many uncertain neighbours carries more than one from the few confident ones.

        Args:
            student: the student's outputs on the step's views.
            teacher: the teacher's outputs on the same views.
            num_labelled: rows of the labelled weak view at the start.
            index: positions of the unlabelled tiles, whose weak view follows.
            network_losses: a network's supervised and unsupervised losses against
                the step's pseudo-labels.

        Returns:
            ``distillation_loss`` on the weak views (where the pseudo-labels come
            from) and the teacher's own losses as ``teacher_<name>``.
        """
        weak = slice(0, num_labelled + len(index))
        if self.memory is not None:
            logits = teacher.logits[num_labelled : weak.stop].detach().float()
            self.memory.remember(
                index, logits.sigmoid() if self.multilabel else logits.softmax(dim=1)
            )
        if self.options.distillation == 'context':
            distillation = context_distillation(
                student.context[weak], teacher.context[weak]
            )
        else:
            distillation = logit_distillation(
                student.logits[weak],
                teacher.logits[weak],
                self.options.distillation_temperature,
                self.multilabel,
            )
        own = network_losses(teacher)
        return {
            'distillation_loss': distillation,
            **{f'teacher_{name}': value for name, value in own.items()},
        }
