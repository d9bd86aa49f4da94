"""The nightly no-op as cron runs it: a ``facesync`` process over an unchanged archive, against a URL.

Nothing that sends requests is imported when no request is needed, nor what only another command, a
failure or a first run needs (:data:`NOT_FOR_A_NO_OP`): the process is asked which modules it loaded
(``python -X importtime``), not timed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.emulator import EmulatorThread
from pipeline.errors import ConfigError
from pipeline.state import State
from tests.helpers import config_data, make_config, sync, write_config_file, write_files
from tests.imagefactory import jpeg_bytes


def facesync(config_file: Path, *args: str) -> tuple[dict[str, object] | None, set[str], int]:
    """``python -X importtime -m pipeline ARGS``: its JSON answer (if any), modules imported, exit code."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "pipeline", "--config", str(config_file), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    modules = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if "import time:" in line}
    last = done.stdout.strip().splitlines()[-1:] or [""]
    answer = json.loads(last[0]) if last[0].startswith("{") else None
    return answer, modules, done.returncode


def sending(modules: set[str]) -> set[str]:
    """The HTTP stacks imported: the API's (httptools) and aiohttp (the emulator's, adopt's downloads)."""
    return {m for m in modules if m.split(".")[0] in ("aiohttp", "httptools")}


#: What a no-op sync has no use for, each imported where it is used (issue 23: start-up is what is left
#: of the no-op's time at 100,000 files): the URL and retry libraries (the first request, the first
#: failure), Retry-After dates, temporary files (a dry run without a state, a profile written), typo
#: hints, random tokens, the reconcile's listing, diff and adopter, the probe's journal, the other
#: sources, metrics and images.
NOT_FOR_A_NO_OP = {
    "aiohttp",
    "httptools",
    "yarl",
    "tenacity",
    "email",
    "tempfile",
    "ctypes",
    "difflib",
    "secrets",
    "prometheus_client",
    "PIL",
    "boto3",
    "zipfile",
    "pipeline.emulator",
    "pipeline.state.listing",
    "pipeline.state.scratch",
    "pipeline.engine.reconcile",
    "pipeline.engine.lister",
    "pipeline.engine.adopt",
    "pipeline.probe.journal",
    "pipeline.sources.zipped",
    "pipeline.sources.s3",
}


def unneeded(modules: set[str], names: set[str]) -> set[str]:
    """The modules of ``names`` (or in their packages) that were imported."""
    return {m for m in modules if any(m == n or m.startswith(n + ".") for n in names)}


async def test_a_no_op_sync_sends_nothing_and_does_not_import_aiohttp(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    root = tmp_path / "archive"
    write_files(root, {f"album/{i}.jpg": jpeg_bytes(i) for i in range(6)})
    write_files(root, {"album/1.jpg.json": b'{"people": ["An"]}', "notes.jpg": b"text, refused"})
    assert (await sync(make_config(emulator.base_url, tmp_path)))[0].exit_code == 0
    config_file = write_config_file(tmp_path / "c.yaml", config_data(emulator.base_url, tmp_path))
    before = len(emulator.requests())

    answer, modules, code = facesync(config_file, "sync", "--json")

    assert code == 0 and answer is not None
    assert (answer["unchanged"], answer["added"], answer["requests"]) == (7, 0, 0)
    assert len(emulator.requests()) == before
    assert "pipeline.engine.sync" in modules and sending(modules) == set()
    assert unneeded(modules, NOT_FOR_A_NO_OP) == set()


async def test_the_http_stack_is_imported_when_the_first_request_is_sent_and_aiohttp_never(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    root = tmp_path / "archive"
    write_files(root, {"a.jpg": jpeg_bytes(1)})
    assert (await sync(make_config(emulator.base_url, tmp_path)))[0].exit_code == 0
    write_files(root, {"b.jpg": jpeg_bytes(2)})
    config_file = write_config_file(tmp_path / "c.yaml", config_data(emulator.base_url, tmp_path))

    answer, modules, code = facesync(config_file, "sync", "--json")

    assert code == 0 and answer is not None
    assert (answer["unchanged"], answer["added"]) == (1, 1)
    assert "httptools" in sending(modules)
    assert "aiohttp" not in sending(modules) and "yarl" not in modules
    assert (
        "ctypes" in modules
    )  # glibc set for image-sized buffers once an upload is queued (engine/malloc.py)


def test_commands_that_send_nothing_do_not_import_aiohttp(tmp_path: Path) -> None:
    config_file = write_config_file(
        tmp_path / "c.yaml", config_data("http://127.0.0.1:9/api/v2/face_search", tmp_path)
    )
    (tmp_path / "archive").mkdir()
    for args in (("status", "--json"), ("ls",), ("--help",)):
        _, modules, _ = facesync(config_file, *args)
        assert modules and sending(modules) == set(), args


async def test_a_nightly_reconcile_imports_neither_the_adopter_nor_the_retry_library(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    write_files(tmp_path / "archive", {"a.jpg": jpeg_bytes(1)})
    assert (await sync(make_config(emulator.base_url, tmp_path)))[0].exit_code == 0
    config_file = write_config_file(tmp_path / "c.yaml", config_data(emulator.base_url, tmp_path))

    answer, modules, code = facesync(config_file, "reconcile", "--json")

    assert code == 0 and answer is not None and answer["listed"] == 1
    assert "pipeline.engine.reconcile" in modules
    assert unneeded(modules, {"pipeline.engine.adopt", "tenacity", "difflib"}) == set()


def test_a_json_config_is_read_without_pyyaml_and_as_yaml_reads_it(tmp_path: Path) -> None:
    data = config_data("http://127.0.0.1:9/api/v2/face_search", tmp_path)
    data["limits"] = {"concurrency": 3, "rate": 2.5}
    (tmp_path / "archive").mkdir()
    as_json = tmp_path / "c.json"
    as_json.write_text(json.dumps(data, indent=2))
    as_yaml = write_config_file(tmp_path / "c.yaml", data)
    config = load_config(as_yaml)
    assert replace(load_config(as_json), origin=as_yaml) == config
    State.open(config.state.path).close()  # status reads a state

    _, modules, code = facesync(as_json, "status", "--json")
    assert code == 0 and "pipeline.config.parse" in modules and "yaml" not in modules
    _, modules, code = facesync(as_yaml, "status", "--json")
    assert code == 0 and "yaml" in modules


def test_json_that_is_not_quite_json_is_left_to_yaml(tmp_path: Path) -> None:
    (tmp_path / "nan.json").write_text('{"limits": {"rate": NaN}}')
    with pytest.raises(ConfigError, match=r"nan\.json"):  # YAML reads the string 'NaN': not a rate
        load_config(tmp_path / "nan.json")
    (tmp_path / "flow.yaml").write_text("{api: {base_url: 'http://x'}, limits: {rate: [}")
    with pytest.raises(ConfigError, match=r"not valid YAML \(line 1"):
        load_config(tmp_path / "flow.yaml")
