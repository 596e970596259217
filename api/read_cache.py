"""A short-lived cache of JSON read responses, for dashboards that many people poll at once.

Fifty open dashboards polling every 2 s ask the same few URLs ~100 times a second; building a
page of trials costs milliseconds of CPU each time, so the server saturates a core and latency
climbs. Within `ttl` seconds, the same GET of a campaign resource is answered from memory. Reads
are at most `ttl` old (the dashboard polls every 2 s, so 1 s is invisible), and any write through
this server (POST, PUT, DELETE) empties the cache, so a client sees its own cancel or submit at
once; identical reads that arrive while one is being answered share its answer. `ttl` 0
turns it off. Downloads (files) and pages are never cached here.
"""

from __future__ import annotations

import asyncio
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
        # Reads being computed now: a burst of identical GETs when an entry expires costs one.
        self._inflight: dict[bytes, asyncio.Future[list[Message] | None]] = {}

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
            await _replay(hit[1], send)
            return
        pending = self._inflight.get(key)
        if pending is not None:  # the same read is being answered right now: share its answer
            recorded = await asyncio.shield(pending)
            if recorded is not None:
                await _replay(recorded, send)
                return
            await self.app(scope, receive, send)
            return
        future: asyncio.Future[list[Message] | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        recorded: list[Message] = []

        async def recording_send(message: Message) -> None:
            recorded.append(message)
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            ok = bool(recorded) and recorded[0]["type"] == "http.response.start" and recorded[0]["status"] == 200
            if ok:
                self._entries[key] = (now, recorded)
                self._entries.move_to_end(key)
                while len(self._entries) > MAX_ENTRIES:
                    self._entries.popitem(last=False)
            del self._inflight[key]
            future.set_result(recorded if ok else None)


async def _replay(messages: list[Message], send: Send) -> None:
    for message in messages:
        await send(message)
