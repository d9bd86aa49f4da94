"""``transform:``: what arrives at the emulator is an upright sRGB JPEG no longer than ``max_side``,
a change of the settings replaces every image once (guarded, shown by a dry run, no duplicate), the
state and the metadata keep the original's hash (renames, ``search``, ``reconcile --adopt``), and a
body the service refuses as too large is re-encoded smaller. Real files, the real emulator."""

from __future__ import annotations

import io
import random
import urllib.request
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pillow_heif
from PIL import Image

from pipeline.commands.archive import status
from pipeline.commands.search import search
from pipeline.config import SHA_FIELD, TRANSFORM_FIELD, Config
from pipeline.config.profile import ServiceProfile, applied
from pipeline.emulator import EmulatorThread
from pipeline.engine.transform import LEARNED_BODY, signature
from pipeline.errors import EXIT_GUARD
from pipeline.output.text import status_lines
from pipeline.state import State, Status
from tests.helpers import make_config, reconcile, sha, state_rows, sync, write_files
from tests.imagefactory import image_for, jpeg_bytes

MAX_SIDE = 1000
RED, BLUE, GREEN, WHITE = (255, 0, 0), (0, 0, 255), (0, 160, 0), (255, 255, 255)


def encoded(img: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **options)
    return out.getvalue()


def camera_photo(seed: int, size: tuple[int, int] = (6000, 4000)) -> bytes:
    """A 24 MP JPEG (at the default size)."""
    return encoded(image_for(seed, size), "JPEG", quality=90)


def rotated_photo() -> bytes:
    """Stored 1200x800 with its left half red, and EXIF orientation 6: shown turned a quarter to the
    right, so upright it is 800x1200 with the red half on top."""
    img = Image.new("RGB", (1200, 800), BLUE)
    img.paste(RED, (0, 0, 600, 800))
    exif = Image.Exif()
    exif[0x0112] = 6
    return encoded(img, "JPEG", quality=95, exif=exif.tobytes())


def cmyk_photo() -> bytes:
    return encoded(Image.new("CMYK", (900, 600), (0, 255, 255, 0)), "JPEG", quality=95)  # red in CMYK


def png_with_alpha() -> bytes:
    """Transparent (red, but alpha 0) with an opaque green square at the top left."""
    img = Image.new("RGBA", (1500, 1000), (*RED, 0))
    img.paste((*GREEN, 255), (0, 0, 500, 500))
    return encoded(img, "PNG")


def heic_photo(seed: int = 9, size: tuple[int, int] = (1200, 900)) -> bytes:
    """A HEIC as a phone writes it, made by pillow-heif (libheif's HEVC encoder)."""
    out = io.BytesIO()
    pillow_heif.from_pillow(image_for(seed, size)).save(out, quality=90)
    return out.getvalue()


def stored(emulator: EmulatorThread) -> dict[str, tuple[bytes, dict[str, object]]]:
    """Each stored image's bytes (downloaded from its url) and metadata, by its facesync_key."""

    def fetch(url: str) -> bytes:
        with urllib.request.urlopen(url, timeout=30) as answer:
            data: bytes = answer.read()
            return data

    return {str(i.metadata["facesync_key"]): (fetch(i.url), i.metadata) for i in emulator.images()}


def close(pixel: object, colour: tuple[int, int, int], tolerance: int = 24) -> bool:
    assert isinstance(pixel, tuple)
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True))


def adds(emulator: EmulatorThread) -> int:
    return sum(1 for r in emulator.requests() if r.method == "POST" and r.path.endswith("/images"))


async def test_each_photo_arrives_as_an_upright_srgb_jpeg_no_longer_than_max_side(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    small = jpeg_bytes(5, (500, 400))
    files = {
        "camera/IMG_0001.jpg": camera_photo(1),
        "phone/rotated.jpg": rotated_photo(),
        "print/cmyk.jpg": cmyk_photo(),
        "web/logo.png": png_with_alpha(),
        "phone/IMG_0002.heic": heic_photo(),
        "small/as-is.jpg": small,
    }
    write_files(tmp_path / "archive", files)
    config = make_config(emulator.base_url, tmp_path, transform={"max_side": MAX_SIDE})

    report, log = await sync(config)

    assert (report.exit_code, report.added, report.transformed) == (0, 6, 5), log
    sent = stored(emulator)
    assert sent["small/as-is.jpg"][0] == small  # a file that needs no change is sent as it is
    pictures = {}
    for key, (data, metadata) in sent.items():
        img = Image.open(io.BytesIO(data))
        assert (img.format, img.mode) == ("JPEG", "RGB"), key
        assert max(img.size) <= MAX_SIDE, key
        assert "icc_profile" not in img.info and 0x0112 not in img.getexif(), key  # sRGB, no rotation left
        # the metadata keeps the original's hash; the settings it was made with are named
        assert metadata[SHA_FIELD] == sha(files[key]), key
        assert metadata[TRANSFORM_FIELD] == signature(config.transform), key
        pictures[key] = img.convert("RGB")
    assert pictures["camera/IMG_0001.jpg"].size == (1000, 667)
    upright = pictures["phone/rotated.jpg"]
    assert upright.size == (667, 1000)
    assert close(upright.getpixel((333, 100)), RED) and close(upright.getpixel((333, 900)), BLUE)
    assert close(pictures["print/cmyk.jpg"].getpixel((450, 300)), RED)
    logo = pictures["web/logo.png"]
    assert close(logo.getpixel((100, 100)), GREEN) and close(logo.getpixel((800, 500)), WHITE)
    assert pictures["phone/IMG_0002.heic"].size == (1000, 750)
    rows = state_rows(config)
    assert {k: (r.status, r.sha256, r.transform) for k, r in rows.items()} == {
        k: (Status.SYNCED, sha(data), signature(config.transform)) for k, data in files.items()
    }
    again, log = await sync(config)
    assert (again.unchanged, again.requests) == (6, 0), log


async def test_transform_off_sends_the_files_as_they_are(emulator: EmulatorThread, tmp_path: Path) -> None:
    files = {"camera/IMG_0001.jpg": camera_photo(2, (3000, 2000)), "web/logo.png": png_with_alpha()}
    write_files(tmp_path / "archive", files)
    config = make_config(emulator.base_url, tmp_path)

    report, log = await sync(config)

    assert (report.exit_code, report.added, report.transformed) == (0, 2, 0), log
    assert {k: data for k, (data, _) in stored(emulator).items()} == files
    assert all(TRANSFORM_FIELD not in i.metadata for i in emulator.images())
    assert {r.transform for r in state_rows(config).values()} == {None}


async def test_changing_max_side_replaces_every_image_once_with_no_duplicate(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    files = {f"album/IMG_{i:03d}.jpg": jpeg_bytes(i, (900, 600)) for i in range(8)}
    write_files(tmp_path / "archive", files)
    first = make_config(emulator.base_url, tmp_path, transform={"max_side": 600})
    assert (await sync(first))[0].added == 8
    config = make_config(emulator.base_url, tmp_path, transform={"max_side": 300})
    before = adds(emulator)

    assert status(config)["transform"] == {"settings": signature(config.transform), "synced_otherwise": 8}

    refused, log = await sync(config)  # every image would be replaced: over the 10% guard

    assert refused.exit_code == EXIT_GUARD and adds(emulator) == before, log
    assert "8 image(s) sent with other transform settings" in (refused.error or "")
    preview, log = await sync(config, dry_run=True, max_delete=8)
    assert (preview.exit_code, preview.planned, preview.transformed) == (0, {"replace": 8}, 8), log
    assert adds(emulator) == before

    done, log = await sync(config, max_delete=8)

    assert (done.exit_code, done.replaced, done.added, done.transformed) == (0, 8, 0, 8), log
    assert adds(emulator) == before + 8  # each image once
    settled, log = await reconcile(config)
    assert settled.exit_code == 0, log
    assert (settled.orphans, settled.deleted, settled.duplicates_removed) == (0, 0, 0)
    sent = stored(emulator)
    assert sorted(sent) == sorted(files)  # one image per file
    assert all(max(Image.open(io.BytesIO(data)).size) <= 300 for data, _ in sent.values())
    assert {k: m[SHA_FIELD] for k, (_, m) in sent.items()} == {k: sha(d) for k, d in files.items()}
    nightly, log = await sync(config)
    assert (nightly.unchanged, nightly.requests) == (8, 0), log
    assert status(config)["transform"]["synced_otherwise"] == 0
    assert "transform  v1 jpeg q85 300px" in "\n".join(status_lines(status(config)))


async def test_a_heic_the_service_refused_is_sent_converted_once_the_transform_is_on(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    files = {"IMG_0001.heic": heic_photo(), "IMG_0002.jpg": jpeg_bytes(2, (400, 300))}
    write_files(tmp_path / "archive", files)
    off = make_config(emulator.base_url, tmp_path, limits={"max_delete": "100%"})
    refused, log = await sync(off)
    assert (refused.added, dict(refused.rejected)) == (1, {"3": 1}), log  # the service takes no HEIC

    converted, log = await sync(replace(off, transform=replace(off.transform, enabled=True)))

    # the refused file is tried again under the new settings; the JPEG, sent as it was, once more
    assert (converted.added, converted.replaced, converted.transformed, dict(converted.rejected)) == (
        1,
        1,
        1,
        {},
    ), log
    assert Counter(Image.open(io.BytesIO(d)).format for d, _ in stored(emulator).values()) == {"JPEG": 2}


async def test_renames_search_and_adopt_work_on_the_original_files(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    root = tmp_path / "archive"
    files = {f"2019/IMG_{i:03d}.jpg": camera_photo(10 + i, (2400, 1600)) for i in range(3)}
    files["phone/IMG_0100.heic"] = heic_photo(20)
    write_files(root, files)
    config = make_config(emulator.base_url, tmp_path, transform={"max_side": 800})
    assert (await sync(config))[0].transformed == 4
    (root / "2019/IMG_000.jpg").rename(root / "2019/renamed.jpg")

    moved, log = await sync(config)

    assert (moved.renamed, moved.added, moved.replaced, moved.removed) == (1, 0, 0, 0), log
    query = tmp_path / "query.heic"  # the original photo, as a phone has it: converted the same way
    query.write_bytes(files["phone/IMG_0100.heic"])
    matches = await search(config, query)
    assert matches[0]["key"] == "phone/IMG_0100.heic" and matches[0]["known"]
    for suffix in ("", "-wal", "-shm"):
        Path(f"{config.state.path}{suffix}").unlink(missing_ok=True)
    adopted, log = await reconcile(config, adopt=True)
    assert (adopted.exit_code, adopted.restored, adopted.restored_changed) == (0, 4, 0), log
    after, log = await sync(config)
    assert (after.exit_code, after.unchanged, after.requests) == (0, 4, 0), log


def noise_photo(seed: int, size: tuple[int, int] = (600, 450)) -> bytes:
    """Random pixels: the JPEG that compresses worst."""
    rng = random.Random(seed)
    return encoded(Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3)), "JPEG", quality=95)


#: The emulator's body limit in the size-fitting tests: under what a 600x450 noise JPEG takes.
LIMIT = 200_000


def behind_a_body_limit(emulator: EmulatorThread, tmp_path: Path, files: dict[str, bytes]) -> Config:
    """``files`` in the archive, the emulator refusing bodies over :data:`LIMIT`; the transform on."""
    emulator.configure(max_body_bytes=LIMIT)
    write_files(tmp_path / "archive", files)
    return make_config(emulator.base_url, tmp_path, transform={"max_side": 1600})


async def test_a_body_refused_as_too_large_is_sent_again_smaller_and_remembered(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    files = {"noise.jpg": noise_photo(1), "tiny.jpg": jpeg_bytes(3)}
    config = behind_a_body_limit(emulator, tmp_path, files)

    report, log = await sync(config)

    assert (report.exit_code, report.added, dict(report.rejected)) == (0, 2, {}), log
    assert "re-encoded" in log
    outcomes = Counter(r.http_status for r in emulator.requests() if r.method == "POST")
    assert outcomes[413] >= 1 and outcomes[200] == 2
    assert all(4 * i.size / 3 < LIMIT for i in emulator.images())  # its base64 fitted in the body
    with State.open(config.state.path) as state:
        assert 0 < state.learned(LEARNED_BODY) <= 2 * LIMIT
    write_files(tmp_path / "archive", {"later.jpg": noise_photo(2)})
    before = len(emulator.requests())
    later, log = await sync(config)  # the next run fits it under what was refused: no 413 spent
    assert later.added == 1 and [r.http_status for r in emulator.requests()[before:]] == [200], log


async def test_a_measured_body_limit_fits_images_before_they_are_sent_and_what_cannot_fit_is_refused(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    files = {"noise.jpg": noise_photo(1), "other.jpg": noise_photo(2)}
    plain = behind_a_body_limit(emulator, tmp_path, files)
    measured = ServiceProfile(
        endpoint=emulator.base_url, measured_at=0.0, max_body_bytes=LIMIT, body_refused=LIMIT + 1
    )
    config = applied(plain, measured)

    report, log = await sync(config)

    assert (report.added, report.transformed) == (2, 2), log
    assert {r.http_status for r in emulator.requests() if r.method == "POST"} == {200}
    emulator.configure(max_body_bytes=3_000)  # under anything MIN_SIDE pixels of noise can be
    write_files(tmp_path / "archive", {"third.jpg": noise_photo(3)})
    given_up, log = await sync(config)
    assert (given_up.added, dict(given_up.rejected)) == (0, {"6": 1}), log
    assert state_rows(config)["third.jpg"].status is Status.REJECTED
