"""Masking secrets in text: everywhere, or where a trivial one stands as a password.

A password is masked wherever it appears. But a trivial one (shorter than 4 characters, or
with fewer than 3 different ones: `a`, `ab1`, `aaaa`) turns up in ordinary text by chance:
masked everywhere, `a` would turn every word with an 'a' into noise, event names included.
Such a password is masked where it stands as a password: in a URL's user information
(`://user:a@`), after a password key (`password=a`, `PGPASSWORD=a`, `"password": "a"`), and
quoted whole (`'a'`, `"a"`, as drivers and SQL quote a value).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"
# Shorter, or with fewer different characters, and a secret is trivial (see above).
DISTINCTIVE_LENGTH = 4
DISTINCTIVE_CHARACTERS = 3
# What may precede a trivial password where it stands as one; what may follow it.
_AS_PASSWORD = (
    (r"://[^\s:/?#@]*:", r"@"),
    (r"(?i:\b(?:pg|ssl)?(?:password|passwd|pwd))['\"]?\s*[=:]\s*['\"]?",
     r"[\s'\"&;,)}\]]|$"),
    (r"'", r"'"),
    (r"\"", r"\""),
)


def distinctive(secret: str) -> bool:
    """Whether a secret is unlikely to turn up in other text by chance."""
    return len(secret) >= DISTINCTIVE_LENGTH and len(set(secret)) >= DISTINCTIVE_CHARACTERS


class Masker:
    """Replaces secrets in text with MASK, per the rule above."""

    def __init__(self, secrets: Iterable[str]) -> None:
        found = {secret for secret in secrets if secret}
        # Longest first: a secret that contains another is masked whole.
        self.anywhere = sorted((s for s in found if distinctive(s)), key=len, reverse=True)
        trivial = sorted((s for s in found if not distinctive(s)), key=len, reverse=True)
        alternatives = "|".join(map(re.escape, trivial))
        self.as_password = [re.compile(f"({before})(?:{alternatives})(?={after})")
                            for before, after in _AS_PASSWORD] if trivial else []

    def __call__(self, text: str) -> str:
        """`text` with every secret masked."""
        for secret in self.anywhere:
            text = text.replace(secret, MASK)
        for pattern in self.as_password:
            text = pattern.sub(rf"\1{MASK}", text)
        return text
