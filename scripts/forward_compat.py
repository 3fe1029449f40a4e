#!/usr/bin/env python3
"""Forward-compatibility check: does the integration still fit today's Home Assistant?

The tests run Home Assistant 2025.4.4 (the newest that installs on Python 3.13.0); users run
everything up to the newest release, which needs Python 3.14. This script downloads the newest
``homeassistant`` wheel (pure Python, so ``pip download`` works on 3.13), and checks *statically*,
by AST on both sides, that every ``homeassistant.*`` module, name, attribute and call the
integration uses still exists there with a signature that accepts the call as written: keyword
arguments, positional arguments, required parameters, literal values against the annotations
(a webhook's ``local_only``), selectors in ``services.yaml``, and the API rules of DESIGN.md.
The same check runs against the installed 2025.4 tree, so a name that exists only in the newest
release is caught too, and every incompatibility says what changed between the two.

Usage::

    python scripts/forward_compat.py [--wheel PATH] [--offline] [--old PATH]

Exit status: 0 compatible, 1 incompatible (each problem printed as ``file:line``), and 0 with a
``SKIPPED`` line when the newest wheel cannot be obtained (registry unreachable, or ``--offline``
without a cached wheel). The wheel is cached under ``.cache/ha-wheel/`` and reused without any
network access for ``--max-age-hours`` (24 by default).
"""

from __future__ import annotations

import argparse
import ast
import builtins
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
import importlib
import importlib.util
import json
from pathlib import Path
import re
import subprocess
import sys
import time
from typing import Any, Final
import zipfile

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
INTEGRATION_DIR: Final = REPO_ROOT / "custom_components" / "voice_prompt"
CACHE_DIR: Final = REPO_ROOT / ".cache" / "ha-wheel"
NEWEST_PYTHON: Final = "3.14"
DEFAULT_MAX_AGE_HOURS: Final = 24.0
STAMP_NAME: Final = "last-check.json"
PIP_TIMEOUT: Final = 600.0

HA: Final = "homeassistant"

# Helpers of homeassistant.helpers.service that took ``hass`` in 2025.4 and no longer do:
# no single call works on both, so DESIGN.md bans them.
SERVICE_HELPERS_TAKING_HASS: Final = frozenset(
    {
        "async_extract_config_entry_ids",
        "async_extract_entities",
        "async_extract_entity_ids",
        "extract_entity_ids",
        "verify_domain_control",
    }
)
_ENUM_BASES: Final = frozenset({"Enum", "StrEnum", "IntEnum", "Flag", "IntFlag"})
_TRANSPARENT_BASES: Final = frozenset({"object", "Generic", "Protocol", "ABC"})
_RUNTIME_MODULES: Final = frozenset(
    {"builtins", "enum", "typing", "abc", "collections", "collections.abc", "dataclasses"}
)
_SIMPLE_TYPES: Final = frozenset(
    {"bool", "int", "float", "complex", "str", "bytes", "None", "list", "dict", "tuple", "set"}
)
_ACCEPTS: Final = {
    "bool": {"bool", "int", "float", "complex"},
    "int": {"int", "float", "complex"},
    "float": {"float", "complex"},
    "str": {"str"},
    "bytes": {"bytes"},
    "None": {"None"},
}
_DEPRECATION_DECORATORS: Final = frozenset(
    {"deprecated", "deprecated_function", "deprecated_class", "deprecated_hass_argument"}
)


# -- sources -------------------------------------------------------------------------------


class SourceTree:
    """The Python sources of one Home Assistant version."""

    origin: str

    def read(self, relpath: str) -> str | None:
        """Return the text of ``relpath`` (``homeassistant/...``), or None."""
        raise NotImplementedError

    def version(self) -> str:
        """Read ``MAJOR.MINOR.PATCH`` from ``homeassistant/const.py``."""
        text = self.read(f"{HA}/const.py")
        if text is None:
            return "unknown"
        values: dict[str, str] = {}
        for node in ast.parse(text).body:
            target = _assigned_name(node)
            value = getattr(node, "value", None)
            if target in {"MAJOR_VERSION", "MINOR_VERSION", "PATCH_VERSION"} and isinstance(
                value, ast.Constant
            ):
                values[target] = str(value.value)
        if len(values) != 3:
            return "unknown"
        return f"{values['MAJOR_VERSION']}.{values['MINOR_VERSION']}.{values['PATCH_VERSION']}"


class DirectoryTree(SourceTree):
    """A directory that holds ``homeassistant/`` (site-packages, or a synthetic tree)."""

    def __init__(self, root: Path) -> None:
        """Read sources below ``root``."""
        self.root = root
        self.origin = str(root / HA)

    def read(self, relpath: str) -> str | None:
        """Return the file's text, or None when it does not exist."""
        path = self.root / relpath
        return path.read_text(encoding="utf-8") if path.is_file() else None


class WheelTree(SourceTree):
    """A ``homeassistant-*.whl``, read in place (nothing is extracted)."""

    def __init__(self, path: Path) -> None:
        """Open the wheel."""
        self.path = path
        self.origin = str(path)
        self._zip = zipfile.ZipFile(path)
        self._names = set(self._zip.namelist())

    def read(self, relpath: str) -> str | None:
        """Return the member's text, or None when the wheel does not have it."""
        if relpath not in self._names:
            return None
        return self._zip.read(relpath).decode("utf-8")


def open_tree(path: Path) -> SourceTree:
    """A wheel file, a directory holding ``homeassistant/``, or the package directory itself."""
    if path.is_file():
        return WheelTree(path)
    if (path / HA / "__init__.py").is_file():
        return DirectoryTree(path)
    if path.name == HA and (path / "__init__.py").is_file():
        return DirectoryTree(path.parent)
    raise FileNotFoundError(f"no Home Assistant sources at {path}")


def installed_tree() -> SourceTree | None:
    """The ``homeassistant`` package this interpreter (or the repo's .venv) would import."""
    spec = importlib.util.find_spec(HA)
    if spec is not None and spec.submodule_search_locations:
        return DirectoryTree(Path(next(iter(spec.submodule_search_locations))).parent)
    for candidate in sorted(REPO_ROOT.glob(".venv/lib/python3*/site-packages")):
        if (candidate / HA / "__init__.py").is_file():
            return DirectoryTree(candidate)
    return None


# -- fetching the newest wheel -------------------------------------------------------------


@dataclass(slots=True)
class FetchResult:
    """Where the newest wheel is (None when there is none) and how it was obtained."""

    path: Path | None
    reason: str
    downloaded: bool = False


def wheel_version(path: Path) -> tuple[int, ...]:
    """``homeassistant-2026.2.3-py3-none-any.whl`` -> ``(2026, 2, 3)``.

    A pre-release (``2026.3.0b1``) sorts below its final release.
    """
    parts = path.name.split("-")
    match = re.fullmatch(r"(\d+(?:\.\d+)*)(.*)", parts[1] if len(parts) > 1 else "")
    if match is None:
        return ()
    release = tuple(int(number) for number in match.group(1).split("."))
    return (*release, 0 if match.group(2) else 1)


def cached_wheel(cache_dir: Path) -> Path | None:
    """The newest ``homeassistant-*.whl`` in the cache."""
    wheels = sorted(cache_dir.glob("homeassistant-*.whl"), key=wheel_version)
    return wheels[-1] if wheels else None


def fetch_newest_wheel(
    cache_dir: Path = CACHE_DIR,
    *,
    offline: bool = False,
    max_age_hours: float = DEFAULT_MAX_AGE_HOURS,
    python_version: str = NEWEST_PYTHON,
    timeout: float = PIP_TIMEOUT,
) -> FetchResult:
    """Return the newest ``homeassistant`` wheel, downloading it only when the cache is stale.

    ``pip download`` keeps a file it already has, so even a stale cache costs one index
    query, not a second download. Failures never raise: the result carries the reason.
    """
    cached = cached_wheel(cache_dir) if cache_dir.is_dir() else None
    stamp = cache_dir / STAMP_NAME
    if offline:
        if cached is None:
            return FetchResult(None, f"--offline and no cached wheel in {cache_dir}")
        return FetchResult(cached, f"offline: using the cached {cached.name}")
    if (
        cached is not None
        and stamp.is_file()
        and time.time() - stamp.stat().st_mtime < max_age_hours * 3600
    ):
        return FetchResult(cached, f"cached {cached.name} (checked within {max_age_hours:g} h)")
    cache_dir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        python_version,
        "--disable-pip-version-check",
        "--no-input",
        "--progress-bar",
        "off",
        "--retries",
        "1",
        "--timeout",
        "20",
        "-d",
        str(cache_dir),
        HA,
    ]
    try:
        process = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        failure = f"pip download failed: {err}"
    else:
        failure = ""
        if process.returncode != 0:
            lines = (process.stderr or process.stdout).strip().splitlines()
            failure = f"pip download exited with {process.returncode}: " + " | ".join(lines[-3:])
    if failure:
        if cached is not None:
            return FetchResult(cached, f"registry unreachable ({failure}); using {cached.name}")
        return FetchResult(None, f"registry unreachable: {failure}")
    newest = cached_wheel(cache_dir)
    if newest is None:
        return FetchResult(None, f"pip download left no homeassistant wheel in {cache_dir}")
    for wheel in cache_dir.glob("homeassistant-*.whl"):
        if wheel != newest:
            wheel.unlink()
    stamp.write_text(json.dumps({"wheel": newest.name, "checked": time.time()}) + "\n")
    return FetchResult(
        newest, f"downloaded {newest.name}", downloaded=newest.name != getattr(cached, "name", "")
    )


# -- module index --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Symbol:
    """Something a module defines: module, class, function, variable, alias, external, dynamic."""

    kind: str
    module: str
    name: str
    node: ast.AST | None = field(default=None, compare=False, hash=False)
    annotation: ast.expr | None = field(default=None, compare=False, hash=False)
    deprecated: str | None = field(default=None, compare=False, hash=False)

    @property
    def is_ha(self) -> bool:
        """Whether Home Assistant defines it."""
        return self.module == HA or self.module.startswith(f"{HA}.")

    @property
    def qualname(self) -> str:
        """``module.name``."""
        return f"{self.module}.{self.name}" if self.name else self.module


@dataclass(slots=True)
class ModuleInfo:
    """A parsed module and what its top level binds."""

    name: str
    path: str
    tree: ast.Module
    is_package: bool
    bindings: dict[str, list[tuple[Any, ...]]]
    star_imports: list[str]
    has_getattr: bool


@dataclass(frozen=True, slots=True)
class Member:
    """An attribute found on a class (or its bases)."""

    kind: str  # method, staticmethod, classmethod, property, attribute, enum_member, class
    owner: Symbol
    name: str
    node: ast.AST | None = field(default=None, compare=False, hash=False)
    annotation: ast.expr | None = field(default=None, compare=False, hash=False)
    value: ast.expr | None = field(default=None, compare=False, hash=False)


MISSING: Final = "missing"
UNKNOWN: Final = "unknown"


def _assigned_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
        target = node.targets[0]
        return target.id if isinstance(target, ast.Name) else None
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return node.target.id
    return None


def _decorator_names(node: ast.AST) -> list[str]:
    names: list[str] = []
    for decorator in getattr(node, "decorator_list", []):
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Name):
            names.append(target.id)
        elif isinstance(target, ast.Attribute):
            names.append(target.attr)
    return names


def _walk_top_level(statements: Iterable[ast.stmt]) -> Iterator[ast.stmt]:
    """Top-level statements, including those inside if/try/with blocks (all branches)."""
    for statement in statements:
        yield statement
        if isinstance(statement, (ast.If, ast.While, ast.For, ast.AsyncFor)):
            yield from _walk_top_level(statement.body)
            yield from _walk_top_level(statement.orelse)
        elif isinstance(statement, (ast.With, ast.AsyncWith)):
            yield from _walk_top_level(statement.body)
        elif isinstance(statement, (ast.Try, ast.TryStar)):
            yield from _walk_top_level(statement.body)
            for handler in statement.handlers:
                yield from _walk_top_level(handler.body)
            yield from _walk_top_level(statement.orelse)
            yield from _walk_top_level(statement.finalbody)


def _resolve_relative(module: str, is_package: bool, level: int, target: str | None) -> str:
    if level == 0:
        return target or ""
    package = module if is_package else module.rpartition(".")[0]
    for _ in range(level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{target}" if target else package


def _bindings(
    info_name: str, is_package: bool, tree: ast.Module
) -> tuple[dict[str, list[tuple[Any, ...]]], list[str], bool]:
    bindings: dict[str, list[tuple[Any, ...]]] = {}
    stars: list[str] = []
    has_getattr = False

    def bind(name: str, entry: tuple[Any, ...]) -> None:
        bindings.setdefault(name, []).append(entry)

    for node in _walk_top_level(tree.body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            bind(node.name, ("def", node))
            has_getattr = has_getattr or node.name == "__getattr__"
        elif isinstance(node, ast.ClassDef):
            bind(node.name, ("class", node))
        elif isinstance(node, ast.TypeAlias) and isinstance(node.name, ast.Name):
            bind(node.name.id, ("alias", node.value))
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                for name_node in ast.walk(target):
                    if isinstance(name_node, ast.Name):
                        value = node.value if isinstance(target, ast.Name) else None
                        bind(name_node.id, ("assign", value, None))
                        has_getattr = has_getattr or name_node.id == "__getattr__"
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            bind(node.target.id, ("assign", node.value, node.annotation))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    bind(alias.asname, ("import", alias.name, None))
                else:
                    top = alias.name.split(".")[0]
                    bind(top, ("import", top, None))
        elif isinstance(node, ast.ImportFrom):
            source = _resolve_relative(info_name, is_package, node.level, node.module)
            for alias in node.names:
                if alias.name == "*":
                    stars.append(source)
                else:
                    bind(alias.asname or alias.name, ("import", source, alias.name))
    return bindings, stars, has_getattr


class World:
    """Home Assistant's modules (one version) plus the integration's own package."""

    def __init__(self, tree: SourceTree, package_dir: Path) -> None:
        """Resolve ``homeassistant.*`` in ``tree`` and the integration in ``package_dir``."""
        self.tree = tree
        self.package_dir = package_dir
        self.package = package_dir.name
        self._modules: dict[str, ModuleInfo | None] = {}
        self._members: dict[tuple[Symbol, str], Member | str] = {}
        self._mro: dict[Symbol, tuple[list[Symbol], list[tuple[str, str]]]] = {}
        self.parse_errors: dict[str, str] = {}

    def canonical(self, name: str) -> str:
        """``custom_components.<pkg>.x`` -> ``<pkg>.x``."""
        prefix = f"custom_components.{self.package}"
        if name == prefix or name.startswith(f"{prefix}."):
            return name[len("custom_components.") :]
        return name

    def is_internal(self, module: str) -> bool:
        """Home Assistant or the integration: modules this world can read."""
        module = self.canonical(module)
        return module.split(".")[0] in {HA, self.package}

    def _source(self, name: str) -> tuple[str, str, bool] | None:
        parts = name.split(".")
        if parts[0] == HA:
            base = "/".join(parts)
            for relpath, is_package in ((f"{base}.py", False), (f"{base}/__init__.py", True)):
                text = self.tree.read(relpath)
                if text is not None:
                    return text, relpath, is_package
            return None
        if parts[0] == self.package:
            path = self.package_dir.joinpath(*parts[1:])
            for candidate, is_package in (
                (path.with_suffix(".py"), False),
                (path / "__init__.py", True),
            ):
                if len(parts) == 1 and not is_package:
                    continue
                if candidate.is_file():
                    return candidate.read_text(encoding="utf-8"), str(candidate), is_package
        return None

    def module(self, name: str) -> ModuleInfo | None:
        """Parse (once) and index the module, or None when it does not exist here."""
        name = self.canonical(name)
        if name in self._modules:
            return self._modules[name]
        info: ModuleInfo | None = None
        source = self._source(name)
        if source is not None:
            text, path, is_package = source
            try:
                tree = ast.parse(text)
            except SyntaxError as err:
                self.parse_errors[name] = f"{path}:{err.lineno}: {err.msg}"
                tree = ast.Module(body=[], type_ignores=[])
            bindings, stars, has_getattr = _bindings(name, is_package, tree)
            info = ModuleInfo(name, path, tree, is_package, bindings, stars, has_getattr)
        self._modules[name] = info
        return info

    def local_modules(self) -> list[ModuleInfo]:
        """Every module of the integration's package, in path order."""
        found: list[ModuleInfo] = []
        for path in sorted(self.package_dir.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            relative = path.relative_to(self.package_dir).with_suffix("")
            parts = [self.package, *relative.parts]
            if parts[-1] == "__init__":
                parts.pop()
            info = self.module(".".join(parts))
            if info is not None:
                found.append(info)
        return found

    # symbols

    def resolve(self, module: str, name: str, depth: int = 0) -> Symbol | None:
        """What ``from module import name`` gives, following re-exports."""
        module = self.canonical(module)
        info = self.module(module)
        if info is None or depth > 25:
            return None
        for binding in info.bindings.get(name, ()):
            symbol = self._binding_symbol(info, name, binding, depth)
            if symbol is not None:
                return symbol
        for star in info.star_imports:
            if not name.startswith("_") and self.is_internal(star):
                symbol = self.resolve(star, name, depth + 1)
                if symbol is not None:
                    return symbol
        if self.module(f"{module}.{name}") is not None:
            return Symbol("module", f"{module}.{name}", "")
        if f"_DEPRECATED_{name}" in info.bindings:
            return Symbol(
                "variable",
                module,
                name,
                deprecated=f"{module}.{name} is a deprecated constant (kept importable for now)",
            )
        if info.has_getattr:
            return Symbol("dynamic", module, name)
        return None

    def _binding_symbol(
        self, info: ModuleInfo, name: str, binding: tuple[Any, ...], depth: int
    ) -> Symbol | None:
        kind = binding[0]
        if kind == "def":
            node = binding[1]
            return Symbol("function", info.name, name, node, deprecated=_deprecation(node))
        if kind == "class":
            node = binding[1]
            return Symbol("class", info.name, name, node, deprecated=_deprecation(node))
        if kind == "alias":
            return Symbol("alias", info.name, name, binding[1])
        if kind == "assign":
            value, annotation = binding[1], binding[2]
            if annotation is None and isinstance(value, (ast.Name, ast.Attribute)):
                target = self.resolve_expr(info.name, value, depth + 1)
                if target is not None and target.kind in {"class", "function", "module"}:
                    return target
            return Symbol("variable", info.name, name, value, annotation)
        source, attr = binding[1], binding[2]
        if attr is None:
            if self.is_internal(source):
                return Symbol("module", self.canonical(source), "") if self.module(source) else None
            return Symbol("external", source, "")
        if self.is_internal(source):
            return self.resolve(source, attr, depth + 1)
        return Symbol("external", source, attr)

    def resolve_expr(self, module: str, expr: ast.expr | None, depth: int = 0) -> Symbol | None:
        """The symbol a dotted name (or a string holding one) denotes in ``module``."""
        if expr is None or depth > 25:
            return None
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            try:
                parsed = ast.parse(expr.value, mode="eval").body
            except SyntaxError:
                return None
            return self.resolve_expr(module, parsed, depth + 1)
        if isinstance(expr, ast.Subscript):
            return self.resolve_expr(module, expr.value, depth + 1)
        if isinstance(expr, ast.Name):
            symbol = self.resolve(module, expr.id, depth + 1)
            if symbol is None and hasattr(builtins, expr.id):
                return Symbol("external", "builtins", expr.id)
            return symbol
        if isinstance(expr, ast.Attribute):
            base = self.resolve_expr(module, expr.value, depth + 1)
            if base is None:
                return None
            if base.kind == "module":
                return self.resolve(base.module, expr.attr, depth + 1)
            if base.kind == "external":
                name = f"{base.name}.{expr.attr}" if base.name else expr.attr
                return Symbol("external", base.module, name)
        return None

    # classes

    def bases(self, cls: Symbol) -> list[Symbol | tuple[str, str]]:
        """Direct bases: classes this world knows, or (module, name) of external ones."""
        assert isinstance(cls.node, ast.ClassDef)
        result: list[Symbol | tuple[str, str]] = []
        for base in cls.node.bases:
            symbol = self.resolve_expr(cls.module, base)
            if symbol is not None and symbol.kind == "class":
                result.append(symbol)
            elif symbol is not None and symbol.kind == "external":
                result.append((symbol.module, symbol.name))
            else:
                result.append(("?", ast.unparse(base)))
        return result

    def mro(self, cls: Symbol) -> tuple[list[Symbol], list[tuple[str, str]]]:
        """Known classes in (approximate) method resolution order, and the external bases."""
        if cls in self._mro:
            return self._mro[cls]
        known: list[Symbol] = []
        external: list[tuple[str, str]] = []

        def visit(symbol: Symbol) -> None:
            if symbol in known:
                return
            known.append(symbol)
            for base in self.bases(symbol):
                if isinstance(base, Symbol):
                    visit(base)
                elif base not in external:
                    external.append(base)

        visit(cls)
        self._mro[cls] = (known, external)
        return known, external

    def is_ha_derived(self, cls: Symbol) -> bool:
        """Whether the class is Home Assistant's, or derives from one of its classes."""
        return any(symbol.is_ha for symbol in self.mro(cls)[0])

    def is_enum(self, cls: Symbol) -> bool:
        """Whether an Enum class is among its bases."""
        return any(name.split(".")[-1] in _ENUM_BASES for _, name in self.mro(cls)[1])

    def is_typeddict(self, cls: Symbol) -> bool:
        """Whether it is a TypedDict."""
        return any(name.split(".")[-1] == "TypedDict" for _, name in self.mro(cls)[1])

    def lookup_member(self, cls: Symbol, attr: str) -> Member | str:
        """Find ``attr`` on the class or its bases: a Member, MISSING, or UNKNOWN."""
        key = (cls, attr)
        if key not in self._members:
            self._members[key] = self._lookup_member(cls, attr)
        return self._members[key]

    def _lookup_member(self, cls: Symbol, attr: str) -> Member | str:
        known, external = self.mro(cls)
        for owner in known:
            member = _class_member(owner, attr, enum=self.is_enum(owner))
            if member is not None:
                return member
        for owner in known:
            member = _instance_member(owner, attr)
            if member is not None:
                return member
        if any(_has_class_getattr(owner) for owner in known):
            return UNKNOWN
        for module, name in external:
            if name in _TRANSPARENT_BASES:
                continue
            has = _runtime_has_attr(module, name, attr)
            if has is None:
                return UNKNOWN
            if has:
                return Member("attribute", Symbol("external", module, name), attr)
        if attr in {"__class__", "__dict__", "__doc__", "__module__", "__init__", "__name__"}:
            return UNKNOWN
        return MISSING

    def constructor(self, cls: Symbol) -> Signature | None:
        """The signature ``cls(...)`` is checked against (None when it cannot be known)."""
        known, external = self.mro(cls)
        if self.is_typeddict(cls):
            params: list[Param] = []
            for owner in reversed(known):
                assert isinstance(owner.node, ast.ClassDef)
                total = not any(
                    keyword.arg == "total"
                    and isinstance(keyword.value, ast.Constant)
                    and keyword.value.value is False
                    for keyword in owner.node.keywords
                )
                for statement in owner.node.body:
                    if isinstance(statement, ast.AnnAssign) and isinstance(
                        statement.target, ast.Name
                    ):
                        wrapper = _subscript_name(statement.annotation)
                        required = (total and wrapper != "NotRequired") or wrapper == "Required"
                        params.append(
                            Param(statement.target.id, "kwonly", required, statement.annotation)
                        )
            return Signature(params, f"{cls.name}(TypedDict)", cls)
        for owner in known:
            if "dataclass" in _decorator_names(owner.node):
                return _dataclass_signature(cls, [k for k in known if k.node is not None])
            init = _class_member(owner, "__init__", enum=False)
            if init is not None and isinstance(init.node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                return signature_of(init.node, owner, drop_first=True)
        if all(name in _TRANSPARENT_BASES for _, name in external):
            return Signature([], f"{cls.name}()", cls)
        return None


def _subscript_name(annotation: ast.expr | None) -> str:
    if isinstance(annotation, ast.Subscript):
        value = annotation.value
        if isinstance(value, ast.Name):
            return value.id
        if isinstance(value, ast.Attribute):
            return value.attr
    return ""


def _deprecation(node: ast.AST) -> str | None:
    for decorator in getattr(node, "decorator_list", []):
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = target.id if isinstance(target, ast.Name) else getattr(target, "attr", "")
        if name in _DEPRECATION_DECORATORS:
            return f"marked @{ast.unparse(decorator)}"
    return None


def _reports_usage(node: ast.AST | None, passed: set[str]) -> str | None:
    """A ``report_usage(...)`` our call can reach: the function warns now and breaks later.

    A report under an ``if`` that tests a parameter we do not pass is out of our reach
    (``if suggested_area is not UNDEFINED: report_usage(...)``).
    """
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return None
    arguments = node.args
    params = {
        argument.arg
        for argument in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
    }
    parents: dict[ast.AST, ast.AST] = {}
    for parent in ast.walk(node):
        for child in ast.iter_child_nodes(parent):
            parents[child] = parent
    for child in ast.walk(node):
        if not isinstance(child, ast.Call):
            continue
        func = child.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        if name not in {"report_usage", "_report_usage"}:
            continue
        ancestor = parents.get(child)
        reachable = True
        while ancestor is not None and ancestor is not node:
            if isinstance(ancestor, ast.If):
                tested = _names_in(ancestor.test) & params
                if tested and not tested & passed:
                    reachable = False
                    break
            ancestor = parents.get(ancestor)
        if not reachable:
            continue
        breaks = next(
            (
                kw.value.value
                for kw in child.keywords
                if kw.arg == "breaks_in_ha_version" and isinstance(kw.value, ast.Constant)
            ),
            None,
        )
        text = ""
        if child.args and isinstance(child.args[0], (ast.Constant, ast.JoinedStr)):
            first = child.args[0]
            parts = first.values if isinstance(first, ast.JoinedStr) else [first]
            text = "".join(
                part.value if isinstance(part, ast.Constant) else "{...}" for part in parts
            )
        return f"may report usage{f' ({text})' if text else ''}" + (
            f", breaks in {breaks}" if breaks else ""
        )
    return None


def _has_setter(owner: Symbol, attr: str) -> bool:
    assert isinstance(owner.node, ast.ClassDef)
    return any(
        isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef))
        and any(
            isinstance(decorator, ast.Attribute)
            and decorator.attr == "setter"
            and isinstance(decorator.value, ast.Name)
            and decorator.value.id == attr
            for decorator in statement.decorator_list
        )
        for statement in owner.node.body
    )


def _has_class_getattr(cls: Symbol) -> bool:
    assert isinstance(cls.node, ast.ClassDef)
    return any(
        isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef))
        and statement.name in {"__getattr__", "__getattribute__"}
        for statement in cls.node.body
    )


def _runtime_has_attr(module: str, name: str, attr: str) -> bool | None:
    if module not in _RUNTIME_MODULES and module != "?":
        return None
    candidates = [module] if module != "?" else ["builtins"]
    for candidate in candidates:
        try:
            obj: Any = importlib.import_module(candidate)
        except ImportError:
            return None
        for part in name.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                return None
        return hasattr(obj, attr)
    return None


def _class_member(owner: Symbol, attr: str, *, enum: bool) -> Member | None:
    assert isinstance(owner.node, ast.ClassDef)
    found: Member | None = None
    for statement in owner.node.body:
        if (
            isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef))
            and statement.name == attr
        ):
            decorators = _decorator_names(statement)
            if "overload" in decorators and found is not None:
                continue
            if {"property", "cached_property", "under_cached_property"} & set(decorators):
                kind = "property"
            elif "setter" in decorators or "deleter" in decorators:
                continue
            elif "staticmethod" in decorators:
                kind = "staticmethod"
            elif "classmethod" in decorators:
                kind = "classmethod"
            else:
                kind = "method"
            found = Member(kind, owner, attr, statement, statement.returns)
        elif isinstance(statement, ast.ClassDef) and statement.name == attr:
            return Member("class", owner, attr, statement)
        elif _assigned_name(statement) == attr and found is None:
            annotation = statement.annotation if isinstance(statement, ast.AnnAssign) else None
            value = statement.value if isinstance(statement, (ast.Assign, ast.AnnAssign)) else None
            is_member = enum and isinstance(statement, ast.Assign) and not attr.startswith("_")
            found = Member(
                "enum_member" if is_member else "attribute",
                owner,
                attr,
                statement,
                annotation,
                value,
            )
        elif (
            _assigned_name(statement) == "__slots__"
            and isinstance(statement, (ast.Assign, ast.AnnAssign))
            and isinstance(statement.value, (ast.Tuple, ast.List, ast.Set))
            and any(
                isinstance(item, ast.Constant) and item.value == attr
                for item in statement.value.elts
            )
            and found is None
        ):
            found = Member("attribute", owner, attr)
    return found


def _instance_member(owner: Symbol, attr: str) -> Member | None:
    """``self.attr = ...`` / ``self.attr: T = ...`` in any method of the class."""
    assert isinstance(owner.node, ast.ClassDef)
    best: Member | None = None
    for statement in owner.node.body:
        if not isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        arguments = [*statement.args.posonlyargs, *statement.args.args]
        if not arguments:
            continue
        self_name = arguments[0].arg
        for node in ast.walk(statement):
            targets: list[ast.expr] = []
            annotation: ast.expr | None = None
            value: ast.expr | None = None
            if isinstance(node, ast.Assign):
                targets, value = node.targets, node.value
            elif isinstance(node, ast.AnnAssign):
                targets, annotation, value = [node.target], node.annotation, node.value
            for target in targets:
                if (
                    isinstance(target, ast.Attribute)
                    and target.attr == attr
                    and isinstance(target.value, ast.Name)
                    and target.value.id == self_name
                ):
                    member = Member("attribute", owner, attr, node, annotation, value)
                    if best is None or (annotation is not None and best.annotation is None):
                        best = member
    return best


# -- signatures ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter: kind is posonly, poskw, vararg, kwonly or varkw."""

    name: str
    kind: str
    required: bool
    annotation: ast.expr | None = field(default=None, compare=False, hash=False)


@dataclass(slots=True)
class Signature:
    """What a callable accepts."""

    params: list[Param]
    text: str
    owner: Symbol | None = None
    node: ast.AST | None = None

    @property
    def positional(self) -> list[Param]:
        """Parameters that take positional arguments, in order."""
        return [param for param in self.params if param.kind in {"posonly", "poskw"}]

    def param(self, position: int | None = None, keyword: str | None = None) -> Param | None:
        """The parameter an argument binds to (None when it goes to *args / **kwargs)."""
        if position is not None:
            positional = self.positional
            return positional[position] if position < len(positional) else None
        return next(
            (p for p in self.params if p.name == keyword and p.kind in {"poskw", "kwonly"}), None
        )

    def bind(
        self, npos: int, keywords: Sequence[str], *, star_args: bool, star_kwargs: bool
    ) -> list[str]:
        """Problems calling it with ``npos`` positional arguments and these keywords."""
        problems: list[str] = []
        positional = self.positional
        has_var = any(param.kind == "vararg" for param in self.params)
        has_varkw = any(param.kind == "varkw" for param in self.params)
        if not star_args and npos > len(positional) and not has_var:
            problems.append(f"takes {len(positional)} positional argument(s), {npos} given")
        bound = {param.name for param in positional[:npos]}
        names = {param.name for param in self.params if param.kind in {"poskw", "kwonly"}}
        for keyword in keywords:
            if keyword in bound and keyword in names:
                problems.append(f"got multiple values for `{keyword}`")
            elif keyword not in names and not has_varkw:
                problems.append(f"does not accept the keyword argument `{keyword}`")
            bound.add(keyword)
        if not star_args and not star_kwargs:
            missing = [
                param.name
                for param in self.params
                if param.required
                and param.kind in {"posonly", "poskw", "kwonly"}
                and param.name not in bound
            ]
            if missing:
                problems.append(
                    "requires " + ", ".join(f"`{name}`" for name in missing) + ", not passed"
                )
        return problems


def signature_of(
    node: ast.FunctionDef | ast.AsyncFunctionDef, owner: Symbol | None, *, drop_first: bool
) -> Signature:
    """The signature of a ``def`` (without ``self`` / ``cls`` when ``drop_first``)."""
    arguments = node.args
    params: list[Param] = []
    positional = [*arguments.posonlyargs, *arguments.args]
    first_default = len(positional) - len(arguments.defaults)
    for index, argument in enumerate(positional):
        kind = "posonly" if index < len(arguments.posonlyargs) else "poskw"
        params.append(Param(argument.arg, kind, index < first_default, argument.annotation))
    if arguments.vararg:
        params.append(Param(arguments.vararg.arg, "vararg", False, arguments.vararg.annotation))
    for argument, default in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True):
        params.append(Param(argument.arg, "kwonly", default is None, argument.annotation))
    if arguments.kwarg:
        params.append(Param(arguments.kwarg.arg, "varkw", False, arguments.kwarg.annotation))
    shown = ast.unparse(arguments)
    if drop_first and params and params[0].kind in {"posonly", "poskw"}:
        params = params[1:]
        shown = ast.unparse(_without_first(arguments))
    where = f"{owner.name}." if owner is not None and owner.kind == "class" else ""
    return Signature(params, f"{where}{node.name}({shown})", owner, node)


def _without_first(arguments: ast.arguments) -> ast.arguments:
    copy = ast.arguments(
        posonlyargs=list(arguments.posonlyargs),
        args=list(arguments.args),
        vararg=arguments.vararg,
        kwonlyargs=list(arguments.kwonlyargs),
        kw_defaults=list(arguments.kw_defaults),
        kwarg=arguments.kwarg,
        defaults=list(arguments.defaults),
    )
    if copy.posonlyargs:
        copy.posonlyargs.pop(0)
    elif copy.args:
        copy.args.pop(0)
    total = len(copy.posonlyargs) + len(copy.args)
    copy.defaults = copy.defaults[-total:] if total else []
    return copy


def _dataclass_signature(cls: Symbol, known: list[Symbol]) -> Signature:
    params: dict[str, Param] = {}
    for owner in reversed(known):
        assert isinstance(owner.node, ast.ClassDef)
        if "dataclass" not in _decorator_names(owner.node):
            continue
        kw_only = any(
            isinstance(decorator, ast.Call)
            and any(
                kw.arg == "kw_only" and isinstance(kw.value, ast.Constant) and kw.value.value
                for kw in decorator.keywords
            )
            for decorator in owner.node.decorator_list
        )
        for statement in owner.node.body:
            if not (
                isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)
            ):
                continue
            annotation_text = ast.unparse(statement.annotation)
            if annotation_text.startswith(("ClassVar", "typing.ClassVar")):
                continue
            if annotation_text in {"KW_ONLY", "dataclasses.KW_ONLY"}:
                kw_only = True
                continue
            value = statement.value
            if (
                isinstance(value, ast.Call)
                and ast.unparse(value.func).endswith("field")
                and any(
                    kw.arg == "init"
                    and isinstance(kw.value, ast.Constant)
                    and kw.value.value is False
                    for kw in value.keywords
                )
            ):
                continue
            name = statement.target.id
            params[name] = Param(
                name, "kwonly" if kw_only else "poskw", value is None, statement.annotation
            )
    ordered = sorted(params.values(), key=lambda param: param.kind == "kwonly")
    text = ", ".join(f"{param.name}{'' if param.required else '=...'}" for param in ordered)
    return Signature(ordered, f"{cls.name}({text})", cls)


# -- values and type inference ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Val:
    """What an expression evaluates to: module / class / instance / function / method."""

    kind: str
    symbol: Symbol
    member: Member | None = field(default=None, compare=True, hash=True)
    bound: bool = True


class Scope:
    """Names visible in a function (or module) of the integration."""

    def __init__(
        self,
        analyzer: Analyzer,
        module: ModuleInfo,
        parent: Scope | None,
        func: ast.FunctionDef | ast.AsyncFunctionDef | None = None,
        cls: Symbol | None = None,
    ) -> None:
        """Index parameters and local assignments of ``func``."""
        self.analyzer = analyzer
        self.module = module
        self.parent = parent
        self.func = func
        self.cls = cls
        self.params: dict[str, frozenset[Val]] = {}
        self.local_names: set[str] = set()
        self.values: dict[str, list[tuple[ast.expr | None, ast.expr | None]]] = {}
        self._busy: set[str] = set()
        self._cache: dict[str, frozenset[Val]] = {}
        if func is not None:
            self._index(func)

    def _index(self, func: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        analyzer = self.analyzer
        arguments = [*func.args.posonlyargs, *func.args.args]
        decorators = _decorator_names(func)
        for index, argument in enumerate(
            [*arguments, *func.args.kwonlyargs, func.args.vararg, func.args.kwarg]
        ):
            if argument is None:
                continue
            vals: frozenset[Val] = frozenset()
            if index == 0 and self.cls is not None and "staticmethod" not in decorators:
                kind = "class" if "classmethod" in decorators else "instance"
                vals = frozenset({Val(kind, self.cls)})
            elif argument.annotation is not None and argument not in (
                func.args.vararg,
                func.args.kwarg,
            ):
                vals = analyzer.annotation_vals(self.module.name, argument.annotation)
            self.params[argument.arg] = vals
        for node in own_nodes(func.body):
            if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.NamedExpr)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        self.local_names.add(target.id)
                        annotation = getattr(node, "annotation", None)
                        value = None if isinstance(node, ast.AugAssign) else node.value
                        self.values.setdefault(target.id, []).append((value, annotation))
                    else:
                        self.local_names.update(_names_in(target))
            elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
                self.local_names.update(_names_in(node.target))
            elif isinstance(node, (ast.With, ast.AsyncWith)):
                for item in node.items:
                    if item.optional_vars is not None:
                        self.local_names.update(_names_in(item.optional_vars))
            elif (isinstance(node, ast.ExceptHandler) and node.name) or isinstance(
                node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
            ):
                self.local_names.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    self.local_names.add((alias.asname or alias.name).split(".")[0])

    def lookup(self, name: str) -> frozenset[Val]:
        """The possible values of ``name`` here."""
        if self.func is None:
            symbol = self.analyzer.world.resolve(self.module.name, name)
            return self.analyzer.symbol_vals(symbol) if symbol is not None else frozenset()
        if name in self.params:
            return self.params[name]
        if name in self.local_names:
            if name in self._cache:
                return self._cache[name]
            if name in self._busy:
                return frozenset()
            self._busy.add(name)
            result: set[Val] = set()
            for value, annotation in self.values.get(name, []):
                if annotation is not None:
                    result |= self.analyzer.annotation_vals(self.module.name, annotation)
                elif value is not None:
                    result |= self.analyzer.infer(value, self)
            self._busy.discard(name)
            self._cache[name] = frozenset(result)
            return self._cache[name]
        assert self.parent is not None
        return self.parent.lookup(name)


def _names_in(target: ast.AST) -> set[str]:
    return {node.id for node in ast.walk(target) if isinstance(node, ast.Name)}


def own_nodes(statements: Sequence[ast.AST]) -> Iterator[ast.AST]:
    """Every node, without entering nested function or class bodies."""
    stack: list[ast.AST] = list(reversed(statements))
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            arguments = node.args
            children: list[ast.AST | None] = [
                *node.decorator_list,
                *arguments.defaults,
                *arguments.kw_defaults,
                *(
                    argument.annotation
                    for argument in [
                        *arguments.posonlyargs,
                        *arguments.args,
                        *arguments.kwonlyargs,
                    ]
                ),
                node.returns,
            ]
        elif isinstance(node, ast.ClassDef):
            children = [*node.decorator_list, *node.bases, *node.keywords]
        else:
            children = list(ast.iter_child_nodes(node))
        stack.extend(reversed([child for child in children if child is not None]))


# -- findings --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem, at ``file:line`` of the integration."""

    file: str
    line: int
    code: str
    message: str
    severity: str = "error"
    key: tuple[Any, ...] = field(default=(), compare=False, hash=False)

    def render(self) -> str:
        """``file:line: [code] message``."""
        return f"{self.file}:{self.line}: [{self.code}] {self.message}"


@dataclass(slots=True)
class CallRecord:
    """A call into Home Assistant, kept to compare the two versions' signatures."""

    target: str
    npos: int
    positional_kinds: list[str | None]
    keywords: dict[str, ast.expr]
    signature: Signature | None
    file: str
    line: int


class Analyzer:
    """Walk the integration with one Home Assistant version and record what does not fit."""

    def __init__(self, world: World, display_root: Path, *, design_rules: bool) -> None:
        """Prepare; ``run()`` does the work."""
        self.world = world
        self.display_root = display_root
        self.design_rules = design_rules
        self.label = world.tree.version()
        self.findings: list[Finding] = []
        self.resolutions: dict[tuple[Any, ...], str] = {}
        self.calls: dict[tuple[Any, ...], CallRecord] = {}
        self.stats: Counter[str] = Counter()
        self.notes: list[str] = []
        self._memo: dict[tuple[int, int], frozenset[Val]] = {}
        self._infer_depth = 0
        self._file = ""

    # reporting helpers

    def _display(self, path: str) -> str:
        try:
            return str(Path(path).resolve().relative_to(self.display_root.resolve()))
        except ValueError:
            return path

    def _add(
        self,
        node: ast.AST | int,
        code: str,
        message: str,
        key: tuple[Any, ...],
        *,
        warn: bool = False,
    ) -> None:
        line = node if isinstance(node, int) else getattr(node, "lineno", 0)
        self.findings.append(
            Finding(self._file, line, code, message, "warning" if warn else "error", key)
        )

    # inference

    def symbol_vals(self, symbol: Symbol) -> frozenset[Val]:
        """Values a module-level symbol stands for."""
        if symbol.kind == "module":
            return frozenset({Val("module", symbol)})
        if symbol.kind == "class":
            return frozenset({Val("class", symbol)})
        if symbol.kind == "function":
            return frozenset({Val("function", symbol)})
        if symbol.kind == "variable":
            vals: set[Val] = {Val("variable", symbol)}
            if symbol.annotation is not None:
                vals |= self.annotation_vals(symbol.module, symbol.annotation)
            elif isinstance(symbol.node, ast.expr) and not symbol.is_ha:
                info = self.world.module(symbol.module)
                if info is not None:
                    vals |= self.infer(symbol.node, Scope(self, info, None))
            elif isinstance(symbol.node, ast.Call):
                vals |= self._ha_value(symbol.module, symbol.node)
            return frozenset(vals)
        return frozenset()

    def annotation_vals(
        self, module: str, annotation: ast.expr | None, owner: Symbol | None = None, depth: int = 0
    ) -> frozenset[Val]:
        """Instances an annotation promises (unions, Optional, aliases, ``type[X]``)."""
        if annotation is None or depth > 15:
            return frozenset()
        if isinstance(annotation, ast.Constant):
            if not isinstance(annotation.value, str):
                return frozenset()
            try:
                parsed = ast.parse(annotation.value, mode="eval").body
            except SyntaxError:
                return frozenset()
            return self.annotation_vals(module, parsed, owner, depth + 1)
        if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
            return self.annotation_vals(
                module, annotation.left, owner, depth + 1
            ) | self.annotation_vals(module, annotation.right, owner, depth + 1)
        if isinstance(annotation, ast.Subscript):
            wrapper = _subscript_name(annotation)
            items = (
                list(annotation.slice.elts)
                if isinstance(annotation.slice, ast.Tuple)
                else [annotation.slice]
            )
            if wrapper in {"Optional", "Union"}:
                result: set[Val] = set()
                for item in items:
                    result |= self.annotation_vals(module, item, owner, depth + 1)
                return frozenset(result)
            if wrapper in {"Annotated", "Final", "ClassVar", "Required", "NotRequired", "ReadOnly"}:
                return self.annotation_vals(module, items[0], owner, depth + 1)
            if wrapper in {"Awaitable", "Coroutine"}:
                return self.annotation_vals(module, items[-1], owner, depth + 1)
            if wrapper in {"type", "Type"}:
                return frozenset(
                    Val("class", val.symbol)
                    for val in self.annotation_vals(module, items[0], owner, depth + 1)
                    if val.kind == "instance"
                )
            return self.annotation_vals(module, annotation.value, owner, depth + 1)
        if isinstance(annotation, ast.Name) and annotation.id == "Self" and owner is not None:
            return frozenset({Val("instance", owner)})
        symbol = self.world.resolve_expr(module, annotation)
        if symbol is None:
            return frozenset()
        if symbol.kind == "class":
            return frozenset({Val("instance", symbol)})
        if symbol.kind == "alias":
            assert isinstance(symbol.node, ast.expr)
            return self.annotation_vals(symbol.module, symbol.node, owner, depth + 1)
        if symbol.kind == "variable" and isinstance(
            symbol.node, (ast.Subscript, ast.BinOp, ast.Name, ast.Attribute)
        ):
            return self.annotation_vals(symbol.module, symbol.node, owner, depth + 1)
        return frozenset()

    def _ha_value(self, module: str, value: ast.expr | None) -> frozenset[Val]:
        """What an (unannotated) value in Home Assistant's code is: ``Cls(...)`` -> instance."""
        if isinstance(value, ast.Call):
            symbol = self.world.resolve_expr(module, value.func)
            if symbol is not None and symbol.kind == "class":
                return frozenset({Val("instance", symbol)})
        return frozenset()

    def member_vals(self, val: Val, attr: str) -> tuple[str | Member | Symbol, frozenset[Val]]:
        """Look ``attr`` up on a value: (MISSING | UNKNOWN | Member | Symbol, its values)."""
        if val.kind == "module":
            symbol = self.world.resolve(val.symbol.module, attr)
            if symbol is None:
                return (
                    MISSING if self.world.is_internal(val.symbol.module) else UNKNOWN
                ), frozenset()
            return symbol, self.symbol_vals(symbol)
        if val.kind not in {"class", "instance"}:
            return UNKNOWN, frozenset()
        member = self.world.lookup_member(val.symbol, attr)
        if not isinstance(member, Member):
            return member, frozenset()
        owner = member.owner
        if member.kind in {"method", "staticmethod", "classmethod"}:
            bound = val.kind == "instance" or member.kind != "method"
            return member, frozenset({Val("method", owner, member, bound)})
        if member.kind == "property":
            return member, self.annotation_vals(owner.module, member.annotation, val.symbol)
        if member.kind == "enum_member":
            return member, frozenset({Val("instance", owner)})
        if member.kind == "class":
            symbol = Symbol("class", owner.module, f"{owner.name}.{attr}", member.node)
            return member, frozenset({Val("class", symbol)})
        if member.annotation is not None:
            return member, self.annotation_vals(owner.module, member.annotation, val.symbol)
        if owner.is_ha or owner.kind != "class":
            return member, self._ha_value(owner.module, member.value)
        return member, frozenset()

    def call_vals(self, val: Val) -> frozenset[Val]:
        """What calling the value returns."""
        if val.kind == "class":
            return frozenset({Val("instance", val.symbol)})
        if val.kind == "function" and isinstance(
            val.symbol.node, (ast.FunctionDef, ast.AsyncFunctionDef)
        ):
            return self.annotation_vals(val.symbol.module, val.symbol.node.returns)
        if (
            val.kind == "method"
            and val.member is not None
            and isinstance(val.member.node, (ast.FunctionDef, ast.AsyncFunctionDef))
        ):
            return self.annotation_vals(val.symbol.module, val.member.node.returns, val.symbol)
        return frozenset()

    def infer(self, expr: ast.expr, scope: Scope) -> frozenset[Val]:
        """Possible values of an expression (empty when unknown)."""
        key = (id(expr), id(scope))
        if key in self._memo:
            return self._memo[key]
        if self._infer_depth > 60:
            return frozenset()
        self._infer_depth += 1
        try:
            result = self._infer(expr, scope)
        finally:
            self._infer_depth -= 1
        self._memo[key] = result
        return result

    def _infer(self, expr: ast.expr, scope: Scope) -> frozenset[Val]:
        if isinstance(expr, ast.Name):
            return scope.lookup(expr.id)
        if isinstance(expr, ast.Attribute):
            result: set[Val] = set()
            for val in self.infer(expr.value, scope):
                result |= self.member_vals(val, expr.attr)[1]
            return frozenset(result)
        if isinstance(expr, ast.Call):
            result = set()
            for val in self.infer(expr.func, scope):
                result |= self.call_vals(val)
            return frozenset(result)
        if isinstance(expr, ast.Await):
            return self.infer(expr.value, scope)
        if isinstance(expr, ast.IfExp):
            return self.infer(expr.body, scope) | self.infer(expr.orelse, scope)
        if isinstance(expr, ast.BoolOp):
            result = set()
            for value in expr.values:
                result |= self.infer(value, scope)
            return frozenset(result)
        if isinstance(expr, ast.NamedExpr):
            return self.infer(expr.value, scope)
        return frozenset()

    # the walk

    def run(self) -> None:
        """Check every module of the integration."""
        for info in self.world.local_modules():
            self._file = self._display(info.path)
            self._check_imports(info)
            if self.design_rules:
                self._check_design_module(info)
            self._visit_block(info, info.tree.body, Scope(self, info, None), None)

    def _visit_block(
        self,
        info: ModuleInfo,
        statements: Sequence[ast.stmt],
        scope: Scope,
        cls: Symbol | None,
    ) -> None:
        """Check a block; every function and class found in it gets its own visit."""
        for statement in statements:
            for node in own_nodes([statement]):
                self._check_node(node, scope)
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    owner = cls if node is statement else None
                    inner = Scope(self, info, scope, node, owner)
                    self._visit_block(info, node.body, inner, None)
                elif isinstance(node, ast.ClassDef):
                    symbol = None
                    if scope.func is None:
                        symbol = self.world.resolve(info.name, node.name)
                    if symbol is not None and symbol.kind == "class":
                        self._check_subclass(symbol, scope)
                    else:
                        symbol = None
                    self._visit_block(info, node.body, scope, symbol)

    def _check_imports(self, info: ModuleInfo) -> None:
        for node in ast.walk(info.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] != HA:
                        continue
                    self.stats["imports"] += 1
                    key = ("module", self._file, node.lineno, alias.name)
                    if self.world.module(alias.name) is None:
                        self._add(
                            node, "missing-module", f"module `{alias.name}` does not exist", key
                        )
                    else:
                        self.resolutions[key] = f"module {alias.name}"
            elif isinstance(node, ast.ImportFrom):
                source = _resolve_relative(info.name, info.is_package, node.level, node.module)
                if source.split(".")[0] != HA:
                    continue
                if self.world.module(source) is None:
                    self.stats["imports"] += 1
                    key = ("module", self._file, node.lineno, source)
                    self._add(node, "missing-module", f"module `{source}` does not exist", key)
                    continue
                for alias in node.names:
                    self.stats["imports"] += 1
                    key = ("name", self._file, node.lineno, source, alias.name)
                    symbol = self.world.resolve(source, alias.name)
                    if symbol is None:
                        self._add(
                            node,
                            "missing-name",
                            f"`{alias.name}` is not importable from `{source}`",
                            key,
                        )
                        continue
                    self.resolutions[key] = self._where(symbol)
                    if symbol.deprecated:
                        self._add(
                            node,
                            "deprecated",
                            f"`{source}.{alias.name}`: {symbol.deprecated}",
                            key,
                            warn=True,
                        )

    def _where(self, symbol: Symbol | Member) -> str:
        if isinstance(symbol, Member):
            line = getattr(symbol.node, "lineno", "?")
            return f"{symbol.owner.qualname}.{symbol.name} ({symbol.kind}, line {line})"
        line = getattr(symbol.node, "lineno", None)
        return f"{symbol.kind} {symbol.qualname}" + (f" (line {line})" if line else "")

    def _check_node(self, node: ast.AST, scope: Scope) -> None:
        if isinstance(node, ast.Attribute):
            self._check_attribute(node, scope)
        elif isinstance(node, ast.Call):
            self._check_call(node, scope)

    def _relevant(self, val: Val) -> bool:
        if val.kind == "module":
            return val.symbol.is_ha
        if val.kind in {"class", "instance"}:
            return self.world.is_ha_derived(val.symbol)
        return False

    def _check_attribute(self, node: ast.Attribute, scope: Scope) -> None:
        for val in sorted(self.infer(node.value, scope), key=repr):
            if not self._relevant(val):
                continue
            self.stats["attributes"] += 1
            target = f"{val.symbol.qualname}.{node.attr}"
            key = ("attr", self._file, node.lineno, node.col_offset, target)
            found, _ = self.member_vals(val, node.attr)
            if (
                self.design_rules
                and node.attr == "helpers"
                and val.kind == "instance"
                and val.symbol.qualname == f"{HA}.core.HomeAssistant"
            ):
                self._add(
                    node,
                    "design:hass-helpers",
                    "`hass.helpers` is gone (DESIGN.md): import the helper module instead",
                    ("design-helpers", self._file, node.lineno),
                )
            if found == MISSING:
                what = "module" if val.kind == "module" else val.kind
                self._add(
                    node,
                    "missing-attribute",
                    f"`{node.attr}` does not exist on {what} `{val.symbol.qualname}`",
                    key,
                )
            elif isinstance(found, (Member, Symbol)):
                self.resolutions[key] = self._where(found)
                deprecated = found.deprecated if isinstance(found, Symbol) else None
                if deprecated:
                    self._add(node, "deprecated", f"`{target}`: {deprecated}", key, warn=True)
                if (
                    isinstance(node.ctx, ast.Store)
                    and isinstance(found, Member)
                    and found.kind == "property"
                    and found.owner.is_ha
                    and not _has_setter(found.owner, node.attr)
                ):
                    self._add(
                        node,
                        "read-only",
                        f"`{found.owner.qualname}.{node.attr}` is a property without a setter: "
                        "assigning it raises AttributeError",
                        ("read-only", *key),
                    )

    def _callable_signature(self, val: Val) -> tuple[str, Signature | None] | None:
        """(target name, signature) for a Home Assistant callable; None when not ours to check."""
        if val.kind == "class" and self.world.is_ha_derived(val.symbol):
            return val.symbol.qualname, self.world.constructor(val.symbol)
        if val.kind == "function" and val.symbol.is_ha:
            node = val.symbol.node
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                return val.symbol.qualname, _function_signature(self.world, val.symbol)
        if val.kind == "method" and val.symbol.is_ha and val.member is not None:
            node = val.member.node
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                drop = val.member.kind == "classmethod" or (
                    val.member.kind == "method" and val.bound
                )
                name = f"{val.symbol.qualname}.{val.member.name}"
                return name, signature_of(node, val.symbol, drop_first=drop)
        return None

    def _check_call(self, node: ast.Call, scope: Scope) -> None:
        for val in sorted(self.infer(node.func, scope), key=repr):
            resolved = self._callable_signature(val)
            if resolved is None:
                continue
            target, signature = resolved
            self.stats["calls"] += 1
            key = ("call", self._file, node.lineno, node.col_offset, target)
            star_args = any(isinstance(arg, ast.Starred) for arg in node.args)
            star_kwargs = any(keyword.arg is None for keyword in node.keywords)
            npos = sum(1 for arg in node.args if not isinstance(arg, ast.Starred))
            keywords = {kw.arg: kw.value for kw in node.keywords if kw.arg is not None}
            self.calls[key] = CallRecord(
                target,
                npos,
                [_const_kind(arg) for arg in node.args],
                keywords,
                signature,
                self._file,
                node.lineno,
            )
            if self.design_rules:
                self._check_design_call(node, target, keywords, scope)
            if signature is None:
                continue
            self.resolutions[key] = signature.text
            for problem in signature.bind(
                npos, list(keywords), star_args=star_args, star_kwargs=star_kwargs
            ):
                self._add(node, "bad-call", f"`{target}` {problem}; it is {signature.text}", key)
            self._check_literals(node, target, signature, key)
            callee = signature.node
            deprecated = _deprecation(callee) if callee is not None else None
            passed = {param.name for param in signature.positional[:npos]} | set(keywords)
            reports = _reports_usage(callee, passed)
            if deprecated or reports:
                self._add(
                    node,
                    "deprecated",
                    f"`{target}` {deprecated or reports}",
                    ("deprecated", *key),
                    warn=True,
                )

    def _check_literals(
        self, node: ast.Call, target: str, signature: Signature, key: tuple[Any, ...]
    ) -> None:
        arguments: list[tuple[Param | None, ast.expr, str]] = [
            (signature.param(position=index), arg, f"argument {index + 1}")
            for index, arg in enumerate(node.args)
            if not isinstance(arg, ast.Starred)
        ]
        arguments += [
            (signature.param(keyword=kw.arg), kw.value, f"`{kw.arg}`")
            for kw in node.keywords
            if kw.arg is not None
        ]
        for param, value, label in arguments:
            kind = _const_kind(value)
            if param is None or kind is None or param.annotation is None:
                continue
            accepted = _simple_types(param.annotation)
            if accepted is None or accepted & _ACCEPTS.get(kind, {kind}):
                continue
            self._add(
                node,
                "type-mismatch",
                f"`{target}`: {label} is `{ast.unparse(value)}`, but `{param.name}` is "
                f"annotated `{ast.unparse(param.annotation)}`",
                ("type", *key, param.name),
            )

    def _check_subclass(self, cls: Symbol, scope: Scope) -> None:
        if not self.world.is_ha_derived(cls):
            return
        assert isinstance(cls.node, ast.ClassDef)
        known, _ = self.world.mro(cls)
        ha_bases = [owner for owner in known[1:] if owner.is_ha]
        if cls.node.keywords:
            hook = next(
                (
                    member
                    for owner in known[1:]
                    if (member := _class_member(owner, "__init_subclass__", enum=False))
                ),
                None,
            )
            if hook is not None and isinstance(hook.node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                signature = signature_of(hook.node, hook.owner, drop_first=True)
                names = [kw.arg for kw in cls.node.keywords if kw.arg and kw.arg != "metaclass"]
                key = ("subclass", self._file, cls.node.lineno, cls.name)
                self.resolutions[key] = signature.text
                self.stats["calls"] += 1
                for problem in signature.bind(0, names, star_args=False, star_kwargs=False):
                    self._add(
                        cls.node,
                        "bad-subclass",
                        f"class keywords of `{cls.name}`: `{hook.owner.qualname}.__init_subclass__`"
                        f" {problem}",
                        key,
                    )
        for statement in cls.node.body:
            if not isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if statement.name.startswith("__") and statement.name != "__call__":
                continue
            base_member = next(
                (
                    member
                    for owner in ha_bases
                    if (member := _class_member(owner, statement.name, enum=False))
                ),
                None,
            )
            if base_member is None or not isinstance(
                base_member.node, (ast.FunctionDef, ast.AsyncFunctionDef)
            ):
                continue
            self.stats["overrides"] += 1
            key = ("override", self._file, statement.lineno, cls.name, statement.name)
            where = f"{base_member.owner.qualname}.{statement.name}"
            self.resolutions[key] = f"overrides {where}"
            if "final" in _decorator_names(base_member.node):
                self._add(
                    statement,
                    "override-final",
                    f"`{cls.name}.{statement.name}` overrides `{where}`, which is @final",
                    key,
                )
                continue
            if base_member.kind != "method":
                continue
            base = signature_of(base_member.node, base_member.owner, drop_first=True)
            ours = signature_of(statement, cls, drop_first=True)
            required = [p for p in base.positional if p.required]
            problems = ours.bind(len(required), [], star_args=False, star_kwargs=True)
            if problems:
                self._add(
                    statement,
                    "bad-override",
                    f"`{cls.name}.{statement.name}` no longer fits `{base.text}`: "
                    f"Home Assistant calls it with {len(required)} argument(s) and ours "
                    + "; ".join(problems),
                    key,
                )

    # DESIGN.md rules (tree-independent, checked once)

    def _check_design_module(self, info: ModuleInfo) -> None:
        path = Path(info.path)
        try:
            ast.parse(path.read_text(encoding="utf-8"), feature_version=(3, 13))
        except SyntaxError as err:
            self._add(
                err.lineno or 0,
                "design:python-3.13",
                f"does not parse as Python 3.13 ({err.msg}); Home Assistant 2025.4 runs 3.13",
                ("design-syntax", self._file),
            )
        in_api = "api" in path.relative_to(self.world.package_dir).parts[:-1]
        for node in ast.walk(info.tree):
            if in_api and isinstance(node, (ast.Import, ast.ImportFrom)):
                names = (
                    [alias.name for alias in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                )
                if any(name.split(".")[0] == HA for name in names):
                    self._add(
                        node,
                        "design:api-imports-ha",
                        "api/ must not import homeassistant (DESIGN.md)",
                        ("design-api", self._file, node.lineno),
                    )
            if isinstance(node, ast.ImportFrom) and node.module == f"{HA}.helpers.service":
                for alias in node.names:
                    if alias.name in SERVICE_HELPERS_TAKING_HASS:
                        self._add(
                            node,
                            "design:service-helper-hass",
                            f"`{alias.name}` took `hass` in 2025.4 and does not any more: no "
                            "call works on both (DESIGN.md)",
                            ("design-service", self._file, node.lineno, alias.name),
                        )
            if isinstance(node, ast.ClassDef):
                self._check_design_options_flow(info, node)
            if (
                isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                and node.name == "async_get_options_flow"
            ):
                for child in ast.walk(node):
                    if (
                        isinstance(child, ast.Return)
                        and isinstance(child.value, ast.Call)
                        and (child.value.args or child.value.keywords)
                    ):
                        self._add(
                            child,
                            "design:options-flow-args",
                            "async_get_options_flow passes arguments to the options flow; "
                            "OptionsFlow takes none since 2024.12 and the config_entry "
                            "setter is gone (DESIGN.md)",
                            ("design-options-return", self._file, child.lineno),
                        )

    def _check_design_options_flow(self, info: ModuleInfo, node: ast.ClassDef) -> None:
        symbol = self.world.resolve(info.name, node.name)
        if symbol is None or symbol.kind != "class":
            return
        if not any(
            owner.qualname == f"{HA}.config_entries.OptionsFlow"
            for owner in self.world.mro(symbol)[0]
        ):
            return
        for statement in node.body:
            if not isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            arguments = statement.args
            if statement.name == "__init__" and (
                len(arguments.posonlyargs) + len(arguments.args) > 1
                or arguments.kwonlyargs
                or arguments.vararg
                or arguments.kwarg
            ):
                self._add(
                    statement,
                    "design:options-flow-init",
                    f"`{node.name}.__init__` takes arguments; OptionsFlow gets its config "
                    "entry from Home Assistant (DESIGN.md)",
                    ("design-options-init", self._file, statement.lineno),
                )
            for child in ast.walk(statement):
                if (
                    isinstance(child, ast.Attribute)
                    and isinstance(child.ctx, ast.Store)
                    and child.attr == "config_entry"
                ):
                    self._add(
                        child,
                        "design:options-flow-config-entry",
                        "sets `self.config_entry`; the setter was removed in 2025.12 (DESIGN.md)",
                        ("design-options-set", self._file, child.lineno),
                    )

    def _check_design_call(
        self, node: ast.Call, target: str, keywords: dict[str, ast.expr], scope: Scope
    ) -> None:
        if target == f"{HA}.core.ServiceRegistry.async_register" and (
            "description_placeholders" in keywords
        ):
            self._add(
                node,
                "design:register-placeholders",
                "`hass.services.async_register(description_placeholders=...)` does not exist "
                "in 2025.4 (DESIGN.md)",
                ("design-placeholders", self._file, node.lineno),
            )
        if target == f"{HA}.components.webhook.async_register":
            value = keywords.get("local_only")
            if not (isinstance(value, ast.Constant) and isinstance(value.value, bool)):
                shown = "missing" if value is None else f"`{ast.unparse(value)}`"
                self._add(
                    node,
                    "design:webhook-local-only",
                    f"webhook `local_only` is {shown}; pass True or False (DESIGN.md: a None "
                    "or missing value is deprecated and logs a warning on every request)",
                    ("design-webhook", self._file, node.lineno),
                )

    # services.yaml selectors

    def check_selectors(self) -> None:
        """Every selector (and its options) in services.yaml exists in this version."""
        path = self.world.package_dir / "services.yaml"
        if not path.is_file():
            return
        try:
            import yaml
        except ImportError:
            self.notes.append("services.yaml selectors not checked: PyYAML is not installed")
            return
        self._file = self._display(str(path))
        registry = self._selector_registry()
        if registry is None:
            return
        root = yaml.compose(path.read_text(encoding="utf-8"))
        if not isinstance(root, yaml.MappingNode):
            return
        for service_key, service in root.value:
            fields = _yaml_child(service, "fields")
            if fields is None:
                continue
            for field_key, field_node in fields.value:
                selector = _yaml_child(field_node, "selector")
                if selector is None:
                    continue
                for type_node, config_node in selector.value:
                    self._check_selector(
                        registry, f"{service_key.value}.{field_key.value}", type_node, config_node
                    )

    def _selector_registry(self) -> dict[str, tuple[Symbol, set[str] | None]] | None:
        module = f"{HA}.helpers.selector"
        info = self.world.module(module)
        if info is None:
            return None
        registry: dict[str, tuple[Symbol, set[str] | None]] = {}
        for node in info.tree.body:
            if not isinstance(node, ast.ClassDef):
                continue
            for decorator in node.decorator_list:
                if (
                    isinstance(decorator, ast.Call)
                    and isinstance(decorator.func, ast.Attribute)
                    and decorator.func.attr == "register"
                    and decorator.args
                    and isinstance(decorator.args[0], ast.Constant)
                ):
                    symbol = Symbol("class", module, node.name, node)
                    registry[str(decorator.args[0].value)] = (
                        symbol,
                        self._selector_options(symbol),
                    )
        return registry

    def _selector_options(self, selector: Symbol) -> set[str] | None:
        assert isinstance(selector.node, ast.ClassDef)
        for base in selector.node.bases:
            if isinstance(base, ast.Subscript):
                config = self.world.resolve_expr(selector.module, base.slice)
                if config is not None and config.kind == "class":
                    signature = self.world.constructor(config)
                    if signature is not None:
                        return {param.name for param in signature.params}
        return None

    def _check_selector(
        self,
        registry: dict[str, tuple[Symbol, set[str] | None]],
        where: str,
        type_node: Any,
        config_node: Any,
    ) -> None:
        import yaml

        line = type_node.start_mark.line + 1
        selector_type = str(type_node.value)
        self.stats["selectors"] += 1
        key = ("selector", self._file, line, selector_type)
        if selector_type not in registry:
            self._add(
                line, "missing-selector", f"{where}: selector `{selector_type}` does not exist", key
            )
            return
        symbol, options = registry[selector_type]
        self.resolutions[key] = f"{symbol.name} (options: {', '.join(sorted(options or []))})"
        if options is None or not isinstance(config_node, yaml.MappingNode):
            return
        for option_key, _ in config_node.value:
            if option_key.value not in options:
                self._add(
                    option_key.start_mark.line + 1,
                    "selector-option",
                    f"{where}: selector `{selector_type}` has no option `{option_key.value}` "
                    f"(it takes {', '.join(sorted(options))})",
                    ("selector-option", self._file, selector_type, option_key.value),
                )


def _yaml_child(node: Any, name: str) -> Any:
    import yaml

    if not isinstance(node, yaml.MappingNode):
        return None
    for key, value in node.value:
        if key.value == name and isinstance(value, yaml.MappingNode):
            return value
    return None


def _function_signature(world: World, symbol: Symbol) -> Signature | None:
    """The implementation's signature (skipping @overload stubs)."""
    info = world.module(symbol.module)
    if info is None:
        return None
    nodes = [
        binding[1]
        for binding in info.bindings.get(symbol.name, [])
        if binding[0] == "def" and "overload" not in _decorator_names(binding[1])
    ]
    node = nodes[-1] if nodes else symbol.node
    assert isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    signature = signature_of(node, None, drop_first=False)
    signature.text = f"{symbol.qualname.removeprefix(HA + '.')}" + signature.text[len(node.name) :]
    return signature


def _const_kind(value: ast.expr) -> str | None:
    if isinstance(value, ast.Constant):
        if value.value is None:
            return "None"
        return type(value.value).__name__
    return None


def _simple_types(annotation: ast.expr) -> set[str] | None:
    """The builtin types an annotation allows; None when it names anything else."""
    if isinstance(annotation, ast.Constant):
        if annotation.value is None:
            return {"None"}
        if isinstance(annotation.value, str):
            try:
                return _simple_types(ast.parse(annotation.value, mode="eval").body)
            except SyntaxError:
                return None
        return None
    if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
        left, right = _simple_types(annotation.left), _simple_types(annotation.right)
        return None if left is None or right is None else left | right
    if isinstance(annotation, ast.Subscript):
        wrapper = _subscript_name(annotation)
        items = (
            list(annotation.slice.elts)
            if isinstance(annotation.slice, ast.Tuple)
            else [annotation.slice]
        )
        if wrapper == "Optional":
            inner = _simple_types(items[0])
            return None if inner is None else inner | {"None"}
        if wrapper == "Union":
            result: set[str] = set()
            for item in items:
                inner = _simple_types(item)
                if inner is None:
                    return None
                result |= inner
            return result
        if wrapper in {"list", "dict", "tuple", "set"}:
            return {wrapper}
        return None
    if isinstance(annotation, ast.Name) and annotation.id in _SIMPLE_TYPES:
        return {annotation.id}
    return None


# -- the whole check ----------------------------------------------------------------------------


@dataclass(slots=True)
class Report:
    """Outcome of one check."""

    newest: str
    newest_origin: str
    oldest: str | None
    oldest_origin: str | None
    errors: list[Finding]
    warnings: list[Finding]
    checked: Counter[str]
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether nothing is incompatible."""
        return not self.errors

    def render(self) -> str:
        """The human-readable report."""
        lines = [
            "Forward-compatibility check of custom_components/voice_prompt",
            f"  newest release: Home Assistant {self.newest} ({self.newest_origin})",
        ]
        if self.oldest is not None:
            lines.append(f"  minimum (tests): Home Assistant {self.oldest} ({self.oldest_origin})")
        else:
            lines.append("  minimum (tests): not available, only the newest release was checked")
        counts = ", ".join(f"{count} {what}" for what, count in sorted(self.checked.items()))
        lines.append(f"  checked: {counts or 'nothing'}")
        lines += [f"  note: {note}" for note in self.notes]
        if self.errors:
            lines.append(f"Incompatibilities ({len(self.errors)}):")
            lines += [f"  {finding.render()}" for finding in self.errors]
        else:
            lines.append("Incompatibilities: none")
        if self.warnings:
            lines.append(f"Warnings ({len(self.warnings)}):")
            lines += [f"  {finding.render()}" for finding in self.warnings]
        verdict = "COMPATIBLE" if self.ok else "INCOMPATIBLE"
        lines.append(f"Result: {verdict} with Home Assistant {self.newest}")
        return "\n".join(lines)


def _dedupe(findings: Iterable[Finding]) -> list[Finding]:
    seen: set[tuple[str, int, str, str]] = set()
    result: list[Finding] = []
    for finding in sorted(findings, key=lambda f: (f.file, f.line, f.code, f.message)):
        marker = (finding.file, finding.line, finding.code, finding.message)
        if marker not in seen:
            seen.add(marker)
            result.append(finding)
    return result


def check(
    newest: SourceTree,
    oldest: SourceTree | None = None,
    *,
    integration_dir: Path = INTEGRATION_DIR,
    display_root: Path | None = None,
) -> Report:
    """Check the integration against ``newest`` (and ``oldest``, the version the tests run)."""
    root = display_root or (
        REPO_ROOT if integration_dir.resolve().is_relative_to(REPO_ROOT) else integration_dir.parent
    )
    new = Analyzer(World(newest, integration_dir), root, design_rules=True)
    new.run()
    new.check_selectors()
    old: Analyzer | None = None
    if oldest is not None:
        old = Analyzer(World(oldest, integration_dir), root, design_rules=False)
        old.run()
        old.check_selectors()
    errors: list[Finding] = []
    warnings: list[Finding] = []
    old_keys = {finding.key for finding in old.findings} if old else set()
    for finding in new.findings:
        message = finding.message
        if old is not None and finding.key:
            if finding.key in old_keys:
                message += f" (so in {old.label} too)"
            elif finding.key in old.resolutions:
                message += f"; in {old.label}: {old.resolutions[finding.key]}"
            elif not finding.code.startswith("design:") and finding.severity == "error":
                message += f"; new since {old.label}"
        target = errors if finding.severity == "error" else warnings
        target.append(
            Finding(
                finding.file, finding.line, finding.code, message, finding.severity, finding.key
            )
        )
    if old is not None:
        new_keys = {finding.key for finding in new.findings}
        for finding in old.findings:
            if finding.key in new_keys or finding.severity != "error":
                continue
            message = (
                f"{finding.message} in {old.label}, the oldest supported version "
                f"(works in {new.label}"
                + (f": {new.resolutions[finding.key]}" if finding.key in new.resolutions else "")
                + ")"
            )
            errors.append(Finding(finding.file, finding.line, finding.code, message, "error"))
        errors += _positional_shifts(new, old)
        warnings += _annotation_changes(new, old)
    report = Report(
        newest=new.label,
        newest_origin=newest.origin,
        oldest=old.label if old else None,
        oldest_origin=oldest.origin if oldest else None,
        errors=_dedupe(errors),
        warnings=_dedupe(warnings),
        checked=new.stats,
        notes=list(new.notes),
    )
    for world in (new.world, old.world if old else None):
        if world is not None:
            report.notes += [
                f"{world.tree.version()}: could not parse {module} ({error})"
                for module, error in sorted(world.parse_errors.items())
            ]
    return report


def _positional_shifts(new: Analyzer, old: Analyzer) -> list[Finding]:
    """A positional argument that binds to a different parameter now (e.g. a dropped ``hass``)."""
    findings: list[Finding] = []
    for key, record in new.calls.items():
        before = old.calls.get(key)
        if before is None or before.signature is None or record.signature is None:
            continue
        old_names = [param.name for param in before.signature.positional]
        new_names = [param.name for param in record.signature.positional]
        for index in range(record.npos):
            was = old_names[index] if index < len(old_names) else "*args"
            now = new_names[index] if index < len(new_names) else "*args"
            if was != now:
                findings.append(
                    Finding(
                        record.file,
                        record.line,
                        "positional-shift",
                        f"`{record.target}`: positional argument {index + 1} went to `{was}` in "
                        f"{old.label} but goes to `{now}` in {new.label} "
                        f"({before.signature.text} -> {record.signature.text})"
                        + (
                            f"; {new.label} still takes the old call for now: {deprecated}"
                            if (deprecated := _deprecation(record.signature.node))
                            else ""
                        ),
                    )
                )
                break
    return findings


def _annotation_changes(new: Analyzer, old: Analyzer) -> list[Finding]:
    """A parameter we pass a non-literal to whose annotation changed: worth a look."""
    findings: list[Finding] = []
    for key, record in new.calls.items():
        before = old.calls.get(key)
        if before is None or before.signature is None or record.signature is None:
            continue
        passed: list[tuple[Param | None, Param | None, bool]] = [
            (
                before.signature.param(position=i),
                record.signature.param(position=i),
                kind is not None,
            )
            for i, kind in enumerate(record.positional_kinds)
        ]
        passed += [
            (
                before.signature.param(keyword=name),
                record.signature.param(keyword=name),
                _const_kind(value) is not None,
            )
            for name, value in record.keywords.items()
        ]
        for was, now, literal in passed:
            if was is None or now is None or literal or was.name != now.name:
                continue
            if was.annotation is None or now.annotation is None:
                continue
            if ast.unparse(was.annotation) != ast.unparse(now.annotation):
                findings.append(
                    Finding(
                        record.file,
                        record.line,
                        "annotation-changed",
                        f"`{record.target}`: `{now.name}` was `{ast.unparse(was.annotation)}` "
                        f"in {old.label}, is `{ast.unparse(now.annotation)}` in {new.label}",
                        "warning",
                    )
                )
    return findings


# -- CLI -----------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the check and print the report; see the module docstring for the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--wheel",
        type=Path,
        help="newest Home Assistant: a .whl, or a directory with homeassistant/",
    )
    parser.add_argument(
        "--old",
        type=Path,
        help="oldest supported Home Assistant (default: the installed one, 2025.4.4 here)",
    )
    parser.add_argument("--no-old", action="store_true", help="check the newest release only")
    parser.add_argument(
        "--offline", action="store_true", help="never download; use the cached wheel or skip"
    )
    parser.add_argument("--cache-dir", type=Path, default=CACHE_DIR)
    parser.add_argument("--max-age-hours", type=float, default=DEFAULT_MAX_AGE_HOURS)
    parser.add_argument("--python-version", default=NEWEST_PYTHON)
    parser.add_argument("--integration", type=Path, default=INTEGRATION_DIR)
    args = parser.parse_args(argv)

    if args.wheel is not None:
        newest = open_tree(args.wheel)
    else:
        fetched = fetch_newest_wheel(
            args.cache_dir,
            offline=args.offline,
            max_age_hours=args.max_age_hours,
            python_version=args.python_version,
        )
        if fetched.path is None:
            print(
                "SKIPPED: forward-compatibility check not run: the newest homeassistant wheel is "
                f"not available ({fetched.reason})"
            )
            return 0
        print(f"wheel: {fetched.reason}")
        newest = WheelTree(fetched.path)
    oldest = None if args.no_old else (open_tree(args.old) if args.old else installed_tree())
    report = check(newest, oldest, integration_dir=args.integration)
    print(report.render())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
