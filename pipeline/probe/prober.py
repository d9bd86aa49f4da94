"""The probe: a short, bounded sequence of calls that answers what the API page leaves open.

What can be learnt without storing anything comes first: the credentials (one listing page with a
wrong secret), the listing (the page cap, where the collection ends, whether items carry metadata,
images an earlier probe left: ``listing.py``), and the body limit (searches whose image is a junk
body: a search stores nothing). Then, once confirmed, what needs images of its own: two adds of the
same bytes (the id's field and type, dedup), where they appear in the listing (order, metadata),
and DELETEs of made-up ids (what an unknown id does, how many ids one call takes). Last, whatever
happened before, its images and those earlier probes left are deleted, and the pages that showed
them are read again to see them gone. Every image it adds carries ``facesync_probe`` and is
journalled before it is sent (``journal.py``).

It stays within :data:`BUDGET` requests: the searches for a limit stop early, keeping a bracket,
when the budget would not cover what must follow.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from pipeline.api.answers import ProtocolError, RemoteImage
from pipeline.api.probing import ProbeClient, http_status_of
from pipeline.config import Config
from pipeline.config.profile import ServiceProfile, body_for_image
from pipeline.errors import AuthError, PipelineError, Rejected, Retryable, ServiceFailing
from pipeline.keys import ImageId
from pipeline.probe import bounds
from pipeline.probe.image import unique
from pipeline.probe.journal import PROBE_FIELD, Journal
from pipeline.probe.listing import Listing

#: Requests the probe aims to stay within (the adds and the deletes of its own images always go).
BUDGET = 30
#: The most ids one made-up DELETE carries.
PROBE_DELETE = 1000
#: Most requests the body-limit search spends ...
BODY_STEPS = 9
#: ... keeping this many for what follows: adds, finding them, DELETEs, the clean-up.
AFTER_BODY = 10
_ID_FIELDS = ("id", "_id", "image_id")


@dataclass
class Outcome:
    """What one probe found and did: the profile, and what became of its images."""

    profile: ServiceProfile
    added: list[ImageId] = field(default_factory=list)
    removed: int = 0
    left: list[ImageId] = field(default_factory=list)
    #: Whether the pages that showed them, read again, show them gone (None: they were never seen).
    verified: bool | None = None
    #: Images of earlier probes (journalled, or found by their tag) deleted with this probe's.
    leftovers: int = 0
    #: Why the steps that store images did not run (None: they ran).
    skipped: str | None = None
    notes: list[str] = field(default_factory=list)
    error: PipelineError | None = None


class Prober:
    """One probe of one endpoint through ``client``; ``wrong`` holds the same key with a wrong secret."""

    def __init__(
        self,
        client: ProbeClient,
        wrong: ProbeClient,
        config: Config,
        journal: Journal,
        images: Sequence[bytes],
        token: str,
        confirm: Callable[[str], bool],
        *,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.client, self.wrong, self.config, self.journal = client, wrong, config, journal
        self.images, self.token, self.confirm = images, token, confirm
        self.found = ServiceProfile(endpoint=config.api.base_url, measured_at=now())
        self.out = Outcome(self.found)
        self.listing = Listing(client, token, journal.tokens, now)
        self.confirmed = False

    @property
    def requests(self) -> int:
        return self.client.requests + self.wrong.requests

    def _affords(self, requests: int) -> bool:
        """Whether ``requests`` more stay within :data:`BUDGET`."""
        return self.requests + requests <= BUDGET

    @property
    def _settling(self) -> int:
        """Requests the end needs: one DELETE of the probe's images, the pages read again to see them gone."""
        return 1 + len(self.listing.looked)

    async def run(self) -> Outcome:
        """The whole probe; errors end the measuring, never the clean-up (they are in the outcome)."""
        try:
            await self._credentials()
            await self.listing.survey()
            await self._body()
            if self._confirmed():
                await self._adds()
                if self.out.added:
                    self.found = replace(self.found, list_order=await self.listing.find_ours())
                await self._delete_cap()
        except PipelineError as exc:
            self.out.error = exc
        if self.confirmed:
            await self._clean_up()
        if self.listing.young:
            self.out.notes.append(f"left {len(self.listing.young)} young probe image(s) of another run alone")
        seen = self.listing
        self.out.profile = self.found = replace(
            self.found,
            requests=self.requests,
            throttle_http_status=self.client.throttle_status or self.wrong.throttle_status,
            page_cap=seen.page_cap,
            page_seen=seen.page_seen,
            list_metadata=seen.metadata,
        )
        return self.out

    # -- without storing anything ---------------------------------------------------------------

    async def _credentials(self) -> None:
        try:
            await self.wrong.list_page(0, 1)
        except AuthError:
            self.found = replace(self.found, auth_http_status=self.wrong.auth_status)
        except PipelineError as exc:
            self.out.notes.append(f"a wrong secret was answered: {exc}")
        else:
            self.out.notes.append("the service accepted a wrong secret")

    async def _body(self) -> None:
        """The largest body taken: the one facesync sends for its largest file (or the one the last
        profile saw refused: that limit shrank the largest file), else a search for it."""
        target = body_for_image(self.config.limits.max_image_bytes)
        if self.config.service is not None and self.config.service.body_refused is not None:
            target = max(target, self.config.service.body_refused)
        if await self._body_taken(target):
            self.found = replace(self.found, max_body_bytes=target)
            return
        limit = bounds.Bracket(bounds.MIN_BODY, target, bounds.SIZE_STEPS)
        known = False
        for _ in range(BODY_STEPS - 1):
            size = limit.next()
            if size is None or not self._affords(1 + AFTER_BODY):
                break
            taken = await self._body_taken(size)
            limit.answer(size, taken)
            known = known or taken
        self.found = replace(self.found, max_body_bytes=limit.lo if known else None, body_refused=limit.hi)

    async def _body_taken(self, size: int) -> bool:
        try:
            await self.client.search_body(bounds.junk_search_body(size))
        except Rejected as exc:
            if exc.http_status == 413:
                return False
            if exc.code in (1, 3, 6):
                self.found = replace(self.found, refusal_http_status=http_status_of(exc))
            return True
        except ServiceFailing:
            raise
        except Retryable:  # a connection closed on a large body: refused, as far as we can tell
            return False
        return True

    # -- with images of its own -----------------------------------------------------------------

    def _confirmed(self) -> bool:
        earlier = len(self.listing.leftovers.keys() | {str(i) for i in self.journal.ids})
        also = f" and {earlier} an earlier probe left" if earlier else ""
        question = (
            f"Add 2 or 3 probe images (tagged {PROBE_FIELD}) to {self.config.api.base_url}, delete them"
            f"{also}, and send DELETEs of made-up ids that match no image?"
        )
        if self.confirm(question):
            self.confirmed = True
            return True
        self.out.skipped = "not confirmed: run with --yes to measure ids, dedup, order and the delete cap"
        return False

    async def _add(self, data: bytes) -> RemoteImage:
        self.journal.sending(self.token)
        try:
            image = await self.client.add_image(data, {PROBE_FIELD: self.token})
        except Rejected:
            self.journal.answered(self.token, None)
            raise
        if str(image.id) in self.listing.before:
            self.journal.answered(self.token, None)
            raise ProtocolError(
                f"the service answered the id of an image listed before the probe ({image.id}): "
                "not the probe's to delete; stopped"
            )
        self.journal.answered(self.token, image.id)
        if image.id not in self.out.added:
            self.out.added.append(image.id)
            self.listing.added.append(image.id)
        result = self.client.last_result
        name = next((f for f in _ID_FIELDS if isinstance(result, dict) and result.get(f) is not None), None)
        kind = "int" if isinstance(image.id, int) else "str"
        self.found = replace(self.found, id_field=name, id_kind=kind)
        return image

    async def _adds(self) -> None:
        """Add one image twice (its id, dedup); a third, other image when dedup hides the order."""
        pictures = self.images[:3]
        for n, picture in enumerate(pictures):
            data = unique(picture, f"{self.token} a")
            try:
                first = await self._add(data)
            except Rejected as exc:
                if exc.code not in (1, 3) or n == len(pictures) - 1:
                    self.out.skipped = f"the service refused the probe image: {exc} (give --image FACE.jpg)"
                    return
                continue
            second = await self._add(data)
            self.found = replace(self.found, dedup=second.id == first.id)
            if self.found.dedup and self.listing.end == 0:
                await self._add(unique(picture, f"{self.token} b"))
            return

    async def _delete_cap(self) -> None:
        """DELETEs of made-up ids: what an unknown id does, then how many ids one call takes."""
        known = [*self.out.added, *self.listing.before.values()]
        ints = [i for i in known if isinstance(i, int)]
        like = max(ints) if ints else next(iter(known), None)
        taken = {*self.listing.before, *map(str, self.out.added), *self.listing.leftovers}
        fake = bounds.made_up_ids(like, taken, PROBE_DELETE) if like is not None else []
        if not fake or not self._affords(2 + self._settling):
            return
        one = await self._delete_answer(fake[:1])
        self.found = replace(self.found, delete_unknown="ignore" if one == "ok" else "fail")
        self.found = replace(self.found, delete_tried=PROBE_DELETE)
        if await self._delete_answer(fake) == one:
            return
        cap = bounds.Bracket(1, PROBE_DELETE, bounds.COUNT_STEPS, geometric=False)
        while (n := cap.next()) is not None and self._affords(1 + self._settling):
            cap.answer(n, await self._delete_answer(fake[:n]) == one)
        self.found = replace(self.found, delete_cap=cap.lo)

    async def _delete_answer(self, ids: list[ImageId]) -> str:
        """How the service answered a DELETE of ``ids``: ``ok``, or the refusal's code and status."""
        try:
            await self.client.delete(ids)
        except Rejected as exc:
            return f"refused {exc.code} {exc.http_status}"
        return "ok"

    # -- clean-up ---------------------------------------------------------------------------------

    async def _clean_up(self) -> None:
        """Delete the probe's images and those earlier probes left; read the pages again to see."""
        seen = self.listing
        ours = {str(i): i for i in self.out.added} | seen.ours
        earlier = {str(i): i for i in self.journal.ids} | seen.leftovers
        self.out.leftovers = len(earlier.keys() - ours.keys())
        if self.out.leftovers:
            self.out.notes.append(f"deleting {self.out.leftovers} image(s) an earlier probe left too")
        targets = earlier | ours
        gone: set[str] = set()
        batch = self.found.delete_cap or max(1, len(targets))
        ids = list(targets.values())
        try:
            for start in range(0, len(ids), batch):
                gone |= await self._delete_gone(ids[start : start + batch])
            if seen.looked and gone == targets.keys():
                still = await seen.still_there(targets.keys())
                gone -= still
                self.out.verified = not still
        except PipelineError as exc:
            self.out.notes.append(f"clean-up stopped: {exc}")
        self.out.removed = len(gone)
        self.out.left = [i for k, i in targets.items() if k not in gone]
        self._settle_journal(gone)

    async def _delete_gone(self, ids: list[ImageId]) -> set[str]:
        """Delete ``ids``; a refused call one id at a time, where "not found" means gone already.
        The ids (as text) known gone."""
        try:
            await self.client.delete(ids)
        except Rejected as exc:
            if len(ids) > 1:
                gone: set[str] = set()
                for one in ids:
                    gone |= await self._delete_gone([one])
                return gone
            if exc.http_status != 404:
                self.out.notes.append(f"probe image {ids[0]} not deleted: {exc}")
                return set()
        return {str(i) for i in ids}

    def _settle_journal(self, gone: set[str]) -> None:
        """Forget the runs whose images are all gone: every id, and — if an add went unanswered — any
        image with its token, which only a probe that read the whole listing can tell."""
        done = set()
        for token, run in self.journal.runs.items():
            if not {str(i) for i in run.ids} <= gone:
                continue
            if run.unanswered and not (self.listing.whole and token != self.token):
                self.out.notes.append(
                    "an interrupted add may have stored an image this probe cannot see; the next probe "
                    "looks for it, and `facesync reconcile` deletes it"
                )
                continue
            done.add(token)
        self.journal.forget(done)
