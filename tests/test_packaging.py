"""Packaging: what HACS and hassfest check, translations, brand icon, release.

Translation keys the code uses are collected from the AST, so an unused or a missing key in
``translations/en.json`` fails here, not in front of a user.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
import functools
import importlib.metadata
from itertools import product
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
from custom_components.voice_prompt.const import DOMAIN
from homeassistant.config_entries import ConfigFlow, OptionsFlow
import homeassistant.const as ha_const
from homeassistant.const import Platform
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


def test_services_yaml_matches_the_schema() -> None:
    """Every field in services.yaml is a key of the action's schema, and the other way round."""
    assert set(SERVICES) == {services.SERVICE_PLAY_PROMPT}
    fields = SERVICES[services.SERVICE_PLAY_PROMPT]["fields"]
    schema_keys = {str(key) for key in services.PLAY_PROMPT_SCHEMA.schema}
    assert set(fields) == schema_keys
    for key in services.PLAY_PROMPT_SCHEMA.schema:
        assert bool(fields[str(key)].get("required")) == isinstance(key, vol.Required), key
    assert fields["config_entry_id"]["selector"] == {"config_entry": {"integration": DOMAIN}}


def test_services_translated() -> None:
    """Each action and each of its fields has a name and a description; nothing extra."""
    translated = STRINGS["services"]
    assert set(translated) == set(SERVICES)
    for service, spec in SERVICES.items():
        entry = translated[service]
        assert entry["name"]
        assert entry["description"]
        assert set(entry["fields"]) == set(spec["fields"]), service
        for name, strings in entry["fields"].items():
            assert strings.get("name"), f"{service}.{name} has no name"
            assert strings.get("description"), f"{service}.{name} has no description"


def test_icons() -> None:
    icons = json.loads((PACKAGE / "icons.json").read_text(encoding="utf-8"))
    assert set(icons["services"]) == set(SERVICES)
    for service, icon in icons["services"].items():
        assert icon["service"].startswith("mdi:"), service


# -- translations: what the code uses, exactly ------------------------------------------------


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def _walk_package() -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        if "__pycache__" not in path.parts:
            yield path, _parse(path)


def _literal(node: ast.expr | None, names: dict[str, Any]) -> str | None:
    """A string literal, or a module-level name bound to one (config_flow's globals)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name) and isinstance(names.get(node.id), str):
        return str(names[node.id])
    return None


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((kw.value for kw in call.keywords if kw.arg == name), None)


def _method_name(call: ast.Call) -> str:
    return call.func.attr if isinstance(call.func, ast.Attribute) else ""


_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}


def _enclosing_function(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> ast.AST | None:
    while node in parents:
        node = parents[node]
        if isinstance(node, _FUNCTIONS):
            return node
    return None


def _constants(tree: ast.Module) -> dict[str, ast.expr]:
    """Module-level ``NAME = value`` / ``NAME: T = value``."""
    found: dict[str, ast.expr] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
            found[node.target.id] = node.value
    return found


def _params(function: ast.AST) -> list[str]:
    assert isinstance(function, _FUNCTIONS)
    return [argument.arg for argument in [*function.args.posonlyargs, *function.args.args]]


def _table_keys(table: ast.expr, position: int, constants: dict[str, ast.expr]) -> set[str] | None:
    """Element ``position`` of every tuple in a module-level dict (or of one tuple)."""
    value = constants.get(table.id) if isinstance(table, ast.Name) else table
    rows = value.values if isinstance(value, ast.Dict) else [value]
    keys: set[str] = set()
    for row in rows:
        if isinstance(row, ast.Name):  # a row shared by several codes, bound once
            row = constants.get(row.id)  # noqa: PLW2901
        item = row.elts[position] if isinstance(row, ast.Tuple) else None
        if not (isinstance(item, ast.Constant) and isinstance(item.value, str)):
            return None
        keys.add(item.value)
    return keys


def _local_values(name: str, function: ast.AST, constants: dict[str, ast.expr]) -> set[str] | None:
    """Strings a local name is assigned: literals, or ``key, msg = TABLE[code]`` rows."""
    found: set[str] = set()
    assigned = False
    for node in ast.walk(function):
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            if isinstance(target, ast.Name) and target.id == name:
                assigned = True
                if not (isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
                    return None
                found.add(node.value.value)
            elif isinstance(target, ast.Tuple) and any(
                isinstance(e, ast.Name) and e.id == name for e in target.elts
            ):
                assigned = True
                position = next(
                    i for i, e in enumerate(target.elts) if isinstance(e, ast.Name) and e.id == name
                )
                value = node.value
                tables: list[ast.expr] = []
                if isinstance(value, ast.Subscript):
                    tables = [value.value]
                elif isinstance(value, ast.Call) and _method_name(value) == "get":
                    assert isinstance(value.func, ast.Attribute)
                    tables = [value.func.value, *value.args[1:]]
                for table in tables or [value]:
                    keys = _table_keys(table, position, constants)
                    if keys is None:
                        return None
                    found |= keys
    return found if assigned else None


class ExceptionKeys:
    """Exception translation keys the code can raise, resolved from every ``translation_key``.

    A literal; a class attribute of an error class; a local bound to a literal or to a row of an
    error table (``cls, key, message = ERRORS.get(errno, _UNKNOWN_ERROR)``); a parameter of a
    function that forwards it (``_input_error("prompt_empty", ...)``), taken from its callers.
    ``err.translation_key`` passes one of the error classes' keys on and needs nothing more.
    """

    def __init__(self) -> None:
        """Walk the package."""
        self.keys: set[str] = set()
        self.unresolved: list[str] = []
        forwarders: dict[str, tuple[int, str, bool]] = {}
        sites: list[tuple[Path, ast.Call, ast.expr, ast.AST | None, dict[str, ast.expr]]] = []
        for path, tree in _walk_package():
            parents, constants = _parents(tree), _constants(tree)
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef) and (
                    node.name.endswith("Error")
                    or any(ast.unparse(b).endswith(("Error", "Exception")) for b in node.bases)
                ):
                    for statement in node.body:
                        targets = (
                            statement.targets
                            if isinstance(statement, ast.Assign)
                            else [statement.target]
                            if isinstance(statement, ast.AnnAssign)
                            else []
                        )
                        if any(
                            isinstance(t, ast.Name) and t.id == "translation_key" for t in targets
                        ):
                            value = _literal(statement.value, {})  # type: ignore[union-attr]
                            assert value is not None, f"{path}:{statement.lineno}"
                            self.keys.add(value)
                if not isinstance(node, ast.Call):
                    continue
                value = _keyword(node, "translation_key")
                if value is None or ast.unparse(node.func).endswith(
                    ("Selector", "SelectorConfig", "EntityDescription")
                ):
                    continue
                function = _enclosing_function(node, parents)
                if isinstance(value, ast.Name) and function and value.id in _params(function):
                    params = _params(function)
                    is_method = bool(params) and params[0] in {"self", "cls"}
                    forwarders[function.name] = (params.index(value.id), value.id, is_method)  # type: ignore[attr-defined]
                else:
                    sites.append((path, node, value, function, constants))
        for path, node, value, function, constants in sites:
            if isinstance(value, ast.Attribute) and value.attr == "translation_key":
                continue
            if (literal := _literal(value, {})) is not None:
                self.keys.add(literal)
                continue
            found = (
                _local_values(value.id, function, constants)
                if isinstance(value, ast.Name) and function is not None
                else None
            )
            if found is None:
                self.unresolved.append(f"{path.name}:{node.lineno}: {ast.unparse(value)}")
            else:
                self.keys |= found
        for path, tree in _walk_package():
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                name = ast.unparse(node.func).split(".")[-1]
                if name not in forwarders:
                    continue
                index, param, is_method = forwarders[name]
                if is_method and isinstance(node.func, ast.Attribute):
                    index -= 1
                argument = node.args[index] if 0 <= index < len(node.args) else None
                argument = argument or _keyword(node, param)
                literal = _literal(argument, {})
                if literal is not None:
                    self.keys.add(literal)
                elif argument is not None and not isinstance(argument, ast.Attribute):
                    self.unresolved.append(f"{path.name}:{node.lineno}: {ast.unparse(argument)}")


def used_exception_keys() -> set[str]:
    """The exception keys (see ExceptionKeys)."""
    found = ExceptionKeys()
    assert not found.unresolved, f"translation keys not understood: {found.unresolved}"
    return found.keys


PLATFORM_NAMES = {platform.value for platform in Platform}


def used_entity_keys() -> dict[str, set[str]]:
    """``entity.<platform>.<key>``: ``_attr_translation_key`` and entity descriptions."""
    keys: dict[str, set[str]] = {}
    for path, tree in _walk_package():
        if path.parent != PACKAGE or path.stem not in PLATFORM_NAMES:
            continue
        for node in ast.walk(tree):
            value: str | None = None
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "_attr_translation_key" for t in node.targets
            ):
                value = _literal(node.value, {})
            elif isinstance(node, ast.Call) and ast.unparse(node.func).endswith(
                "EntityDescription"
            ):
                value = _literal(_keyword(node, "translation_key"), {})
            if value is not None:
                keys.setdefault(path.stem, set()).add(value)
    return keys


def used_selector_keys() -> set[str]:
    keys = set()
    for _, tree in _walk_package():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("SelectorConfig"):
                value = _literal(_keyword(node, "translation_key"), {})
                if value is not None:
                    keys.add(value)
    for spec in SERVICES.values():
        for options in spec.get("fields", {}).values():
            for config in (options.get("selector") or {}).values():
                if isinstance(config, dict) and "translation_key" in config:
                    keys.add(config["translation_key"])
    return keys


@dataclass
class _Ctx:
    """Where an expression is evaluated: a method, its bound parameters, a branch choice."""

    method: ast.FunctionDef | ast.AsyncFunctionDef
    bindings: dict[str, tuple[ast.expr, _Ctx]]
    owner: str  # the async_step_* method the evaluation started from
    choice: dict[str, bool] = field(default_factory=dict)  # ast.dump(if-test) -> branch


@dataclass
class StepUse:
    """One step as the flow shows it."""

    placeholders: set[str] = field(default_factory=set)
    fields: set[str] | None = field(default_factory=set)  # None: could not be worked out
    menu: list[str] | None = None
    owners: set[str] = field(default_factory=set)


@dataclass
class FlowKind:
    """What one kind of flow (config or options) shows."""

    steps: dict[str, StepUse] = field(default_factory=dict)
    errors: set[str] = field(default_factory=set)
    aborts: set[str] = field(default_factory=set)
    step_methods: set[str] = field(default_factory=set)
    present: bool = False


class FlowUsage:
    """What config_flow.py shows, per flow class: steps, their fields, errors and aborts.

    Step ids, schemas and reasons are evaluated from the AST: literals, module constants,
    parameters bound at their call sites (``_async_step_new("yeastar", YEASTAR_SCHEMA, ...)``),
    paired conditional expressions (``"a" if graph else "b"`` with ``A if graph else B``), and
    ``x if x in COLLECTION else "y"``.
    """

    def __init__(self) -> None:
        """Collect everything from config_flow.py."""
        self.names = vars(config_flow)
        self.kinds = {"config": FlowKind(), "options": FlowKind()}
        for node in _parse(PACKAGE / "config_flow.py").body:
            runtime = self.names.get(node.name) if isinstance(node, ast.ClassDef) else None
            if not isinstance(runtime, type) or not isinstance(node, ast.ClassDef):
                continue
            if issubclass(runtime, ConfigFlow):
                kind = self.kinds["config"]
            elif issubclass(runtime, OptionsFlow):
                kind = self.kinds["options"]
            else:
                continue
            kind.present = True
            methods = {
                m.name: m
                for m in node.body
                if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))
            }
            kind.step_methods |= {
                name.removeprefix("async_step_")
                for name in methods
                if name.startswith("async_step_")
            }
            for method in methods.values():
                self._collect(kind, method, methods)

    # evaluation

    def _contexts(
        self,
        method: ast.FunctionDef | ast.AsyncFunctionDef,
        methods: dict[str, Any],
        depth: int = 0,
    ) -> list[_Ctx]:
        """A step method is its own context; a helper gets one per call site."""
        if method.name.startswith("async_step_") or depth > 4:
            return [_Ctx(method, {}, method.name)]
        params = [argument.arg for argument in method.args.args][1:]
        contexts: list[_Ctx] = []
        for caller in methods.values():
            for call in ast.walk(caller):
                if not (isinstance(call, ast.Call) and _method_name(call) == method.name):
                    continue
                for outer in self._contexts(caller, methods, depth + 1):
                    bindings = {}
                    for index, param in enumerate(params):
                        argument = call.args[index] if index < len(call.args) else None
                        argument = argument or _keyword(call, param)
                        if argument is not None:
                            bindings[param] = (argument, outer)
                    contexts.append(_Ctx(method, bindings, outer.owner))
        return contexts or [_Ctx(method, {}, method.name)]

    def _assigned(self, name: str, ctx: _Ctx) -> list[ast.expr]:
        return [
            node.value
            for node in ast.walk(ctx.method)
            if (
                isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
            )
            or (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and node.target.id == name
                and node.value is not None
            )
        ]

    def _branches(self, node: ast.IfExp, ctx: _Ctx) -> list[tuple[ast.expr, _Ctx]]:
        chosen = ctx.choice.get(ast.dump(node.test))
        if chosen is None:
            return [(node.body, ctx), (node.orelse, ctx)]
        return [(node.body if chosen else node.orelse, ctx)]

    def strings(self, node: ast.expr | None, ctx: _Ctx) -> set[str] | None:
        """Every string the expression can be, or None when that cannot be told."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return {node.value}
        if isinstance(node, ast.Name):
            if node.id in ctx.bindings:
                argument, outer = ctx.bindings[node.id]
                return self.strings(argument, replace(outer, choice=ctx.choice | outer.choice))
            assigned = self._assigned(node.id, ctx)
            if assigned:
                return self._union(self.strings(value, ctx) for value in assigned)
            value = self.names.get(node.id)
            return {value} if isinstance(value, str) else None
        if isinstance(node, ast.IfExp):
            results = []
            for branch, branch_ctx in self._branches(node, ctx):
                test = node.test
                if (
                    branch is node.body
                    and isinstance(test, ast.Compare)
                    and isinstance(test.ops[0], ast.In)
                    and ast.dump(test.left) == ast.dump(branch)
                    and isinstance(test.comparators[0], ast.Name)
                    and isinstance(self.names.get(test.comparators[0].id), (set, frozenset, tuple))
                ):
                    results.append(set(self.names[test.comparators[0].id]))
                else:
                    results.append(self.strings(branch, branch_ctx))
            return self._union(results)
        return None

    def fields(self, node: ast.expr | None, ctx: _Ctx) -> set[str] | None:
        """The fields of the schema an expression gives, or None when that cannot be told."""
        if isinstance(node, ast.Name):
            if node.id in ctx.bindings:
                argument, outer = ctx.bindings[node.id]
                return self.fields(argument, replace(outer, choice=ctx.choice | outer.choice))
            assigned = self._assigned(node.id, ctx)
            if assigned:
                return self._union(self.fields(value, ctx) for value in assigned)
            value = self.names.get(node.id)
            return {str(key) for key in value.schema} if isinstance(value, vol.Schema) else None
        if isinstance(node, ast.Call) and _method_name(node) == "add_suggested_values_to_schema":
            return self.fields(node.args[0], ctx)
        if (
            isinstance(node, ast.Call)
            and ast.unparse(node.func) == "vol.Schema"
            and node.args
            and isinstance(node.args[0], ast.Dict)
        ):
            found: set[str] = set()
            for key in node.args[0].keys:
                marker = key.args[0] if isinstance(key, ast.Call) and key.args else key
                names = self.strings(marker, ctx)
                if names is None:
                    return None
                found |= names
            return found
        if isinstance(node, ast.IfExp):
            return self._union(self.fields(branch, c) for branch, c in self._branches(node, ctx))
        return None

    def placeholders(self, node: ast.expr | None, ctx: _Ctx) -> set[str]:
        if isinstance(node, ast.Name):
            return set().union(*(self.placeholders(v, ctx) for v in self._assigned(node.id, ctx)))
        if isinstance(node, ast.Dict):
            return {k.value for k in node.keys if isinstance(k, ast.Constant)}
        return set()

    @staticmethod
    def _union(results: Iterable[set[str] | None]) -> set[str] | None:
        total: set[str] = set()
        for result in results:
            if result is None:
                return None
            total |= result
        return total

    # collection

    def _collect(
        self,
        kind: FlowKind,
        method: ast.FunctionDef | ast.AsyncFunctionDef,
        methods: dict[str, Any],
    ) -> None:
        for node in ast.walk(method):
            if isinstance(node, ast.Call):
                self._collect_call(kind, node, method, methods)
            elif (
                isinstance(node, ast.Dict)
                and node.keys
                and all(
                    key is not None
                    and (
                        _literal(key, {}) == "base"
                        or (isinstance(key, ast.Name) and key.id.startswith("CONF_"))
                    )
                    for key in node.keys
                )
            ):
                # errors: {"base": "invalid_auth"}, {CONF_HOST: "invalid_host"}, {"base": key}
                for value in node.values:
                    found = self.strings(value, _Ctx(method, {}, method.name))
                    assert found is not None, f"error value {ast.unparse(value)} not understood"
                    kind.errors |= found
            elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Subscript) and ast.unparse(t.value) == "errors"
                for t in node.targets
            ):
                found = self.strings(node.value, _Ctx(method, {}, method.name))
                assert found is not None, f"error value {ast.unparse(node.value)} not understood"
                kind.errors |= found

    def _collect_call(
        self,
        kind: FlowKind,
        node: ast.Call,
        method: ast.FunctionDef | ast.AsyncFunctionDef,
        methods: dict[str, Any],
    ) -> None:
        name = _method_name(node)
        contexts = self._contexts(method, methods)
        if name in {"async_show_form", "async_show_menu"}:
            step_expr = _keyword(node, "step_id")
            tests = [n.test for n in ast.walk(step_expr) if isinstance(n, ast.IfExp)]
            tests += [
                n.test
                for argument, _ in (
                    ctx.bindings.get(step_expr.id, (None, None))
                    for ctx in contexts
                    if isinstance(step_expr, ast.Name)
                )
                if argument is not None
                for n in ast.walk(argument)
                if isinstance(n, ast.IfExp)
            ]
            for base in contexts:
                for values in product([True, False], repeat=len(tests)):
                    ctx = replace(
                        base, choice={ast.dump(t): v for t, v in zip(tests, values, strict=False)}
                    )
                    steps = self.strings(step_expr, ctx)
                    assert steps, f"step_id {ast.unparse(step_expr)} not understood"
                    for step in steps:
                        use = kind.steps.setdefault(step, StepUse())
                        use.owners.add(ctx.owner)
                        use.placeholders |= self.placeholders(
                            _keyword(node, "description_placeholders"), ctx
                        )
                        if name == "async_show_menu":
                            options = _keyword(node, "menu_options")
                            assert isinstance(options, ast.List)
                            use.menu = [
                                next(iter(self.strings(o, ctx) or {"?"})) for o in options.elts
                            ]
                            continue
                        schema = self.fields(_keyword(node, "data_schema"), ctx)
                        use.fields = (
                            None if schema is None or use.fields is None else use.fields | schema
                        )
        elif name in {"async_abort", "_abort_if_unique_id_mismatch"}:
            reason = _keyword(node, "reason")
            if reason is None:
                assert name != "async_abort"
                kind.aborts.add("unique_id_mismatch")
            else:
                found = self.strings(reason, _Ctx(method, {}, method.name))
                assert found is not None, f"abort reason {ast.unparse(reason)} not understood"
                kind.aborts |= found
        elif name in {"async_update_reload_and_abort", "async_update_and_abort"}:
            reason = _keyword(node, "reason")
            if reason is not None:
                kind.aborts |= self.strings(reason, _Ctx(method, {}, method.name)) or set()
                return
            for ctx in contexts:  # Home Assistant's default reason depends on the source
                assert ctx.owner.startswith(("async_step_reauth", "async_step_reconfigure"))
                source = "reauth" if ctx.owner.startswith("async_step_reauth") else "reconfigure"
                kind.aborts.add(f"{source}_successful")
        elif name in {"_abort_if_unique_id_configured", "_async_abort_entries_match"}:
            kind.aborts.add("already_configured")


@functools.cache
def flow_usage() -> FlowUsage:
    """Collected once per run."""
    return FlowUsage()


def _placeholders(text: str) -> set[str]:
    return set(re.findall(r"{(\w+)}", text))


def test_exception_keys_exact() -> None:
    used = used_exception_keys()
    assert used, "no translation_key found: the collector is broken"
    translated = set(STRINGS["exceptions"])
    assert not used - translated, f"used but not translated: {sorted(used - translated)}"
    assert not translated - used, f"translated but never used: {sorted(translated - used)}"
    for key, entry in STRINGS["exceptions"].items():
        assert set(entry) == {"message"}, key


FLOW_KINDS = ["config", "options"]


def _flow_strings(kind: str) -> dict[str, Any]:
    strings: dict[str, Any] = STRINGS.get(kind, {})
    return strings


@pytest.mark.parametrize("kind", FLOW_KINDS)
def test_flow_error_keys_exact(kind: str) -> None:
    used = flow_usage().kinds[kind].errors
    translated = set(_flow_strings(kind).get("error", {}))
    assert used == translated, (
        f"missing: {sorted(used - translated)}, unused: {sorted(translated - used)}"
    )
    if kind == "config":
        # DESIGN.md's fixed base errors are all there.
        assert {"invalid_auth", "cannot_connect", "ssl_error", "ip_blocked", "unknown"} <= used


@pytest.mark.parametrize("kind", FLOW_KINDS)
def test_flow_abort_keys_exact(kind: str) -> None:
    used = flow_usage().kinds[kind].aborts
    translated = set(_flow_strings(kind).get("abort", {}))
    assert used == translated, (
        f"missing: {sorted(used - translated)}, unused: {sorted(translated - used)}"
    )


@pytest.mark.parametrize("kind", FLOW_KINDS)
def test_flow_steps_exact(kind: str) -> None:
    """Every step the flow shows is translated, with exactly its form's fields; no others."""
    flow = flow_usage().kinds[kind]
    assert flow.present or kind not in STRINGS, f"{kind} strings without a flow"
    translated = _flow_strings(kind).get("step", {})
    assert set(flow.steps) == set(translated), (
        f"shown: {sorted(flow.steps)}, translated: {sorted(translated)}"
    )
    for step, use in flow.steps.items():
        assert step in flow.step_methods, f"step {step} has no async_step_{step}"
        entry = translated[step]
        for key in ("title", "description"):
            missing = _placeholders(entry.get(key, "")) - use.placeholders
            assert not missing, f"{step}.{key} uses {missing}; the flow does not give them"
        if use.menu is not None:
            assert list(entry["menu_options"]) == use.menu
            for option in use.menu:
                assert option in flow.step_methods, f"menu option {option} has no step"
            assert "data" not in entry
            continue
        assert use.fields is not None, f"could not work out the fields of step {step}"
        assert set(entry.get("data", {})) == use.fields, step
        assert set(entry.get("data_description", {})) <= use.fields, step


def test_user_step_is_the_backend_menu() -> None:
    """DESIGN.md: the user step is a menu of the three backends."""
    assert flow_usage().kinds["config"].steps["user"].menu == ["yeastar", "yeastar_token", "graph"]


def test_entity_keys_exact() -> None:
    """Entity translations: exactly the platforms and keys the entities use."""
    used = used_entity_keys()
    translated = STRINGS.get("entity", {})
    assert {platform: set(keys) for platform, keys in translated.items()} == used
    for platform, keys in translated.items():
        for key, entry in keys.items():
            assert entry.get("name"), f"entity.{platform}.{key} has no name"
    event = PACKAGE / "event.py"
    if "event" in used:
        # HA turns _attr_* class attributes into properties: read the class bodies instead.
        module = vars(__import__(f"custom_components.{DOMAIN}.event", fromlist=["*"]))
        for node in ast.walk(_parse(event)):
            if not isinstance(node, ast.ClassDef):
                continue
            body = {
                target.id: statement.value
                for statement in node.body
                if isinstance(statement, ast.Assign)
                for target in statement.targets
                if isinstance(target, ast.Name)
            }
            if "_attr_event_types" not in body or "_attr_translation_key" not in body:
                continue
            key = _literal(body["_attr_translation_key"], {})
            types_node = body["_attr_event_types"]
            types = (
                module[types_node.id]
                if isinstance(types_node, ast.Name)
                else ast.literal_eval(types_node)
            )
            states = translated["event"][key]["state_attributes"]["event_type"]["state"]
            assert set(states) == set(types), f"event types of {node.name}"


def test_selector_keys_exact() -> None:
    assert used_selector_keys() == set(STRINGS.get("selector", {}))


def test_translation_sections() -> None:
    expected = {"config", "services", "exceptions"}
    if used_selector_keys():
        expected.add("selector")
    if flow_usage().kinds["options"].present:
        expected.add("options")
    if used_entity_keys():
        expected.add("entity")
    assert set(STRINGS) == expected
    assert set(STRINGS["config"]) == {"step", "error", "abort"}


def test_translations_are_plain_text() -> None:
    """No reference keys ([%key:...%]): custom integrations get them unresolved."""

    def strings(value: Any) -> Iterator[str]:
        if isinstance(value, dict):
            for child in value.values():
                yield from strings(child)
        else:
            yield value

    for text in strings(STRINGS):
        assert isinstance(text, str)
        assert text.strip()
        assert "[%key:" not in text


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
