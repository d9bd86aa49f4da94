"""The command line: parse, load config, call one function, map errors to exit codes.

``pipeline.cli:main`` is the ``facesync`` entry point; each module below adds its commands to it.
"""

from pipeline.cli import archive, probe, runs, serve, watch
from pipeline.cli.app import EXIT_CODES_HELP, main

# The exit codes are part of the contract: every command's --help ends with them, not only the group's
# (serve is the emulator, outside the contract).
for _name, _command in main.commands.items():
    if _name != "serve" and not _command.epilog:
        _command.epilog = EXIT_CODES_HELP

__all__ = ["archive", "main", "probe", "runs", "serve", "watch"]
