"""Embeddings of every tile as a table with places, and their 2-D t-SNE picture.

The table has one row per tile: its id, split, class, date, lon/lat and one column
per embedding dimension (``features_0`` ..., ``projection_0`` ...), with a point
geometry in EPSG:4326 (none for tiles of unknown location). It is written as a
GeoPackage (``.gpkg``, opens in QGIS) or GeoParquet (``.parquet``, for pandas and
DuckDB), atomically.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from torch import Tensor

from geossl.atomic import atomic_output, check_output
from geossl.errors import GeosslInputError
from geossl.inference.representation import embed_samples, encoder_and_data

#: Table formats by file suffix.
FORMATS = ('.gpkg', '.parquet')

#: SQLite's default column limit, less the table's other columns.
GEOPACKAGE_MAX_DIMENSIONS = 1990

#: The class shown for tiles without a label.
UNLABELLED = 'unlabelled'


def check_table_path(path: Path, dimensions: int) -> None:
    """Refuse a table format that cannot hold the embeddings.

    Args:
        path: the output file.
        dimensions: embedding columns to write.

    Raises:
        GeosslInputError: for another suffix, or too many columns for a GeoPackage.
    """
    if path.suffix not in FORMATS:
        raise GeosslInputError(
            path, f'must end in {" or ".join(FORMATS)} (GeoPackage or GeoParquet)'
        )
    if path.suffix == '.gpkg' and dimensions > GEOPACKAGE_MAX_DIMENSIONS:
        raise GeosslInputError(
            path,
            f'cannot hold {dimensions} embedding columns (a GeoPackage holds at most '
            f'{GEOPACKAGE_MAX_DIMENSIONS}); write .parquet instead',
        )


def tile_classes(targets: np.ndarray, class_names: list[str]) -> pd.Series:
    """Each tile's class name; for multi-label targets, the names joined by ``'; '``.

    Args:
        targets: encoded labels (class positions, or multi-hot rows), -1 where a
            tile has no label.
        class_names: class names in target order.

    Returns:
        The names, ``unlabelled`` for tiles without a label.
    """
    if targets.ndim == 1:
        names = [class_names[t] if t >= 0 else UNLABELLED for t in targets]
    else:
        names = [
            '; '.join(class_names[i] for i in np.flatnonzero(row == 1)) or UNLABELLED
            if (row >= 0).all()
            else UNLABELLED
            for row in targets
        ]
    return pd.Series(names)


def embedding_table(
    index: pd.DataFrame,
    classes: pd.Series,
    splits: pd.Series,
    embeddings: dict[str, Tensor],
) -> gpd.GeoDataFrame:
    """One row per tile: id, split, class, date, place and embedding columns.

    Args:
        index: the dataset's index (``sample_id``, ``datetime``, ``lon``, ``lat``).
        classes: each tile's class name (``unlabelled`` where it has none).
        splits: each tile's split.
        embeddings: name -> ``(N, D)`` embeddings, in the index's order.

    Returns:
        The table, with point geometries in EPSG:4326.
    """
    columns = {
        'sample_id': index['sample_id'].to_numpy(),
        'split': splits.to_numpy(),
        'class': classes.to_numpy(),
        'datetime': index['datetime'].to_numpy(),
        'lon': index['lon'].to_numpy(dtype=float),
        'lat': index['lat'].to_numpy(dtype=float),
    }
    for name, values in embeddings.items():
        array = values.numpy().astype(np.float32)
        columns |= {f'{name}_{i}': array[:, i] for i in range(array.shape[1])}
    table = pd.DataFrame(columns)
    located = table['lon'].notna() & table['lat'].notna()
    points = gpd.points_from_xy(table['lon'], table['lat'])
    return gpd.GeoDataFrame(
        table, geometry=np.where(located, points, None), crs='EPSG:4326'
    )


def write_table(table: gpd.GeoDataFrame, path: Path) -> None:
    """Write the table atomically, by the path's suffix.

    Args:
        table: from :func:`embedding_table`.
        path: a ``.gpkg`` or ``.parquet`` file.
    """
    with atomic_output(path) as partial:
        if path.suffix == '.parquet':
            table.to_parquet(partial)
        else:
            table.to_file(partial, layer='tiles', driver='GPKG')


def tsne_coordinates(features: Tensor, seed: int = 0) -> np.ndarray:
    """2-D t-SNE of features (PCA to 50 dimensions first, as is usual).

    Args:
        features: ``(N, D)`` features, N >= 5.
        seed: the embedding's seed.

    Returns:
        ``(N, 2)`` coordinates.
    """
    values = features.numpy().astype(np.float64)
    if values.shape[1] > 50 and len(values) > 50:
        values = PCA(50, random_state=seed).fit_transform(values)
    perplexity = min(30.0, (len(values) - 1) / 3)
    return TSNE(2, perplexity=perplexity, init='pca', random_state=seed).fit_transform(
        values
    )


def save_tsne_plot(
    coordinates: np.ndarray,
    classes: pd.Series,
    class_names: list[str],
    title: str,
    path: Path,
) -> None:
    """A scatter of the 2-D t-SNE coloured by class, written atomically as a PNG.

    Args:
        coordinates: ``(N, 2)`` from :func:`tsne_coordinates`.
        classes: each point's class name (``unlabelled`` where it has none).
        class_names: all classes, in the model's order (sets the colours).
        title: the picture's title.
        path: the ``.png`` to write.
    """
    # Distinct colours, not the maps' land-cover ones (which share a colour among
    # kindred classes such as highway, industrial and residential).
    palette = matplotlib.colormaps['tab10' if len(class_names) <= 10 else 'tab20']
    colours = {name: palette(i % palette.N) for i, name in enumerate(class_names)}
    colours[UNLABELLED] = '#bbbbbb'
    figure = Figure(figsize=(8, 7))
    axes = figure.subplots()
    # Unlabelled tiles first, so labelled ones stay visible on top.
    for name in [UNLABELLED, *class_names]:
        chosen = (classes == name).to_numpy()
        if chosen.any():
            axes.scatter(
                *coordinates[chosen].T,
                s=6,
                color=colours[name],
                label=f'{name} ({chosen.sum()})',
                linewidths=0,
            )
    axes.set_title(title)
    axes.set_xticks([])
    axes.set_yticks([])
    axes.legend(
        loc='center left', bbox_to_anchor=(1, 0.5), markerscale=3, frameon=False
    )
    figure.tight_layout()
    with atomic_output(path) as partial:
        figure.savefig(partial, dpi=110, format='png')


def embed(
    checkpoint: str,
    data: Mapping[str, Any],
    output: str,
    tsne: str | None = None,
    overwrite: bool = False,
    batch_size: int = 256,
    workers: int = 0,
    device: str = 'auto',
) -> None:
    """Write a checkpoint's features of every tile, with its place, to a table.

    The features (and projection-head outputs, for geossl pretrain) of every tile,
    with its split, class, date and lon/lat point (EPSG:4326), to a GeoPackage or
    GeoParquet; optionally a 2-D t-SNE of the features coloured by class.

    Args:
        checkpoint: A .ckpt from geossl pretrain or geossl fit.
        data: The data options of geossl pretrain.
        output: The table: .gpkg (layer tiles) or .parquet.
        tsne: Also write this t-SNE .png.
        overwrite: Replace existing outputs.
        batch_size: Tiles per forward pass.
        workers: DataLoader processes reading tiles.
        device: auto (a GPU if there is one), cpu, cuda, cuda:N or mps.

    Raises:
        GeosslInputError: for a picture that is not a .png, or fewer than 5 tiles
            for a t-SNE.
    """
    table = Path(output)
    check_table_path(table, 0)
    check_output(table, overwrite)
    plot = Path(tsne) if tsne else None
    if plot is not None:
        if plot.suffix != '.png':
            raise GeosslInputError(plot, 'must end in .png')
        check_output(plot, overwrite)
    encoder, datamodule, _ = encoder_and_data(checkpoint, data, device)
    dataset = datamodule.dataset
    if plot is not None and len(dataset) < 5:
        raise GeosslInputError(data['root'], 'has fewer than 5 tiles for a t-SNE')
    embeddings = embed_samples(
        encoder, dataset, range(len(dataset)), batch_size, workers
    )
    check_table_path(table, sum(values.shape[1] for values in embeddings.values()))
    classes = tile_classes(dataset.targets, dataset.classes)
    splits = datamodule.splits['split']
    write_table(embedding_table(dataset.index, classes, splits, embeddings), table)
    sizes = ', '.join(f'{name} {v.shape[1]}' for name, v in embeddings.items())
    print(f'Embedded {len(dataset)} tiles ({sizes}) -> {table}')
    if plot is None:
        return
    coordinates = tsne_coordinates(embeddings['features'])
    # A multi-label tile takes the colour of its first class.
    colours = classes.str.split('; ').str[0]
    title = f't-SNE of {Path(checkpoint).name} features, {len(dataset)} tiles'
    save_tsne_plot(coordinates, colours, dataset.classes, title, plot)
    print(f't-SNE -> {plot}')
