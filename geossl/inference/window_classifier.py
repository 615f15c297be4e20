"""A trained task over a scene's windows, run in Lightning's predict loop.

Each process reads the strips of its own band of rows in DataLoader workers
(:class:`~geossl.inference.windows.StripDataset`) and classifies their windows in
batches on its device, with test-time augmentation if asked for
(:mod:`geossl.inference.tta`).
"""

from typing import Any, Literal

import shapely
import torch
from lightning.pytorch import LightningModule
from torch import Tensor
from torch.utils.data import DataLoader

from geossl.data.scene_raster import SceneRaster
from geossl.inference.engines import window_probabilities
from geossl.inference.options import TestTimeAugmentation
from geossl.inference.tta import augmented_probabilities
from geossl.inference.windows import StripDataset, WindowGrid
from geossl.models.memory_format import use_memory_format
from geossl.tasks.semi_supervised import SemiSupervisedTask


class WindowClassifier(LightningModule):
    """A trained task over the windows of a scene, for Lightning's predict loop.

    Each process reads the strips of its own band of rows; only windows that hold a
    pixel with data (inside the region, if one is given) and whose centre pixel the
    scene's mask leaves valid are classified.

    Args:
        task: the trained task.
        raster: the scene's dataset, reading the model's bands.
        grid: the windows.
        batch_size: windows per forward pass (before test-time augmentation).
        workers: DataLoader processes reading strips.
        region: the region of interest in the scene's CRS, or None.
        tta: the test-time augmentation.
        engine: what runs the model: ``pytorch`` or ``onnxruntime`` (see
            :mod:`geossl.inference.engines`).
    """

    def __init__(
        self,
        task: SemiSupervisedTask,
        raster: SceneRaster,
        grid: WindowGrid,
        batch_size: int,
        workers: int,
        region: shapely.Geometry | None = None,
        tta: TestTimeAugmentation = 'none',
        engine: Literal['pytorch', 'onnxruntime'] = 'pytorch',
    ) -> None:
        super().__init__()
        self.task = task
        self.raster = raster
        self.grid = grid
        self.batch_size = batch_size
        self.workers = workers
        self.region = region
        self.tta = tta
        self.engine = engine

    def setup(self, stage: str) -> None:
        """Ready the model on the device this process maps on.

        Args:
            stage: the Lightning stage.
        """
        use_memory_format(self.task, self.device, self.task.hparams['memory_format'])
        self.probabilities = window_probabilities(self.task, self.engine)

    def predict_dataloader(self) -> DataLoader:
        """This process's strips, one per batch.

        Returns:
            The loader.
        """
        band = self.grid.band(self.global_rank, self.trainer.world_size)
        dataset = StripDataset(self.raster, self.grid, band, self.region)
        return DataLoader(dataset, batch_size=None, num_workers=self.workers)

    def predict_step(self, strip: dict[str, Any], batch_idx: int) -> dict[str, Tensor]:
        """Class probabilities of a strip's windows.

        Args:
            strip: a :class:`~geossl.inference.windows.StripDataset` item.
            batch_idx: its position.

        Returns:
            ``probabilities``, ``N x K`` left to right (0 for windows not
            classified), and ``classified``, which of the ``N`` windows were.
        """
        positions = self.grid.windows_to_classify(strip['invalid'], strip['masked'])
        classes = int(self.task.hparams['num_classes'])
        image = strip['image']
        probabilities = image.new_zeros(len(self.grid.columns), classes)
        classified = torch.zeros(len(self.grid.columns), dtype=torch.bool)
        classified[positions.cpu()] = True
        if len(positions):
            batches = self.grid.strip_windows(image, positions, self.batch_size)
            probabilities[positions] = torch.cat(
                [
                    augmented_probabilities(self.probabilities, b, self.tta)
                    for b in batches
                ]
            )
        return {'probabilities': probabilities, 'classified': classified}
