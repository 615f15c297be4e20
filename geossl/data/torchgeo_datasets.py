"""TorchGeo's EuroSAT and BigEarthNet, returning geossl samples with location and time.

TorchGeo reads the pixels (and downloads the data when asked); geossl adds where and
when each sample was taken, read from the files behind it, and the labels in the
same encoding as every other geossl dataset.
"""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from torch import Tensor
from torchgeo.datasets import BigEarthNet, EuroSAT, NonGeoDataset, Sentinel2

from geossl.data.datasets import GeoClassificationDataset
from geossl.data.folder import BIGEARTHNET_43_TO_19
from geossl.data.index import SampleRef, index_source
from geossl.data.metadata import (
    MetadataReader,
    bigearthnet_metadata_file,
    read_bigearthnet_json,
)
from geossl.data.pixels import apply_reflectance_offset
from geossl.errors import DatasetLayoutError, GeosslInputError

#: Band order of BigEarthNet v1 Sentinel-2 samples as TorchGeo reads them (no B10).
BIGEARTHNET_BANDS = tuple(band for band in Sentinel2.all_bands if band != 'B10')


class TorchGeoDataset(GeoClassificationDataset):
    """A TorchGeo classification dataset whose samples each come from known files.

    Args:
        dataset: the TorchGeo dataset; its ``__getitem__`` supplies the image.
        samples: one :class:`~.SampleRef` per item of ``dataset``, in the same order.
        classes: class names in target order.
        multilabel: True for multi-hot targets.
        band_names: names of the bands ``dataset`` returns.
        root: the dataset's root folder (for the index cache).
        reader: how to read location and time.
        label_map: optional renaming of label names before encoding.
        progress: show a progress bar while indexing.
    """

    def __init__(
        self,
        dataset: NonGeoDataset,
        samples: Sequence[SampleRef],
        classes: Sequence[str],
        multilabel: bool,
        band_names: Sequence[str],
        root: str | Path,
        reader: MetadataReader | None = None,
        label_map: Mapping[str, str | None] | None = None,
        progress: bool = True,
    ) -> None:
        self.dataset = dataset
        source = f'{type(dataset).__name__}:{Path(root).resolve()}:{len(samples)}'
        index = index_source(
            root, None, reader, progress, samples=samples, source=source
        )
        super().__init__(index, classes, multilabel, band_names, label_map)

    def read_image(self, position: int) -> Tensor:
        """Read the pixels of one sample through TorchGeo.

        Args:
            position: the sample's position in the dataset.

        Returns:
            float32 ``C x H x W`` raw values.
        """
        image = self.dataset[position]['image'].float()
        offset = float(self.offsets[position])
        if offset:
            invalid = np.zeros(image.shape, dtype=bool)
            apply_reflectance_offset(image.numpy(), invalid, offset)
        return image


def eurosat(
    root: str | Path,
    split: Literal['train', 'val', 'test'] = 'train',
    bands: Sequence[str] = EuroSAT.all_band_names,
    download: bool = False,
    reader: MetadataReader | None = None,
    progress: bool = True,
) -> TorchGeoDataset:
    """EuroSAT-MS (13 bands) with each tile's location from its georeferencing.

    EuroSAT has no acquisition dates, so time is marked missing.

    Args:
        root: TorchGeo's EuroSAT root folder.
        split: which of TorchGeo's splits to load.
        bands: band names to load, in order.
        download: download the data if missing (needs internet).
        reader: how to read location and time.
        progress: show a progress bar while indexing.

    Returns:
        The dataset.
    """
    dataset = EuroSAT(root, split=split, bands=bands, download=download)
    samples = [
        SampleRef(Path(path).name, Path(path), dataset.classes[label])
        for path, label in dataset.samples
    ]
    return TorchGeoDataset(
        dataset,
        samples,
        dataset.classes,
        False,
        bands,
        root,
        reader,
        progress=progress,
    )


def bigearthnet(
    root: str | Path,
    split: Literal['train', 'val', 'test'] = 'train',
    num_classes: int = 19,
    download: bool = False,
    reader: MetadataReader | None = None,
    progress: bool = True,
) -> TorchGeoDataset:
    """BigEarthNet v1 Sentinel-2 (12 bands), multi-label, with location and date.

    Location comes from each patch's GeoTIFFs, the date from the patch name or its
    ``_labels_metadata.json``.

    Args:
        root: TorchGeo's BigEarthNet root folder (holding ``BigEarthNet-v1.0`` and
            the split CSV files).
        split: which of TorchGeo's splits to load.
        num_classes: 19 or 43, the nomenclature to use.
        download: download the data if missing (needs internet).
        reader: how to read location and time.
        progress: show a progress bar while indexing.

    Returns:
        The dataset.

    Raises:
        GeosslInputError: if ``num_classes`` is not 19 or 43.
    """
    if num_classes not in BigEarthNet.class_sets:
        raise GeosslInputError('num_classes', f'is {num_classes}, not 19 or 43')
    dataset = BigEarthNet(
        root, split=split, bands='s2', num_classes=num_classes, download=download
    )
    samples = []
    for folder in (Path(f['s2']) for f in dataset.folders):
        json_path = bigearthnet_metadata_file(folder)
        if json_path is None:
            raise DatasetLayoutError(folder, 'BigEarthNet patch has no labels JSON')
        metadata = read_bigearthnet_json(json_path)
        samples.append(SampleRef(folder.name, folder, tuple(metadata['labels'])))
    return TorchGeoDataset(
        dataset,
        samples,
        BigEarthNet.class_sets[num_classes],
        True,
        BIGEARTHNET_BANDS,
        root,
        reader,
        BIGEARTHNET_43_TO_19 if num_classes == 19 else None,
        progress,
    )
