"""Every string of en.json renders in the frontend as the server log shows it.

The frontend formats translations with ICU message rules (``intl-messageformat``): an
apostrophe before ``{`` quotes the placeholder, so the user would see ``{prompt}`` raw, and
``<`` starts a tag. This test renders each string with that very formatter, run by the
machine's Node.js (``scripts/setup`` installs the version pinned in tests/icu/).
"""

from __future__ import annotations

from collections.abc import Iterator
import json
from pathlib import Path
import re
import shutil
import subprocess
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
EN_JSON = ROOT / "custom_components" / "voice_prompt" / "translations" / "en.json"
RENDERER = ROOT / "tests" / "icu" / "render.cjs"
NODE_MODULES = ROOT / ".cache" / "node" / "node_modules"
PLACEHOLDER = re.compile(r"{(\w+)}")


def _strings(node: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """Every (dotted key, text) of a translation tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, f"{prefix}.{key}" if prefix else key)
    elif isinstance(node, str):
        yield prefix, node


def _value(name: str) -> str:
    # No ICU syntax characters, so a value can never change how the text around it parses.
    return f"VALUE-OF-{name}"


def _render(messages: dict[str, dict[str, Any]]) -> dict[str, dict[str, str]]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed: the frontend's formatter cannot run")
    assert (NODE_MODULES / "intl-messageformat").is_dir(), (
        f"intl-messageformat is missing from {NODE_MODULES}: run scripts/setup"
    )
    request = json.dumps({"modules": str(NODE_MODULES), "messages": messages})
    done = subprocess.run(
        [node, str(RENDERER)], input=request, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, dict[str, str]] = json.loads(done.stdout)
    return result


def test_every_string_renders_like_the_server_log() -> None:
    """Placeholders filled, no ``{`` left, nothing else changed by ICU quoting or tags."""
    strings = dict(_strings(json.loads(EN_JSON.read_text(encoding="utf-8"))))
    messages = {
        key: {"text": text, "values": {name: _value(name) for name in PLACEHOLDER.findall(text)}}
        for key, text in strings.items()
    }
    rendered = _render(messages)

    problems = []
    for key, text in strings.items():
        expected = PLACEHOLDER.sub(lambda match: _value(match[1]), text)
        shown = rendered[key]
        if "error" in shown:
            problems.append(f"{key}: the frontend cannot format it: {shown['error']}")
        elif "{" in shown["text"] or "}" in shown["text"]:
            problems.append(f"{key}: a placeholder is shown raw: {shown['text']!r}")
        elif shown["text"] != expected:
            problems.append(f"{key}: the frontend shows {shown['text']!r}, not {expected!r}")
    assert not problems, "\n".join(problems)
    # The walk reached the strings that carry placeholders (and not only plain texts).
    assert sum(1 for text in strings.values() if PLACEHOLDER.search(text)) > 20


def test_the_check_catches_what_the_frontend_would_garble() -> None:
    """The formatter really is ICU: it quotes after an apostrophe and refuses a bad tag."""
    rendered = _render(
        {
            "quoted": {"text": "Prompt '{prompt}' is only digits", "values": {"prompt": "123"}},
            "plain": {"text": "The PBX's prompt {prompt}", "values": {"prompt": "123"}},
            "tag": {"text": "Use <b>bold", "values": {}},
        }
    )
    assert rendered["quoted"] == {"text": "Prompt {prompt} is only digits"}
    assert rendered["plain"] == {"text": "The PBX's prompt 123"}
    assert "error" in rendered["tag"]
