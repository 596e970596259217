"""With EVOLVER_API_TOKEN set, every request must carry it (`Authorization: Bearer <token>`),
except those an open route answers: /healthz, /metrics, and the dashboard's page shells and
static files, which hold no campaign data (the pages fetch everything through the API, with the
token the browser tab keeps).

A middleware rather than a route dependency, for two reasons. It runs before the read cache, so
a cached answer is never handed to a client without the token. And it refuses by default: a
route added later, FastAPI's own /docs and /openapi.json, and unknown paths all need the token,
without anyone having to remember to say so; only the routes named open are exempt.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from api.security import bearer_credentials, token_matches

UNAUTHORIZED_DETAIL = "a valid bearer token is required"
POLICY_VIOLATION = 1008  # WebSocket close code


class TokenGuardMiddleware:
    def __init__(self, app: ASGIApp, token: str, open_routes: Sequence[BaseRoute]) -> None:
        if not token:
            raise ValueError("TokenGuardMiddleware needs a non-empty token")
        self.app = app
        self.token = token
        self.open_routes = tuple(open_routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" or self._is_open(scope) or self._carries_token(scope):
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": POLICY_VIOLATION})
        else:
            refusal = JSONResponse({"detail": UNAUTHORIZED_DETAIL}, status_code=401,
                                   headers={"WWW-Authenticate": "Bearer"})
            await refusal(scope, receive, send)

    def _is_open(self, scope: Scope) -> bool:
        """An open route answers this method and path (a path it has but another method is not open)."""
        return any(route.matches(scope)[0] == Match.FULL for route in self.open_routes)

    def _carries_token(self, scope: Scope) -> bool:
        presented = bearer_credentials(Headers(scope=scope).get("authorization"))
        return token_matches(presented, self.token)
