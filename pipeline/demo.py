"""``make demo``: the main job end to end on the embedded emulator, no credentials needed.

It makes a small archive (a few dozen photos drawn with Pillow, a couple of broken files among
them), syncs it, shows ``status``, changes a few files, syncs again, and shows the difference;
the archive holds a Google Takeout export too, two zip parts read in place, whose sidecars name the
faces: the search finds one of its photos and shows the names. It ends by writing the HTML pages
(``demo/search.html``, ``demo/report.html``) and saying where. Everything lives under ``demo/`` (its
own config, state and emulator data), rebuilt on each run.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path("demo")
ALBUMS = ("2019 Hanoi", "2021 Da Nang", "family", "family/grandparents")
CONFIG = """\
# written by `make demo`; the embedded emulator stands in for the service
api:
  base_url: embedded
source:
  path: archive               # relative to this file's folder (demo/)
  archives: true              # the Google Takeout zips in it are read in place, as if unpacked
state:
  path: state/facesync.db
limits:
  concurrency: 8
  max_delete: 50%
metadata:
  album: "{album}"
  people: "{people}"          # the names of the faces: from a Takeout sidecar, or the photo's XMP
"""


#: The Takeout export: (member, seed of its photo, the people in its sidecar, its sidecar's name).
TAKEOUT_ALBUM = "Takeout/Google Photos/Tết 2020/"
TAKEOUT = (
    ("IMG_0001.jpg", 3001, ("Lan", "Minh"), "IMG_0001.jpg.json"),
    ("IMG_0001(1).jpg", 3002, ("Hoa",), "IMG_0001.jpg(1).json"),
    ("IMG_0002.jpg", 3003, ("Minh", "Binh"), "IMG_0002.jpg.supplemental-metadata.json"),
    ("IMG_0002-edited.jpg", 3004, (), None),  # an edited copy: its original's sidecar
)


def draw_photo(path: Path, seed: int) -> None:
    """A distinct little picture: a gradient sky and a few shapes, different for every seed."""
    rng = random.Random(seed)
    w, h = 320, 240
    img = Image.new("RGB", (w, h))
    top = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
    bottom = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
    draw = ImageDraw.Draw(img)
    for y in range(h):
        t = y / (h - 1)
        draw.line(
            [(0, y), (w, y)], fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
        )
    for _ in range(6):
        x0, y0 = rng.randrange(w), rng.randrange(h)
        x1, y1 = x0 + rng.randrange(20, 120), y0 + rng.randrange(20, 120)
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x0, y0, x1, y1], fill=colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".png":
        img.save(path, "PNG")
    else:
        img.save(path, "JPEG", quality=85)


def zero_by_zero_png() -> bytes:
    """A well-formed PNG that claims 0×0 pixels: it passes facesync's local checks, the service refuses it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 0, 0, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def make_archive(root: Path) -> None:
    n = 0
    for album in ALBUMS:
        for i in range(8):
            n += 1
            draw_photo(root / album / f"IMG_{n:04d}.{'png' if i % 4 == 3 else 'jpg'}", seed=n)
    (root / "family" / "notes.jpg").write_text("this is a text file with a .jpg name\n")
    (root / "2019 Hanoi" / "empty.jpg").write_bytes(b"")
    good = (root / "family" / "IMG_0017.jpg").read_bytes()
    (root / "family" / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (root / "family" / "blank.png").write_bytes(
        zero_by_zero_png()
    )  # whole, but no pixels: the service refuses it
    (root / "README.txt").write_text("not a photo: ignored by extension\n")


def make_takeout(folder: Path, query: Path) -> None:
    """Two Takeout parts, split as Google splits one (a photo in one part, its sidecar in the other);
    the edited copy's photo is also written to ``query``, to search with."""
    scratch = query
    members: list[tuple[str, bytes]] = []
    for name, seed, people, sidecar in TAKEOUT:
        draw_photo(scratch, seed)
        members.append((TAKEOUT_ALBUM + name, scratch.read_bytes()))
        if sidecar is not None:
            when = 1580000000 + seed
            meta = {
                "title": name,
                "photoTakenTime": {"timestamp": str(when)},
                "people": [{"name": p} for p in people],
            }
            members.append((TAKEOUT_ALBUM + sidecar, json.dumps(meta).encode()))
    for part, chunk in (("001", members[::2]), ("002", members[1::2])):
        with zipfile.ZipFile(folder / f"takeout-20240501T000000Z-{part}.zip", "w") as zf:
            for member, data in chunk:
                zf.writestr(member, data)


def step(title: str) -> None:
    print(f"\n\033[1m== {title}\033[0m" if sys.stdout.isatty() else f"\n== {title}", flush=True)


def installed_command() -> str:
    """How to run facesync from this shell: the console script beside this Python (``.venv/bin/facesync``
    after ``make demo``), which works whether or not the venv is activated."""
    script = Path(sys.executable).with_name("facesync")
    if not script.exists():
        return f"{sys.executable} -m pipeline"
    try:
        shown = os.path.relpath(script)
    except ValueError:  # another drive (Windows)
        return str(script)
    if shown.startswith(".."):
        return str(script)
    return shown if shown.startswith(".") else f"./{shown}"


def facesync(*args: str) -> int:
    cmd = [sys.executable, "-m", "pipeline", "--config", str(ROOT / "facesync.yaml"), *args]
    print(f"$ {installed_command()} --config demo/facesync.yaml " + " ".join(args), flush=True)
    return subprocess.call(cmd)


def main() -> int:
    if ROOT.exists():
        shutil.rmtree(ROOT)
    (ROOT / "state").mkdir(parents=True)
    (ROOT / "facesync.yaml").write_text(CONFIG)
    step(
        "1. A small archive: 32 photos in 4 albums, 4 broken files, a README, and a Google Takeout export"
        " (2 zip parts, 4 photos, sidecars naming the faces)"
    )
    make_archive(ROOT / "archive")
    make_takeout(ROOT / "archive", ROOT / "query.jpg")
    print(f"made {sum(1 for p in (ROOT / 'archive').rglob('*') if p.is_file())} files under demo/archive")

    step("2. First sync: every valid photo is uploaded; broken files are skipped or refused, with a reason")
    facesync("sync")
    step("3. Status")
    facesync("status")

    step("4. A second sync sends nothing: unchanged files are not even read")
    facesync("sync")

    step("5. Change the archive: edit 2 photos, add 3, delete 2, retouch 1 (mtime only)")
    archive = ROOT / "archive"
    draw_photo(archive / "family" / "IMG_0018.jpg", seed=1018)
    draw_photo(archive / "2021 Da Nang" / "IMG_0010.jpg", seed=1010)
    for i in range(3):
        draw_photo(archive / "2023 Hue" / f"IMG_{100 + i:04d}.jpg", seed=2000 + i)
    (archive / "2019 Hanoi" / "IMG_0001.jpg").unlink()
    (archive / "2019 Hanoi" / "IMG_0002.jpg").unlink()
    os.utime(archive / "family" / "IMG_0019.jpg")  # only the mtime changes: hashed, not re-sent
    facesync("sync", "--dry-run")
    step("6. Sync again: only the difference is sent")
    code = facesync("sync", "--json")
    step("7. What was skipped locally (no request spent) and what the service refused, and why")
    facesync("ls", "--status", "skipped")
    facesync("ls", "--status", "rejected")
    step("8. Who is this? Search answers with the archive files the matches came from, and their names")
    facesync("search", str(ROOT / "query.jpg"), "--html", str(ROOT / "search.html"))
    step("9. Look, don't read: the archive as one HTML page (counts, last runs, refused files as thumbnails)")
    facesync("report", "--html", str(ROOT / "report.html"))
    print(f"\nReport: {(ROOT / 'report.html').resolve().as_uri()}  (open it in a browser)")
    print(f"Search: {(ROOT / 'search.html').resolve().as_uri()}")
    print(f"\nDone. Try: {installed_command()} --config demo/facesync.yaml --help")
    print("(or `source .venv/bin/activate` first; for real use install it with `pipx install .`)")
    return code


if __name__ == "__main__":
    sys.exit(main())
