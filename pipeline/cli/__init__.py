"""The command line: parse, load config, call one function, map errors to exit codes.

``pipeline.cli:main`` is the ``facesync`` entry point; each module below adds its commands to it.
"""

from pipeline.cli import archive, probe, runs, serve, verbosity, watch
from pipeline.cli.app import EXIT_CODES, EXIT_CODES_HELP, exit_codes_help, main

_READS_STATE = "usage or config error, or no state file (check state.path)"
_ASKS_SERVICE = {
    0: "done",
    1: "the host is unreachable or failing (or answers not in the documented shape)",
    2: "usage or config error",
    3: "bad credentials",
    4: "quota spent: run again later",
}
#: The exit codes are part of the contract: every command's --help ends with those it can give (serve is
#: the emulator, outside the contract; check and probe carry their own).
_EXITS: dict[str, dict[int, str | None]] = {
    "sync": dict.fromkeys(EXIT_CODES),
    "watch": dict.fromkeys(EXIT_CODES),
    "reconcile": {
        **dict.fromkeys((0, 1, 2, 3, 4, 5)),
        7: "stopped by its deadline: a listing cut short changed nothing",
        75: None,
        130: "interrupted (Ctrl-C): nothing was changed past what is recorded",
    },
    "status": {0: "shown", 2: _READS_STATE},
    "ls": {0: "listed", 2: _READS_STATE},
    "report": {0: "written", 2: _READS_STATE + ", or the page cannot be written"},
    "retry": {0: "queued (the next sync sends them)", 2: _READS_STATE, 75: None},
    "search": {
        **_ASKS_SERVICE,
        0: "searched (a search with no match too)",
        2: "usage or config error, or IMAGE is not a readable image",
    },
}
for _name, _command in main.commands.items():
    if _name in _EXITS:
        _command.epilog = exit_codes_help(_EXITS[_name])
    elif _name != "serve" and not _command.epilog:
        _command.epilog = EXIT_CODES_HELP
# -v / -q / --log-file before the command (`facesync -v sync`) and after it (`facesync sync -v`).
main.params.extend(verbosity.options())
for _command in main.commands.values():
    _command.params.extend(verbosity.options())

__all__ = ["archive", "main", "probe", "runs", "serve", "watch"]
