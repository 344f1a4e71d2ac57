"""Lone surrogates: the one way a Python string can hold text that UTF-8 cannot encode.

JSON may spell half of a UTF-16 pair on its own (``"\\ud800"``); ``json.loads`` accepts it and returns a string that
no UTF-8 writer (a JSON-lines file, Parquet, SQLite) can store. Such text comes from user files and from model
answers alike, so it is found and replaced (by U+FFFD, the replacement character) in one place: the file commands
report it as a row error, the LLM client repairs the answer before caching it.
"""

from __future__ import annotations

import re
from typing import Any

REPLACEMENT = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")


def has_lone_surrogate(text: str) -> bool:
    """True when ``text`` cannot be encoded as UTF-8 (a decoded JSON string holds no other invalid code point)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def replace_lone_surrogates(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD (the same string object when there is none)."""
    return _SURROGATE.sub(REPLACEMENT, text) if has_lone_surrogate(text) else text


def repair_value(value: Any, path: str = "") -> tuple[Any, str | None]:
    """A JSON value with lone surrogates replaced in every string (keys too), and the first field that held one.

    ``path`` names where ``value`` sits (``text``, ``meta.title``, ``steps[2]``); the second item is that name for the
    first repaired string, or None when the value was valid throughout (then the value itself comes back).
    """
    if isinstance(value, str):
        repaired = replace_lone_surrogates(value)
        return repaired, (path or "value") if repaired is not value else None
    if isinstance(value, dict):
        found: str | None = None
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = replace_lone_surrogates(key) if isinstance(key, str) else key
            fixed, where = repair_value(item, f"{path}.{name}" if path else str(name))
            if name is not key and found is None:
                found = f"{path}.{name}" if path else str(name)
            found = found or where
            out[name] = fixed
        return (out, found) if found else (value, None)
    if isinstance(value, list):
        found = None
        items = []
        for index, item in enumerate(value):
            fixed, where = repair_value(item, f"{path}[{index}]")
            found = found or where
            items.append(fixed)
        return (items, found) if found else (value, None)
    return value, None
