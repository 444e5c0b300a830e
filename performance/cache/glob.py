"""The glob dialect of invalidation patterns: Redis's, on both backends.

Redis matches ``SCAN ... MATCH`` with its own glob (``stringmatchlen`` in its ``util.c``), which
is not Python's ``fnmatch``: a class is negated with ``^`` (``[^a]``; ``[!a]`` is the class of
``!`` and ``a``), a backslash escapes the next character (inside a class too), and there is no
special case for ``/`` or a leading dot. The local-memory backend matches with this module, so
a pattern selects the same keys embedded and in production (docs/design.md, "Keys"):

- ``*`` any run of characters, the empty one included; ``?`` exactly one character;
- ``[abc]`` one of the characters, ``[a-z]`` a range (either way round), ``[^...]`` none of them;
- ``\\x`` the character ``x`` itself, wherever it is.

Matching runs in time proportional to the key's length times the pattern's (the classic
wildcard walk that goes back to the last ``*`` only), never exponentially.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

#: The characters that make a pattern more than a literal string.
SPECIAL = frozenset("*?[]\\")


class GlobError(ValueError):
    """A pattern Redis would read differently from what it seems to say."""


@dataclass(frozen=True)
class _Class:
    """One character among ``chars`` or in one of ``ranges`` (or, ``negated``, none of them)."""

    chars: frozenset[str]
    ranges: tuple[tuple[str, str], ...]
    negated: bool

    def __contains__(self, char: str) -> bool:
        found = char in self.chars or any(low <= char <= high for low, high in self.ranges)
        return found != self.negated


_STAR = object()
_ANY = object()
Token = object  # ``_STAR``, ``_ANY``, a ``_Class`` or a one-character string


def parse(pattern: str) -> list[Token]:
    """The pattern as tokens, read exactly as Redis reads it; ``GlobError`` for a ``[`` that is
    never closed or a trailing lone backslash, which Redis reads in ways nobody means."""
    tokens: list[Token] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "*":
            if not tokens or tokens[-1] is not _STAR:  # a run of stars is one star
                tokens.append(_STAR)
            i += 1
        elif char == "?":
            tokens.append(_ANY)
            i += 1
        elif char == "[":
            token, i = _parse_class(pattern, i + 1)
            tokens.append(token)
        elif char == "\\":
            if i + 1 >= n:
                raise GlobError("The pattern ends with a lone backslash.")
            tokens.append(pattern[i + 1])
            i += 2
        else:
            tokens.append(char)
            i += 1
    return tokens


def _parse_class(pattern: str, i: int) -> tuple[_Class, int]:
    """The class that starts at ``i`` (just after ``[``), and where the pattern goes on."""
    n = len(pattern)
    negated = i < n and pattern[i] == "^"
    if negated:
        i += 1
    chars: set[str] = set()
    ranges: list[tuple[str, str]] = []
    while True:
        if i >= n:
            raise GlobError("The pattern has a '[' that is never closed.")
        char = pattern[i]
        if char == "\\" and n - i >= 2:
            chars.add(pattern[i + 1])
            i += 2
        elif char == "]":
            return _Class(frozenset(chars), tuple(ranges), negated), i + 1
        elif n - i >= 3 and pattern[i + 1] == "-":
            # As Redis reads it: the end of a range is taken as it is, even a ']' or a '\'.
            low, high = sorted((char, pattern[i + 2]))
            ranges.append((low, high))
            i += 3
        else:
            chars.add(char)
            i += 1


def _one(token: Token, char: str) -> bool:
    if token is _ANY:
        return True
    if isinstance(token, _Class):
        return char in token
    return token == char


def match(tokens: Sequence[Token], text: str) -> bool:
    """Whether ``text`` matches the parsed pattern as a whole."""
    t = p = 0
    star = -1  # the token after the last star seen, and where the text stood then
    mark = 0
    while t < len(text):
        if p < len(tokens) and tokens[p] is _STAR:
            star, mark = p + 1, t
            p += 1
        elif p < len(tokens) and _one(tokens[p], text[t]):
            p += 1
            t += 1
        elif star >= 0:
            mark += 1
            t, p = mark, star
        else:
            return False
    return all(token is _STAR for token in tokens[p:])


def matches(pattern: str, text: str) -> bool:
    """``match`` of a pattern not parsed yet."""
    return match(parse(pattern), text)


def literal_prefix(pattern: str) -> str:
    """What the pattern says literally before its first special character (escapes resolved
    up to there): the part every matching key starts with."""
    out = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            out.append(pattern[i + 1])
            i += 2
        elif char in SPECIAL:
            break
        else:
            out.append(char)
            i += 1
    return "".join(out)
