"""Run ``facesync`` with proposed changes applied in memory, to measure them before they are made.

A change proposed in docs/performance.md that lives in a file the bench's author cannot edit is
written here as a patch, so its effect is measured on the real command, by the same benches::

    BENCH_PATCH=name .venv/bin/python -m bench upload reconcile rate

is ``python -m bench.patched name -- --config X sync --json`` in place of ``python -m pipeline``.
A patch here is a measuring device, never the fix: the fix is the diff in docs/performance.md.

No patch is registered now: ``slow_start`` (the geometric slow start) was made in
``pipeline/api/adaptive.py`` and its patch removed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable

PATCHES: dict[str, Callable[[], None]] = {}


def split(names: Iterable[str]) -> list[str]:
    """``["a,b", "c"]`` → ``["a", "b", "c"]``."""
    return list(filter(None, ",".join(names).split(",")))


def refusal(names: Iterable[str]) -> str | None:
    """Why ``names`` cannot be applied, or None when every one is a patch here."""
    missing = [n for n in split(names) if n not in PATCHES]
    if not missing:
        return None
    known = ", ".join(PATCHES) or "none at the moment"
    return f"unknown patch {', '.join(missing)} (known: {known}; see bench/patched.py)"


def main() -> int:
    argv = sys.argv[1:]
    if "--" not in argv:
        print("usage: python -m bench.patched NAME[,NAME...] -- FACESYNC-ARGS...", file=sys.stderr)
        return 2
    dashes = argv.index("--")
    reason = refusal(argv[:dashes])
    if reason:
        print(reason, file=sys.stderr)
        return 2
    for name in split(argv[:dashes]):
        PATCHES[name]()
    from pipeline.cli import main as cli

    cli(args=argv[dashes + 1 :], prog_name="facesync")
    return 0


if __name__ == "__main__":
    sys.exit(main())
