"""The ``geossl`` command: help, dispatch, and bad input as one line.

Only what ``geossl --help`` and an unknown command need is imported here, so that
they answer at once; the commands themselves bring torch, Lightning and TorchGeo
with them: Lightning's (:mod:`geossl.cli.lightning`) and geossl's own tools, typed
functions in the modules that do the work, wired up by :mod:`geossl.cli.tools`.
Bad input ends with one line naming the file or option at fault and exit status 2;
a network that fails ends the same way with 75, an output that cannot be written
(a full disk) with 74 (:mod:`geossl.errors`).
"""

import logging
import os
import signal
import sys
import warnings
from collections.abc import Sequence

from jsonargparse import ArgumentError

from geossl import __version__
from geossl.errors import GeosslError, error_in_worker

#: Exit status for bad input, as argparse uses for bad arguments.
EXIT_BAD_INPUT = 2

#: Lightning's commands, over geossl's task and data.
LIGHTNING_COMMANDS = ('fit', 'validate', 'test', 'predict')

#: geossl's own tools (:data:`geossl.cli.tools.TOOL_FUNCTIONS` runs them).
TOOLS = (
    'index',
    'map',
    'export',
    'evaluate-representation',
    'embed',
    'qgis',
    'stac',
    'config',
    'cross-validation',
)

#: Every command, in the order help lists them.
COMMANDS = (*LIGHTNING_COMMANDS, 'pretrain', *TOOLS)

DESCRIPTION = (
    'Semi-supervised learning on Sentinel-2 imagery with where and when each tile '
    'was taken.'
)

_OVERVIEW = f"""{DESCRIPTION}

Training (Lightning's commands; YAML configs with --config, options as
--data.*, --model.*, --trainer.*):
  fit        train a model (--ckpt_path last resumes)
  validate   evaluate a checkpoint on the validation split
  test       evaluate a checkpoint on the test split
  predict    class probabilities of the test split
  pretrain   self-supervised pretraining of a backbone (--model SimCLR, MoCo,
             BYOL, SimSiam or BarlowTwins) for fit's --model.weights

Tools:
  index      index a data source into a GeoPackage of footprints
  map        classify whole scenes into Cloud-Optimized GeoTIFF class maps
  export     export the student to ONNX (normalisation folded in)
  evaluate-representation
             kNN and linear-probe accuracy of a checkpoint's frozen features
  embed      every tile's features with its lon/lat to GeoPackage/Parquet, and
             a t-SNE picture
  qgis       install the geossl Processing provider into QGIS
  stac       search a STAC API (stac search) into an ItemCollection that index,
             fit --data.root and map read
  config     print a shipped config (--config takes their names too:
             eurosat-ms, algorithms/fixmatch, teacher-student, pretrain/simclr...)
  cross-validation
             one table of a cross-validation's folds (--data.folds k, --data.fold
             i), from each fold's geossl test

Run 'geossl COMMAND --help' for the options of a command, 'geossl --version' for
the version.
"""


def _error_line(error: Exception, argv: Sequence[str]) -> tuple[str, int] | None:
    """The one line that reports a geossl error and its exit status; None for bugs.

    TorchGeo's dataset-not-found is bad input too. Its class is looked up only if
    TorchGeo is loaded (it is, if it raised one), so that commands that read no
    TorchGeo dataset start without importing TorchGeo.
    """
    torchgeo_errors = sys.modules.get('torchgeo.datasets.errors')
    if isinstance(error, GeosslError):
        return str(error), error.exit_status
    if torchgeo_errors is not None and isinstance(
        error, torchgeo_errors.DatasetNotFoundError
    ):
        return str(error), EXIT_BAD_INPUT
    if isinstance(error, RuntimeError):
        return error_in_worker(error)
    if isinstance(error, ArgumentError):
        # jsonargparse's messages run over several indented lines.
        message = ' '.join(str(error).split())
        line = f'{message} (see {" ".join(["geossl", *argv[:1], "--help"])})'
        return line, EXIT_BAD_INPUT
    return None


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``geossl`` command.

    From the command line, a read still blocked in GDAL when the command ends (a
    stalled server, a stop request) would crash the interpreter's shutdown: the
    process then leaves at once with its status, its outputs cleaned up.

    Args:
        argv: arguments without the program name; defaults to ``sys.argv[1:]``.

    Returns:
        The exit status: 0 on success, 2 on bad input, 74 for an output that
        cannot be written, 75 for a network failure.
    """
    status = 1
    try:
        status = _command(argv)
    except SystemExit as stop:
        status = stop.code if isinstance(stop.code, int) else 1
        raise
    finally:
        remote = sys.modules.get('geossl.data.remote')
        if argv is None and remote is not None and remote.reads_abandoned():
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)
    return status


def _command(argv: Sequence[str] | None) -> int:
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ['--version']:
        print(f'geossl {__version__}')
        return 0
    if not argv or argv[0] in ('-h', '--help'):
        print(f'usage: geossl {{{",".join(COMMANDS)}}} ...\n\n{_OVERVIEW}')
        return 0 if argv else EXIT_BAD_INPUT
    if argv[0] not in COMMANDS:
        print(
            f"geossl: error: unknown command '{argv[0]}' (choose from "
            f'{", ".join(COMMANDS)}; see geossl --help)',
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    # A stop request (QGIS's cancel, a scheduler) unwinds like an error, so that
    # partial outputs are removed on the way out.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    # Lightning 2.6 builds torch pytree specs the way torch 2.14 deprecates; the
    # notice is for Lightning, not for geossl's users.
    warnings.filterwarnings(
        'ignore', r'.isinstance\(treespec, LeafSpec\)', FutureWarning
    )
    # geossl's training samplers start from the restored step count
    # (geossl.data.samplers), so a run resumed mid-epoch draws exactly what it
    # would have: Lightning cannot see that and warns otherwise.
    warnings.filterwarnings('ignore', r"You're resuming from a checkpoint that ended")
    # pretrain hands Lightning its arguments as fit's, which Lightning warns of.
    warnings.filterwarnings('ignore', r"LightningCLI's args parameter is intended")
    # The task makes its views on the device in on_after_batch_transfer by design,
    # which Lightning notes whenever a DataModule is given too.
    warnings.filterwarnings('ignore', r'You have overridden `on_after_batch_transfer`')
    # Without TensorBoard, Lightning logs to CSV (what geossl's reports read) and
    # says so, and advertises its cloud logger: nothing for geossl's users to do.
    warnings.filterwarnings('ignore', r'Starting from v1\.9\.0, `tensorboardX`')
    logging.getLogger('lightning.pytorch.utilities.rank_zero').addFilter(
        lambda record: 'litlogger' not in record.getMessage()
    )
    _retries_line()  # Counts from before this command are not its own.
    try:
        if argv[0] in TOOLS:
            from geossl.cli.tools import run_tool

            run_tool(argv)
        else:
            from geossl.cli.lightning import run_lightning

            run_lightning(argv, from_command_line)
    except Exception as error:
        reported = _error_line(error, argv)
        if reported is None:
            raise
        line, status = reported
        print(f'geossl: error: {line}', file=sys.stderr)
        return status
    if line := _retries_line():
        # A slow run has a reason.
        print(f'geossl: {line}', file=sys.stderr)
    return 0


def _retries_line() -> str | None:
    """How many remote reads were retried since last asked, if any."""
    remote = sys.modules.get('geossl.data.remote')
    return remote.retries() if remote is not None else None
