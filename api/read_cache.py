"""A short-lived cache of JSON read responses, for dashboards that many people poll at once.

Fifty open dashboards polling every 2 s ask the same few URLs ~100 times a second; building a
page of trials costs milliseconds of CPU each time, so the server saturates a core and latency
climbs. Within `ttl` seconds, the same GET of a campaign resource is answered from memory. Reads
are at most `ttl` old (the dashboard polls every 2 s, so 1 s is invisible), and any write through
this server (POST, PUT, DELETE) empties the cache, so a client sees its own cancel or submit at
once. `ttl` 0 turns it off. Downloads (files) and pages are never cached here.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CACHED_PREFIXES = ("/campaigns",)
NEVER_CACHED_SUFFIXES = (".yaml", ".csv", "/view")
MAX_ENTRIES = 512


class ReadCacheMiddleware:
    def __init__(self, app: ASGIApp, ttl: float) -> None:
        self.app = app
        self.ttl = ttl
        self._entries: OrderedDict[bytes, tuple[float, list[Message]]] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.ttl <= 0:
            await self.app(scope, receive, send)
            return
        if scope["method"] not in ("GET", "HEAD"):
            self._entries.clear()  # a write may change anything a cached read shows
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if not path.startswith(CACHED_PREFIXES) or path.endswith(NEVER_CACHED_SUFFIXES) or "/artefacts/" in path:
            await self.app(scope, receive, send)
            return
        key = scope["method"].encode() + b" " + path.encode() + b"?" + scope.get("query_string", b"")
        now = time.monotonic()
        hit = self._entries.get(key)
        if hit is not None and now - hit[0] < self.ttl:
            for message in hit[1]:
                await send(message)
            return
        recorded: list[Message] = []

        async def recording_send(message: Message) -> None:
            recorded.append(message)
            await send(message)

        await self.app(scope, receive, recording_send)
        if recorded and recorded[0]["type"] == "http.response.start" and recorded[0]["status"] == 200:
            self._entries[key] = (now, recorded)
            self._entries.move_to_end(key)
            while len(self._entries) > MAX_ENTRIES:
                self._entries.popitem(last=False)
