"""Outputs that appear whole or not at all.

Every file geossl writes (indexes, splits, maps, polygons, quick-looks, ONNX models)
is written to a hidden sibling and renamed into place only when complete, so an
interrupted run leaves no half-written output behind.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def partial_path(
    path: Path, suffix: str | None = None, owner: int | None = None
) -> Path:
    """A hidden sibling of ``path`` for work in progress, unique to one process.

    Args:
        path: the final output.
        suffix: the sibling's extension (drivers pick formats by it); None for
            ``path``'s own.
        owner: id of the process that owns the work (so that processes working
            together agree on names); None for this process.

    Returns:
        ``.<name>.partial-<owner><suffix>`` beside ``path``.
    """
    owner = os.getpid() if owner is None else owner
    return path.with_name(f'.{path.name}.partial-{owner}{suffix or path.suffix}')


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Write to a hidden sibling, then rename it to ``path`` if the block succeeds.

    Args:
        path: the final output.

    Yields:
        The path to write to.
    """
    path = Path(path)
    partial = partial_path(path)
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
