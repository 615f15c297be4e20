"""Progress that reads well on a terminal and in a log file.

On a terminal (or in a notebook) geossl's progress bars are tqdm's and
Lightning's, redrawn in place. When standard error is a file or a pipe (a
scheduler's log, ``nohup``, QGIS), every redraw would be a line of its own: tens a
second. There each bar prints a line when it starts, then at most one every
:data:`LOG_INTERVAL` seconds, and its last; ``GEOSSL_PROGRESS_INTERVAL`` sets
that interval in seconds (QGIS asks for short ones, to move its own bar).
Lightning's bar does the same through :mod:`geossl.tasks.progress`.
"""

import math
import os
import sys
from typing import Any

from tqdm.auto import tqdm

from geossl.errors import GeosslInputError

#: Seconds between a bar's lines when standard error is not a terminal.
LOG_INTERVAL = 30.0

#: The environment variable that sets that interval.
INTERVAL_VARIABLE = 'GEOSSL_PROGRESS_INTERVAL'


def log_interval() -> float | None:
    """Seconds between a progress bar's lines, or None where bars redraw in place.

    Returns:
        None on a terminal or in a notebook; else ``GEOSSL_PROGRESS_INTERVAL`` if
        set, or :data:`LOG_INTERVAL`.

    Raises:
        GeosslInputError: if ``GEOSSL_PROGRESS_INTERVAL`` is not a number of
            seconds.
    """
    if sys.stderr.isatty() or 'ipykernel' in sys.modules:
        return None
    value = os.environ.get(INTERVAL_VARIABLE, '').strip()
    if not value:
        return LOG_INTERVAL
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds < math.inf:
        raise GeosslInputError(
            INTERVAL_VARIABLE, f'is {value!r}, not a number of seconds >= 0'
        )
    return seconds


class Tqdm(tqdm):
    """tqdm's bar, or in a log one line when it starts, one per interval, the last.

    Takes tqdm's arguments. Where :func:`log_interval` is not None, each line is
    written whole, newline and all (processes that share the log do not split
    each other's lines), tqdm's own timing (``mininterval``, ``maxinterval``)
    spaces them, and closing the bar writes its last line unless it is written.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._interval = log_interval()
        self._written_n: float | None = None
        if self._interval is not None:
            # leave=False: tqdm would end a redrawn line on closing; these end.
            kwargs |= {
                'mininterval': self._interval,
                'maxinterval': self._interval,
                'leave': False,
            }
        super().__init__(*args, **kwargs)

    def display(
        self, msg: str | None = None, pos: int | None = None, **kwargs: Any
    ) -> bool:
        """Redraw the bar, or in a log write its next line.

        Args:
            msg: the text to show instead of the bar's; ``''`` clears it.
            pos: the bar's screen line.
            kwargs: what a notebook's bar also takes.

        Returns:
            Whether anything was drawn or written.
        """
        if self._interval is None:
            return super().display(msg, pos, **kwargs)
        if msg == '':  # A log keeps what it has written.
            return False
        self.fp.write((str(self) if msg is None else msg) + '\n')
        self.fp.flush()
        self._written_n = self.n
        return True

    def close(self) -> None:
        """Close the bar; in a log, first write its last line if it is not written."""
        unwritten = self._written_n != self.n
        if self._interval is not None and not self.disable and unwritten:
            self.display()
        super().close()
