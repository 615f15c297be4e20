"""Self-supervised pretraining of a backbone on the training tiles of a data source.

SimCLR, MoCo and BYOL are TorchGeo's tasks; SimSiam and Barlow Twins are built here
in the same shape from lightly's heads and losses. geossl gives each method
(:class:`PretrainingTask`, the first base of each):

* per-band normalisation on the device with the data's statistics, kept in the
  checkpoint, so that ``embed`` and ``evaluate-representation`` see what training
  saw;
* geossl's multispectral view (:func:`~geossl.augment.views.contrastive_view`) in
  place of the RGB colour jitter and grayscale;
* the compute report and the random state for exact resuming, as ``geossl fit``;
* :meth:`~PretrainingTask.embed`: backbone features and projection-head outputs.

The backbone is the plain timm model (``backbone.*`` in the checkpoint,
``model.backbone.model.*`` for BYOL) that ``geossl fit --model.weights``
takes. Training sees only the tiles of the training split: validation and test
tiles stay unseen, so a later evaluation on them is fair.

The five methods stay in this one module, each a short class over the shared base,
because configs name them here (``class_path: geossl.tasks.pretrain.MoCo``).
Pretraining builds on TorchGeo's tasks, so unlike the semi-supervised task it needs
TorchGeo.
"""

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torchgeo.tasks
from lightly.loss import BarlowTwinsLoss, NegativeCosineSimilarity
from lightly.models.modules import (
    BarlowTwinsProjectionHead,
    SimSiamPredictionHead,
    SimSiamProjectionHead,
)
from lightning import Callback, LightningModule
from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig
from torch import Tensor, nn
from torchgeo.tasks.byol import BYOLModule

from geossl.augment.views import Views, contrastive_view
from geossl.data.bands import numbered_bands
from geossl.errors import GeosslInputError
from geossl.models.backbones import create_backbone, is_vision_transformer
from geossl.models.memory_format import use_memory_format
from geossl.tasks.compute_report import ComputeReport
from geossl.tasks.resume import RandomStateCheckpoint
from geossl.tasks.schedules import cosine_schedule


class PretrainingTask(LightningModule):
    """What geossl adds to a self-supervised task; listed first among its bases.

    The base of every ``geossl pretrain --model``. The task's hyperparameters must
    include ``model``, ``in_channels``, ``chip_size``, ``num_ops`` and
    ``band_names``.
    """

    views: Views
    #: The method's name in ``geossl pretrain`` and in checkpoints.
    method: ClassVar[str]

    def configure_models(self) -> None:
        """The method's networks, and the normaliser the data's statistics fill."""
        model = self.hparams['model']
        if is_vision_transformer(model) and self.hparams['chip_size'] != 224:
            raise GeosslInputError(
                'model',
                f'is {model}: pretraining builds vision transformers for 224 x 224 '
                'chips only; use a CNN (e.g. resnet18) or --data.chip_size 224',
            )
        self.configure_networks()
        channels = self.hparams['in_channels']
        self.views = Views(torch.zeros(channels), torch.ones(channels))
        self.hparams['method'] = self.method
        self.hparams['band_names'] = list(
            self.hparams['band_names'] or numbered_bands(channels)
        )

    @property
    def band_names(self) -> list[str]:
        """The input bands, in order, as the backbone was trained on them."""
        return self.hparams['band_names']

    def configure_networks(self) -> None:
        """The method's networks: TorchGeo's, unless the method builds its own."""
        super().configure_models()  # The next base: TorchGeo's task.

    def view(self) -> nn.Module:
        """A new instance of the view drawn twice from every image.

        Returns:
            :func:`~geossl.augment.views.contrastive_view` at the chip size.
        """
        return contrastive_view(self.hparams['chip_size'], self.hparams['num_ops'])

    def configure_callbacks(self) -> list[Callback]:
        """The compute report and the random state for resuming.

        Returns:
            Callbacks the Trainer adds.
        """
        return [ComputeReport(), RandomStateCheckpoint()]

    def setup(self, stage: str) -> None:
        """Lay the weights out for the device; take the data's statistics.

        The layout is :mod:`~geossl.models.memory_format`'s ``auto``.

        Args:
            stage: the Lightning stage.

        Raises:
            GeosslInputError: if the data's band count is not the model's.
        """
        use_memory_format(self, self.device)
        datamodule = getattr(self.trainer, 'datamodule', None)
        if datamodule is None:
            return
        bands = len(datamodule.dataset.band_names)
        if bands != self.hparams['in_channels']:
            raise GeosslInputError(
                'in_channels',
                f'is {self.hparams["in_channels"]} but the data has {bands} bands',
            )
        self.views.set_statistics(datamodule.mean, datamodule.std)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Normalise raw pixels on the device; the method draws the views.

        Args:
            batch: a batch with raw ``image``.
            dataloader_idx: index of the loader.

        Returns:
            The batch with normalised ``image``.
        """
        batch['image'] = self.views.normalise(batch['image'])
        return batch

    @torch.no_grad()
    def embed(self, images: Tensor) -> dict[str, Tensor]:
        """Backbone features and projection-head outputs of normalised images.

        Args:
            images: ``B x C x H x W`` normalised images.

        Returns:
            ``features`` ``(B, F)`` and ``projection`` ``(B, P)``.
        """
        features, projection = self.features_and_projection(images)
        return {'features': features, 'projection': projection}

    def features_and_projection(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """The method's backbone features and projection of normalised images.

        Args:
            images: ``B x C x H x W``.

        Returns:
            ``(B, F)`` features and ``(B, P)`` projections.
        """
        raise NotImplementedError


class SimCLR(PretrainingTask, torchgeo.tasks.SimCLR):
    """TorchGeo's SimCLR (NT-Xent between two views), with geossl's data handling.

    Args:
        model: timm model name.
        in_channels: number of input bands.
        chip_size: input height and width.
        num_ops: RandAugment operations per view.
        band_names: names of the input bands, kept in the checkpoint.
        version: SimCLR 1 or 2.
        layers: projection-head layers.
        lr: LARS learning rate (0.3 x batch size / 256 is SimCLR's).
        temperature: NT-Xent temperature.
        memory_bank_size: negatives kept from earlier batches (0 for none).
        **kwargs: TorchGeo's other SimCLR arguments.
    """

    method = 'simclr'

    def __init__(
        self,
        model: str = 'resnet18',
        in_channels: int = 3,
        chip_size: int = 64,
        num_ops: int = 2,
        band_names: Sequence[str] | None = None,
        version: int = 2,
        layers: int = 3,
        lr: float = 0.3,
        temperature: float = 0.1,
        memory_bank_size: int = 4096,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            model=model,
            in_channels=in_channels,
            version=version,
            layers=layers,
            lr=lr,
            temperature=temperature,
            memory_bank_size=memory_bank_size,
            size=chip_size,
            augmentations=contrastive_view(chip_size, num_ops),
            **kwargs,
        )

    def features_and_projection(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """The backbone's features and the projection head's output.

        Args:
            images: ``B x C x H x W`` normalised images.

        Returns:
            ``(B, F)`` features and ``(B, P)`` projections.
        """
        projection, features = self(images)
        return features, projection


class MoCo(PretrainingTask, torchgeo.tasks.MoCo):
    """TorchGeo's MoCo (a momentum key encoder), with geossl's data handling.

    Defaults are MoCo v2's, with a memory bank sized for small data.

    Args:
        model: timm model name.
        in_channels: number of input bands.
        chip_size: input height and width.
        num_ops: RandAugment operations per view.
        band_names: names of the input bands, kept in the checkpoint.
        version: MoCo 1, 2 or 3.
        layers: projection-head layers.
        hidden_dim: projection-head width.
        output_dim: projection size.
        lr: SGD (v1, v2) or AdamW (v3) learning rate.
        weight_decay: weight decay.
        temperature: InfoNCE temperature.
        memory_bank_size: negatives kept from earlier batches.
        **kwargs: TorchGeo's other MoCo arguments.
    """

    method = 'moco'

    def __init__(
        self,
        model: str = 'resnet18',
        in_channels: int = 3,
        chip_size: int = 64,
        num_ops: int = 2,
        band_names: Sequence[str] | None = None,
        version: int = 2,
        layers: int = 2,
        hidden_dim: int = 2048,
        output_dim: int = 128,
        lr: float = 0.03,
        weight_decay: float = 1e-4,
        temperature: float = 0.07,
        memory_bank_size: int = 4096,
        **kwargs: Any,
    ) -> None:
        view = contrastive_view(chip_size, num_ops)
        super().__init__(
            model=model,
            in_channels=in_channels,
            version=version,
            layers=layers,
            hidden_dim=hidden_dim,
            output_dim=output_dim,
            lr=lr,
            weight_decay=weight_decay,
            temperature=temperature,
            memory_bank_size=memory_bank_size,
            size=chip_size,
            augmentation1=view,
            augmentation2=view,
            **kwargs,
        )

    def features_and_projection(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """The backbone's features and the query's projection.

        Args:
            images: ``B x C x H x W`` normalised images.

        Returns:
            ``(B, F)`` features and ``(B, P)`` projections.
        """
        projection, features = self(images)
        return features, projection


class BYOL(PretrainingTask, torchgeo.tasks.BYOL):
    """TorchGeo's BYOL (an online network predicts a momentum target), at chip size.

    TorchGeo builds BYOL for 224 x 224 input with its RGB view; geossl builds it for
    the data's chips with the multispectral view.

    Args:
        model: timm model name.
        in_channels: number of input bands.
        chip_size: input height and width.
        num_ops: RandAugment operations per view.
        band_names: names of the input bands, kept in the checkpoint.
        lr: AdamW learning rate.
        patience: epochs without improvement before the learning rate drops.
    """

    method = 'byol'

    def __init__(
        self,
        model: str = 'resnet18',
        in_channels: int = 3,
        chip_size: int = 64,
        num_ops: int = 2,
        band_names: Sequence[str] | None = None,
        lr: float = 1e-3,
        patience: int = 10,
    ) -> None:
        super().__init__(model=model, in_channels=in_channels, lr=lr, patience=patience)

    def configure_networks(self) -> None:
        """The online and target networks, for the chip size and band count."""
        # Not TorchGeo's: it fixes 224 x 224 input and the RGB view.
        size = self.hparams['chip_size']
        self.model = BYOLModule(
            create_backbone(self.hparams['model'], self.hparams['in_channels'], size),
            in_channels=self.hparams['in_channels'],
            image_size=(size, size),
            augment_fn=self.view(),
        )

    def features_and_projection(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """The backbone's pooled features and the online projection.

        Args:
            images: ``B x C x H x W`` normalised images.

        Returns:
            ``(B, F)`` features and ``(B, P)`` projections.
        """
        wrapper = self.model.backbone
        projection = wrapper(images)
        return wrapper._embedding, projection


class SiameseTask(PretrainingTask, torchgeo.tasks.BaseTask):
    """Two views of each image through one network, and a loss between them.

    The base of SimSiam and Barlow Twins, which TorchGeo does not have: lightly's
    heads and losses, SGD with a cosine decay over the training steps.

    Args:
        model: timm model name.
        in_channels: number of input bands.
        chip_size: input height and width.
        num_ops: RandAugment operations per view.
        band_names: names of the input bands, kept in the checkpoint.
        hidden_dim: projection-head width.
        output_dim: projection size.
        lr: SGD learning rate.
        weight_decay: weight decay.
    """

    monitor = 'train_loss'

    def __init__(
        self,
        model: str = 'resnet18',
        in_channels: int = 3,
        chip_size: int = 64,
        num_ops: int = 2,
        band_names: Sequence[str] | None = None,
        hidden_dim: int = 2048,
        output_dim: int = 2048,
        lr: float = 0.05,
        weight_decay: float = 1e-4,
    ) -> None:
        super().__init__()

    def configure_networks(self) -> None:
        """The backbone, the view and the method's heads."""
        hparams = self.hparams
        self.backbone = create_backbone(
            hparams['model'], hparams['in_channels'], hparams['chip_size']
        )
        self.augmentations = self.view()
        self.configure_heads(self.backbone.num_features)

    def configure_heads(self, features: int) -> None:
        """The method's heads and loss.

        Args:
            features: the backbone's feature size.
        """
        raise NotImplementedError

    def pair_loss(self, first: Tensor, second: Tensor) -> Tensor:
        """The method's loss between two views of the same images.

        Args:
            first: ``B x C x H x W`` first views.
            second: the second views of the same images.

        Returns:
            The loss.
        """
        raise NotImplementedError

    def forward(self, images: Tensor) -> Tensor:
        """Projections of normalised images.

        Args:
            images: ``B x C x H x W``.

        Returns:
            ``(B, P)`` projections.
        """
        return self.projection_head(self.backbone(images))

    def features_and_projection(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """The backbone's features and the projection head's output.

        Args:
            images: ``B x C x H x W`` normalised images.

        Returns:
            ``(B, F)`` features and ``(B, P)`` projections.
        """
        features = self.backbone(images)
        return features, self.projection_head(features)

    def training_step(
        self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0
    ) -> Tensor:
        """The loss between two views of each image.

        Args:
            batch: normalised ``image``.
            batch_idx: index of the step in the epoch.
            dataloader_idx: index of the loader.

        Returns:
            The loss.
        """
        images = batch['image']
        with torch.no_grad():
            first, second = self.augmentations(images), self.augmentations(images)
        loss = self.pair_loss(first, second)
        self.log('train_loss', loss, prog_bar=True, batch_size=len(images))
        return loss

    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        """SGD with momentum and a cosine decay of the learning rate to zero.

        Returns:
            The optimiser and its per-step schedule.
        """
        optimizer = torch.optim.SGD(
            self.parameters(),
            lr=self.hparams['lr'],
            momentum=0.9,
            weight_decay=self.hparams['weight_decay'],
        )
        return {
            'optimizer': optimizer,
            'lr_scheduler': {
                'scheduler': cosine_schedule(optimizer, self, 0.5),
                'interval': 'step',
            },
        }


class SimSiam(SiameseTask):
    """SimSiam: a predictor on one branch, a stop-gradient on the other.

    lightly's projection and prediction heads and negative cosine similarity.
    """

    method = 'simsiam'

    def configure_heads(self, features: int) -> None:
        """Projection head, prediction head (a bottleneck of a quarter) and loss.

        Args:
            features: the backbone's feature size.
        """
        width, size = self.hparams['hidden_dim'], self.hparams['output_dim']
        self.projection_head = SimSiamProjectionHead(features, width, size)
        self.prediction_head = SimSiamPredictionHead(size, size // 4, size)
        self.criterion = NegativeCosineSimilarity()

    def pair_loss(self, first: Tensor, second: Tensor) -> Tensor:
        """Symmetrised negative cosine between predictions and stopped projections.

        Args:
            first: first views.
            second: second views.

        Returns:
            The loss.
        """
        z1, z2 = self(first), self(second)
        p1, p2 = self.prediction_head(z1), self.prediction_head(z2)
        return (self.criterion(p1, z2.detach()) + self.criterion(p2, z1.detach())) / 2


class BarlowTwins(SiameseTask):
    """Barlow Twins: the two views' projections' cross-correlation pushed to identity.

    lightly's projection head and loss.
    """

    method = 'barlowtwins'

    def configure_heads(self, features: int) -> None:
        """Projection head and loss.

        Args:
            features: the backbone's feature size.
        """
        self.projection_head = BarlowTwinsProjectionHead(
            features, self.hparams['hidden_dim'], self.hparams['output_dim']
        )
        self.criterion = BarlowTwinsLoss()

    def pair_loss(self, first: Tensor, second: Tensor) -> Tensor:
        """Barlow Twins' redundancy-reduction loss.

        Args:
            first: first views.
            second: second views.

        Returns:
            The loss.
        """
        return self.criterion(self(first), self(second))


#: ``geossl pretrain --model`` names -> tasks.
METHODS: dict[str, type[PretrainingTask]] = {
    task.method: task for task in (SimCLR, MoCo, BYOL, SimSiam, BarlowTwins)
}
