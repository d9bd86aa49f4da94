"""A fixed ``limits.rate`` spaces every request on the wire, the first ones of a fresh process included.

The first request of a process imports aiohttp and opens the session (about 0.1 s): were that done
after the request's token was taken, the first request would reach the service that much late, right
before the second, and a service counting a one-second window at exactly the rate would throttle
(``make bench``, "rate use, rate known", saw 1 code-4 answer in every run). Only a real process shows
it: the test process has aiohttp imported already.
"""

from __future__ import annotations

import json
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

from pipeline.emulator import EmulatorThread
from tests.helpers import config_data, write_config_file, write_files
from tests.imagefactory import jpeg_bytes

RATE = 10.0


def test_the_first_requests_of_a_process_are_a_full_interval_apart(
    emulator: EmulatorThread, tmp_path: Path
) -> None:
    write_files(tmp_path / "archive", {f"IMG_{i}.jpg": jpeg_bytes(i) for i in range(4)})
    config = write_config_file(
        tmp_path / "config.yaml", config_data(emulator.base_url, tmp_path, limits={"rate": RATE})
    )

    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "--config", str(config), "sync", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["added"] == 4
    arrivals = sorted(r.time for r in emulator.requests())
    assert len(arrivals) == 5  # the first-upload check's listing page, and 4 adds
    gaps = [b - a for a, b in pairwise(arrivals)]
    # 0.1 s a request at 10 req/s (paced 1.5 % slower); half of it leaves room for a busy machine,
    # and is still far above the few milliseconds between the first two when the token came first
    assert min(gaps) > 0.5 / RATE, gaps
