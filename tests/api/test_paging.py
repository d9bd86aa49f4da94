"""The pager: every image present for the whole listing is yielded exactly once, whatever others add or
delete meanwhile, and shifts cost a bounded number of extra requests."""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.api.answers import RemoteImage
from pipeline.api.paging import Pager


class Collection:
    """A list the pager reads by offset; ``churn`` runs before each read after the first."""

    def __init__(self, ids: list[int], cap: int | None = None) -> None:
        self.ids = list(ids)
        self.cap = cap
        self.reads: list[int] = []
        self.churn: list[tuple[str, int]] = []  # per read: ("del"|"add", how many)

    async def fetch(self, offset: int, limit: int) -> list[RemoteImage]:
        if self.reads and self.churn:
            kind, n = self.churn.pop(0)
            self._change(kind, n, offset)
        self.reads.append(offset)
        size = min(limit, self.cap or limit)
        return [RemoteImage(id=i) for i in self.ids[offset : offset + size]]

    def _change(self, kind: str, n: int, offset: int) -> None:
        if kind == "del":  # someone deletes images before the offset: the worst case for a pager
            for _ in range(min(n, offset, len(self.ids))):
                self.ids.pop(random.Random(len(self.ids)).randrange(min(offset, len(self.ids))))
        else:
            top = max(self.ids, default=0)
            for k in range(n):
                self.ids.insert(0, top + 1000 + k)


async def listed(pager: Pager) -> list[int]:
    return [int(image.id) async for page in pager.pages() for image in page]


async def test_a_quiet_collection_is_read_once_with_a_small_overlap() -> None:
    collection = Collection(list(range(1000)))
    pager = Pager(collection.fetch, 100)

    got = await listed(pager)

    assert got == list(range(1000))
    assert pager.backups == 0
    # 1000 / 96 new a page, rounded up; the page that finds nothing new; and the guess made while the
    # last (short) page was awaited, that the next would start a full page later
    assert pager.requests == 13


async def test_the_next_page_is_asked_for_while_this_one_is_awaited() -> None:
    collection = Collection(list(range(1000)))
    in_flight, most = 0, 0

    async def fetch(offset: int, limit: int) -> list[RemoteImage]:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.001)  # the service at work
        in_flight -= 1
        return await collection.fetch(offset, limit)

    got = await listed(Pager(fetch, 100))

    assert got == list(range(1000))
    assert most == 2  # this page and the next, never more


@pytest.mark.parametrize("deletes", [1, 3, 4, 30, 150])
async def test_deletions_before_the_offset_never_hide_an_image_that_stays(deletes: int) -> None:
    collection = Collection(list(range(1000)))
    collection.churn = [("del", deletes)] * 5
    pager = Pager(collection.fetch, 100)

    got = await listed(pager)

    assert set(collection.ids) <= set(got)  # every survivor was seen ...
    assert len(got) == len(set(got))  # ... once
    assert pager.backups <= 5 * (1 + deletes // 96) + 1  # a backup per page of gap opened, no more


async def test_additions_at_the_front_yield_nothing_twice() -> None:
    collection = Collection(list(range(500)))
    collection.churn = [("add", 7)] * 4
    pager = Pager(collection.fetch, 100)

    got = await listed(pager)

    assert set(range(500)) <= set(got) and len(got) == len(set(got))


async def test_a_service_cap_below_the_page_size_loses_nothing() -> None:
    collection = Collection(list(range(95)), cap=20)
    pager = Pager(collection.fetch, 100)

    assert await listed(pager) == list(range(95))
    # the pages of 20 are full pages to the pager; 108 is the guess made while the short page at 90
    # was awaited, dropped once it came back short
    assert collection.reads == [0, 18, 36, 54, 72, 90, 108, 93]


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(0, 400),
    limit=st.sampled_from([2, 7, 50, 100]),  # a page of one cannot overlap the one before
    churn=st.lists(st.tuples(st.sampled_from(["del", "add"]), st.integers(0, 40)), max_size=12),
)
async def test_any_churn_yields_each_lasting_image_exactly_once(
    size: int, limit: int, churn: list[tuple[str, int]]
) -> None:
    collection = Collection(list(range(size)))
    collection.churn = list(churn)
    original = set(collection.ids)

    got = await listed(Pager(collection.fetch, limit))

    lasting = original & set(collection.ids)  # present from the first read to the last
    assert lasting <= set(got)
    assert len(got) == len(set(got))
