"""What a photo says about itself: the names, captions and keywords in its XMP, the date, camera and
place in its EXIF — the template's photo fields (``{people}``, ``{taken}``...), read from bytes.

Photo managers write the names of the faces into the file: XMP face regions (``mwg-rs:Regions``:
Lightroom, digiKam, Picasa, Apple Photos exports; ``MP:RegionInfo``: Windows Photo Gallery) and IPTC
Extension ``PersonInImage``. Pillow finds the XMP packet and the EXIF without decoding a pixel; the
XMP is parsed with defusedxml (a file is untrusted input: no entity expansion). Anything unreadable
gives no field rather than an error: a photo without metadata is still a photo.
"""

from __future__ import annotations

import io
import struct
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring
from PIL import Image, UnidentifiedImageError

from pipeline.sources.takeout import coordinate, join_names

_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_DC = "{http://purl.org/dc/elements/1.1/}"
_MWG_RS = "{http://www.metadataworkinggroup.com/schemas/regions/}"
_MP_REG = "{http://ns.microsoft.com/photo/1.2/t/Region#}"
_IPTC_EXT = "{http://iptc.org/std/Iptc4xmpExt/2008-02-29/}"
_LR = "{http://ns.adobe.com/lightroom/1.0/}"

_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_MAKE, _MODEL, _DATETIME = 0x010F, 0x0110, 0x0132
_DATETIME_ORIGINAL, _OFFSET_ORIGINAL = 0x9003, 0x9011


def photo_fields(data: bytes) -> dict[str, str]:
    """The photo fields the file's own metadata gives, XMP before EXIF; {} for none (or no image)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a decompression-bomb size, an odd EXIF: not our concern here
            with Image.open(io.BytesIO(data)) as im:
                xmp = im.info.get("xmp")
                exif = im.getexif()
                found = exif_fields(exif)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, struct.error):
        return {}
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    if isinstance(xmp, bytes) and xmp:
        found.update(xmp_fields(xmp))
    return found


# -- XMP ---------------------------------------------------------------------------------------------------
def xmp_fields(packet: bytes) -> dict[str, str]:
    """``people`` (face regions, ``PersonInImage``), ``title``, ``description`` and ``keywords`` of an
    XMP packet; {} when it is not XML."""
    try:
        root = fromstring(packet.strip(b"\x00 \r\n\t"))
    except (ParseError, DefusedXmlException, ValueError):
        return {}
    out: dict[str, str] = {}
    people = join_names(_face_names(root))
    if people:
        out["people"] = people
    for field, tag in (("title", _DC + "title"), ("description", _DC + "description")):
        text = _alt_text(root.iter(tag))
        if text:
            out[field] = text
    keywords = join_names(_list_items(root.iter(_DC + "subject")))
    if keywords:
        out["keywords"] = keywords
    return out


def _face_names(root: Element) -> Iterator[str]:
    """The names of the faces: MWG regions of type Face (or untyped), Microsoft's regions, and IPTC
    Extension's PersonInImage. A property may be an attribute or a child element (both are RDF)."""
    for node in root.iter():
        name = _prop(node, _MWG_RS + "Name")
        if name and (_prop(node, _MWG_RS + "Type") or "Face") == "Face":
            yield name
        name = _prop(node, _MP_REG + "PersonDisplayName")
        if name:
            yield name
    yield from _list_items(root.iter(_IPTC_EXT + "PersonInImage"))


def _prop(node: Element, tag: str) -> str | None:
    """An RDF property of a ``rdf:Description`` node, written as an attribute or a simple child."""
    value = node.get(tag)
    if value is None:
        child = node.find(tag)
        value = child.text if child is not None and len(child) == 0 else None
    return value.strip() if value and value.strip() else None


def _list_items(props: Iterator[Element]) -> Iterator[str]:
    """The ``rdf:li`` texts of ``rdf:Bag``/``rdf:Seq`` properties."""
    for prop in props:
        for li in prop.iter(_RDF + "li"):
            if li.text and li.text.strip():
                yield li.text.strip()


def _alt_text(props: Iterator[Element]) -> str | None:
    """A language alternative's text: ``x-default``, else the first."""
    for prop in props:
        items = [li for li in prop.iter(_RDF + "li") if li.text and li.text.strip()]
        if items:
            default = [li for li in items if li.get(_XML_LANG) == "x-default"]
            return (default or items)[0].text.strip()  # type: ignore[union-attr]
        if prop.text and prop.text.strip():
            return prop.text.strip()
    return None


# -- EXIF --------------------------------------------------------------------------------------------------
def exif_fields(exif: Any) -> dict[str, str]:
    """``taken`` (DateTimeOriginal, in UTC when OffsetTimeOriginal gives the zone), ``camera`` (make
    and model) and ``lat``/``lon`` (GPS) of a Pillow ``Exif``."""
    out: dict[str, str] = {}
    sub = exif.get_ifd(_EXIF_IFD)
    taken = _taken(sub.get(_DATETIME_ORIGINAL) or exif.get(_DATETIME), sub.get(_OFFSET_ORIGINAL))
    if taken:
        out["taken"] = taken
    make, model = _text(exif.get(_MAKE)), _text(exif.get(_MODEL))
    camera = model if make and model and model.lower().startswith(make.lower()) else f"{make} {model}"
    if camera.strip():
        out["camera"] = camera.strip()
    gps = exif.get_ifd(_GPS_IFD)
    lat, lon = _degrees(gps.get(2), gps.get(1)), _degrees(gps.get(4), gps.get(3))
    if lat is not None and lon is not None and -90 <= lat <= 90 and -180 <= lon <= 180:
        out["lat"], out["lon"] = coordinate(lat), coordinate(lon)
    return out


def _text(value: object) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value.strip("\x00 ").strip() if isinstance(value, str) else ""


def _taken(value: object, offset: object) -> str | None:
    """EXIF's ``YYYY:MM:DD HH:MM:SS`` as ISO 8601: in UTC given an offset (``+07:00``), else local."""
    text = _text(value)
    try:
        when = datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    zone = _text(offset)
    if len(zone) == 6 and zone[0] in "+-" and zone[3] == ":" and zone[1:3].isdigit() and zone[4:].isdigit():
        delta = timedelta(hours=int(zone[1:3]), minutes=int(zone[4:]))
        aware = when.replace(tzinfo=timezone(-delta if zone[0] == "-" else delta))
        return aware.astimezone(UTC).isoformat(timespec="seconds")
    return when.isoformat(timespec="seconds")


def _degrees(value: object, ref: object) -> float | None:
    """A GPS coordinate (degrees, minutes, seconds as rationals) as signed degrees."""
    if not isinstance(value, tuple) or len(value) != 3:
        return None
    try:
        degrees = float(value[0]) + float(value[1]) / 60 + float(value[2]) / 3600
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return -degrees if _text(ref).upper() in ("S", "W") else degrees
