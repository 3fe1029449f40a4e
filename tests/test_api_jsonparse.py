"""The JSON parser both clients use: orjson under Home Assistant, the stdlib without."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from custom_components.voice_prompt.api import jsonparse

LOADERS = pytest.mark.parametrize(
    "loads",
    [jsonparse.loads, jsonparse._stdlib_loads],
    ids=["installed", "stdlib fallback"],
)


def test_orjson_is_the_installed_parser() -> None:
    """Home Assistant ships orjson, so the fast parser is the one in use."""
    orjson = pytest.importorskip("orjson")
    assert jsonparse.loads is orjson.loads


@LOADERS
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            b'{"status":"Success","callid":"1795312897.1"}',
            {"status": "Success", "callid": "1795312897.1"},
        ),
        (b' {"errno": "20004", "status": "Failed"}\n', {"errno": "20004", "status": "Failed"}),
        ('{"devicename":"Büro-PBX"}'.encode(), {"devicename": "Büro-PBX"}),
        (b"[1, 2.5, null, true]", [1, 2.5, None, True]),
    ],
)
def test_parses_replies_alike(loads: Callable[[bytes], Any], raw: bytes, expected: Any) -> None:
    """Both parsers read the PBX's and Graph's replies to the same values."""
    assert loads(raw) == expected


@LOADERS
@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"<html>502 Bad Gateway</html>",
        b'{"status":',
        b"\xff\xfe",
        b"[" * 100_000 + b"]" * 100_000,
    ],
    ids=["empty", "html", "truncated", "not utf-8", "nested 100,000 deep"],
)
def test_refuses_non_json_with_value_error(loads: Callable[[bytes], Any], raw: bytes) -> None:
    """Everything that is not a JSON document is a ValueError (never RecursionError)."""
    with pytest.raises(ValueError):
        loads(raw)
