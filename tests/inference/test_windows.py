import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from geossl.inference.windows import (
    StripBlender,
    WindowGrid,
    tent_weights,
    window_starts,
)


def test_window_starts_cover_the_edges():
    assert window_starts(10, 4, 3) == [0, 3, 6]
    assert window_starts(11, 4, 3) == [0, 3, 6, 7]
    assert window_starts(4, 4, 2) == [0]
    weights = tent_weights(4)
    assert weights[1, 1] == weights.max()
    assert weights.min() > 0


@pytest.mark.parametrize(
    ('height', 'chip_size', 'stride', 'parts'),
    [(37, 16, 5, 1), (37, 16, 5, 3), (100, 8, 8, 4), (33, 10, 1, 5), (20, 20, 7, 1)],
)
def test_row_bands_split_the_rows_and_reach_every_window_over_them(
    height, chip_size, stride, parts
):
    grid = WindowGrid(height, 9, chip_size, stride)
    bands = [grid.band(part, parts) for part in range(parts)]
    written = [row for band in bands for row in range(band.first_row, band.stop_row)]
    assert written == list(range(height))
    for band in bands:
        touching = {
            strip
            for strip, top in enumerate(grid.rows)
            if top < band.stop_row and top + chip_size > band.first_row
        }
        assert set(band.strips) == touching


def _blend(grid, band, probabilities, invalid):
    """Rows of one band, blended as one process does."""
    blender = StripBlender(grid, probabilities.shape[-1], 'cpu')
    out = torch.full((probabilities.shape[-1], grid.height, grid.width), -1.0)
    for strip in band.strips:
        top = grid.rows[strip]
        windows = probabilities[strip]
        first, rows = blender.add(
            strip,
            windows,
            invalid[top : top + grid.chip_size],
            torch.ones(len(windows), dtype=torch.bool),
        )
        stop = min(first + rows.shape[1], band.stop_row)
        start = max(first, band.first_row)
        if start < stop:
            out[:, start:stop] = rows[:, start - first : stop - first]
    return out


def test_bands_blended_apart_equal_the_whole_scene_blended_at_once():
    grid = WindowGrid(37, 45, 16, 5)
    generator = torch.Generator().manual_seed(0)
    probabilities = torch.rand(
        len(grid.rows), len(grid.columns), 4, generator=generator
    )
    invalid = torch.zeros(grid.height, grid.width, dtype=torch.bool)
    invalid[30:, 40:] = True
    whole = _blend(grid, grid.band(0, 1), probabilities, invalid)
    parts = [_blend(grid, grid.band(p, 3), probabilities, invalid) for p in range(3)]
    assembled = torch.stack(parts).amax(dim=0)  # each row is written by one part
    torch.testing.assert_close(assembled, whole, rtol=0, atol=0, equal_nan=True)
    assert whole[:, 30:, 40:].isnan().all()
    assert not whole[:, :30].isnan().any()
    # Blended values are weighted means of the windows over each pixel.
    assert (whole[:, :30] >= probabilities.min()).all()
    assert (whole[:, :30] <= probabilities.max()).all()


def test_a_strip_blends_to_the_tent_weighted_mean_of_the_windows_over_each_pixel():
    grid = WindowGrid(8, 29, 8, 3)  # one strip; the last window is off the stride
    probabilities = torch.rand(len(grid.columns), 2, generator=torch.Generator())
    invalid = torch.zeros(8, 29, dtype=torch.bool)
    invalid[2, 5] = True
    every = torch.ones(len(grid.columns), dtype=torch.bool)
    top, rows = StripBlender(grid, 2, 'cpu').add(0, probabilities, invalid, every)
    tent = torch.from_numpy(tent_weights(8))
    expected = torch.zeros(2, 8, 29)
    weights = torch.zeros(8, 29)
    for start, window in zip(grid.columns, probabilities, strict=True):
        expected[:, :, start : start + 8] += window[:, None, None] * tent
        weights[:, start : start + 8] += tent
    expected /= weights
    expected[:, 2, 5] = float('nan')
    assert top == 0
    torch.testing.assert_close(rows, expected, equal_nan=True)


@st.composite
def _grids(draw: st.DrawFn) -> WindowGrid:
    size = draw(st.integers(1, 12))
    return WindowGrid(
        draw(st.integers(size, 40)),
        draw(st.integers(size, 40)),
        size,
        draw(st.integers(1, size)),
    )


@given(
    length=st.integers(1, 200),
    size=st.integers(1, 50),
    stride=st.integers(1, 50),
)
def test_windows_cover_every_pixel_once_at_least(length, size, stride):
    assume(size <= length and stride <= size)
    starts = window_starts(length, size, stride)
    assert starts == sorted(set(starts))
    assert starts[0] == 0
    assert starts[-1] == length - size
    covered = np.zeros(length, dtype=bool)
    for start in starts:
        covered[start : start + size] = True
    assert covered.all()


@settings(deadline=None, max_examples=60)
@given(grid=_grids(), classes=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_blending_weights_sum_to_one(grid, classes, seed):
    generator = torch.Generator().manual_seed(seed)
    blender = StripBlender(grid, classes, 'cpu')
    no_gaps = torch.zeros(grid.chip_size, grid.width, dtype=torch.bool)
    rows = []
    for strip in range(len(grid.rows)):
        logits = torch.randn(len(grid.columns), classes, generator=generator)
        every = torch.ones(len(grid.columns), dtype=torch.bool)
        top, blended = blender.add(strip, logits.softmax(dim=1), no_gaps, every)
        assert top == grid.rows[strip]
        rows.append(blended)
    scene = torch.cat(rows, dim=1)
    assert scene.shape == (classes, grid.height, grid.width)
    # Probabilities that sum to one per window blend into ones that do per pixel.
    torch.testing.assert_close(scene.sum(dim=0), torch.ones(grid.height, grid.width))
    assert bool(((scene >= 0) & (scene <= 1 + 1e-6)).all())


def test_windows_not_classified_count_for_nothing():
    grid = WindowGrid(8, 24, 8, 4)  # one strip of 5 windows
    probabilities = torch.rand(len(grid.columns), 3, generator=torch.Generator())
    invalid = torch.zeros(8, 24, dtype=torch.bool)
    classified = torch.tensor([False, True, True, True, False])
    _, rows = StripBlender(grid, 3, 'cpu').add(0, probabilities, invalid, classified)
    tent = torch.from_numpy(tent_weights(8))
    expected = torch.zeros(3, 8, 24)
    weights = torch.zeros(8, 24)
    for start, window, used in zip(
        grid.columns, probabilities, classified, strict=True
    ):
        if used:
            expected[:, :, start : start + 8] += window[:, None, None] * tent
            weights[:, start : start + 8] += tent
    # Columns 0-3 and 20-23 lie only in the windows left out: no data.
    assert rows[:, :, :4].isnan().all()
    assert rows[:, :, 20:].isnan().all()
    torch.testing.assert_close(rows[:, :, 4:20], (expected / weights)[:, :, 4:20])
