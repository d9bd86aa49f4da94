"""Pure helpers of the probe's searches: the next value to try for a limit, the junk body, made-up ids.

A limit is found by asking around it (:class:`Bracket`). Services set round limits (1 MiB, 10 MB,
100 ids), so once the bracket is narrow the roundest number in it is tried first, and the one after:
a few requests find such a limit to the unit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from dataclasses import dataclass

from pipeline.keys import ImageId

#: A body this small is taken by any service that takes photos.
MIN_BODY = 64 * 1024
#: Below this ratio of ``hi`` to ``lo`` the search tries round numbers.
SNAP_RATIO = 1.25
#: What a limit is likely a multiple of, the roundest first: body sizes, and counts (ids per call).
SIZE_STEPS = tuple(
    sorted({1 << k for k in range(10, 40)} | {m * 10**e for e in range(3, 12) for m in (1, 2, 5)})[::-1]
)
COUNT_STEPS = (1024, 1000, 512, 500, 256, 250, 200, 128, 100, 64, 50, 32, 25, 20, 16, 10)
_SEARCH_HEAD = b'{"image":{"base64":"'
_SEARCH_TAIL = b'"}}'
#: How far above the largest id seen made-up integer ids start.
FAR = 10**6
_HEX = re.compile(r"[0-9a-fA-F]")


def junk_search_body(size: int) -> bytes:
    """A search body of exactly ``size`` bytes whose image is zero bytes (no image: stores nothing)."""
    room = size - len(_SEARCH_HEAD) - len(_SEARCH_TAIL)
    if room < 4:
        raise ValueError(f"a search body is at least {len(_SEARCH_HEAD) + len(_SEARCH_TAIL) + 4} bytes")
    quads, pad = divmod(room, 4)
    return _SEARCH_HEAD + b"AAAA" * quads + b'"}' + b" " * pad + b"}"


@dataclass
class Bracket:
    """A limit between ``lo`` (taken) and ``hi`` (refused), narrowed one answer at a time.

    The next value halves the bracket (geometrically for sizes, which span orders of magnitude). Once
    it is narrow (``hi / lo`` at most :data:`SNAP_RATIO`) the roundest number in it is guessed first,
    and a guess taken is checked by the value after it; a guess proved wrong ends the guessing.
    """

    lo: int
    hi: int
    steps: tuple[int, ...]
    geometric: bool = True
    snap: bool = True
    _guess: int | None = None
    _check: bool = False

    @property
    def exact(self) -> bool:
        return self.hi - self.lo <= 1

    def next(self) -> int | None:
        """The value to try next; None once the limit is known to the unit."""
        lo, hi = self.lo, self.hi
        if self.exact:
            return None
        if self._check:
            return lo + 1
        if self.snap and hi / lo <= SNAP_RATIO:
            for step in self.steps:
                guess = (lo // step + 1) * step
                if guess < hi:
                    self._guess = guess
                    return guess
        mid = math.isqrt(lo * hi) if self.geometric else (lo + hi) // 2
        return min(hi - 1, max(lo + 1, mid))

    def answer(self, value: int, taken: bool) -> None:
        """Record the service's answer for ``value``."""
        if self._check and value == self.lo + 1:
            self._check = False
            self.snap = not taken  # taken: the guess was not the limit, so halve from here on
        elif value == self._guess and taken:
            self._check = True
        self._guess = None
        if taken:
            self.lo = max(self.lo, value)
        else:
            self.hi = min(self.hi, value)


def made_up_ids(like: ImageId, seen: Collection[str], n: int) -> list[ImageId]:
    """``n`` ids of the shape of ``like`` that no service issues, none of them among ``seen`` (as text).

    Integers (and strings of digits) start :data:`FAR` above ``like`` (pass the largest id seen: a
    service issuing ids in sequence does not reach them within a probe). Other strings keep ``like``'s
    length and alphabet with every hex digit an ``f`` but for a counter in the last ones: the far end
    of a sequence, and for a 24-hex ObjectId a time in 2106. Empty when ``like`` has too few hex
    digits to count ``n`` ids.
    """
    if isinstance(like, str) and like.isdigit():
        return [str(i) for i in made_up_ids(int(like), seen, n)]
    out: list[ImageId] = []
    if isinstance(like, int):
        candidate = like + FAR
        while len(out) < n:
            if str(candidate) not in seen:
                out.append(candidate)
            candidate += 1
        return out
    places = [m.start() for m in _HEX.finditer(like)]
    width = len(f"{2 * n + len(seen):x}")
    if len(places) < 2 * width:
        return []
    upper = any(c in "ABCDEF" for c in like) and not any(c in "abcdef" for c in like)
    chars = ["f" if i in set(places) else c for i, c in enumerate(like)]
    counter = 0
    while len(out) < n:
        for place, digit in zip(places[-width:], f"{counter:0{width}x}", strict=True):
            chars[place] = digit
        made = "".join(chars).upper() if upper else "".join(chars)
        if made not in seen and made != like:
            out.append(made)
        counter += 1
    return out
