"""A state older than its collection (restored from a backup), told by the listing's end before the
run's first add: the images of this archive whose ``facesync_token`` the state never issued, by key and
by content, for the upload to take back (``engine/operations.py``) instead of sending again; what no
file takes, once the run's work is done, is an image of a file gone since (``docs/state.md``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pipeline.api import RemoteImage
from pipeline.config import KEY_FIELD, SHA_FIELD, TRANSFORM_FIELD
from pipeline.engine.metadata import safe_key
from pipeline.engine.runs import RunContext
from pipeline.engine.settle import Tail, token_of
from pipeline.errors import Retryable, ServiceFailing
from pipeline.keys import ImageId, shard_of


class Restorer:
    """Images of this archive the state never issued (a state restored from a backup), found in the
    tail before the run's first add: by key, for the upload to restore or replace."""

    def __init__(self, ctx: RunContext, tail: Tail | None, shard: tuple[int, int] | None) -> None:
        self.ctx, self.tail, self.shard = ctx, tail, shard
        self.by_key: dict[str, list[RemoteImage]] = {}
        #: The same images by their ``facesync_sha256``: a file moved since the newer state sent it.
        self.by_sha: dict[str, list[RemoteImage]] = {}
        #: Ids already restored for a file or doomed as an older version: no one else's to take.
        self.taken: set[str] = set()
        #: Whether the window reached an image the state holds (False: it could not tell).
        self.complete = True
        #: Whether the tail was read (it is, once, before the first add or at the start of the run).
        self.looked = False

    async def look(self) -> None:
        """Read the tail back to the newest image this state holds; keep the unknown ones of ours."""
        if self.tail is None or self.looked:
            return
        self.looked = True
        state = self.ctx.state
        try:
            window, self.complete = await self.tail.window(
                lambda page: bool(state.held_ids(i.id for i in page))
            )
        except ServiceFailing:
            raise
        except Retryable as exc:
            raise ServiceFailing(
                f"cannot read the listing's end to check the state against the collection before the first "
                f"upload: {exc}",
                sent=False,
            ) from None
        tokens = {t for i in window if (t := token_of(i)) is not None}
        known = state.tokens_known(tokens)
        held = state.held_ids(i.id for i in window)  # a tombstone's duplicate is no one's to restore
        for image in window:
            token, meta = token_of(image), image.metadata or {}
            key = meta.get(KEY_FIELD)
            if token is None or token in known or not isinstance(key, str) or str(image.id) in held:
                continue
            if self.shard is not None and shard_of(key, self.shard[1]) != self.shard[0]:
                continue
            self.by_key.setdefault(key, []).append(image)
            if isinstance(sha := meta.get(SHA_FIELD), str):
                self.by_sha.setdefault(sha, []).append(image)
        if not self.complete and self.by_key:
            self.ctx.reporter.note(
                f"the collection's newest {len(window)} images hold {sum(map(len, self.by_key.values()))} "
                "this state never sent and do not reach back to the images it holds: was the state restored "
                "from an older backup? `facesync reconcile` settles what is doubled"
            )

    def unknown_copies(self, key: str) -> list[RemoteImage]:
        """The images for ``key`` the state never issued and no other file took, oldest first."""
        return [i for i in reversed(self.by_key.get(safe_key(key), [])) if str(i.id) not in self.taken]

    def moved_here(self, sha256: str, transform: str | None) -> RemoteImage | None:
        """An image the state never issued that holds ``sha256`` (sent with ``transform``) under another
        key, not taken: the file was moved after a newer state sent it. Oldest first."""
        for image in reversed(self.by_sha.get(sha256, [])):
            if str(image.id) not in self.taken and (image.metadata or {}).get(TRANSFORM_FIELD) == transform:
                return image
        return None

    def take(self, ids: Iterable[ImageId]) -> None:
        self.taken.update(str(i) for i in ids)

    def leftovers(self) -> list[tuple[str, RemoteImage]]:
        """The images found that no file took, for keys the state has no row of once the run's work is
        done: files a newer state sent and that are gone since (a complete run saw every file)."""
        state = self.ctx.state
        return [
            (key, image)
            for key, images in self.by_key.items()
            for image in images
            if str(image.id) not in self.taken and state.get(key) is None
        ]


def restored_image(copies: Sequence[RemoteImage], sha256: str) -> RemoteImage | None:
    """Of an unknown key's images, the one whose content is ``sha256`` (the file as it is), if any."""
    for image in copies:
        if (image.metadata or {}).get(SHA_FIELD) == sha256:
            return image
    return None
