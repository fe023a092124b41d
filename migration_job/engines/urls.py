"""URL text as RFC 3986 cuts it, before any driver reads it."""

from __future__ import annotations


def authority_end(rest: str) -> int:
    """Where the authority (user:password@host:port) of `rest`, a URL after '://', ends: at
    the first '/', '?' or '#' (RFC 3986)."""
    return min((at for at in map(rest.find, "/?#") if at >= 0), default=len(rest))
