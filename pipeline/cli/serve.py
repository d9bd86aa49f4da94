"""``facesync serve``: the emulator standalone (outside the command-line contract)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from pipeline.cli.app import fail, handles_errors, main
from pipeline.errors import EXIT_FAILED


@main.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Beyond loopback, the control routes need the credentials, and "
    "--api-secret must not be the default.",
)
@click.option(
    "--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port (0: any free)."
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("state/emulator-serve"),
    show_default=True,
    help="Where the emulator keeps its images.",
)
@click.option("--api-key", default="demo-key", show_default=True, help="The key clients must send.")
@click.option(
    "--api-secret",
    default="demo-secret",
    show_default=True,
    envvar="FACESYNC_EMULATOR_SECRET",
    help="The secret clients must send (or FACESYNC_EMULATOR_SECRET).",
)
@click.option(
    "--profile",
    "profile_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Behave as this service profile says (`facesync probe` writes one): caps, statuses, order...",
)
@click.option(
    "--log/--no-log",
    "log",
    default=None,
    help="Print one line per request on stdout: time, method, path, HTTP status, status_code, bytes, "
    "ms (never a credential). Default: on when stdout is a terminal.",
)
@handles_errors
def serve(
    host: str,
    port: int,
    data_dir: Path,
    api_key: str,
    api_secret: str,
    profile_path: Path | None,
    log: bool | None,
) -> None:
    """Run the Face Search emulator standalone (the API at /api/v2/face_search).

    It speaks the five calls with the documented answers, so you can try facesync, or your own
    scripts, without an account. Search finds near-duplicates by a perceptual hash (no face model).
    Knobs (rate limit, quota, faults) can be changed while it runs: POST /_emulator/settings.
    With --profile it plays the service `facesync probe` measured. With --log (the default on a
    terminal) it prints each request it answers, one line each, on stdout.

    The control routes (/_emulator/settings, images, requests, reset, seed) can wipe and reconfigure
    it. On a loopback --host (the default) they answer anyone, as tests and benches expect; on any
    other address (0.0.0.0, a LAN address) only requests with the API's credentials (HTTP Basic,
    --api-key and --api-secret), and serve refuses to start there with the default, public secret.
    """
    from pipeline.emulator import EmulatorSettings, serve_forever
    from pipeline.emulator.control import resolves_to_loopback
    from pipeline.emulator.settings import DEFAULT_API_SECRET
    from pipeline.errors import EXIT_USAGE
    from pipeline.output.terminal import echo, stdout_is_terminal

    if api_secret == DEFAULT_API_SECRET and resolves_to_loopback(host) is False:
        fail(
            f"--host {host} is not a loopback address, and the default secret is public: give "
            "--api-secret (or FACESYNC_EMULATOR_SECRET); the API and the control routes then need it",
            EXIT_USAGE,
        )

    settings = EmulatorSettings(api_key=api_key, api_secret=api_secret)
    if profile_path is not None:
        from pipeline.config.profile import read_profile
        from pipeline.emulator.profile import settings_for
        from pipeline.errors import ConfigError

        try:
            settings = settings_for(read_profile(profile_path), settings)
        except ValueError as exc:
            raise ConfigError(f"{profile_path}: the emulator cannot play it: {exc}") from None

    def ready(base_url: str) -> None:
        click.echo(
            f"facesync: emulator serving {base_url} (key {api_key}; data in {data_dir}); Ctrl-C stops",
            err=True,
        )

    def access(line: str) -> None:
        echo(line, err=False)

    logged = stdout_is_terminal() if log is None else log
    try:
        asyncio.run(
            serve_forever(host, port, data_dir, settings, ready=ready, access=access if logged else None)
        )
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", EXIT_FAILED)
