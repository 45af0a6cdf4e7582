"""The ``maskcodec`` command line: a thin shell over the public API.

Each group of subcommands lives in its own ``_cli_*`` module exposing
``register(subparsers)``; this module only assembles them, runs the chosen
one, and turns bad input into a one-line message on stderr (exit status 1 for
bad input, 2 for bad usage) instead of a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from ._errors import MaskcodecError

__all__ = ["main"]

# Modules that add subcommands, in the order they appear in --help.
_COMMAND_MODULES = (
    "maskcodec._cli_codec",
    "maskcodec._cli_stats",
    "maskcodec._cli_data",
    "maskcodec._cli_compare",
    "maskcodec._cli_grammar",
    "maskcodec._cli_eval",
)


class CLIError(Exception):
    """A user-facing failure: printed as one line, exit status 1."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maskcodec",
        description="Segmentation masks <-> Text4Seg semantic-descriptor text.",
    )
    parser.add_argument("--version", action="version", version=f"maskcodec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    if argv is None:  # a process of its own: small commands may skip numba (see _cli_codec)
        from . import _cli_codec

        _cli_codec.WHOLE_PROCESS = True
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (MaskcodecError, CLIError) as exc:
        print(f"maskcodec {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except UnicodeDecodeError as exc:  # a text file (@FILE, names, templates) that is not UTF-8
        print(f"maskcodec {args.command}: error: a file is not UTF-8 text: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        print(f"maskcodec {args.command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"maskcodec {args.command}: interrupted", file=sys.stderr)
        return 130
