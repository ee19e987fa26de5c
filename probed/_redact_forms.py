"""The forms a known secret takes on its way out, and a fast case-insensitive matcher for them.

Used by :class:`probed.redact.Redactor` only (``probed.redact`` stays the one owner of secrets
in output). A secret is written in output raw; URL-encoded (``quote``, ``quote_plus``, hex in
either case); JSON- or Python-escaped, up to three times (a repr'd excerpt of a JSON body inside a
JSON log line); base64 (standard or URL-safe, with or without padding, and at any byte alignment, so
inside ``Basic base64(user:password)`` too); one line of a multi-line secret at a time; and in
any letter case. Every form is folded (:func:`fold`) and matched against folded text.

Matching is linear in the text whatever the number of secrets: up to about 1,500 forms (some
100 secrets) are one regex shaped as a trie (shared prefixes written once, longest form first
at each position); more are looked up by their first :data:`PREFIX` characters in a dict while
the text is scanned once, so a 10,000-secret configuration costs about as much per message as a
200-secret one and building it compiles no regex. Figures: ``/work/notes/h8g.md``.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import re
from collections.abc import Callable, Iterable
from typing import Any, Final
from urllib.parse import quote, quote_plus

__all__ = ["PREFIX", "Matcher", "all_forms", "fold", "forms"]

PREFIX: Final = 4
"""How many first characters of a form the prefix scan looks up (fewer if a form is shorter)."""

_MIN_BASE64_CORE: Final = 6  # shorter base64 fragments would mask ordinary words
# Up to this many forms one regex is compiled (fast for a few); above, the prefix scan (its cost
# does not grow with the number of forms, and building it takes no regex compilation).
_REGEX_MAX_FORMS: Final = 1_500
_REGEX_MAX_CHARS: Final = 100_000  # a long ${file:} secret (a PEM) is found by the prefix scan
# Text cut short ends with an ellipsis: this many characters of a form before one are masked.
_MIN_CUT: Final = 6
_MAX_CUT_LOOKBACK: Final = 512

# Text that no JSON/repr escape or URL encoding changes.
_PLAIN: Final = re.compile(r"[A-Za-z0-9_.~-]*")
_ESCAPES: Final[tuple[Callable[[str], str], ...]] = (
    lambda s: json.dumps(s)[1:-1],
    lambda s: json.dumps(s, ensure_ascii=False)[1:-1],
    lambda s: repr(s)[1:-1],
)


def fold(text: str) -> str:
    """``text`` case-folded, keeping its length (characters that fold to several stay as is),
    so positions in the folded text are positions in ``text``."""
    folded = text.casefold()
    if len(folded) == len(text):
        return folded
    return "".join(f if len(f := c.casefold()) == 1 else c for c in text)


def _base64_forms(secret: bytes) -> set[str]:
    """Base64 of ``secret`` alone when padded, and the fragments that appear wherever it is
    encoded, at any byte alignment (inside ``user:password``, after a newline...)."""
    found = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        whole = encode(secret).decode()
        bare = whole.rstrip("=")
        if whole != bare:  # padded: distinctive even for a short secret
            found.add(whole)
        if len(bare) > _MIN_BASE64_CORE:
            found.add(bare)
        for offset in range(3):
            encoded = encode(b"\0" * offset + secret).decode()
            first = -(-offset * 8 // 6)  # the first character made of secret bits only
            last = (offset + len(secret)) * 8 // 6  # one past the last such character
            core = encoded[first:last]
            if len(core) >= _MIN_BASE64_CORE:
                found.add(core)
    return found


def _text_forms(secret: str) -> set[str]:
    """Raw, URL-encoded, and escaped up to three times (a JSON string inside a JSON body,
    repr'd in a check's message)."""
    if _PLAIN.fullmatch(secret):  # most tokens: every encoding leaves them as they are
        return {secret}
    found = {secret, quote(secret, safe=""), quote(secret), quote_plus(secret)}
    for _ in range(3):
        found |= {escape(f) for f in list(found) for escape in _ESCAPES}
    return found


@functools.lru_cache(maxsize=1 << 14)
def _cached_forms(secret: str, min_length: int) -> frozenset[str]:
    return frozenset(forms(secret, min_length))


def all_forms(secrets: Iterable[str], min_length: int) -> set[str]:
    """The folded forms of every secret (worked out once per secret: a reload that keeps its
    secrets rebuilds only the matcher)."""
    found: set[str] = set()
    for secret in secrets:
        found |= _cached_forms(secret, min_length)
    return found


def forms(secret: str, min_length: int = PREFIX) -> set[str]:
    """Every folded form of ``secret`` (see the module doc); lines of a multi-line secret
    shorter than ``min_length`` are not masked on their own."""
    pieces = {secret}
    if "\n" in secret or "\r" in secret:
        for line in secret.splitlines():
            for piece in (line, line.strip()):
                if len(piece) >= max(min_length, PREFIX):
                    pieces.add(piece)
    found: set[str] = set()
    for piece in pieces:
        found |= _text_forms(piece) | _base64_forms(piece.encode())
    return {f for f in map(fold, found) if f}


def _trie_pattern(words: Iterable[str]) -> str:
    """One regex alternation shaped as a trie (shared prefixes written once), so that at each
    position the regex engine follows one branch per character instead of trying every form;
    chains without a branch are one literal, so nesting grows only with branching."""
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = True

    def emit(node: dict[str, Any]) -> str:
        chain = []
        while len(node) == 1 and "" not in node:  # a chain of single children: one literal
            ((ch, node),) = node.items()
            chain.append(ch)
        head = re.escape("".join(chain))
        alts = [re.escape(ch) + emit(child) for ch, child in sorted(node.items()) if ch]
        if not alts:
            return head
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        if "" in node:  # a form ends here: try the longer ones first, then stop here
            body = f"(?:{body})?"
        return head + body

    return emit(trie)


class Matcher:
    """Finds folded forms in text, longest first at each position, and masks them."""

    __slots__ = ("_ends", "_index", "_prefix", "_regex")

    def __init__(self, folded: Iterable[str]) -> None:
        ordered = sorted(set(folded), key=len, reverse=True)
        self._regex: re.Pattern[str] | None = None
        self._index: dict[str, list[str]] | None = None
        self._ends: dict[str, list[str]] | None = None
        self._prefix = min(PREFIX, len(ordered[-1])) if ordered else PREFIX
        if not ordered:
            return
        # Forms by their first and by their last characters (longest first in each bucket): the
        # first find forms in the prefix scan, both find forms cut short by an ellipsis.
        index: dict[str, list[str]] = {}
        ends: dict[str, list[str]] = {}
        for form in ordered:
            index.setdefault(form[: self._prefix], []).append(form)
            ends.setdefault(form[-self._prefix :], []).append(form)
        self._index, self._ends = index, ends
        if len(ordered) <= _REGEX_MAX_FORMS and sum(map(len, ordered)) <= _REGEX_MAX_CHARS:
            # A pathological set of forms fails to compile: the prefix scan takes any.
            with contextlib.suppress(RecursionError, OverflowError, re.error):
                self._regex = re.compile(_trie_pattern(ordered))

    def __bool__(self) -> bool:
        return self._index is not None

    def sub(self, text: str, mask: str) -> str:
        """``text`` with every form replaced by ``mask`` (the same object if none is found)."""
        if self._index is None:
            return text
        folded = fold(text)
        if self._regex is not None:
            spans = [m.span() for m in self._regex.finditer(folded)]
        else:
            spans = self._spans(folded)
        if "…" in text or "..." in text:
            spans = self._cut(folded, spans)
        if not spans:
            return text
        out: list[str] = []
        last = 0
        for start, end in spans:
            out.append(text[last:start])
            out.append(mask)
            last = end
        out.append(text[last:])
        return "".join(out)

    def _spans(self, folded: str) -> list[tuple[int, int]]:
        index = self._index
        assert index is not None
        size = self._prefix
        # Candidates first (a comprehension runs in C-speed steps), then check the forms there.
        candidates = [i for i in range(len(folded) - size + 1) if folded[i : i + size] in index]
        spans: list[tuple[int, int]] = []
        after = 0  # a match ends here: later candidates inside it are skipped
        for i in candidates:
            if i < after:
                continue
            for form in index[folded[i : i + size]]:
                if folded.startswith(form, i):
                    spans.append((i, i + len(form)))
                    after = i + len(form)
                    break
        return spans

    def _cut(self, folded: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """``spans`` and the parts of forms cut short by an ellipsis: a form's start before one
        (``'Zq9-pla…'``, a length-limited excerpt) or its end after one (``'…ret-77'``), at
        least :data:`_MIN_CUT` characters of it."""
        index, ends = self._index, self._ends
        assert index is not None
        assert ends is not None
        size = self._prefix
        found = list(spans)
        for marker in ("…", "..."):
            at = folded.find(marker)
            while at != -1:
                after = at + len(marker)
                # Only text between the masks around the marker can hold a cut form.
                floor = max((end for _, end in found if end <= at), default=0)
                ceiling = min((start for start, _ in found if start >= after), default=len(folded))
                for start in range(max(floor, at - _MAX_CUT_LOOKBACK), at - _MIN_CUT + 1):
                    bucket = index.get(folded[start : start + size])
                    piece = folded[start:at]
                    if bucket and any(f.startswith(piece) for f in bucket):
                        found.append((start, at))
                        break
                for end in range(min(ceiling, after + _MAX_CUT_LOOKBACK), after + _MIN_CUT - 1, -1):
                    bucket = ends.get(folded[end - size : end])
                    piece = folded[after:end]
                    if bucket and any(f.endswith(piece) for f in bucket):
                        found.append((after, end))
                        break
                at = folded.find(marker, after)
        return sorted(found)
