"""Packaging: what HACS and hassfest check, translations of the forms, brand icon, release."""

from __future__ import annotations

import ast
from collections.abc import Iterator
import importlib.metadata
import json
import os
from pathlib import Path
import re
import shutil
import struct
import subprocess
import sys
import tomllib
from typing import Any
import zipfile

from awesomeversion import AwesomeVersion, AwesomeVersionStrategy
import pytest
import voluptuous as vol
import yaml

from custom_components.voice_prompt import config_flow, services
from custom_components.voice_prompt.backends import BACKENDS, CallStatus
from custom_components.voice_prompt.const import DOMAIN
import homeassistant.const as ha_const
import homeassistant.helpers.config_validation as cv

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "custom_components" / DOMAIN
MANIFEST: dict[str, Any] = json.loads((PACKAGE / "manifest.json").read_text(encoding="utf-8"))
STRINGS: dict[str, Any] = json.loads(
    (PACKAGE / "translations" / "en.json").read_text(encoding="utf-8")
)
SERVICES: dict[str, Any] = yaml.safe_load((PACKAGE / "services.yaml").read_text(encoding="utf-8"))

# hassfest's manifest schema for custom integrations, and HACS's integration manifest.
HASSFEST_REQUIRED = {"domain", "name", "codeowners", "documentation", "iot_class", "version"}
HACS_REQUIRED = {"domain", "name", "codeowners", "documentation", "issue_tracker", "version"}
MANIFEST_KEYS = {
    "after_dependencies",
    "bluetooth",
    "codeowners",
    "config_flow",
    "dependencies",
    "dhcp",
    "disabled",
    "documentation",
    "domain",
    "homekit",
    "import_executor",
    "integration_type",
    "iot_class",
    "issue_tracker",
    "loggers",
    "mqtt",
    "name",
    "quality_scale",
    "requirements",
    "single_config_entry",
    "ssdp",
    "usb",
    "version",
    "zeroconf",
}
IOT_CLASSES = {
    "assumed_state",
    "calculated",
    "cloud_polling",
    "cloud_push",
    "local_polling",
    "local_push",
}
INTEGRATION_TYPES = {
    "device",
    "entity",
    "hardware",
    "helper",
    "hub",
    "service",
    "system",
    "virtual",
}
# HACS's hacs.json schema (extra keys are refused).
HACS_JSON_KEYS = {
    "content_in_root",
    "country",
    "filename",
    "hacs",
    "hide_default_branch",
    "homeassistant",
    "name",
    "persistent_directory",
    "render_readme",
    "zip_release",
}
VERSION_STRATEGIES = [
    AwesomeVersionStrategy.CALVER,
    AwesomeVersionStrategy.SEMVER,
    AwesomeVersionStrategy.SIMPLEVER,
    AwesomeVersionStrategy.BUILDVER,
    AwesomeVersionStrategy.PEP440,
]


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations() -> None:
    """Override the conftest fixture: these tests need no Home Assistant instance."""


# -- manifest.json and hacs.json -----------------------------------------------------------------


def test_manifest_key_order() -> None:
    """Hassfest: domain, name, then the rest alphabetically."""
    keys = list(MANIFEST)
    assert keys[:2] == ["domain", "name"]
    assert keys[2:] == sorted(keys[2:])


def test_manifest_keys() -> None:
    assert set(MANIFEST) >= HASSFEST_REQUIRED, HASSFEST_REQUIRED - set(MANIFEST)
    assert set(MANIFEST) >= HACS_REQUIRED, HACS_REQUIRED - set(MANIFEST)
    assert set(MANIFEST) <= MANIFEST_KEYS, set(MANIFEST) - MANIFEST_KEYS
    assert MANIFEST["domain"] == DOMAIN == PACKAGE.name
    assert MANIFEST["iot_class"] in IOT_CLASSES
    assert MANIFEST.get("integration_type", "hub") in INTEGRATION_TYPES
    assert MANIFEST["config_flow"] is True
    assert (PACKAGE / "config_flow.py").is_file()
    # DESIGN.md: aiohttp comes with Home Assistant; no requirements.
    assert MANIFEST["requirements"] == []
    assert MANIFEST["codeowners"]
    assert all(re.fullmatch(r"@[\w-]+(/[\w-]+)?", owner) for owner in MANIFEST["codeowners"])
    for key in ("documentation", "issue_tracker"):
        assert MANIFEST[key].startswith("https://"), key
    assert not MANIFEST["documentation"].startswith("https://www.home-assistant.io/integrations")


def test_manifest_version_parses() -> None:
    """Home Assistant refuses to load a custom integration whose version does not parse."""
    version = AwesomeVersion(MANIFEST["version"], ensure_strategy=VERSION_STRATEGIES)
    assert version.strategy == AwesomeVersionStrategy.SEMVER


def test_version_has_a_single_source() -> None:
    """manifest.json holds the version; nothing in the code repeats it."""
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert node.value != MANIFEST["version"], (
                    f"{path}:{node.lineno} repeats the version; read the manifest instead"
                )
            if isinstance(node, ast.Assign):
                names = {t.id.lower() for t in node.targets if isinstance(t, ast.Name)}
                assert not names & {"__version__", "integration_version"}, f"{path}:{node.lineno}"
    # pyproject.toml only configures tools: no [project] table with a second version.
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in pyproject.get("project", {}), "the version lives in manifest.json"


def test_hacs_json() -> None:
    hacs = json.loads((REPO / "hacs.json").read_text(encoding="utf-8"))
    assert set(hacs) <= HACS_JSON_KEYS, set(hacs) - HACS_JSON_KEYS
    assert isinstance(hacs["name"], str)
    assert hacs["name"]
    assert not hacs.get("content_in_root", False)
    if hacs.get("zip_release"):
        assert hacs.get("filename") == f"{DOMAIN}.zip"
    minimum = AwesomeVersion(hacs["homeassistant"])
    installed = (ha_const.MAJOR_VERSION, ha_const.MINOR_VERSION)
    if _floor_lane():
        # The oldest version claimed is the one the floor lane tests (same year.month).
        assert (minimum.major, minimum.minor) == installed
    else:
        assert (minimum.major, minimum.minor) < installed


def _floor_lane() -> bool:
    """Whether this run has the floor lane's test plugin (requirements_test.txt)."""
    pins = dict(
        line.split("==", 1)
        for line in (REPO / "requirements_test.txt").read_text(encoding="utf-8").splitlines()
        if "==" in line and not line.startswith("#")
    )
    plugin = "pytest-homeassistant-custom-component"
    return pins[plugin].strip() == importlib.metadata.version(plugin)


def test_brand_icon() -> None:
    """brand/icon.png: a 256x256 PNG (icon@2x.png, when present, 512x512)."""
    for name, size in (("icon.png", 256), ("icon@2x.png", 512)):
        path = PACKAGE / "brand" / name
        if name == "icon@2x.png" and not path.exists():
            continue
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{name} is not a PNG"
        assert data[12:16] == b"IHDR"
        width, height = struct.unpack(">II", data[16:24])
        assert (width, height) == (size, size), f"{name} is {width}x{height}"


def test_config_schema_is_config_entry_only() -> None:
    """With an ``async_setup``, CONFIG_SCHEMA must be cv.config_entry_only_config_schema."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    functions = {
        node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    }
    if "async_setup" not in functions:
        return
    assignments = [
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "CONFIG_SCHEMA" for t in node.targets)
    ]
    assert len(assignments) == 1
    call = assignments[0]
    assert isinstance(call, ast.Call)
    assert ast.unparse(call.func) == "cv.config_entry_only_config_schema"
    assert ast.unparse(call.args[0]) == "DOMAIN"
    integration = __import__(f"custom_components.{DOMAIN}", fromlist=["CONFIG_SCHEMA"])
    reference = cv.config_entry_only_config_schema(DOMAIN)
    assert integration.CONFIG_SCHEMA.__code__ is reference.__code__


def test_quality_scale() -> None:
    rules = yaml.safe_load((PACKAGE / "quality_scale.yaml").read_text(encoding="utf-8"))["rules"]
    for rule, value in rules.items():
        status = value if isinstance(value, str) else value["status"]
        assert status in {"done", "todo", "exempt"}, rule
        if status == "exempt":
            assert value.get("comment"), f"{rule}: an exemption needs a comment"


# -- services.yaml, icons.json -------------------------------------------------------------------


def _service_fields(spec: dict[str, Any]) -> dict[str, Any]:
    """The fields of an action in services.yaml, its collapsed sections flattened."""
    fields: dict[str, Any] = {}
    for name, field_spec in spec["fields"].items():
        fields.update(field_spec.get("fields", {name: field_spec}))
    return fields


def _sections(spec: dict[str, Any]) -> set[str]:
    return {name for name, field_spec in spec["fields"].items() if "fields" in field_spec}


def test_services_yaml_matches_the_schema() -> None:
    """Every field in services.yaml is a key of the action's schema, and the other way round.

    ``extension`` is the schema's alias of ``target`` for automations written for 0.1.0: it is
    accepted but not offered in the UI.
    """
    assert set(SERVICES) == {services.SERVICE_PLAY_PROMPT}
    spec = SERVICES[services.SERVICE_PLAY_PROMPT]
    fields = _service_fields(spec)
    schema_keys = {str(key) for key in services.PLAY_PROMPT_SCHEMA.schema}
    assert set(fields) == schema_keys - {"extension"}
    for key in services.PLAY_PROMPT_SCHEMA.schema:
        if str(key) in fields:
            assert bool(fields[str(key)].get("required")) == isinstance(key, vol.Required), key
            # A default is sent to every backend; one that cannot honour the field refuses it.
            assert "default" not in fields[str(key)], key
    assert fields["config_entry_id"]["selector"] == {"config_entry": {"integration": DOMAIN}}
    # target and prompt first, backend-specific fields in collapsed sections.
    assert list(spec["fields"])[:3] == ["config_entry_id", "target", "prompt"]
    for section in _sections(spec):
        assert spec["fields"][section]["collapsed"] is True, section
        assert set(spec["fields"][section]["fields"]) <= set(services.FIELD_CAPABILITIES), section


def test_services_translated() -> None:
    """Each action, field and section has a name; each field a description; nothing extra."""
    translated = STRINGS["services"]
    assert set(translated) == set(SERVICES)
    for service, spec in SERVICES.items():
        entry = translated[service]
        assert entry["name"]
        assert entry["description"]
        assert set(entry["fields"]) == set(_service_fields(spec)) | {"extension"}, service
        for name, strings in entry["fields"].items():
            assert strings.get("name"), f"{service}.{name} has no name"
            assert strings.get("description"), f"{service}.{name} has no description"
        assert set(entry.get("sections", {})) == _sections(spec), service
        for name, strings in entry.get("sections", {}).items():
            assert strings.get("name"), f"{service} section {name} has no name"


def test_icons() -> None:
    icons = json.loads((PACKAGE / "icons.json").read_text(encoding="utf-8"))
    assert set(icons["services"]) == set(SERVICES)
    for service, icon in icons["services"].items():
        assert icon["service"].startswith("mdi:"), service


# -- translations -----------------------------------------------------------------------------
# What the code shows at run time is checked by tests/conftest.py's check_translations (every
# key it uses exists and gets its placeholders; after a whole run, every shown string was
# used). Here: the forms' fields, which are data, not events.


def _form_keys(schema: vol.Schema) -> set[str]:
    return {str(key) for key in schema.schema}


def test_config_forms_translated() -> None:
    """Each backend's forms have exactly their fields translated; the menu lists the backends."""
    steps = STRINGS["config"]["step"]
    assert list(steps["user"]["menu_options"]) == list(config_flow.MENU)
    reauth: set[str] = set()
    reconfigure: set[str] = set()
    for step_id, backend in config_flow.MENU.items():
        fields = _form_keys(backend.flow_steps[step_id])
        assert set(steps[step_id]["data"]) == fields, step_id
        assert set(steps[step_id].get("data_description", {})) <= fields, step_id
        reauth |= _form_keys(backend.reauth_schema({}))
        reauth |= _form_keys(backend.reauth_schema({"token": "x"}))
        reconfigure |= _form_keys(backend.reconfigure_schema({}))
    assert set(steps["reauth_confirm"]["data"]) == reauth
    assert set(steps["reconfigure"]["data"]) == reconfigure
    assert set(steps) == {
        *config_flow.MENU,
        "user",
        "reauth_confirm",
        "reconfigure",
        config_flow.STEP_CERTIFICATE,
    }
    # DESIGN.md's fixed base errors are all there.
    assert {"invalid_auth", "cannot_connect", "ssl_error", "ip_blocked", "unknown"} <= set(
        STRINGS["config"]["error"]
    )


def test_options_forms_translated() -> None:
    with_options = [b for b in BACKENDS.values() if b.options_schema is not None]
    assert with_options, "no backend has options: remove the options strings"
    fields = set().union(*(_form_keys(b.options_schema) for b in with_options if b.options_schema))
    assert set(STRINGS["options"]["step"]) == {"init"}
    assert set(STRINGS["options"]["step"]["init"]["data"]) == fields


def test_event_types_translated() -> None:
    """The call-events entity offers every call status, each with a name."""
    states = STRINGS["entity"]["event"]["calls"]["state_attributes"]["event_type"]["state"]
    assert set(states) == {str(status) for status in CallStatus}


def test_translation_sections() -> None:
    assert set(STRINGS) == {
        "config",
        "config_subentries",
        "options",
        "services",
        "exceptions",
        "issues",
        "entity",
    }
    assert set(STRINGS["config"]) == {"step", "error", "abort"}
    for key, entry in STRINGS["exceptions"].items():
        assert set(entry) == {"message"}, key
    for key, entry in STRINGS["issues"].items():
        # A fixable issue explains itself in its fix flow instead of a description.
        assert set(entry) in ({"title", "description"}, {"title", "fix_flow"}), key


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for child in value.values():
            yield from _strings(child)
    else:
        yield value


def test_translations_are_plain_text() -> None:
    """No reference keys ([%key:...%]): custom integrations get them unresolved.

    No apostrophe right before a placeholder either: the frontend's ICU formatter reads
    ``'{`` as the start of a quoted literal and shows the raw ``{name}``.
    """
    for text in _strings(STRINGS):
        assert isinstance(text, str)
        assert text.strip()
        assert "[%key:" not in text
        assert "'{" not in text, text


# -- release --------------------------------------------------------------------------------------


def _changelog_versions() -> list[str]:
    text = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    return re.findall(r"^## \[([^\]]+)\]", text, flags=re.MULTILINE)


def test_changelog() -> None:
    """Keep a Changelog: Unreleased first, then versions with dates, newest = manifest."""
    text = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    assert text.startswith("# Changelog\n")
    assert "keepachangelog.com" in text
    versions = _changelog_versions()
    assert versions[0] == "Unreleased"
    assert versions[1] == MANIFEST["version"]
    for version in versions[1:]:
        assert re.search(rf"^## \[{re.escape(version)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", text, re.M)
        assert re.search(rf"^\[{re.escape(version)}\]: https://", text, re.M), version
    sections = re.findall(r"^### (.+)$", text, flags=re.MULTILINE)
    assert set(sections) <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}


def _run_release(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "scripts/release", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHON": sys.executable},
        check=False,
    )


def test_release_dry_run(tmp_path: Path) -> None:
    result = _run_release(REPO, "--dry-run", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    zip_path = tmp_path / f"{DOMAIN}.zip"
    assert f"{zip_path} (" in result.stdout
    assert "dry run OK: v" + MANIFEST["version"] in result.stdout
    with zipfile.ZipFile(zip_path) as archive:
        names = set(archive.namelist())
        assert json.loads(archive.read("manifest.json")) == MANIFEST
    expected = {
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    assert names == expected
    assert {"manifest.json", "__init__.py", "translations/en.json", "brand/icon.png"} <= names
    assert "api/__init__.py" in names
    for name in names:
        assert f"  {name}" in result.stdout


@pytest.fixture
def release_repo(tmp_path: Path) -> Path:
    """A throw-away git repository with what scripts/release needs, committed."""
    root = tmp_path / "repo"
    shutil.copytree(
        PACKAGE, root / "custom_components" / DOMAIN, ignore=shutil.ignore_patterns("__pycache__")
    )
    (root / "scripts").mkdir()
    shutil.copy2(REPO / "scripts" / "release", root / "scripts" / "release")
    for name in ("CHANGELOG.md", "hacs.json"):
        shutil.copy2(REPO / name, root / name)
    (root / ".gitignore").write_text("dist/\n__pycache__/\n")
    git = [
        "git",
        "-c",
        "commit.gpgsign=false",
        "-c",
        "core.hooksPath=/dev/null",
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example.invalid",
        "-c",
        "init.defaultBranch=main",
    ]
    subprocess.run([*git, "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "release"], cwd=root, check=True)
    return root


def test_release_on_a_clean_tree_only_prints(release_repo: Path) -> None:
    result = _run_release(release_repo)
    assert result.returncode == 0, result.stderr
    version = MANIFEST["version"]
    assert f"would tag v{version} at " in result.stdout
    assert f"git push origin v{version}" in result.stdout
    tags = subprocess.run(
        ["git", "tag"], cwd=release_repo, capture_output=True, text=True, check=True
    )
    assert tags.stdout == ""
    assert (release_repo / "dist" / f"{DOMAIN}.zip").is_file()


def test_release_refuses_a_dirty_tree(release_repo: Path) -> None:
    (release_repo / "custom_components" / DOMAIN / "extra.py").write_text("")
    result = _run_release(release_repo)
    assert result.returncode == 1
    assert "refusing: the working tree is dirty" in result.stderr
    assert not (release_repo / "dist").exists()


def test_release_checks_the_changelog_version(release_repo: Path) -> None:
    changelog = release_repo / "CHANGELOG.md"
    changelog.write_text(
        changelog.read_text().replace("## [Unreleased]", "## [9.9.9] - 2099-01-01")
    )
    result = _run_release(release_repo, "--dry-run")
    assert result.returncode == 1
    assert f"CHANGELOG.md's newest version is 9.9.9, manifest.json says {MANIFEST['version']}" in (
        result.stderr
    )


def test_release_zip_leaves_out_bytecode_and_refuses_secrets(release_repo: Path) -> None:
    package = release_repo / "custom_components" / DOMAIN
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "const.cpython-313.pyc").write_bytes(b"\0")
    (package / "api" / "stale.pyc").write_bytes(b"\0")
    result = _run_release(release_repo, "--dry-run")
    assert result.returncode == 0, result.stderr
    with zipfile.ZipFile(release_repo / "dist" / f"{DOMAIN}.zip") as archive:
        assert not [name for name in archive.namelist() if "pyc" in name]
    (package / "secrets.yaml").write_text("password: hunter2\n")
    result = _run_release(release_repo, "--dry-run")
    assert result.returncode == 1
    assert "looks like a secret: secrets.yaml" in result.stderr
