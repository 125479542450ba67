"""The ``rethink`` command line: ``rethink <command> ...`` and ``python -m rethink <command> ...``.

Subcommands come from the modules in :data:`_COMMAND_MODULES`; each defines
``add_cli(subparsers)`` and sets ``func`` (parsed args -> exit code) with
``set_defaults``. A failing command exits with code 1 and one line on stderr:
``rethink: error: <reason>``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

_COMMAND_MODULES = ["rethink.train", "rethink.randomization", "rethink.study"]


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (``rethink: error: ...``) and exit code 1."""

    def error(self, message: str):
        self.exit(1, f"rethink: error: {self.prog.split(' ', 1)[-1] if ' ' in self.prog else ''}"
                     f"{': ' if ' ' in self.prog else ''}{message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every available subcommand."""
    from . import __version__

    parser = _Parser(
        prog="rethink",
        description="Randomization tests of Zhang et al. 2017, 'Understanding deep learning requires "
                    "rethinking generalization'.",
    )
    parser.add_argument("--version", action="version", version=f"rethink {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="command")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue
        module.add_cli(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, usage errors (argparse printed the reason)
        return int(e.code or 0) if isinstance(e.code, int) else 1
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("rethink: error: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # one line, no traceback
        reason = " ".join(str(e).split()) or type(e).__name__
        print(f"rethink: error: {reason}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
