"""``--shard I/N``: split one archive over N hosts (a Kubernetes Indexed Job, an AWS Batch array, cron).

Shard ``I`` of ``N`` (``I`` counts from 0, as ``JOB_COMPLETION_INDEX`` and ``AWS_BATCH_JOB_ARRAY_INDEX``
do) takes the keys whose stable hash (:func:`pipeline.keys.shard_of`) is ``I``. Each shard keeps its
own state file (``facesync.db`` → ``facesync.shard-2-of-4.db``) and a ``1/N`` share of ``limits.rate``,
so the shards together stay within the service's rate.
"""

from __future__ import annotations

import re
from dataclasses import replace

from pipeline.config import Config
from pipeline.errors import ConfigError

Shard = tuple[int, int]


def parse_shard(text: str) -> Shard:
    """``"2/4"`` → ``(2, 4)``; a usage error (exit 2) otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match:
        raise ConfigError(f"--shard {text!r}: expected I/N, e.g. 0/4 (I counts from 0)")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"--shard {text!r}: I must be 0..N-1 and N at least 1")
    return index, count


def for_shard(config: Config, shard: Shard) -> Config:
    """The config one shard runs with: its own state file, its share of the rate."""
    index, count = shard
    path = config.state.path
    state = replace(config.state, path=path.with_name(f"{path.stem}.shard-{index}-of-{count}{path.suffix}"))
    limits = replace(config.limits, rate=config.limits.rate / count if config.limits.rate else None)
    return replace(config, state=state, limits=limits)
