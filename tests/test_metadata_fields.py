"""The photo fields of a template (``{people}``, ``{taken}``...): read from the file's XMP and EXIF and
its sidecar, on real JPEGs built here, and synced as metadata — an edited sidecar is a PUT, not an upload."""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from pipeline.config import KEY_FIELD
from pipeline.emulator import EmulatorThread
from pipeline.engine.metadata import MetadataBuilder
from pipeline.engine.photo import photo_fields
from pipeline.errors import ConfigError
from tests.helpers import make_config, state_rows, sync, write_files
from tests.imagefactory import image_for, jpeg_bytes

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"


def with_xmp(jpeg: bytes, description: str) -> bytes:
    """``jpeg`` with an XMP packet (one ``rdf:Description``) in an APP1 segment after SOI, as
    Lightroom, digiKam and exiftool write it."""
    packet = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        f'<rdf:RDF xmlns:rdf="{RDF}">{description}</rdf:RDF>'
        '</x:xmpmeta><?xpacket end="w"?>'
    ).encode()
    body = b"http://ns.adobe.com/xap/1.0/\x00" + packet
    assert jpeg[:2] == b"\xff\xd8"
    return jpeg[:2] + b"\xff\xe1" + (len(body) + 2).to_bytes(2, "big") + body + jpeg[2:]


MWG = """<rdf:Description rdf:about="" xmlns:mwg-rs="http://www.metadataworkinggroup.com/schemas/regions/"
  xmlns:stArea="http://ns.adobe.com/xmp/sType/Area#" xmlns:dc="http://purl.org/dc/elements/1.1/">
 <mwg-rs:Regions rdf:parseType="Resource">
  <mwg-rs:RegionList><rdf:Bag>
   <rdf:li><rdf:Description mwg-rs:Name="Minh" mwg-rs:Type="Face">
     <mwg-rs:Area stArea:x="0.3" stArea:y="0.4" stArea:w="0.1" stArea:h="0.2" stArea:unit="normalized"/>
   </rdf:Description></rdf:li>
   <rdf:li><rdf:Description><mwg-rs:Name>Lan</mwg-rs:Name><mwg-rs:Type>Face</mwg-rs:Type>
   </rdf:Description></rdf:li>
   <rdf:li><rdf:Description mwg-rs:Name="Mochi" mwg-rs:Type="Pet"/></rdf:li>
  </rdf:Bag></mwg-rs:RegionList>
 </mwg-rs:Regions>
 <dc:title><rdf:Alt><rdf:li xml:lang="vi">Tết</rdf:li>
  <rdf:li xml:lang="x-default">New Year</rdf:li></rdf:Alt></dc:title>
 <dc:description><rdf:Alt><rdf:li xml:lang="x-default">At grandma's</rdf:li></rdf:Alt></dc:description>
 <dc:subject><rdf:Bag><rdf:li>family</rdf:li><rdf:li>tet</rdf:li><rdf:li>family</rdf:li></rdf:Bag></dc:subject>
</rdf:Description>"""

IPTC = """<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/">
 <Iptc4xmpExt:PersonInImage><rdf:Bag><rdf:li>Hoa</rdf:li><rdf:li>Binh</rdf:li></rdf:Bag></Iptc4xmpExt:PersonInImage>
</rdf:Description>"""

MICROSOFT = """<rdf:Description rdf:about="" xmlns:MP="http://ns.microsoft.com/photo/1.2/"
  xmlns:MPRI="http://ns.microsoft.com/photo/1.2/t/RegionInfo#" xmlns:MPReg="http://ns.microsoft.com/photo/1.2/t/Region#">
 <MP:RegionInfo rdf:parseType="Resource"><MPRI:Regions><rdf:Bag>
  <rdf:li MPReg:Rectangle="0.1, 0.1, 0.2, 0.2" MPReg:PersonDisplayName="Tuan"/>
  <rdf:li><rdf:Description MPReg:Rectangle="0.5, 0.5, 0.2, 0.2" MPReg:PersonDisplayName="Mai"/></rdf:li>
 </rdf:Bag></MPRI:Regions></MP:RegionInfo>
</rdf:Description>"""


def with_exif(seed: int, *, taken: str = "2019:05:01 15:30:00", offset: str | None = "+07:00") -> bytes:
    """A JPEG whose EXIF Pillow writes: DateTimeOriginal (and OffsetTimeOriginal), Make, Model, GPS."""
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x0110] = "Canon EOS 5D"
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = taken
    if offset is not None:
        sub[0x9011] = offset
    exif.get_ifd(0x8825).update({1: "N", 2: (21.0, 1.0, 42.6), 3: "E", 4: (105.0, 51.0, 15.12)})
    out = io.BytesIO()
    image_for(seed).save(out, "JPEG", exif=exif)
    return out.getvalue()


def test_mwg_face_regions_give_the_names_of_the_faces_not_the_pets() -> None:
    fields = photo_fields(with_xmp(jpeg_bytes(1), MWG))
    assert fields == {
        "people": "Lan, Minh",
        "title": "New Year",
        "description": "At grandma's",
        "keywords": "family, tet",
    }


def test_iptc_person_in_image_and_windows_regions_give_people() -> None:
    assert photo_fields(with_xmp(jpeg_bytes(2), IPTC)) == {"people": "Binh, Hoa"}
    assert photo_fields(with_xmp(jpeg_bytes(3), MICROSOFT)) == {"people": "Mai, Tuan"}


def test_exif_gives_the_time_taken_in_utc_the_camera_and_the_place() -> None:
    assert photo_fields(with_exif(4)) == {
        "taken": "2019-05-01T08:30:00+00:00",
        "camera": "Canon EOS 5D",
        "lat": "21.0285",
        "lon": "105.8542",
    }


def test_a_time_without_its_zone_stays_local_and_a_file_without_metadata_gives_nothing() -> None:
    assert photo_fields(with_exif(5, offset=None))["taken"] == "2019-05-01T15:30:00"
    assert photo_fields(jpeg_bytes(6)) == {}
    assert photo_fields(b"not an image at all") == {}
    assert photo_fields(with_xmp(jpeg_bytes(7), "<unclosed")) == {}


def test_a_missing_field_renders_empty_or_its_default_and_the_sidecar_comes_first() -> None:
    builder = MetadataBuilder({"who": "{people}", "when": "{taken:unknown}", "what": "{title} ({camera})"})
    facts = {"size": 1, "mtime_ns": 0, "sha256": "s", "token": "t"}
    bare = builder.build("a.jpg", data=jpeg_bytes(1), **facts)  # type: ignore[arg-type]
    assert (bare["who"], bare["when"], bare["what"]) == ("", "unknown", " ()")
    takeout = {"title": "Hồ Gươm", "photoTakenTime": {"timestamp": "0"}, "people": [{"name": "Lan"}]}
    both = builder.build("a.jpg", data=with_exif(1), sidecar=takeout, **facts)  # type: ignore[arg-type]
    assert (both["who"], both["when"], both["what"]) == (
        "Lan",
        "1970-01-01T00:00:00+00:00",
        "Hồ Gươm (Canon EOS 5D)",
    )
    assert "photoTakenTime" not in both  # a Takeout sidecar gives fields, it is not merged as it is


def test_photo_fields_are_known_to_the_config_and_a_typo_is_still_refused(tmp_path: Path) -> None:
    ok = make_config("http://127.0.0.1:9", tmp_path, metadata={"people": "{people}", "t": "{taken:?}"})
    assert dict(ok.metadata) == {"people": "{people}", "t": "{taken:?}"}
    with pytest.raises(ConfigError, match=r"unknown field \{peple\}"):
        make_config("http://127.0.0.1:9", tmp_path, metadata={"people": "{peple}"})


def test_without_a_photo_field_the_signature_is_what_it_was() -> None:
    """An existing state's meta_hash stays valid: no PUT for every image after an upgrade."""
    builder = MetadataBuilder({"album": "{album}"})
    assert not builder.reads_file
    rendered = json.dumps({"album": "a"}, sort_keys=True)  # the signature as it was computed before
    assert builder.signature("a/b.jpg", size=1, mtime_ns=2, sha256="x", sidecar=None) == (
        hashlib.sha256(rendered.encode()).hexdigest()[:16] + "|"
    )


def by_key(emulator: EmulatorThread) -> dict[str, dict[str, object]]:
    return {str(i.metadata[KEY_FIELD]): dict(i.metadata) for i in emulator.images() if i.metadata}


async def test_names_written_in_the_files_sync_as_people_and_a_sidecar_edit_is_one_put(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    root = tmp_path / "archive"
    write_files(
        root,
        {"mwg.jpg": with_xmp(jpeg_bytes(1), MWG), "iptc.jpg": with_xmp(jpeg_bytes(2), IPTC),
         "ms.jpg": with_xmp(jpeg_bytes(3), MICROSOFT), "exif.jpg": with_exif(4)},
    )  # fmt: skip
    takeout = {"title": "Tết", "photoTakenTime": {"timestamp": "1556699400"}}
    (root / "mwg.jpg.json").write_text(json.dumps(takeout))
    template = {"people": "{people}", "taken": "{taken:unknown}", "title": "{title}"}
    config = make_config(emulator.base_url, tmp_path, metadata=template)

    report, log = await sync(config)

    assert report.exit_code == 0 and report.added == 4, log
    meta = by_key(emulator)
    got = {k: (m["people"], m["taken"], m["title"]) for k, m in meta.items()}
    assert got == {
        "mwg.jpg": ("Lan, Minh", "2019-05-01T08:30:00+00:00", "Tết"),  # the sidecar before the XMP
        "iptc.jpg": ("Binh, Hoa", "unknown", ""),
        "ms.jpg": ("Mai, Tuan", "unknown", ""),
        "exif.jpg": ("", "2019-05-01T08:30:00+00:00", ""),
    }
    since = len(emulator.requests())

    (root / "mwg.jpg.json").write_text(json.dumps(takeout | {"title": "Tết 2019"}))
    os.utime(root / "mwg.jpg.json", ns=(1, 2_000_000_000_000))
    report, log = await sync(config)

    assert report.exit_code == 0 and (report.added, report.metadata_updated) == (0, 1), log
    assert Counter(r.method for r in emulator.requests()[since:]) == {"PUT": 1}
    assert by_key(emulator)["mwg.jpg"]["title"] == "Tết 2019"
    assert by_key(emulator)["mwg.jpg"]["people"] == "Lan, Minh"  # read again from the file for the PUT
    again, _ = await sync(config)
    assert again.requests == 0


async def test_adding_a_photo_field_to_the_template_is_puts_not_uploads(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    write_files(tmp_path / "archive", {"a.jpg": with_xmp(jpeg_bytes(1), MWG), "b.jpg": jpeg_bytes(2)})
    first = make_config(emulator.base_url, tmp_path, metadata={"album": "{album}"})
    assert (await sync(first))[0].exit_code == 0
    since = len(emulator.requests())

    edited = make_config(emulator.base_url, tmp_path, metadata={"album": "{album}", "people": "{people}"})
    report, log = await sync(edited)

    assert report.exit_code == 0 and (report.added, report.metadata_updated) == (0, 2), log
    assert Counter(r.method for r in emulator.requests()[since:]) == {"PUT": 2}
    assert {k: m["people"] for k, m in by_key(emulator).items()} == {"a.jpg": "Lan, Minh", "b.jpg": ""}
    assert all(r.meta_hash for r in state_rows(edited).values())
    assert (await sync(edited))[0].requests == 0
