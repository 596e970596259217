"""The two checks that stand between a client and the machine: who holds the API token, and which
files a campaign may name.

Tokens are compared in constant time (hmac.compare_digest) so response timing reveals nothing
about how much of a guess was right. Paths are judged after `Path.resolve()`, which follows every
symlink and folds `..`, so neither can lead a campaign outside the configured data roots.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from pathlib import Path


def bearer_credentials(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (scheme case-insensitive), else None."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "bearer" or not credentials:
        return None
    return credentials


def token_matches(presented: str | None, expected: str) -> bool:
    """True when the presented bearer token equals the configured one."""
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


class PathOutsideRoots(ValueError):
    """A path that resolves outside every data root (through `..` or a symlink), or does not exist."""


def resolve_inside(value: str, roots: Sequence[Path], *, must_be_file: bool = True) -> Path:
    """The real location of `value` (relative paths are relative to the first root), which must lie
    inside one of `roots` (already resolved) and, by default, be an existing file."""
    if not roots:
        raise PathOutsideRoots("no data roots are configured; the server accepts no file paths")
    if "\x00" in value:
        raise PathOutsideRoots("path contains a NUL byte")
    candidate = Path(value)
    if not candidate.is_absolute():
        candidate = roots[0] / candidate
    try:
        real = candidate.resolve(strict=False)
    except (OSError, RuntimeError) as err:  # RuntimeError: a symlink loop
        raise PathOutsideRoots(f"cannot resolve {value!r}: {err}") from None
    if not any(real.is_relative_to(root) for root in roots):
        raise PathOutsideRoots(f"{value!r} resolves outside the server's data roots")
    if must_be_file and not real.is_file():
        raise PathOutsideRoots(f"no such file: {value!r}")
    return real
