"""Parse the JSON bodies the backends answer with."""

from __future__ import annotations

from collections.abc import Callable
import json
from typing import Any, Final


def _stdlib_loads(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except RecursionError:  # absurdly nested: orjson calls this a ValueError too
        raise ValueError("JSON nested too deeply") from None


def _fastest_loads() -> Callable[[bytes], Any]:
    # Home Assistant ships orjson: it parses a reply in C, without the standard
    # library's Python-level layers (issue 5). The clients also run without it.
    try:
        from orjson import loads
    except ImportError:  # pragma: no cover - orjson is always there under Home Assistant
        return _stdlib_loads
    return loads


loads: Final[Callable[[bytes], Any]] = _fastest_loads()
"""Parse a body; ``ValueError`` when it is not JSON (also for absurd nesting)."""


def opt_str(value: Any) -> str | None:
    """A reply field as text; None when it is missing or empty."""
    return str(value) if value not in (None, "") else None
