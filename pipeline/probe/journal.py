"""The probe's journal: which probe images may exist, written down before they can (``kill -9`` safety).

Before each add, a probe durably notes its token (the value of ``facesync_probe`` in the metadata of
every image it adds) as possibly stored; after the answer, the id. A probe killed at any instant
therefore leaves, at worst, images that the journal names by id, or by token when the answer was
lost. The next probe reads the journal first: it deletes the ids, and the images its listing shows
with a journalled token; it forgets a run once its ids are gone and, if an add of it went
unanswered, once it has read the whole listing. ``reconcile`` deletes such images too (every image
the state does not hold), without the journal.
"""

from __future__ import annotations

import calendar
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.config.profile import write_json
from pipeline.errors import ConfigError
from pipeline.keys import ImageId

#: The metadata key that marks an image as the probe's (its value is the run's token).
PROBE_FIELD = "facesync_probe"
#: A probe image older than this whose token no journal here knows is a dead probe's: deleted too.
#: (Younger ones may belong to a probe running elsewhere, and are left alone.)
STALE_AFTER = 15 * 60.0
_STAMP = "%Y%m%dT%H%M%SZ"


def new_token(now: float | None = None) -> str:
    """A probe run's token: when it started (UTC) and 8 random hex digits."""
    import secrets  # only a probe makes tokens: a reconcile reading them does not load it (nor hmac)

    stamp = time.strftime(_STAMP, time.gmtime(time.time() if now is None else now))
    return f"{stamp}-{secrets.token_hex(4)}"


def token_age(token: object, now: float) -> float | None:
    """Seconds since the run of ``token`` started, or None when it is not a token this code writes."""
    if not isinstance(token, str) or "-" not in token:
        return None
    try:
        started = time.strptime(token.split("-", 1)[0], _STAMP)
    except ValueError:
        return None
    return now - calendar.timegm(started)


def journal_path(profile: Path) -> Path:
    """The journal beside a profile: ``service-profile.json`` → ``service-profile.probe-journal.json``."""
    return profile.with_name(profile.stem + ".probe-journal.json")


@dataclass
class Run:
    """One probe run's images: the ids its adds were answered, and whether an add went unanswered."""

    ids: list[ImageId] = field(default_factory=list)
    #: An add was sent and no answer recorded: an image with its token but no known id may exist.
    unanswered: bool = False


@dataclass
class Journal:
    """The probe runs of one endpoint whose images may still exist, by token."""

    path: Path
    endpoint: str
    runs: dict[str, Run] = field(default_factory=dict)
    #: Other endpoints' runs, kept as they were.
    _others: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path, endpoint: str) -> Journal:
        """The journal at ``path`` (empty when there is none); ConfigError when it cannot be read."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(path, endpoint)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: cannot read the probe journal ({exc}); remove it to go on") from None
        endpoints = data.get("endpoints") if isinstance(data, dict) else None
        if not isinstance(endpoints, dict):
            raise ConfigError(f"{path}: not a probe journal; remove it to go on")
        mine = endpoints.pop(endpoint, {})
        runs = {}
        for token, run in mine.items() if isinstance(mine, dict) else ():
            raw = run.get("ids") if isinstance(run, dict) else None
            ids = [i for i in raw or () if isinstance(i, int | str) and not isinstance(i, bool)]
            runs[str(token)] = Run(ids, bool(run.get("unanswered")) if isinstance(run, dict) else True)
        return cls(path, endpoint, runs, endpoints)

    @property
    def tokens(self) -> set[str]:
        return set(self.runs)

    @property
    def ids(self) -> list[ImageId]:
        return [i for run in self.runs.values() for i in run.ids]

    def sending(self, token: str) -> None:
        """Note, before an add carrying ``token`` is sent, that its image may exist from now on."""
        self.runs.setdefault(token, Run()).unanswered = True
        self._save()

    def answered(self, token: str, image_id: ImageId | None) -> None:
        """Note the add's answer: the id the service stored it under (None: it stored nothing)."""
        run = self.runs.setdefault(token, Run())
        run.unanswered = False
        if image_id is not None and image_id not in run.ids:
            run.ids.append(image_id)
        self._save()

    def forget(self, tokens: set[str]) -> None:
        """These runs' images are gone: forget them (the file goes when nothing is left)."""
        if not tokens & self.tokens:
            return
        for token in tokens:
            self.runs.pop(token, None)
        self._save()

    def _save(self) -> None:
        endpoints = dict(self._others)
        if self.runs:
            endpoints[self.endpoint] = {
                t: {"ids": r.ids, "unanswered": r.unanswered} for t, r in self.runs.items()
            }
        if endpoints:
            write_json(self.path, {"version": 1, "endpoints": endpoints})
        else:
            self.path.unlink(missing_ok=True)
