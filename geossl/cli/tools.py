"""geossl's own tools on the command line: typed functions, parsers made from them.

Each tool is a typed function in the module that does its work; its signature and
Google-style docstring are its command line. A tool's module imports what is heavy
(torch, Lightning, GDAL) where it runs, not at its top, where ``--help`` would pay
for it. The parameters a :class:`Tool` names
as positional are given by position (a list takes one or more values), ``output``
is also ``-o``, and a ``data`` parameter takes the data options of
``geossl pretrain`` as ``--data.*``. Every other parameter is an option of its own
name, with its type, default and help from the function.
"""

import importlib
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, get_origin

import docstring_parser
from jsonargparse import ArgumentParser

#: The data options of ``geossl pretrain`` that embedding tiles does not take.
DATA_SKIP = frozenset({'batch_size', 'mu', 'balance_classes', 'num_workers'})


@dataclass(frozen=True)
class Tool:
    """A command and the typed function it runs.

    The function is named by its import path and imported when its command runs,
    so that each command loads only what it needs.

    Attributes:
        path: the function's import path, ``package.module.function``.
        positionals: parameters given by position, in order.
        data_skip: the data options of ``geossl pretrain`` that ``data`` leaves out.
    """

    path: str
    positionals: tuple[str, ...]
    data_skip: frozenset[str] = field(default_factory=frozenset)

    @property
    def function(self) -> Callable[..., Any]:
        """What the command runs, called with the parsed options."""
        module, name = self.path.rsplit('.', 1)
        return getattr(importlib.import_module(module), name)

    def parser(self, prog: str) -> ArgumentParser:
        """The command's parser, from the function's signature and docstring.

        Args:
            prog: the command's name in usage and help.

        Returns:
            The parser.
        """
        doc = docstring_parser.parse(self.function.__doc__ or '')
        description = ' '.join(
            text for text in (doc.short_description, doc.long_description) if text
        )
        helps = {param.arg_name: param.description for param in doc.params}
        parser = ArgumentParser(prog=prog, description=description, exit_on_error=False)
        signature = inspect.signature(self.function)
        for name in self.positionals:
            annotation = signature.parameters[name].annotation
            if get_origin(annotation) is list:
                parser.add_argument(
                    name, type=annotation.__args__[0], nargs='+', help=helps[name]
                )
            else:
                parser.add_argument(name, type=annotation, help=helps[name])
        skip = set(self.positionals)
        if 'output' in signature.parameters:
            skip.add('output')
            output = signature.parameters['output']
            parser.add_argument(
                '-o',
                '--output',
                type=output.annotation,
                required=output.default is inspect.Parameter.empty,
                help=helps['output'],
            )
        if 'data' in signature.parameters:
            # Only these tools' parsers need the DataModule, and with it Lightning.
            from geossl.data.datamodule import GeoPretrainingDataModule

            skip.add('data')
            parser.add_class_arguments(
                GeoPretrainingDataModule, 'data', skip=set(self.data_skip)
            )
        parser.add_function_arguments(self.function, skip=skip, as_group=False)
        return parser

    def run(self, options: Any) -> None:
        """Call the function with the parsed options.

        Args:
            options: the command's parsed namespace.
        """
        arguments = options.as_dict()
        self.function(**arguments)


#: Every tool by its command, in the order of :data:`geossl.cli.TOOLS`.
TOOL_FUNCTIONS: dict[str, Tool] = {
    'index': Tool('geossl.data.index.index', ('source',)),
    'map': Tool('geossl.inference.mapping.map_scenes', ('checkpoint', 'sources')),
    'export': Tool('geossl.inference.export.export', ('checkpoint',)),
    'evaluate-representation': Tool(
        'geossl.inference.representation.evaluate_representation',
        ('checkpoint',),
        DATA_SKIP,
    ),
    'embed': Tool('geossl.inference.embeddings.embed', ('checkpoint',), DATA_SKIP),
    'qgis': Tool('geossl.qgis.qgis', ('action',)),
    'stac': Tool('geossl.search.stac', ('action',)),
    'config': Tool('geossl.cli.configs.config', ('name',)),
    'cross-validation': Tool(
        'geossl.inference.cross_validation.cross_validation', ('runs',)
    ),
}


def run_tool(argv: Sequence[str]) -> None:
    """Parse a tool's command line and run it.

    Args:
        argv: the command and its arguments.
    """
    tool = TOOL_FUNCTIONS[argv[0]]
    options = tool.parser(f'geossl {argv[0]}').parse_args(list(argv[1:]))
    tool.run(options)
