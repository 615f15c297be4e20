"""Lightning's commands: ``fit``, ``validate``, ``test``, ``predict`` and ``pretrain``.

``fit``, ``validate``, ``test`` and ``predict`` are Lightning's CLI over
:class:`~geossl.tasks.semi_supervised.SemiSupervisedTask` and
:class:`~geossl.data.datamodule.GeoDataModule` (YAML configs with ``--config``; the
model is sized from the data, :func:`~geossl.tasks.sizing.data_arguments`);
``pretrain`` is Lightning's ``fit`` over
:class:`~geossl.tasks.pretrain.PretrainingTask`. Only Lightning's public API is
used: what geossl checks before Lightning reads anything (config files, an unsafe
``--ckpt_path``) is checked before the CLI is built. :func:`geossl.cli.main` turns
bad input into one line and exit status 2.
"""

import re
import sys
from argparse import RawDescriptionHelpFormatter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import DefaultHelpFormatter, Namespace
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from geossl.cli.configs import with_shipped_configs
from geossl.data.datamodule import GeoDataModule, GeoPretrainingDataModule
from geossl.errors import GeosslInputError, reading
from geossl.inference.checkpoint import (
    SafeCheckpointIO,
    check_checkpoint_fits,
    read_checkpoint,
)
from geossl.ssl.policies import describe_algorithms
from geossl.tasks.progress import use_log_lines
from geossl.tasks.renamed import EARLIER_NAMES, upgrade_arguments, upgrade_hparams
from geossl.tasks.resume import ResumeCheckpoint
from geossl.tasks.semi_supervised import SemiSupervisedTask
from geossl.tasks.sizing import data_arguments

#: A Sphinx cross-reference, as ``:class:`~a.b.C``` or ``:func:`text <target>```.
_ROLE = re.compile(r':[a-z]+(?::[a-z]+)?:`(~?)([^`<]*?)\s*(?:<[^>]*>)?`')


def plain_text(docstring: str) -> str:
    """Docstring text as it reads in a terminal, without Sphinx's markup.

    ``:class:`~geossl.data.scene.SceneDataset``` reads ``SceneDataset`` (as Sphinx
    shows it), ``:data:`geossl.tasks.recipes.FINE_TUNING_RECIPE``` its full name,
    and literals lose their double backquotes.

    Args:
        docstring: text of a docstring.

    Returns:
        The text for a terminal.
    """

    def target(match: re.Match[str]) -> str:
        tilde, name = match.groups()
        return name.rsplit('.', 1)[-1] if tilde else name.lstrip('.')

    return _ROLE.sub(target, docstring).replace('``', '')


class HelpFormatter(RawDescriptionHelpFormatter, DefaultHelpFormatter):
    """jsonargparse's help in plain text, descriptions and epilogs kept as written.

    The help comes from the docstrings, which Sphinx also reads: their markup is
    taken out here (:func:`plain_text`), so one text serves both.
    """

    def start_section(self, heading: str | None) -> None:
        """Open a group of options under its heading, in plain text.

        Args:
            heading: the group's heading.
        """
        if heading is not None:
            heading = ' '.join(plain_text(heading).split())
        super().start_section(heading)

    def _split_lines(self, text: str, width: int) -> list[str]:
        return super()._split_lines(plain_text(text), width)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return super()._fill_text(plain_text(text), width, indent)


class ArgumentParser(LightningArgumentParser):
    """Lightning's parser, reading checkpoints of earlier geossl versions too.

    Given ``--ckpt_path``, Lightning parses the checkpoint's hyperparameters as the
    model's options; those of earlier versions are upgraded first, silently
    (:func:`~geossl.tasks.renamed.upgrade_hparams`). Its help, and that of the
    groups it opens (``--model.teacher.help``), is plain text
    (:class:`HelpFormatter`).
    """

    def __init__(
        self, *args: Any, formatter_class: type = HelpFormatter, **kwargs: Any
    ) -> None:
        super().__init__(*args, formatter_class=formatter_class, **kwargs)

    def parse_object(
        self,
        obj: Namespace | dict[str, Any],
        namespace: Namespace | None = None,
        **kwargs: Any,
    ) -> Namespace:
        """Parse a configuration object, a task's earlier names upgraded.

        Args:
            obj: the configuration, e.g. ``{'fit': {'model': hparams}}``.
            namespace: the configuration so far.
            **kwargs: jsonargparse's.

        Returns:
            The parsed configuration.
        """
        if isinstance(obj, dict):
            obj = {
                key: (
                    value | {'model': upgrade_hparams(value['model'])}
                    if isinstance(value, dict) and isinstance(value.get('model'), dict)
                    else value
                )
                for key, value in obj.items()
            }
        return super().parse_object(obj, namespace, **kwargs)

    def format_help(self) -> str:
        """The help, the model's and the data's options before the Trainer's.

        Returns:
            The help text.
        """
        first = [
            group
            for key, group in self.groups.items()
            if key.split('.')[0] in ('model', 'data')
        ]
        rest = [group for group in self._action_groups if group not in first]
        # After the positional and general options, which argparse puts first.
        self._action_groups = [*rest[:2], *first, *rest[2:]]
        return super().format_help()


class GeosslCLI(LightningCLI):
    """Lightning's CLI with the model sized from the data.

    The number of classes, bands, the label kind, the dataset size, the chip size
    and the class and band names go from the DataModule to the model, so that a
    command line or config names the data once.
    """

    #: Where the model takes the data's arguments, and which
    #: (:func:`~geossl.tasks.sizing.data_arguments`).
    model_key = 'model'
    data_keys: tuple[str, ...] = (
        'num_classes',
        'in_channels',
        'task',
        'chip_size',
        'data',
    )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Link the data's shape to the model's; add ``--resume.every_n_train_steps``.

        Args:
            parser: the CLI's parser.
        """
        for target, compute in self.data_links().items():
            parser.link_arguments('data', target, compute, apply_on='instantiate')
        parser.add_lightning_class_args(ResumeCheckpoint, 'resume')
        parser.epilog = self.epilog()

    def epilog(self) -> str | None:
        """What ``--help`` ends with: every algorithm and its typed options.

        Returns:
            The text, read from the policy registry.
        """
        return (
            'Algorithms (--model.algorithm) and their options (--model.'
            "algorithm_options '{option: value}'):\n" + describe_algorithms()
        )

    def data_links(self) -> dict[str, Callable[[GeoDataModule], Any]]:
        """The model's arguments that the data sets.

        Returns:
            Model argument -> its value from the instantiated DataModule.
        """

        def argument(key: str) -> Callable[[GeoDataModule], Any]:
            return lambda dm: self.data_arguments(dm)[key]

        return {f'{self.model_key}.{key}': argument(key) for key in self.data_keys}

    @staticmethod
    def data_arguments(datamodule: GeoDataModule) -> dict[str, Any]:
        """The model's arguments as the data gives them.

        Args:
            datamodule: the instantiated DataModule.

        Returns:
            :func:`~geossl.tasks.sizing.data_arguments` of its dataset.
        """
        return data_arguments(datamodule.dataset, datamodule.chip_size)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """Lightning's Trainer, its progress as lines where bars cannot redraw.

        Args:
            kwargs: Lightning's.

        Returns:
            The Trainer (:func:`~geossl.tasks.progress.use_log_lines`).
        """
        trainer = super().instantiate_trainer(**kwargs)
        use_log_lines(trainer)
        return trainer

    def after_instantiate_classes(self) -> None:
        """Keep checkpoints in ``<default_root_dir>/checkpoints`` for every run.

        Lightning puts them under each logger version by default, where the next
        command's ``--ckpt_path last`` (resume, test, validate) would not find them;
        the folder must be known before Lightning looks for ``last``.
        """
        for callback in self.trainer.checkpoint_callbacks:
            if callback.dirpath is None:
                callback.dirpath = str(
                    Path(self.trainer.default_root_dir) / 'checkpoints'
                )

    def before_instantiate_classes(self) -> None:
        """Refuse a null where an option takes no null, before anything is built.

        jsonargparse checks each value of the command line, but lets a config
        file's null (``mu:`` with no value) through as "unset" for any option.

        Raises:
            GeosslInputError: naming the option.
        """
        try:
            self.parser.validate(self.config, skip_unset=False)
        except TypeError as error:
            message = ' '.join(str(error).split())
            key = re.search(r'Parser key "([^"]+)"', message)
            problem = message.split(':', 1)[-1].strip() if key else message
            raise GeosslInputError(
                f'--{key.group(1)}' if key else 'config', problem
            ) from None

    def _check_inputs(self) -> None:
        """Refuse bad data or an unfitting ``--ckpt_path`` before anything is written.

        The Trainer's loggers make the run folder before they set up the data; the
        data is set up here first (split and statistics), so that bad data ends the
        command with nothing written.
        """
        path = self.config_init[self.subcommand].get('ckpt_path')
        if path == 'last':
            lasts = [
                Path(callback.dirpath) / 'last.ckpt'
                for callback in self.trainer.checkpoint_callbacks
            ]
            path = max(
                (last for last in lasts if last.is_file()),
                key=lambda last: last.stat().st_mtime,
                default=None,
            )
        if path is not None and path not in ('best', 'hpc') and '://' not in str(path):
            check_checkpoint_fits(path, self.model)
        self.datamodule.trainer = self.trainer  # Where the split is saved.
        self.datamodule.setup(self.subcommand)

    before_fit = before_validate = before_test = before_predict = _check_inputs


class PretrainCLI(GeosslCLI):
    """``geossl pretrain``: a self-supervised method, chosen with ``--model``."""

    # The method is a ``--model`` subclass; it takes the data's bands and chip size.
    model_key = 'model.init_args'
    data_keys = ('in_channels', 'band_names', 'chip_size')

    @staticmethod
    def data_arguments(datamodule: GeoDataModule) -> dict[str, Any]:
        """The method's arguments as the data gives them.

        Args:
            datamodule: the instantiated DataModule.

        Returns:
            ``in_channels``, ``band_names`` and ``chip_size``.
        """
        bands = list(datamodule.dataset.band_names)
        return {
            'in_channels': len(bands),
            'band_names': bands,
            'chip_size': datamodule.chip_size,
        }

    def epilog(self) -> str | None:
        """No algorithms: ``--model`` chooses a method (its help lists them).

        Returns:
            None.
        """
        return None

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Fit's links and resume points; SimCLR unless ``--model`` says otherwise.

        Args:
            parser: the CLI's parser.
        """
        from geossl.tasks.pretrain import SimCLR

        super().add_arguments_to_parser(parser)
        parser.set_defaults({'model': {'class_path': _class_path(SimCLR)}})

    def instantiate_classes(self) -> None:
        """Build the data, method and Trainer; a bad method setting is one line.

        Raises:
            GeosslInputError: the method's own refusal, which jsonargparse wraps
                when it builds a ``--model`` subclass.
        """
        try:
            super().instantiate_classes()
        except ValueError as error:
            cause = error.__cause__ or error.__context__
            if isinstance(cause, GeosslInputError):
                raise cause from None
            raise


def _class_path(cls: type) -> str:
    return f'{cls.__module__}.{cls.__qualname__}'


def _trainer_defaults() -> dict[str, Any]:
    return {
        'default_root_dir': 'runs/geossl',
        'log_every_n_steps': 10,
        # By class path, so that the run's saved config.yaml can be given back.
        'plugins': [{'class_path': _class_path(SafeCheckpointIO)}],
        'callbacks': [
            ModelCheckpoint(
                filename='best-{epoch}-{step}',
                # A resumed run carries on the same last.ckpt.
                enable_version_counter=False,
                monitor='val_loss',
                mode='min',
                save_last=True,
            )
        ],
    }


def _cli_options(**parser_kwargs: Any) -> dict[str, Any]:
    """What fit's and pretrain's CLIs share: seed, config saving, parser settings."""
    return {
        'parser_class': ArgumentParser,
        # The task's recipe sets the optimiser and its schedule (--model.recipe.*).
        'auto_configure_optimizers': False,
        'seed_everything_default': 0,
        'save_config_kwargs': {'overwrite': True},
        # Parse errors come back to main(), which prints them as one line.
        'parser_kwargs': {
            'exit_on_error': False,
            'formatter_class': HelpFormatter,
            'prog': 'geossl',
            **parser_kwargs,
        },
    }


def _run_fit(argv: Sequence[str] | None) -> None:
    GeosslCLI(
        SemiSupervisedTask,
        GeoDataModule,
        trainer_defaults=_trainer_defaults(),
        # None reads sys.argv itself (Lightning warns when given both).
        args=None if argv is None else list(argv),
        **_cli_options(),
    )


def _pretrain_trainer_defaults() -> dict[str, Any]:
    return _trainer_defaults() | {
        'default_root_dir': 'runs/pretrain',
        'max_epochs': 100,
        # The methods have no validation: held-out tiles wait for evaluation.
        'limit_val_batches': 0,
        'callbacks': [ModelCheckpoint(save_last=True, enable_version_counter=False)],
    }


def _option_values(argv: Sequence[str], option: str) -> list[str | None]:
    """The values given to an option, as ``OPTION VALUE`` or ``OPTION=VALUE``.

    Args:
        argv: the command's arguments.
        option: e.g. ``--config``.

    Returns:
        Each value in order; None for the option given last with no value.
    """
    values = []
    for argument, following in zip(argv, [*argv[1:], None], strict=True):
        if argument.startswith(f'{option}='):
            values.append(argument.removeprefix(f'{option}='))
        elif argument == option:
            values.append(following)
    return values


def _check_pretraining_method(argv: Sequence[str]) -> None:
    """Refuse a ``--model`` that names no method, in one line, not jsonargparse's.

    Raises:
        GeosslInputError: for a bare name that is not a method's.
    """
    from geossl.tasks.pretrain import METHODS

    names = [task.__name__ for task in METHODS.values()]
    for value in _option_values(argv, '--model'):
        # Dotted class paths and config files are jsonargparse's to check.
        if value is not None and '.' not in value and value not in names:
            raise GeosslInputError(
                '--model', f'is {value!r}, not a method: choose from {", ".join(names)}'
            )


def _run_pretrain(argv: Sequence[str]) -> None:
    # Pretraining builds on TorchGeo's tasks, so they load for this command only.
    from geossl.tasks.pretrain import PretrainingTask

    _check_pretraining_method(argv)
    PretrainCLI(
        PretrainingTask,
        GeoPretrainingDataModule,
        subclass_mode_model=True,
        trainer_defaults=_pretrain_trainer_defaults(),
        args=['fit', *argv],
        # Lightning's fit, shown under geossl's name for it (its usage line, as
        # the subcommand's name is jsonargparse's to set).
        **_cli_options(
            fit={
                'usage': 'geossl pretrain [options]',
                'description': 'Self-supervised pretraining of a backbone (--model '
                'SimCLR, MoCo, BYOL, SimSiam or BarlowTwins)\non the training tiles, '
                "for fit's --model.weights.",
                'formatter_class': HelpFormatter,
            }
        ),
    )


def _read_configs(argv: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Read every ``--config`` file first, so that unreadable bytes are one line.

    jsonargparse reports a YAML syntax error itself, but lets other failures of
    reading the file (bytes that are not UTF-8, say) escape as tracebacks, and an
    empty ``model:``, ``data:`` or ``trainer:`` section reaches Lightning as null.

    Returns:
        Each config that is a file and holds a mapping, as read, by its path.

    Raises:
        GeosslInputError: naming the config file that cannot be read.
    """
    configs = {}
    for value in _option_values(argv, '--config'):
        # A value that names no file is YAML text, jsonargparse's to check.
        if value is None or not Path(value).exists():
            continue
        with reading(value, 'a YAML config'):
            config = yaml.safe_load(Path(value).read_text(encoding='utf-8'))
        if not isinstance(config, dict):
            continue
        # A section with nothing under it reads as null, which Lightning's
        # instantiation of the model cannot take.
        empty = [
            key
            for key, section in config.items()
            if section is None and key in ('model', 'data', 'trainer')
        ]
        if empty:
            raise GeosslInputError(
                value,
                f"'{empty[0]}:' has nothing under it; give it settings or remove it",
            )
        configs[value] = config
    return configs


def _check_checkpoints(argv: Sequence[str], configs: Sequence[dict[str, Any]]) -> None:
    """Read every ``--ckpt_path`` safely first, so that a bad one is one line.

    Lightning reads a checkpoint's hyperparameters into the config before anything
    else, with ``torch.load``; a pickled payload or a corrupt file would end in its
    traceback. Paths given on the command line or in the ``--config`` files are
    read here with :func:`~geossl.models.weight_sources.read_checkpoint` instead.

    Args:
        argv: the command's arguments.
        configs: the ``--config`` files, as :func:`_read_configs` read them.

    Raises:
        GeosslInputError: naming the unsafe or unreadable checkpoint.
    """
    paths = _option_values(argv, '--ckpt_path')
    paths += [c['ckpt_path'] for c in configs if isinstance(c.get('ckpt_path'), str)]
    for path in paths:
        if path and Path(path).is_file():
            read_checkpoint(path, 'cpu')


def _upgraded(argv: Sequence[str], configs: Mapping[str, dict[str, Any]]) -> list[str]:
    """The arguments with the task's options of earlier geossl versions upgraded.

    Options on the command line take today's names
    (:func:`~geossl.tasks.renamed.upgrade_arguments`); a ``--config`` file whose
    ``model:`` holds earlier names is given as its upgraded text instead, and
    stays as it is on disk. Each earlier name warns, naming its option now.

    Args:
        argv: the command's arguments.
        configs: the ``--config`` files, as :func:`_read_configs` read them.

    Returns:
        The arguments, upgraded.
    """
    upgraded = upgrade_arguments(argv)
    for position, argument in enumerate(upgraded):
        option, equals, path = argument.partition('=')
        if option != '--config':
            continue
        if not equals:
            path = upgraded[position + 1] if position + 1 < len(upgraded) else ''
        model = configs.get(path, {}).get('model')
        if not isinstance(model, dict) or not EARLIER_NAMES & set(model):
            continue
        text = yaml.safe_dump(
            configs[path] | {'model': upgrade_hparams(model, True, f'{path}: model.')}
        )
        if equals:
            upgraded[position] = f'--config={text}'
        else:
            upgraded[position + 1] = text
    return upgraded


def run_lightning(argv: Sequence[str], from_command_line: bool) -> None:
    """Run ``fit``, ``validate``, ``test``, ``predict`` or ``pretrain``.

    Args:
        argv: the command and its arguments.
        from_command_line: whether ``argv`` is the process's own (Lightning then
            reads ``sys.argv`` itself, as DDP's other processes will).
    """
    options = with_shipped_configs(argv[1:])
    configs = _read_configs(options)
    argv = [argv[0], *_upgraded(options, configs)]
    if from_command_line:
        # Lightning, and DDP's other processes, read the command line itself.
        sys.argv[1:] = argv
    _check_checkpoints(argv[1:], list(configs.values()))
    if argv[0] == 'pretrain':
        _run_pretrain(argv[1:])
    else:
        _run_fit(None if from_command_line else argv)
