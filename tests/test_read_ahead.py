"""A sync names each file it will upload to the source ahead of reading it (``prefetch``), so that the
kernel reads a cold file while the files queued before it are sent and the read finds it cached
(pipeline/sources/fileread.py); an unchanged file, or one whose metadata alone is sent, is not read.
Against the emulator on 127.0.0.1, real files."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.emulator import EmulatorThread
from pipeline.sources.fileread import FileReader
from tests.helpers import make_config, sync, write_files
from tests.imagefactory import jpeg_bytes


async def test_every_file_uploaded_is_read_ahead_before_it_is_read(
    emulator: EmulatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple[str, bytes]] = []
    prefetch, read_now = FileReader.prefetch, FileReader.read_now

    def noting_prefetch(self: FileReader, path: bytes, size: int) -> None:
        events.append(("ahead", path))
        prefetch(self, path, size)

    def noting_read(self: FileReader, path: bytes, *args: object, **kwargs: object) -> bytes | None:
        events.append(("read", path))
        return read_now(self, path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(FileReader, "prefetch", noting_prefetch)
    monkeypatch.setattr(FileReader, "read_now", noting_read)
    write_files(tmp_path / "archive", {f"d{i % 3}/p{i:02d}.jpg": jpeg_bytes(seed=i) for i in range(40)})
    config = make_config(emulator.base_url, tmp_path)

    report, _ = await sync(config)
    assert report.added == 40
    reads = [path for what, path in events if what == "read"]
    assert len(set(reads)) == 40
    for path in set(reads):  # named ahead once, before its first read (the first read of all learns
        # whether the file system reads in place, in a thread: nothing is read ahead before it)
        ahead = [n for n, e in enumerate(events) if e == ("ahead", path)]
        first_read = events.index(("read", path))
        assert len(ahead) <= 1 and (not ahead or ahead[0] < first_read), path
    assert sum(what == "ahead" for what, _ in events) >= 39

    events.clear()
    report, _ = await sync(config)  # nothing changed: nothing to read, nothing read ahead
    assert (report.added, events) == (0, [])
