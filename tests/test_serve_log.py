"""``facesync serve --log`` prints one line per request on stdout — time, method, path, HTTP status, the
API's status_code, bytes in and out, ms — escaped, and never a credential; off when stdout is not a
terminal unless asked. Real ``facesync serve`` processes, real HTTP requests."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.imagefactory import jpeg_bytes

KEY, SECRET = "team-key", "S3cret-never-shown"
GOOD = "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (GET|POST|PUT|DELETE) (\S+)(?: .*)? "
    r"(HTTP \d{3}|no answer)(, status_code \d+)?, \d+ B in, \d+ B out, \d+\.\d ms( \(\w+\))?$"
)


@contextmanager
def serving(tmp_path: Path, *options: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``facesync serve --port 0`` with the team's credentials (and ``options``): its API base URL."""
    server = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "serve", "--port", "0", "--data", str(tmp_path / "serve"),
         "--api-key", KEY, "--api-secret", SECRET, *options],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = server.stderr.readline() if server.stderr else ""
        assert "serving " in line, line
        yield line.split("serving ", 1)[1].split(" ", 1)[0], server
    finally:
        server.kill()
        server.wait(10)


def call(url: str, method: str = "GET", body: bytes | None = None, auth: str | None = GOOD) -> int:
    request = urllib.request.Request(url, data=body, method=method, headers={"Authorization": auth or ""})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as refused:
        refused.close()
        return int(refused.code)


def output(server: subprocess.Popen[str]) -> str:
    server.kill()
    out, _ = server.communicate(timeout=10)
    return out


def test_serve_log_prints_one_escaped_line_per_request_without_credentials(tmp_path: Path) -> None:
    image = base64.b64encode(jpeg_bytes(1)).decode()
    with serving(tmp_path, "--log") as (api, server):
        assert call(f"{api}/images?offset=0&limit=5&api_secret={SECRET}&{SECRET}=1") == 200
        assert call(f"{api}/images", "POST", json.dumps({"image": {"base64": image}}).encode()) == 200
        assert call(f"{api}/images", auth="Basic bm9ib2R5Om5vcGU=") == 401
        assert call(f"{api}/{SECRET}/%1b%5b2Jcleared%0afacesync:%20forged") == 404
        assert call(f"{api.split('/api/')[0]}/_emulator/settings") == 200
        text = output(server)

    lines = text.splitlines()
    assert len(lines) == 5, text
    assert SECRET not in text and KEY not in text
    assert "\x1b" not in text and not any(line.startswith("facesync: forged") for line in lines)
    for line in lines:
        assert LINE.match(line), line
    listed, added, refused, hostile, control = lines
    assert (
        " GET /api/v2/face_search/images?offset=0&limit=5 (+2 query parameter(s) not shown) HTTP 200"
        in listed
    )
    assert ", status_code 0, 0 B in, " in listed
    assert " POST /api/v2/face_search/images HTTP 200, status_code 0, " in added
    assert int(added.split(", ")[2].split()[0]) > len(image)  # the bytes in: the body
    assert refused.endswith("(auth)") and "HTTP 401, status_code 5" in refused
    assert " /api/v2/face_search/<secret>/\\x1b[2Jcleared\\nfacesync: forged HTTP 404" in hostile
    assert " GET /_emulator/settings HTTP 200, 0 B in, " in control


def test_serve_without_a_terminal_logs_nothing_unless_asked(tmp_path: Path) -> None:
    with serving(tmp_path) as (api, server):
        assert call(f"{api}/images") == 200
        assert output(server) == ""
