"""geossl's own tools on the command line: typed functions, parsers made from them.

Each tool is a typed function in the module that does its work; its signature and
Google-style docstring are its command line. The parameters a :class:`Tool` names
as positional are given by position (a list takes one or more values), ``output``
is also ``-o``, and a ``data`` parameter takes the data options of
``geossl pretrain`` as ``--data.*``. Every other parameter is an option of its own
name, with its type, default and help from the function.
"""

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, get_origin

import docstring_parser
from jsonargparse import ArgumentParser

from geossl.cli import DESCRIPTION
from geossl.data.datamodule import GeoPretrainingDataModule
from geossl.data.index import index
from geossl.inference.embeddings import embed
from geossl.inference.export import export
from geossl.inference.mapping import map_scenes
from geossl.inference.representation import DATA_SKIP, evaluate_representation
from geossl.qgis import qgis
from geossl.search import stac


@dataclass(frozen=True)
class Tool:
    """A command and the typed function it runs.

    Attributes:
        function: what the command runs, called with the parsed options.
        positionals: parameters given by position, in order.
        help: the one line ``geossl --help`` shows.
        data_skip: the data options of ``geossl pretrain`` that ``data`` leaves out.
    """

    function: Callable[..., Any]
    positionals: tuple[str, ...]
    help: str
    data_skip: frozenset[str] = field(default_factory=frozenset)

    def parser(self) -> ArgumentParser:
        """The command's parser, from the function's signature and docstring.

        Returns:
            The parser.
        """
        doc = docstring_parser.parse(self.function.__doc__ or '')
        description = ' '.join(
            text for text in (doc.short_description, doc.long_description) if text
        )
        helps = {param.arg_name: param.description for param in doc.params}
        parser = ArgumentParser(description=description)
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
    'index': Tool(index, ('source',), 'Index a data source into a GeoPackage.'),
    'map': Tool(
        map_scenes,
        ('checkpoint', 'sources'),
        'Classify whole scenes into class-map COGs.',
    ),
    'export': Tool(export, ('checkpoint',), 'Export the student to ONNX.'),
    'evaluate-representation': Tool(
        evaluate_representation,
        ('checkpoint',),
        "kNN and linear-probe accuracy of a checkpoint's frozen features.",
        DATA_SKIP,
    ),
    'embed': Tool(
        embed,
        ('checkpoint',),
        "Write every tile's features with its place; a t-SNE picture.",
        DATA_SKIP,
    ),
    'qgis': Tool(qgis, ('action',), 'Install the QGIS Processing provider.'),
    'stac': Tool(stac, ('action',), 'Search a STAC API; write an ItemCollection.'),
}


def tools_parser() -> ArgumentParser:
    """``geossl TOOL ...``: every tool's parser under its command.

    Returns:
        The parser.
    """
    parser = ArgumentParser(prog='geossl', description=DESCRIPTION, exit_on_error=False)
    subcommands = parser.add_subcommands(dest='command')
    for command, tool in TOOL_FUNCTIONS.items():
        subcommands.add_subcommand(command, tool.parser(), help=tool.help)
    return parser


def run_tool(argv: Sequence[str]) -> None:
    """Parse a tool's command line and run it.

    Args:
        argv: the command and its arguments.
    """
    options = tools_parser().parse_args(list(argv))
    TOOL_FUNCTIONS[options.command].run(options[options.command])
