"""What a backbone's features are worth: embeddings, weighted kNN and a linear probe.

Any geossl checkpoint is an encoder here: one of ``geossl pretrain`` (backbone
features and projection-head outputs) or of ``geossl fit`` (the student's
features). Both normalise raw pixels with the statistics they trained with.

The two standard measures of a frozen representation, on a labelled split:

* weighted kNN (Wu et al., 2018, as lightly and the SSL literature run it):
  cosine similarity to the ``k`` nearest training features, votes weighted by
  ``exp(similarity / temperature)``;
* a linear probe: scikit-learn's multinomial logistic regression on standardised
  features.
"""

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from lightly.utils.benchmarking import knn_predict
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from geossl.augment.views import Views
from geossl.data.datamodule import GeoPretrainingDataModule, collate_samples
from geossl.errors import GeosslInputError
from geossl.inference.checkpoint import fit_task_from, restore_task
from geossl.models.weight_sources import read_checkpoint
from geossl.progress import Tqdm
from geossl.tasks.pretrain import METHODS


class Encoder(Protocol):
    """A trained task that embeds normalised images."""

    views: Views
    hparams: Any

    @property
    def band_names(self) -> list[str]:
        """The input bands, in order, as the model was trained on them."""
        ...

    def embed(self, images: Tensor) -> dict[str, Tensor]:
        """Named embeddings (``features``, maybe ``projection``) of images."""
        ...


def load_encoder(path: str | Path, device: str | torch.device = 'cpu') -> Encoder:
    """The task of a ``geossl pretrain`` or ``geossl fit`` checkpoint, to embed with.

    Args:
        path: the ``.ckpt``.
        device: where to put the model.

    Returns:
        The task, in evaluation mode.

    Raises:
        GeosslInputError: if the file is unsafe, corrupt or not geossl's.
    """
    checkpoint = read_checkpoint(path, 'cpu')
    hparams = checkpoint.get('hyper_parameters') if isinstance(checkpoint, dict) else {}
    method = (hparams or {}).get('method')
    if method is None:
        return fit_task_from(checkpoint, path, device)
    if method not in METHODS:
        raise GeosslInputError(path, f'holds an unknown pretraining method {method!r}')
    return restore_task(METHODS[method], hparams, checkpoint, path, device)


def resolve_device(name: str) -> torch.device:
    """The torch device of a ``--device`` option.

    Args:
        name: ``auto`` (a GPU if there is one), ``cpu``, ``cuda``, ``cuda:N`` or
            ``mps``.

    Returns:
        The device.

    Raises:
        GeosslInputError: for a name torch does not know or a GPU that is absent.
    """
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        device = torch.device(name)
    except RuntimeError:
        raise GeosslInputError(
            '--device', f'is {name!r}, not one of auto, cpu, cuda, cuda:N, mps'
        ) from None
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise GeosslInputError('--device', f'is {name} but no CUDA GPU is visible')
    return device


def check_bands(encoder: Encoder, band_names: Sequence[str], source: object) -> None:
    """Refuse data whose bands are not those the encoder trained on.

    Args:
        encoder: the trained task.
        band_names: the data's bands.
        source: the data, for the message.

    Raises:
        GeosslInputError: if the band count differs.
    """
    trained = encoder.band_names
    if len(band_names) != len(trained):
        raise GeosslInputError(
            source,
            f'has {len(band_names)} bands but the model was trained on '
            f'{len(trained)} ({", ".join(trained)})',
        )


@torch.no_grad()
def embed_samples(
    encoder: Encoder,
    dataset: Dataset,
    positions: Sequence[int],
    batch_size: int = 256,
    num_workers: int = 0,
    description: str = 'Embedding',
) -> dict[str, Tensor]:
    """The embeddings of some samples of a dataset, in their order.

    Args:
        encoder: the trained task.
        dataset: a geossl dataset (raw pixels).
        positions: which samples.
        batch_size: samples per forward pass.
        num_workers: data-loading processes.
        description: the progress bar's label.

    Returns:
        Name -> ``(N, D)`` float tensor on the CPU.
    """
    loader = DataLoader(
        Subset(dataset, list(positions)),
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=collate_samples,
    )
    device = encoder.views.mean.device
    parts: dict[str, list[Tensor]] = {}
    for batch in Tqdm(loader, desc=description, unit='batch', leave=False):
        images = encoder.views.normalise(batch['image'].to(device))
        for name, value in encoder.embed(images).items():
            parts.setdefault(name, []).append(value.float().cpu())
    return {name: torch.cat(values) for name, values in parts.items()}


def knn_accuracy(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    test_labels: Tensor,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.1,
) -> tuple[float, float]:
    """Top-1 and top-5 accuracy of weighted kNN on cosine similarity.

    Args:
        train_features: ``(N, D)`` features of the labelled bank.
        train_labels: ``(N,)`` their classes.
        test_features: ``(M, D)`` features to classify.
        test_labels: ``(M,)`` their classes.
        num_classes: number of classes.
        k: neighbours (at most the bank's size).
        temperature: the softness of the similarity weights.

    Returns:
        Top-1 and top-5 accuracy in [0, 1].
    """
    bank = F.normalize(train_features, dim=1).T.contiguous()
    queries = F.normalize(test_features, dim=1)
    ranked = torch.cat(
        [
            knn_predict(
                chunk,
                bank,
                train_labels,
                num_classes,
                min(k, len(train_labels)),
                temperature,
            )
            for chunk in queries.split(1024)
        ]
    )
    return _top_accuracies(ranked, test_labels)


def linear_probe_accuracy(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    test_labels: Tensor,
    seed: int = 0,
) -> tuple[float, float]:
    """Top-1 and top-5 accuracy of logistic regression on frozen features.

    Args:
        train_features: ``(N, D)`` features to fit on.
        train_labels: ``(N,)`` their classes.
        test_features: ``(M, D)`` features to classify.
        test_labels: ``(M,)`` their classes.
        seed: the solver's seed.

    Returns:
        Top-1 and top-5 accuracy in [0, 1].
    """
    probe = make_pipeline(
        StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed)
    )
    probe.fit(train_features.numpy(), train_labels.numpy())
    scores = probe.predict_proba(test_features.numpy())
    # Columns are the classes seen in training, which may be fewer than all.
    classes = torch.as_tensor(probe.classes_)
    ranked = classes[torch.as_tensor(np.argsort(-scores, axis=1))]
    return _top_accuracies(ranked, test_labels)


def score_representation(
    fit_features: Tensor,
    fit_labels: Tensor,
    eval_features: Tensor,
    eval_labels: Tensor,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.1,
    seed: int = 0,
) -> dict[str, float]:
    """Weighted kNN and linear-probe accuracy of frozen features.

    Args:
        fit_features: ``(N, D)`` features of labelled tiles (the kNN bank and the
            probe's training set).
        fit_labels: ``(N,)`` their classes.
        eval_features: ``(M, D)`` features of the tiles to classify.
        eval_labels: ``(M,)`` their classes.
        num_classes: number of classes.
        k: kNN neighbours.
        temperature: kNN temperature.
        seed: the probe solver's seed.

    Returns:
        ``knn_top1``, ``knn_top5``, ``linear_top1``, ``linear_top5`` in [0, 1].
    """
    tiles = (fit_features, fit_labels, eval_features, eval_labels)
    knn = knn_accuracy(*tiles, num_classes, k, temperature)
    linear = linear_probe_accuracy(*tiles, seed)
    return {
        'knn_top1': knn[0],
        'knn_top5': knn[1],
        'linear_top1': linear[0],
        'linear_top5': linear[1],
    }


def _top_accuracies(ranked: Tensor, labels: Tensor) -> tuple[float, float]:
    hits = ranked[:, :5] == labels[:, None]
    return float(hits[:, 0].float().mean()), float(hits.any(dim=1).float().mean())


def encoder_and_data(
    checkpoint: str | Path, data: Mapping[str, Any], device: str = 'auto'
) -> tuple[Encoder, GeoPretrainingDataModule, str]:
    """A checkpoint's encoder, and the data split as the checkpoint's run split it.

    The split is the run's ``splits.csv`` (beside the ``checkpoints`` folder) when
    there is one, else ``run_dir``'s, else made from the data options without being
    saved. The data is normalised with the encoder's statistics, so no pass over
    the data is needed.

    Args:
        checkpoint: a checkpoint of ``geossl pretrain`` or ``fit``.
        data: the options of
            :class:`~geossl.data.datamodule.GeoPretrainingDataModule`.
        device: where the encoder runs (:func:`resolve_device`).

    Returns:
        The encoder, the set-up DataModule and where its split came from.
    """
    checkpoint = Path(checkpoint)
    encoder = load_encoder(checkpoint, resolve_device(device))
    data = dict(data)
    data['chip_size'] = data.get('chip_size') or encoder.hparams['chip_size']
    run_split = checkpoint.parent.parent / 'splits.csv'
    with tempfile.TemporaryDirectory() as scratch:
        if data.get('run_dir') is None:
            data['run_dir'] = str(run_split.parent if run_split.exists() else scratch)
        datamodule = GeoPretrainingDataModule(**data)
        check_bands(encoder, datamodule.dataset.band_names, data['root'])
        datamodule.mean = encoder.views.mean.flatten().cpu()
        datamodule.std = encoder.views.std.flatten().cpu()
        datamodule.setup('fit')
    split = Path(data['run_dir']) / 'splits.csv'
    source = str(split) if data['run_dir'] != scratch else 'the --data options'
    return encoder, datamodule, source


def evaluate_representation(
    checkpoint: str,
    data: Mapping[str, Any],
    batch_size: int = 256,
    workers: int = 0,
    device: str = 'auto',
    fitted_on: Literal['labelled', 'train'] = 'labelled',
    split: Literal['test', 'val'] = 'test',
    k: int = 200,
    temperature: float = 0.1,
) -> dict[str, float]:
    """Measure a checkpoint's frozen features on labelled tiles.

    Weighted kNN (cosine similarity, votes weighted by exp(similarity /
    temperature)) and a linear probe (logistic regression on standardised
    features), top-1 and top-5 accuracy. Both are fitted on training tiles and
    evaluated on the held-out split of the checkpoint's run. Single-label data only.

    Args:
        checkpoint: A .ckpt from geossl pretrain or geossl fit.
        data: The data options of geossl pretrain.
        batch_size: Tiles per forward pass.
        workers: DataLoader processes reading tiles.
        device: auto (a GPU if there is one), cpu, cuda, cuda:N or mps.
        fitted_on: labelled: the run's labelled tiles (the few-label setting);
            train: every training tile with its label (the usual linear-evaluation
            protocol).
        split: The held-out tiles to evaluate on.
        k: kNN neighbours.
        temperature: kNN vote temperature.

    Returns:
        The scores (:func:`score_representation`).

    Raises:
        GeosslInputError: for multi-label data, an empty split, fewer than two
            classes to fit on, or a k or temperature that is not positive.
    """
    if k < 1 or temperature <= 0:
        raise GeosslInputError('--k' if k < 1 else '--temperature', 'must be positive')
    encoder, datamodule, source = encoder_and_data(checkpoint, data, device)
    dataset = datamodule.dataset
    if dataset.multilabel:
        raise GeosslInputError(
            data['root'],
            'is multi-label: kNN and linear-probe accuracy are for one class per tile',
        )
    positions = datamodule.positions
    fitted = positions['labelled']
    if fitted_on == 'train':
        fitted = np.union1d(fitted, positions['unlabelled'])
    fitted = fitted[dataset.is_labelled[fitted]]
    evaluated = positions[split]
    evaluated = evaluated[dataset.is_labelled[evaluated]]
    targets = torch.as_tensor(dataset.targets)
    if not len(evaluated):
        raise GeosslInputError(
            '--split',
            f'is {split} but that split holds no labelled tiles (see '
            f'--data.{split}_fraction)',
        )
    if len(targets[fitted].unique()) < 2:
        raise GeosslInputError(
            '--fitted_on',
            f'is {fitted_on} but those tiles hold fewer than two classes',
        )
    features = embed_samples(
        encoder, dataset, np.concatenate([fitted, evaluated]), batch_size, workers
    )['features']
    scores = score_representation(
        features[: len(fitted)],
        targets[fitted],
        features[len(fitted) :],
        targets[evaluated],
        len(dataset.classes),
        k,
        temperature,
    )
    hparams = encoder.hparams
    print(
        f'{checkpoint}: {hparams.get("method") or hparams["algorithm"]} '
        f'{hparams.get("model") or hparams["backbone"]}, '
        f'{features.shape[1]} features\n'
        f'Fitted on {len(fitted)} {fitted_on} tiles, evaluated on '
        f'{len(evaluated)} {split} tiles (split: {source})\n'
    )
    print('| measure | top-1 % | top-5 % |\n|---|---|---|')
    for name, key in (
        (f'kNN (k={k}, T={temperature})', 'knn'),
        ('linear probe', 'linear'),
    ):
        top1, top5 = scores[f'{key}_top1'], scores[f'{key}_top5']
        print(f'| {name} | {100 * top1:.1f} | {100 * top5:.1f} |')
    return scores
