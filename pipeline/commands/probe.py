"""``facesync probe``: measure the service, write its profile beside the state, leave nothing behind.

Opens what the probe needs — its images (before anything is sent), the profile's lock (one probe at
a time), the journal, the endpoint (the embedded emulator when configured), a client and a client
with a wrong secret — runs :class:`~pipeline.probe.prober.Prober`, and writes the profile it found.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pipeline.api.probing import ProbeClient
from pipeline.commands.runtime import service_url
from pipeline.commands.search import read_query
from pipeline.config import Config
from pipeline.config.profile import profile_path, write_profile
from pipeline.engine.images import sniff
from pipeline.errors import EXIT_FAILED, EXIT_OK, ConfigError, PipelineError
from pipeline.probe.image import MARKABLE, drawn
from pipeline.probe.journal import Journal, journal_path, new_token
from pipeline.probe.prober import Outcome, Prober
from pipeline.sources import open_source
from pipeline.state.lock import StateLock

#: Archive files looked at, and taken, when no ``--image`` is given; the largest one taken.
SCAN_AT_MOST = 500
PICK = 3
PICK_MAX_BYTES = 4 * 1024 * 1024
_SUFFIXES = (".jpg", ".jpeg", ".png")
#: Requests a second when ``limits.rate`` is unset: the adaptive rate cuts a sequential client to a
#: crawl after one throttled answer (it measures what was admitted, and one request at a time is little).
PROBE_RATE = 5.0


@dataclass
class ProbeReport:
    """What ``facesync probe`` did: the outcome, where the profile went, the exit code."""

    outcome: Outcome
    config: Config
    path: Path
    written: bool
    image: str
    exit_code: int

    @property
    def error(self) -> str | None:
        return str(self.outcome.error) if self.outcome.error is not None else None

    def to_json(self) -> dict[str, Any]:
        """The ``probe --json`` object."""
        out = self.outcome
        return {
            "endpoint": self.config.api.base_url,
            "profile_path": str(self.path),
            "written": self.written,
            "profile": out.profile.to_json(),
            "requests": out.profile.requests,
            "image": self.image,
            "probe_images": {
                "added": len(out.added),
                "removed": out.removed,
                "left": out.left,
                "verified": out.verified,
            },
            "leftovers_found": out.leftovers,
            "skipped": out.skipped,
            "notes": out.notes,
            "error": self.error,
            "exit_code": self.exit_code,
        }


async def probe(config: Config, image: Path | None, confirm: Callable[[str], bool]) -> ProbeReport:
    """One ``facesync probe``; ``confirm(question)`` says whether the steps that store may run."""
    pictures, described = await probe_images(config, image)
    path = profile_path(config)
    with StateLock(path, command="probe"):
        journal = Journal.read(journal_path(path), config.api.base_url)
        limits = replace(
            config.limits, retries=min(config.limits.retries, 1), rate=config.limits.rate or PROBE_RATE
        )
        async with service_url(config) as base_url:
            client = ProbeClient.from_config(config.api, limits, base_url=base_url)
            wrong = ProbeClient(
                base_url,
                config.api.api_key,
                config.api.api_secret + "-not-the-secret",
                timeout=config.api.timeout,
                connect_timeout=config.api.connect_timeout,
            )
            async with client, wrong:
                prober = Prober(client, wrong, config, journal, pictures, new_token(), confirm)
                outcome = await prober.run()
        written = outcome.error is None
        if written:
            write_profile(path, outcome.profile)
    code = outcome.error.exit_code if outcome.error is not None else EXIT_OK
    if code == EXIT_OK and outcome.left:
        code = EXIT_FAILED
    return ProbeReport(outcome, config, path, written, described, code)


async def probe_images(config: Config, image: Path | None) -> tuple[list[bytes], str]:
    """The pictures the probe may add and where they came from: ``--image``, else JPEG or PNG files of
    the archive, else (for the embedded emulator, which has no face model) a drawn one."""
    if image is not None:
        data = read_query(image, config.limits.max_image_bytes)
        if not _markable(data):
            raise ConfigError(f"{image}: the probe takes a JPEG or PNG photo")
        return [data], str(image)
    picked, keys = await _from_archive(config)
    if picked:
        return picked, "archive: " + ", ".join(keys)
    if config.api.embedded:
        return [drawn(seed) for seed in range(PICK)], "a drawn picture (the emulator has no face model)"
    raise ConfigError("no JPEG or PNG in the archive to probe with: give --image FACE.jpg (a face photo)")


async def _from_archive(config: Config) -> tuple[list[bytes], list[str]]:
    """Up to :data:`PICK` JPEG or PNG files from the first :data:`SCAN_AT_MOST` of the archive."""
    picked: list[bytes] = []
    keys: list[str] = []
    try:
        source = open_source(config.source, origin=config.origin)
    except PipelineError:
        return picked, keys
    try:
        for n, item in enumerate(source.scan()):
            if n >= SCAN_AT_MOST or len(picked) >= PICK:
                break
            if item.special or item.size > PICK_MAX_BYTES or not item.key.lower().endswith(_SUFFIXES):
                continue
            try:
                data = await source.read(item, PICK_MAX_BYTES)
            except PipelineError:
                continue
            if _markable(data):
                picked.append(data)
                keys.append(item.key)
    except PipelineError:
        pass
    finally:
        await source.close()
    return picked, keys


def _markable(data: bytes) -> bool:
    return sniff(data) in MARKABLE
