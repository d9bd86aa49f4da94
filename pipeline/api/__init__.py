"""The network boundary: the Face Search client, its limiter and its retry policy.

Nothing outside this package imports aiohttp's client errors or tenacity.
"""

from pipeline.api.client import FaceSearchClient, ImageId, ProtocolError, RemoteImage
from pipeline.api.limiter import Limiter
from pipeline.api.retry import Backoff, RetryPolicy, backoff_delay, set_testing

__all__ = [
    "Backoff",
    "FaceSearchClient",
    "ImageId",
    "Limiter",
    "ProtocolError",
    "RemoteImage",
    "RetryPolicy",
    "backoff_delay",
    "set_testing",
]
