"""Which keys a source keeps: ``source.include`` / ``exclude`` globs and ``source.extensions``.

Both sources apply the same rules to the ``/``-separated key: ``*`` and ``?`` stay within a segment,
``**`` spans segments (``**/`` may match none), patterns match the whole key case-sensitively, and
extensions compare case-insensitively. The directory walk binds :class:`KeyFilter`'s compiled parts
locally in its hot loop rather than calling it per file (see docs/performance.md).
"""

from __future__ import annotations

import re


def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """A key glob as a compiled regex: ``*`` and ``?`` stay within a segment, ``**`` spans segments.

    ``**/`` also matches no directory at all, so ``**/*.jpg`` matches ``a.jpg``; ``[...]`` is a class.
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif (
            c == "["
            and (end := pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "]") else i + 1)) > 0
        ):
            body = pattern[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out), re.DOTALL)


def any_glob(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    """One regex matching a key that any of the globs matches; None when there are none."""
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{glob_to_regex(p).pattern})" for p in patterns), re.DOTALL)


class KeyFilter:
    """source.include / exclude / extensions, compiled once; calling it says whether a key is kept."""

    __slots__ = ("exclude", "extensions", "include", "prune")

    def __init__(
        self, include: tuple[str, ...], exclude: tuple[str, ...], extensions: tuple[str, ...]
    ) -> None:
        self.include = any_glob(include)
        self.exclude = any_glob(exclude)
        #: Lower-cased; no extensions keeps every key (``("",)``, so ``str.endswith`` needs no test).
        self.extensions = tuple(e.lower() for e in extensions) or ("",)
        #: Directories whose every key an exclude (``x/**``) matches: a walk need not even list them.
        self.prune = any_glob(tuple(p[:-3] for p in exclude if p.endswith("/**")))

    def __call__(self, key: str) -> bool:
        """Whether ``key`` is kept. A key ending in ``/`` (an S3 console "folder") never is."""
        return (
            not key.endswith("/")
            and key.lower().endswith(self.extensions)
            and (self.include is None or self.include.fullmatch(key) is not None)
            and (self.exclude is None or self.exclude.fullmatch(key) is None)
        )
