"""Print the Python requirements a scripted Home Assistant loads, for the installed release.

scripts/develop, scripts/demo and the browser test start Home Assistant with ``--skip-pip``:
its own installer (uv) would otherwise upgrade packages the venv pins (pycares above all,
which breaks every DNS lookup of Home Assistant 2025.4). scripts/setup installs what this
prints instead, under the venv's constraints. The list is read from the installed release's
manifests, so it follows each release: the integrations Home Assistant always loads, the
ones our configuration.yaml names, the ones onboarding adds, and their dependencies.

Usage: python scripts/ha_requirements.py [EXTRA_DOMAIN ...]
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
import sys

import homeassistant
from homeassistant import bootstrap

HA = Path(homeassistant.__file__).parent
ROOT = Path(__file__).resolve().parent.parent
# configuration.yaml of scripts/run_ha.py, and what onboarding sets up (met, radio, ...).
CONFIGURED = {"frontend", "config", "http", "logger", "automation", "script", "scene", "tts"}
ONBOARDING = {"google_translate", "met", "radio_browser", "shopping_list"}
# bootstrap's sets of integrations set up whatever the configuration says.
ALWAYS = ("CORE_INTEGRATIONS", "FRONTEND_INTEGRATIONS", "DEFAULT_INTEGRATIONS")


def manifest(domain: str) -> dict[str, object]:
    """The manifest of a core integration, or of ours; {} when there is none."""
    for folder in (HA / "components" / domain, ROOT / "custom_components" / domain):
        path = folder / "manifest.json"
        if path.is_file():
            data: dict[str, object] = json.loads(path.read_text(encoding="utf-8"))
            return data
    return {}


def module_requirements(path: Path) -> list[str]:
    """``REQUIREMENTS = [...]`` of a module (the auth MFA modules), without importing it."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "REQUIREMENTS" for t in node.targets)
            and isinstance(node.value, ast.List)
        ):
            return [str(ast.literal_eval(item)) for item in node.value.elts]
    return []


def main() -> int:
    """Walk the dependencies from the loaded domains and print every requirement once."""
    seeds = set(CONFIGURED | ONBOARDING | {"voice_prompt"} | set(sys.argv[1:]))
    for name in ALWAYS:
        seeds |= set(getattr(bootstrap, name, ()))
    seen: set[str] = set()
    todo = sorted(seeds)
    requirements: set[str] = set()
    while todo:
        domain = todo.pop()
        if domain in seen:
            continue
        seen.add(domain)
        data = manifest(domain)
        requirements.update(str(item) for item in data.get("requirements", []) or [])  # type: ignore[attr-defined]
        for key in ("dependencies", "after_dependencies"):
            todo.extend(str(item) for item in data.get(key, []) or [])  # type: ignore[attr-defined]
    for module in sorted((HA / "auth" / "mfa_modules").glob("*.py")):
        requirements.update(module_requirements(module))
    print("\n".join(sorted(requirements, key=str.lower)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
