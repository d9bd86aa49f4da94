"""The emulator alone in a process, for benches: ``python -m bench.server --data DIR [--seed N]``.

Prints one JSON line ``{"base_url": ...}`` once it listens on a free loopback port, then serves until
SIGTERM or SIGINT. ``--seed N`` first stores N fake images (no HTTP) whose metadata looks like
facesync's (``facesync_key``, ``facesync_token``) and writes their ids to ``--seed-ids FILE``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from pathlib import Path

from pipeline.emulator import Emulator, EmulatorSettings
from pipeline.emulator.settings import apply_changes


def seed_key(i: int) -> str:
    """The source key the bench gives seeded image ``i`` (the reconcile bench's state uses the same)."""
    return f"d{i // 1000:04d}/IMG_{i:07d}.jpg"


def seed_token(i: int) -> str:
    return f"{i:032x}"


async def serve(data_dir: Path, settings: EmulatorSettings, seed: int, seed_ids: Path | None) -> None:
    emulator = Emulator(data_dir, settings)
    if seed:
        ids = emulator.seed(seed, lambda i: {"facesync_key": seed_key(i), "facesync_token": seed_token(i)})
        if seed_ids is not None:
            seed_ids.write_text(json.dumps(ids))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        base_url = await emulator.start("127.0.0.1", 0)
        print(json.dumps({"base_url": base_url}), flush=True)
        await stop.wait()
    finally:
        await emulator.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.server")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--settings", default="{}", help="EmulatorSettings fields as a JSON object")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seed-ids", type=Path)
    args = parser.parse_args()
    settings = EmulatorSettings()
    apply_changes(settings, json.loads(args.settings))
    asyncio.run(serve(args.data, settings, args.seed, args.seed_ids))


if __name__ == "__main__":
    main()
