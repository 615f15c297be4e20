"""What the benchmarks share: data paths, timing, and the tables they print and save."""

import gzip
import json
import os
import pickle
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from geossl.data.datasets import InMemoryDataset

#: The read-only sample data: ``$GEOSSL_SHARED_DATA``, or beside the repository.
SHARED_DATA = Path(
    os.environ.get(
        'GEOSSL_SHARED_DATA', Path(__file__).resolve().parents[2] / 'shared' / 'data'
    )
)
SCENE = SHARED_DATA / 'sentinel2-scene-18SVG-20160112'
#: Where benchmarks write their tables, CSV and JSON.
RESULTS = Path(__file__).parent / 'results'
#: The repository, whose history holds the code that "before" columns time.
REPOSITORY = Path(__file__).resolve().parents[1]


def default_device() -> torch.device:
    """The first GPU if there is one, else the CPU."""
    return torch.device('cuda' if torch.cuda.is_available() else 'cpu')


def median_seconds(
    function: Callable[[], object],
    repeats: int,
    warmup: int = 1,
    device: torch.device | None = None,
) -> float:
    """The median wall time of ``function`` after warm-up calls.

    Args:
        function: what to time.
        repeats: timed calls.
        warmup: untimed calls first (allocator, kernel choice, caches).
        device: a CUDA device to synchronise before reading the clock.

    Returns:
        Seconds.
    """
    times = []
    for call in range(warmup + repeats):
        start = time.perf_counter()
        function()
        if device is not None and device.type == 'cuda':
            torch.cuda.synchronize(device)
        if call >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def export_tree(commit: str, folder: Path) -> Path:
    """geossl as it was at a commit, for ``PYTHONPATH``: "before" in one run.

    Args:
        commit: the commit.
        folder: an empty folder to write ``geossl/`` into.

    Returns:
        ``folder``.
    """
    archive = subprocess.run(
        ['git', '-C', str(REPOSITORY), 'archive', commit, 'geossl'],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(['tar', '-x', '-C', str(folder)], input=archive, check=True)
    return folder


def with_geossl_from(tree: Path) -> dict[str, str]:
    """The environment of a process that imports geossl from ``tree``.

    Args:
        tree: a folder holding a ``geossl`` package (:func:`export_tree`), or the
            repository.

    Returns:
        This process's environment with ``tree`` first on ``PYTHONPATH``.
    """
    here = str(Path(__file__).resolve().parent)
    return os.environ | {'PYTHONPATH': os.pathsep.join([str(tree), here])}


def markdown(rows: Sequence[Mapping[str, object]], formats: Mapping[str, str]) -> str:
    """A Markdown table of the rows' columns named in ``formats``.

    Args:
        rows: the table's rows.
        formats: column -> format spec (``''`` to print as is); None values print
            as ``-``.

    Returns:
        The table.
    """
    lines = ['| ' + ' | '.join(formats) + ' |', '|' + '---|' * len(formats)]
    for row in rows:
        cells = [
            '-' if row.get(column) is None else format(row[column], spec)
            for column, spec in formats.items()
        ]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def save(
    name: str,
    rows: Sequence[Mapping[str, object]],
    settings: Mapping[str, object],
    output: Path = RESULTS,
) -> Path:
    """Write ``<name>.csv`` (the rows) and ``<name>.json`` (rows and settings).

    Args:
        name: the benchmark's name.
        rows: the table's rows.
        settings: how it was run (sizes, device, threads, command options).
        output: the folder.

    Returns:
        The JSON file.
    """
    output.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(output / f'{name}.csv', index=False)
    path = output / f'{name}.json'
    machine = {'torch': torch.__version__, 'threads': torch.get_num_threads()}
    document = {'settings': dict(settings) | machine, 'rows': list(rows)}
    path.write_text(json.dumps(document, indent=2, default=str) + '\n')
    return path


#: The real locations of the EuroSAT tiles, as published.
EUROSAT_LOCATIONS = SHARED_DATA / 'eurosat-locations' / 'eurosat_metadata.parquet'


def eurosat_rgb(
    root: Path, size: int, locations: Path | None = None
) -> InMemoryDataset:
    """EuroSAT RGB read once, resized as USB does, and kept in memory.

    Args:
        root: the folder of class folders of JPEGs, or a file that
            :func:`pack_eurosat_rgb` wrote (read as it is: ``size`` must match).
        size: the tiles' new height and width.
        locations: a locations table of the tiles (``--data.locations``), e.g.
            :data:`EUROSAT_LOCATIONS`; None for none.

    Returns:
        The dataset (uint8 values; located where ``locations`` says).

    Raises:
        SystemExit: if the packed tiles have another size.
    """
    if root.is_file():
        with gzip.open(root, 'rb') as packed:
            dataset = pickle.load(packed)  # a file of pack_eurosat_rgb: trusted
        if dataset.images[0].shape[-1] != size:
            shape = tuple(dataset.images[0].shape)
            raise SystemExit(f'{root}: tiles are {shape}, not {size} px')
        return dataset
    # Reading the JPEGs takes the geospatial stack; a packed file, the core alone.
    from geossl.data.folder import ImageFolderDataset
    from geossl.data.metadata import MetadataReader

    reader = MetadataReader(locations=locations, require_location=False)
    source = ImageFolderDataset(root, reader=reader)
    return InMemoryDataset(
        source,
        # Antialiased like PIL's resize, rounded back to 8 bits to store as uint8.
        lambda image: (
            F.interpolate(image[None], size, mode='bilinear', antialias=True)[0]
            .round()
            .clamp(0, 255)
        ),
    )


def pack_eurosat_rgb(
    root: Path, size: int, path: Path, locations: Path | None = None
) -> Path:
    """EuroSAT RGB resized and packed into one file, for a machine without the JPEGs.

    Args:
        root: the folder of class folders of JPEGs.
        size: the tiles' new height and width.
        path: the file to write (gzip of the pickled dataset; 58 MB at 32 px), which
            the learning core reads without the geospatial stack.
        locations: a locations table of the tiles; None for none.

    Returns:
        ``path``.
    """
    dataset = eurosat_rgb(root, size, locations)
    # A plain table, so that a machine without geopandas unpickles it.
    dataset.index = pd.DataFrame(dataset.index.drop(columns='geometry'))
    with gzip.open(path, 'wb', compresslevel=6) as packed:
        pickle.dump(dataset, packed, protocol=pickle.HIGHEST_PROTOCOL)
    return path
