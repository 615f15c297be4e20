"""Sliding windows over a scene: where they go, how they are read and blended.

Windows of ``chip_size`` pixels step by ``stride`` over the scene's 10 m grid, the
last row and column flush with the edge. All windows that start on the same row form
a strip of ``chip_size`` rows, read in one go. Each window's class probabilities are
added over its pixels with a tent weight that is highest at the window centre; once
the next strip starts below a row, that row is final and is divided by its weights.
So a scene is mapped strip by strip with one strip in memory, and a band of rows can
be given to each of several processes, each computing the few strips above its band
that overlap it.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from itertools import batched

import numpy as np
import shapely
import torch
from rasterio.features import geometry_mask
from rasterio.transform import from_origin
from torch import Tensor
from torch.utils.data import Dataset

from geossl.data.scene_raster import SceneRaster
from geossl.inference.memory import release_free_memory


def window_starts(length: int, size: int, stride: int) -> list[int]:
    """Start offsets of windows covering ``length`` pixels, the last flush with the end.

    Args:
        length: pixels to cover.
        size: window size.
        stride: step between windows.

    Returns:
        Sorted, distinct start offsets.
    """
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] != length - size:
        starts.append(length - size)
    return starts


def tent_weights(size: int) -> np.ndarray:
    """Blending weights of a window: highest at the centre, small but positive at edges.

    Args:
        size: window size.

    Returns:
        ``size x size`` float32 weights.
    """
    offsets = np.arange(size)
    ramp = np.minimum(offsets + 1, size - offsets).astype(np.float32)
    ramp /= ramp.max()
    return np.outer(ramp, ramp)


@dataclass(frozen=True)
class RowBand:
    """The rows one process writes and the strips it computes for them.

    Attributes:
        strips: indices of the strips (window rows) to compute.
        first_row: first output row written.
        stop_row: output row after the last one written.
    """

    strips: range
    first_row: int
    stop_row: int


@dataclass(frozen=True)
class WindowGrid:
    """Window positions over a ``height x width`` scene.

    Attributes:
        height: scene rows.
        width: scene columns.
        chip_size: window size.
        stride: step between windows.
    """

    height: int
    width: int
    chip_size: int
    stride: int

    # Cached: read for every strip (a frozen dataclass keeps them valid).
    @cached_property
    def rows(self) -> list[int]:
        """First row of each strip."""
        return window_starts(self.height, self.chip_size, self.stride)

    @cached_property
    def columns(self) -> list[int]:
        """First column of each window in a strip."""
        return window_starts(self.width, self.chip_size, self.stride)

    @property
    def windows(self) -> int:
        """Number of windows."""
        return len(self.rows) * len(self.columns)

    def windows_to_classify(self, invalid: Tensor, masked: Tensor) -> Tensor:
        """Which windows of a strip hold a pixel with data and a valid centre.

        Args:
            invalid: ``chip_size x width`` pixels with no data.
            masked: ``chip_size x width`` pixels a mask marks invalid (clouds).

        Returns:
            Positions of those windows in the strip, left to right.
        """
        counts = (~(invalid | masked)).any(dim=0).cumsum(0)
        counts = torch.cat([counts.new_zeros(1), counts])
        starts = torch.tensor(self.columns, device=counts.device)
        half = self.chip_size // 2
        chosen = counts[starts + self.chip_size] > counts[starts]
        chosen &= ~masked[half, starts + half]
        return chosen.nonzero().squeeze(1)

    def strip_windows(
        self, strip: Tensor, positions: Tensor, batch_size: int
    ) -> Iterator[Tensor]:
        """Windows of a strip, in batches.

        Args:
            strip: ``C x chip_size x width`` pixels of one strip.
            positions: the windows' positions in the strip.
            batch_size: windows per batch.

        Yields:
            ``N x C x chip_size x chip_size`` batches.
        """
        size = self.chip_size
        for chosen in batched(positions.tolist(), batch_size):
            columns = [self.columns[i] for i in chosen]
            yield torch.stack([strip[:, :, c : c + size] for c in columns])

    def final_rows(self, strip: int) -> int:
        """Rows at the top of a strip that no later strip touches.

        Args:
            strip: the strip's index.

        Returns:
            Rows from the strip's first row up to the next strip's (all of them for
            the last strip).
        """
        rows = self.rows
        return (
            rows[strip + 1] - rows[strip] if strip + 1 < len(rows) else self.chip_size
        )

    def band(self, part: int, parts: int) -> RowBand:
        """The rows of one of ``parts`` processes and the strips that reach them.

        Strips are dealt out in contiguous runs of nearly equal length; a process
        also computes the earlier strips that overlap its first rows, so that those
        rows are blended from every window that covers them.

        Args:
            part: this process's rank.
            parts: the number of processes.

        Returns:
            The process's rows and strips (no rows if there are more processes than
            strips).
        """
        rows = self.rows
        owned = np.array_split(np.arange(len(rows)), parts)[part]
        if not len(owned):
            return RowBand(range(0), 0, 0)
        first, last = int(owned[0]), int(owned[-1])
        first_row = rows[first]
        stop_row = rows[last] + self.final_rows(last)
        reach = next(
            i for i, top in enumerate(rows) if top + self.chip_size > first_row
        )
        return RowBand(range(reach, last + 1), first_row, stop_row)


class StripDataset(Dataset[dict[str, Tensor | int]]):
    """The strips of a row band, read from a scene.

    Items hold ``index`` (the strip's index), ``top`` (its first row), ``image`` (raw
    float32 ``C x chip_size x width`` values, NaN as 0) and ``invalid`` (pixels with
    no data: NaN, the declared nodata value, or zero in every band as in Sentinel-2
    products; and pixels outside the region, if one is given) and ``masked`` (pixels
    the scene's mask marks invalid, such as clouds; none without a mask).

    Args:
        raster: the scene's dataset, reading the model's bands.
        grid: the windows.
        band: the strips to read.
        region: the region of interest in the scene's CRS, or None for all of it.
    """

    def __init__(
        self,
        raster: SceneRaster,
        grid: WindowGrid,
        band: RowBand,
        region: shapely.Geometry | None = None,
    ) -> None:
        self.raster = raster
        self.grid = grid
        self.strips = band.strips
        self.region = region

    def __len__(self) -> int:
        """Number of strips."""
        return len(self.strips)

    def __getitem__(self, item: int) -> dict[str, Tensor | int]:
        """Read one strip.

        Args:
            item: position in the row band.

        Returns:
            The strip.
        """
        index = self.strips[item]
        top = self.grid.rows[index]
        minx, _, maxx, maxy = self.raster.scene.bounds
        yres = self.raster.scene.res[1]
        bottom = maxy - (top + self.grid.chip_size) * yres
        bounds = (minx, bottom, maxx, maxy - top * yres)
        image, nodata = self.raster.read_chip(bounds)
        invalid = nodata.any(axis=0) | (image == 0).all(axis=0)
        if self.region is not None:
            transform = from_origin(minx, bounds[3], *self.raster.scene.res)
            invalid |= geometry_mask([self.region], invalid.shape, transform)
        mask = self.raster.scene.mask
        masked = (
            np.zeros_like(invalid)
            if mask is None
            else mask.invalid(bounds, invalid.shape)
        )
        # Reading leaves freed strip-sized blocks in the heap; give them back.
        release_free_memory()
        return {
            'index': index,
            'top': top,
            'image': torch.from_numpy(np.nan_to_num(image)),
            'invalid': torch.from_numpy(invalid),
            'masked': torch.from_numpy(masked),
        }


class StripBlender:
    """Blend window probabilities strip by strip into final rows.

    A strip's windows are spread over their pixels in one ``index_add_``: the tent
    weights of window ``n`` land on columns ``columns[n] .. columns[n] + size``.
    Whether a pixel has data does not depend on the window, so the running sums
    take the strip's mask once; windows that were not classified add no weight.

    Args:
        grid: the windows.
        num_classes: probabilities per window.
        device: where to keep the running sums.
    """

    def __init__(
        self, grid: WindowGrid, num_classes: int, device: torch.device | str
    ) -> None:
        self.grid = grid
        size, width = grid.chip_size, grid.width
        self.tent = torch.from_numpy(tent_weights(size)).to(device)
        starts = torch.tensor(grid.columns, device=device)
        offsets = torch.arange(size, device=device)
        # The scene column of each (window, column in window), window by window.
        self.pixel_columns = (starts[:, None] + offsets).ravel()
        self.total = torch.zeros(num_classes, size, width, device=device)
        self.weight = torch.zeros(size, width, device=device)
        self.valid = torch.zeros(size, width, dtype=torch.bool, device=device)

    def _spread(self, values: Tensor) -> Tensor:
        """Sum ``K x N`` per-window values, tent-weighted, over a strip's pixels."""
        classes, windows = values.shape
        size = self.grid.chip_size
        weighted = values[:, None, :, None] * self.tent[None, :, None, :]
        strip = values.new_zeros(classes, size, self.grid.width)
        return strip.index_add_(
            2, self.pixel_columns, weighted.reshape(classes, size, windows * size)
        )

    def add(
        self, index: int, probabilities: Tensor, invalid: Tensor, classified: Tensor
    ) -> tuple[int, Tensor]:
        """Add a strip's windows and take out the rows that became final.

        Strips must come in order; a band of rows may start at any strip.

        Args:
            index: the strip's index.
            probabilities: ``N x K`` class probabilities of its windows, left to right.
            invalid: ``chip_size x width`` pixels with no data.
            classified: which of the ``N`` windows were classified; the others
                count for nothing.

        Returns:
            The first final row and the final rows' ``K x rows x width``
            probabilities, NaN where no classified window had data.
        """
        known = ~invalid
        weight = self._spread(classified.to(self.tent.dtype)[None])[0] * known
        self.total += self._spread(probabilities.T * classified) * known
        self.weight += weight
        self.valid |= weight > 0
        size = self.grid.chip_size
        done = self.grid.final_rows(index)
        rows = self.total[:, :done] / self.weight[:done].clamp(min=1e-12)
        rows[:, ~self.valid[:done]] = float('nan')
        for running in (self.total, self.weight, self.valid):
            running.copy_(torch.roll(running, -done, dims=-2))
            running[..., size - done :, :] = 0
        return self.grid.rows[index], rows
