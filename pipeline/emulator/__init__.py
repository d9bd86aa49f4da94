"""A local Face Search server (aiohttp.web): the embedded default and every test's real HTTP peer.

Search is perceptual-hash (dHash) near-duplicate matching, not face recognition.
"""

from pipeline.emulator.protocol import RequestRecord
from pipeline.emulator.runner import EmulatorThread, embedded_emulator, serve_forever
from pipeline.emulator.server import PREFIX, Emulator
from pipeline.emulator.settings import EmulatorSettings
from pipeline.emulator.store import StoredImage

__all__ = [
    "PREFIX",
    "Emulator",
    "EmulatorSettings",
    "EmulatorThread",
    "RequestRecord",
    "StoredImage",
    "embedded_emulator",
    "serve_forever",
]
