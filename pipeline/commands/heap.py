"""CPython's cycle collector, set for a long run (``sync``, ``reconcile``, ``watch``).

A run makes millions of small objects that die young (a planned pair, a row, an answer's dict per
file) and few cycles. Each collection of the oldest generation walks every object alive, among them
the ~37,000 that importing the package made (modules, classes, functions), which are never garbage;
and the youngest generation, at CPython's 700 allocations, is collected thousands of times a second.
:func:`for_long_run`, once the command's modules are in, moves what exists to the permanent
generation (``gc.freeze``: never walked again) and lets the youngest grow to :data:`YOUNG` first.
Measured on ``sync`` of 1,000 images (instructions, under valgrind: 3 % fewer outside the hashing;
py-spy put the collector at 4.8 % of an upload's samples before): docs/performance.md.
"""

from __future__ import annotations

import gc

#: Allocations (less deallocations) that trigger a collection of the youngest generation.
YOUNG = 10_000


def for_long_run() -> None:
    """Freeze what is alive now and collect the youngest generation less often."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG, middle, old)
