"""Scenario 9: a corpus of bad input — each file gets its own status and reason, and the run completes.

Empty, text named .jpg, truncated JPEG and PNG, a 0×0 PNG, one over the size limit, a directory named
``x.jpg``, symlink loops, a dangling link, a non-UTF-8 name, and files swapped between the scan and
the read (rewritten, replaced by a FIFO or by a symlink loop, removed).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pipeline.emulator import EmulatorThread
from pipeline.sources import SourceItem
from pipeline.sources.local import LocalSource
from pipeline.state import Status
from tests.helpers import make_config, state_rows, sync, write_files
from tests.imagefactory import jpeg_bytes, png_bytes, truncated_jpeg_bytes, zero_by_zero_png

from .conftest import Watch, archive

LIMIT = 20_000
NON_UTF8 = b"caf\xe9.jpg"


def build_corpus(root: Path) -> dict[str, bytes]:
    """Write the corpus; return the files that must end up stored (key → bytes)."""
    good = archive(range(5))
    good["x.jpg/inside.jpg"] = jpeg_bytes(50)  # a directory named like an image holds a real one
    good["swap/changed.jpg"] = jpeg_bytes(51)  # rewritten after the scan: the next run stores it
    write_files(root, good)
    png = png_bytes(52)
    write_files(
        root,
        {
            "bad/empty.jpg": b"",
            "bad/notes.jpg": b"this is text, not a photo\n",
            "bad/truncated.jpg": truncated_jpeg_bytes(53, keep=0.4),
            "bad/truncated.png": png[: len(png) // 2],
            "bad/zero.png": zero_by_zero_png(),
            "bad/huge.jpg": jpeg_bytes(54, size=(600, 600), quality=100),
            "swap/fifo.jpg": jpeg_bytes(55),
            "swap/loop.jpg": jpeg_bytes(56),
            "swap/gone.jpg": jpeg_bytes(57),
        },
    )
    assert len((root / "bad/huge.jpg").read_bytes()) > LIMIT
    os.symlink("self.jpg", root / "bad/self.jpg")  # a link to itself: ELOOP
    os.symlink("nowhere.jpg", root / "bad/dangling.jpg")
    os.symlink(".", root / "bad/again")  # a directory loop
    fd = os.open(os.path.join(os.fsencode(root), NON_UTF8), os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, jpeg_bytes(58))
    os.close(fd)
    good[os.fsdecode(NON_UTF8)] = jpeg_bytes(58)
    return good


def swap_between_scan_and_read(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    """Change some files after the scan saw them, right before the worker reads them."""
    read = LocalSource.read

    async def swapping_read(self: LocalSource, item: SourceItem, max_bytes: int) -> bytes:
        path = root / item.key
        if item.key == "swap/changed.jpg" and path.read_bytes() == jpeg_bytes(51):
            path.write_bytes(jpeg_bytes(510, size=(80, 80)))
        elif item.key == "swap/fifo.jpg" and path.is_file():
            path.unlink()
            os.mkfifo(path)
        elif item.key == "swap/loop.jpg" and not path.is_symlink():
            path.unlink()
            os.symlink("loop.jpg", path)
        elif item.key == "swap/gone.jpg" and path.exists():
            path.unlink()
        return await read(self, item, max_bytes)

    monkeypatch.setattr(LocalSource, "read", swapping_read)


async def test_every_bad_file_gets_its_own_status_and_reason_and_the_run_completes(
    emulator: EmulatorThread, watch: Watch, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await bad_corpus(emulator, watch, tmp_path, monkeypatch, concurrency=4)


@pytest.mark.soak
@pytest.mark.parametrize("concurrency", [1, 2, 8, 16])
async def test_bad_input_soak(
    emulator: EmulatorThread, watch: Watch, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, concurrency: int
) -> None:
    emulator.configure(id_kind="str", delay=0.02)
    await bad_corpus(emulator, watch, tmp_path, monkeypatch, concurrency=concurrency)


async def bad_corpus(
    emulator: EmulatorThread,
    watch: Watch,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    concurrency: int,
) -> None:
    root = tmp_path / "archive"
    good = build_corpus(root)
    watch.expect(good)
    config = make_config(
        emulator.base_url,
        tmp_path,
        source_section={"path": str(root), "follow_symlinks": True},
        limits={"max_image_bytes": LIMIT, "concurrency": concurrency},
    )
    swap_between_scan_and_read(monkeypatch, root)

    report, log = await sync(config)

    assert report.exit_code == 0, log
    rows = state_rows(config)
    seen: dict[str, Any] = {
        key: (row.status, row.code if row.status is Status.REJECTED else (row.message or "").split(":")[0])
        for key, row in rows.items()
        if row.status is not Status.SYNCED
    }
    assert seen == {
        "bad/empty.jpg": (Status.SKIPPED, "empty"),
        "bad/notes.jpg": (Status.SKIPPED, "not_an_image"),
        "bad/huge.jpg": (Status.SKIPPED, "too_large"),
        "bad/truncated.jpg": (Status.SKIPPED, "truncated"),
        "bad/truncated.png": (Status.SKIPPED, "truncated"),
        "bad/zero.png": (Status.REJECTED, 3),
        "swap/changed.jpg": (Status.SKIPPED, "changed"),
        "swap/fifo.jpg": (Status.SKIPPED, "not_a_file"),
        "swap/loop.jpg": (Status.SKIPPED, "unreadable"),
        "swap/gone.jpg": (Status.SKIPPED, "vanished"),
        "bad/dangling.jpg": (Status.SKIPPED, "not_a_file"),
        "bad/self.jpg": (Status.SKIPPED, "not_a_file"),
    }
    for link in ("bad/dangling.jpg", "bad/self.jpg"):
        assert "symlink that cannot be followed" in (rows[link].message or "")
    # A directory link that loops is walked once, never into the loop.
    assert {k for k in rows if k.startswith("bad/again")} == set()
    synced = {k for k, r in rows.items() if r.status is Status.SYNCED}
    assert synced == set(good) - {"swap/changed.jpg"}
    assert all(f"skipped {k}" in log or f"rejected {k}" in log for k in seen if "caf" not in k)

    good["swap/changed.jpg"] = jpeg_bytes(510, size=(80, 80))
    monkeypatch.undo()
    await watch.settle(config, good)
