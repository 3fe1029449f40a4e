"""The forward-compatibility checker (scripts/forward_compat.py).

One test runs it against the newest ``homeassistant`` wheel on PyPI (downloaded by pip in a
subprocess, cached under ``.cache/ha-wheel/``, skipped when the registry is unreachable). The
others run it on small synthetic "old" and "new" Home Assistant trees written to ``tmp_path``
and prove it finds each kind of break; they need no network.
"""

from __future__ import annotations

from collections.abc import Callable
import importlib.util
import json
import os
from pathlib import Path
import subprocess
import sys
import textwrap
import time
from types import ModuleType
from typing import Any
import zipfile

import pytest

REPO = Path(__file__).resolve().parent.parent


def _load_checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "forward_compat", REPO / "scripts" / "forward_compat.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["forward_compat"] = module
    spec.loader.exec_module(module)
    return module


fc = _load_checker()


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations() -> None:
    """Override the conftest fixture: these tests need no Home Assistant instance."""


# -- synthetic trees ------------------------------------------------------------------------

OLD_HA: dict[str, str] = {
    "homeassistant/__init__.py": "",
    "homeassistant/const.py": """
        from typing import Final
        MAJOR_VERSION: Final = 2025
        MINOR_VERSION: Final = 4
        PATCH_VERSION: Final = "4"
        CONF_HOST: Final = "host"
    """,
    "homeassistant/core.py": """
        from __future__ import annotations
        from enum import StrEnum
        from typing import TYPE_CHECKING, Any

        if TYPE_CHECKING:
            from .config_entries import ConfigEntries


        class SupportsResponse(StrEnum):
            NONE = "none"
            OPTIONAL = "optional"
            ONLY = "only"


        class ServiceCall:
            __slots__ = ("data", "return_response")

            def __init__(self, data: dict[str, Any], return_response: bool = False) -> None:
                self.data = data
                self.return_response = return_response


        class ServiceRegistry:
            def async_register(
                self,
                domain: str,
                service: str,
                service_func: Any,
                schema: Any = None,
                supports_response: SupportsResponse = SupportsResponse.NONE,
                job_type: Any = None,
            ) -> None:
                pass


        class HomeAssistant:
            config_entries: ConfigEntries = None  # type: ignore[assignment]

            def __init__(self) -> None:
                self.services = ServiceRegistry()
                self.helpers = object()
    """,
    "homeassistant/exceptions.py": """
        class HomeAssistantError(Exception):
            def __init__(
                self,
                *args: object,
                translation_domain: str | None = None,
                translation_key: str | None = None,
                translation_placeholders: dict[str, str] | None = None,
            ) -> None:
                super().__init__(*args)


        class ServiceValidationError(HomeAssistantError):
            pass
    """,
    "homeassistant/data_entry_flow.py": """
        from __future__ import annotations
        from typing import Any, Generic, TypeVar

        from .core import HomeAssistant

        _T = TypeVar("_T")


        class FlowHandler(Generic[_T]):
            hass: HomeAssistant = None  # type: ignore[assignment]

            def async_show_form(
                self,
                *,
                step_id: str | None = None,
                data_schema: Any = None,
                errors: dict[str, str] | None = None,
                description_placeholders: dict[str, str] | None = None,
            ) -> dict[str, Any]:
                return {}

            def async_abort(self, *, reason: str) -> dict[str, Any]:
                return {}
    """,
    "homeassistant/config_entries.py": """
        from __future__ import annotations
        from typing import Any

        from .core import HomeAssistant
        from .data_entry_flow import FlowHandler


        class ConfigEntry[_DataT = Any]:
            entry_id: str
            runtime_data: _DataT

            def async_start_reauth(self, hass: HomeAssistant) -> None:
                pass


        class ConfigEntries:
            def async_get_entry(self, entry_id: str) -> ConfigEntry | None:
                return None


        class ConfigFlow(FlowHandler[str]):
            def __init_subclass__(cls, *, domain: str | None = None, **kwargs: Any) -> None:
                super().__init_subclass__(**kwargs)

            async def async_set_unique_id(
                self, unique_id: str | None = None, *, raise_on_progress: bool = True
            ) -> ConfigEntry | None:
                return None

            def _abort_if_unique_id_mismatch(self, *, reason: str = "unique_id_mismatch") -> None:
                pass


        class OptionsFlow(FlowHandler[str]):
            @property
            def config_entry(self) -> ConfigEntry:
                return ConfigEntry()

            @config_entry.setter
            def config_entry(self, value: ConfigEntry) -> None:
                pass
    """,
    "homeassistant/components/__init__.py": "",
    "homeassistant/components/webhook/__init__.py": """
        from __future__ import annotations
        from typing import Any

        from homeassistant.core import HomeAssistant


        def async_register(
            hass: HomeAssistant,
            domain: str,
            name: str,
            webhook_id: str,
            handler: Any,
            *,
            local_only: bool | None = False,
            allowed_methods: Any = None,
        ) -> None:
            pass
    """,
    "homeassistant/helpers/__init__.py": "",
    "homeassistant/helpers/config_validation.py": """
        from typing import Any


        def string(value: Any) -> str:
            return str(value)


        def config_entry_only_config_schema(domain: str) -> Any:
            return None
    """,
    "homeassistant/helpers/service.py": """
        from typing import Any


        def async_extract_config_entry_ids(
            hass: Any, service_call: Any, expand_group: bool = True
        ) -> set[str]:
            return set()
    """,
    "homeassistant/helpers/selector.py": """
        from typing import Any, Generic, TypedDict, TypeVar

        _T = TypeVar("_T")


        class _Registry(dict):
            def register(self, name: str) -> Any:
                return lambda cls: cls


        SELECTORS = _Registry()


        class Selector(Generic[_T]):
            def __init__(self, config: Any = None) -> None:
                self.config = config


        class BaseSelectorConfig(TypedDict, total=False):
            read_only: bool


        class TextSelectorConfig(BaseSelectorConfig, total=False):
            multiline: bool
            multiple: bool


        @SELECTORS.register("text")
        class TextSelector(Selector[TextSelectorConfig]):
            pass


        class BooleanSelectorConfig(BaseSelectorConfig):
            pass


        @SELECTORS.register("boolean")
        class BooleanSelector(Selector[BooleanSelectorConfig]):
            pass
    """,
}

INTEGRATION: dict[str, str] = {
    "__init__.py": """
        \"\"\"A small integration that uses what the checker looks at.\"\"\"

        from __future__ import annotations

        from typing import Any

        from homeassistant.components import webhook
        from homeassistant.config_entries import ConfigEntry, ConfigFlow
        from homeassistant.core import HomeAssistant, ServiceCall, SupportsResponse
        from homeassistant.exceptions import ServiceValidationError
        from homeassistant.helpers import config_validation as cv

        DOMAIN = "demo"
        CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


        async def async_setup(hass: HomeAssistant, config: dict[str, Any]) -> bool:
            async def handle(call: ServiceCall) -> None:
                if not call.data:
                    raise ServiceValidationError(translation_domain=DOMAIN, translation_key="empty")

            hass.services.async_register(DOMAIN, "play", handle, supports_response=SupportsResponse.OPTIONAL)
            return True


        async def async_setup_entry(hass: HomeAssistant, entry: ConfigEntry) -> bool:
            webhook.async_register(hass, DOMAIN, "Demo", entry.entry_id, None, local_only=True)
            return True


        class DemoFlow(ConfigFlow, domain=DOMAIN):
            async def async_step_user(self, user_input: dict[str, Any] | None = None) -> Any:
                await self.async_set_unique_id("serial")
                self._abort_if_unique_id_mismatch(reason="wrong_device")
                return self.async_show_form(step_id="user")
    """,
    "services.yaml": """
        play:
          fields:
            prompt:
              selector:
                text:
                  multiple: true
            loud:
              selector:
                boolean:
    """,
}


def _write(root: Path, files: dict[str, str]) -> None:
    for relpath, text in files.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")


def _new_ha(changes: dict[str, str | None] | None = None) -> dict[str, str]:
    """The new tree: the old one with some files replaced (a str) or removed (None)."""
    files = dict(OLD_HA)
    files["homeassistant/const.py"] = (
        files["homeassistant/const.py"]
        .replace("MAJOR_VERSION: Final = 2025", "MAJOR_VERSION: Final = 2026")
        .replace("MINOR_VERSION: Final = 4", "MINOR_VERSION: Final = 11")
        .replace('PATCH_VERSION: Final = "4"', 'PATCH_VERSION: Final = "0"')
    )
    for relpath, text in (changes or {}).items():
        if text is None:
            files.pop(f"homeassistant/{relpath}")
        else:
            files[f"homeassistant/{relpath}"] = text
    return files


def _edit(relpath: str, old: str, new: str) -> str:
    """OLD_HA's file with ``old`` replaced by ``new``, both re-indented to where ``old`` is."""
    source = textwrap.dedent(OLD_HA[relpath])
    old, new = textwrap.dedent(old).strip("\n"), textwrap.dedent(new).strip("\n")
    for indent in range(0, 17, 4):
        candidate = textwrap.indent(old, " " * indent)
        if candidate in source:
            return source.replace(candidate, textwrap.indent(new, " " * indent))
    raise AssertionError(f"not in {relpath}: {old}")


def _edit_integration(old: str, new: str, name: str = "__init__.py") -> dict[str, str]:
    source = textwrap.dedent(INTEGRATION[name])
    assert old in source, old
    return {**INTEGRATION, name: source.replace(old, new)}


RunCheck = Callable[..., Any]


@pytest.fixture
def run_check(tmp_path: Path) -> RunCheck:
    """Build old/new trees and the integration, run the checker, return the report."""

    def run(
        new: dict[str, str] | None = None,
        integration: dict[str, str] | None = None,
        *,
        old: dict[str, str] | None = None,
    ) -> Any:
        old_root, new_root = tmp_path / "old", tmp_path / "new"
        package = tmp_path / "custom_components" / "demo"
        _write(old_root, old or OLD_HA)
        _write(new_root, new or _new_ha())
        _write(package, integration or INTEGRATION)
        return fc.check(
            fc.DirectoryTree(new_root),
            fc.DirectoryTree(old_root),
            integration_dir=package,
            display_root=tmp_path,
        )

    return run


def _line(integration: dict[str, str], needle: str, name: str = "__init__.py") -> int:
    lines = textwrap.dedent(integration[name]).lstrip("\n").splitlines()
    return next(index for index, line in enumerate(lines, 1) if needle in line)


def _codes(report: Any) -> list[str]:
    return [finding.code for finding in report.errors]


def _only(report: Any, code: str) -> Any:
    found = [finding for finding in report.errors if finding.code == code]
    assert len(found) == 1, report.render()
    return found[0]


# -- the checker on synthetic trees --------------------------------------------------------


def test_compatible_trees_report_nothing(run_check: RunCheck) -> None:
    report = run_check()
    assert report.ok, report.render()
    assert report.warnings == []
    assert report.newest == "2026.11.0"
    assert report.oldest == "2025.4.4"
    assert report.checked["imports"] == 8
    assert report.checked["calls"] >= 6
    assert report.checked["selectors"] == 2
    assert "Result: COMPATIBLE with Home Assistant 2026.11.0" in report.render()


def test_removed_name(run_check: RunCheck) -> None:
    exceptions = _edit(
        "homeassistant/exceptions.py",
        "class ServiceValidationError(HomeAssistantError):\n    pass",
        "",
    )
    report = run_check(_new_ha({"exceptions.py": exceptions}))
    finding = _only(report, "missing-name")
    assert finding.file == "custom_components/demo/__init__.py"
    assert finding.line == _line(INTEGRATION, "import ServiceValidationError")
    assert "`ServiceValidationError` is not importable from `homeassistant.exceptions`" in (
        finding.message
    )
    assert "in 2025.4.4: class homeassistant.exceptions.ServiceValidationError" in finding.message
    assert finding.render().startswith("custom_components/demo/__init__.py:")


def test_removed_module(run_check: RunCheck) -> None:
    report = run_check(_new_ha({"components/webhook/__init__.py": None}))
    finding = _only(report, "missing-name")
    assert "`webhook` is not importable from `homeassistant.components`" in finding.message
    assert finding.line == _line(INTEGRATION, "import webhook")


def test_removed_module_of_from_import(run_check: RunCheck) -> None:
    report = run_check(_new_ha({"exceptions.py": None}))
    finding = _only(report, "missing-module")
    assert finding.line == _line(INTEGRATION, "from homeassistant.exceptions import")
    assert "module `homeassistant.exceptions` does not exist" in finding.message


def test_removed_keyword_argument(run_check: RunCheck) -> None:
    core = _edit(
        "homeassistant/core.py",
        """
                supports_response: SupportsResponse = SupportsResponse.NONE,
                job_type: Any = None,
        """,
        "                job_type: Any = None,",
    )
    report = run_check(_new_ha({"core.py": core}))
    finding = _only(report, "bad-call")
    assert finding.line == _line(INTEGRATION, "hass.services.async_register(")
    assert (
        "`homeassistant.core.ServiceRegistry.async_register` does not accept the keyword "
        "argument `supports_response`"
    ) in finding.message
    assert "in 2025.4.4: ServiceRegistry.async_register(domain: str" in finding.message


def test_new_required_argument(run_check: RunCheck) -> None:
    config_entries = _edit(
        "homeassistant/config_entries.py",
        "self, unique_id: str | None = None, *, raise_on_progress: bool = True",
        "self, unique_id: str | None = None, *, raise_on_progress: bool = True, source: str",
    )
    report = run_check(_new_ha({"config_entries.py": config_entries}))
    finding = _only(report, "bad-call")
    assert finding.line == _line(INTEGRATION, "await self.async_set_unique_id(")
    assert "`homeassistant.config_entries.ConfigFlow.async_set_unique_id` requires `source`" in (
        finding.message
    )


def test_local_only_type_change(run_check: RunCheck) -> None:
    webhook = _edit(
        "homeassistant/components/webhook/__init__.py",
        "local_only: bool | None = False,",
        "local_only: bool = False,",
    )
    new = _new_ha({"components/webhook/__init__.py": webhook})
    integration = _edit_integration("local_only=True", "local_only=None")
    report = run_check(new, integration)
    finding = _only(report, "type-mismatch")
    assert finding.line == _line(integration, "webhook.async_register(")
    assert (
        "`homeassistant.components.webhook.async_register`: `local_only` is `None`, but "
        "`local_only` is annotated `bool`"
    ) in finding.message
    # The DESIGN.md rule asks for a literal bool whatever the annotation says.
    assert "design:webhook-local-only" in _codes(report)
    # With a bool the same trees are compatible, and the changed annotation goes unmentioned.
    assert run_check(new).ok


def test_webhook_without_local_only_breaks_the_design_rule(run_check: RunCheck) -> None:
    integration = _edit_integration(", local_only=True)", ")")
    report = run_check(integration=integration)
    finding = _only(report, "design:webhook-local-only")
    assert "webhook `local_only` is missing" in finding.message


def test_positional_argument_that_changed_meaning(run_check: RunCheck) -> None:
    service = _edit(
        "homeassistant/helpers/service.py",
        "hass: Any, service_call: Any, expand_group: bool = True",
        "service_call: Any, expand_group: bool = True",
    )
    integration = _edit_integration(
        "    return True\n\n\nclass DemoFlow",
        "    async_extract_config_entry_ids(hass, entry)\n    return True\n\n\nclass DemoFlow",
    )
    integration["__init__.py"] = integration["__init__.py"].replace(
        "from homeassistant.helpers import config_validation as cv",
        "from homeassistant.helpers import config_validation as cv\n"
        "from homeassistant.helpers.service import async_extract_config_entry_ids",
    )
    report = run_check(_new_ha({"helpers/service.py": service}), integration)
    finding = _only(report, "positional-shift")
    assert finding.line == _line(integration, "async_extract_config_entry_ids(hass, entry)")
    assert "positional argument 1 went to `hass` in 2025.4.4 but goes to `service_call`" in (
        finding.message
    )
    assert "design:service-helper-hass" in _codes(report)


def test_name_only_in_the_newest_release(run_check: RunCheck) -> None:
    core = _edit(
        "homeassistant/core.py",
        "                job_type: Any = None,\n            ) -> None:",
        "                job_type: Any = None,\n                *,\n"
        "                description_placeholders: dict[str, str] | None = None,\n"
        "            ) -> None:",
    )
    integration = _edit_integration(
        "supports_response=SupportsResponse.OPTIONAL)",
        "supports_response=SupportsResponse.OPTIONAL, description_placeholders={})",
    )
    report = run_check(_new_ha({"core.py": core}), integration)
    finding = _only(report, "bad-call")
    assert "does not accept the keyword argument `description_placeholders`" in finding.message
    assert "in 2025.4.4, the oldest supported version (works in 2026.11.0" in finding.message
    assert "design:register-placeholders" in _codes(report)


def test_removed_flow_method(run_check: RunCheck) -> None:
    config_entries = _edit(
        "homeassistant/config_entries.py",
        """
            def _abort_if_unique_id_mismatch(self, *, reason: str = "unique_id_mismatch") -> None:
                pass
        """,
        "",
    )
    report = run_check(_new_ha({"config_entries.py": config_entries}))
    finding = _only(report, "missing-attribute")
    assert finding.line == _line(INTEGRATION, "self._abort_if_unique_id_mismatch(")
    assert "`_abort_if_unique_id_mismatch` does not exist on instance `demo.DemoFlow`" in (
        finding.message
    )
    assert "in 2025.4.4: homeassistant.config_entries.ConfigFlow._abort_if_unique_id_mismatch" in (
        finding.message
    )


def test_hass_helpers(run_check: RunCheck) -> None:
    core = _edit("homeassistant/core.py", "        self.helpers = object()", "")
    integration = _edit_integration(
        "    return True\n\n\nasync def async_setup_entry",
        "    hass.helpers.thing()\n    return True\n\n\nasync def async_setup_entry",
    )
    report = run_check(_new_ha({"core.py": core}), integration)
    finding = _only(report, "missing-attribute")
    assert finding.line == _line(integration, "hass.helpers.thing()")
    assert "`helpers` does not exist on instance `homeassistant.core.HomeAssistant`" in (
        finding.message
    )
    assert "design:hass-helpers" in _codes(report)


def test_removed_enum_member(run_check: RunCheck) -> None:
    core = _edit("homeassistant/core.py", '    OPTIONAL = "optional"', "")
    report = run_check(_new_ha({"core.py": core}))
    finding = _only(report, "missing-attribute")
    assert "`OPTIONAL` does not exist on class `homeassistant.core.SupportsResponse`" in (
        finding.message
    )


def test_exception_keyword_removed(run_check: RunCheck) -> None:
    exceptions = _edit(
        "homeassistant/exceptions.py", "        translation_key: str | None = None,\n", ""
    )
    report = run_check(_new_ha({"exceptions.py": exceptions}))
    finding = _only(report, "bad-call")
    assert finding.line == _line(INTEGRATION, "raise ServiceValidationError(")
    assert "`homeassistant.exceptions.ServiceValidationError` does not accept the keyword " in (
        finding.message
    )


def test_selectors(run_check: RunCheck) -> None:
    selector = _edit(
        "homeassistant/helpers/selector.py",
        """
        @SELECTORS.register("boolean")
        class BooleanSelector(Selector[BooleanSelectorConfig]):
            pass
        """,
        "",
    ).replace("    multiple: bool\n", "")
    report = run_check(_new_ha({"helpers/selector.py": selector}))
    services = INTEGRATION["services.yaml"]
    option = _only(report, "selector-option")
    assert option.file == "custom_components/demo/services.yaml"
    assert option.line == _line(INTEGRATION, "multiple: true", "services.yaml")
    assert "play.prompt: selector `text` has no option `multiple`" in option.message
    missing = _only(report, "missing-selector")
    assert missing.line == _line({"s": services}, "boolean:", "s")


def test_options_flow_rules(run_check: RunCheck) -> None:
    integration = {
        **INTEGRATION,
        "options.py": """
            from homeassistant.config_entries import ConfigEntry, OptionsFlow


            class DemoOptions(OptionsFlow):
                def __init__(self, config_entry: ConfigEntry) -> None:
                    self.config_entry = config_entry


            def async_get_options_flow(config_entry: ConfigEntry) -> DemoOptions:
                return DemoOptions(config_entry)
        """,
    }
    config_entries = _edit(
        "homeassistant/config_entries.py",
        """
            @config_entry.setter
            def config_entry(self, value: ConfigEntry) -> None:
                pass
        """,
        "",
    )
    report = run_check(_new_ha({"config_entries.py": config_entries}), integration)
    codes = _codes(report)
    assert "design:options-flow-init" in codes
    assert "design:options-flow-config-entry" in codes
    assert "design:options-flow-args" in codes
    read_only = _only(report, "read-only")
    assert read_only.file == "custom_components/demo/options.py"
    assert read_only.line == 6
    assert "`homeassistant.config_entries.OptionsFlow.config_entry` is a property without a " in (
        read_only.message
    )
    assert read_only.message.endswith("new since 2025.4.4")


def test_python_314_syntax_and_api_imports(run_check: RunCheck) -> None:
    integration = {
        **INTEGRATION,
        "api/__init__.py": "from homeassistant.core import HomeAssistant\n",
        "late.py": """
            def f() -> None:
                try:
                    pass
                except ValueError, TypeError:
                    pass
        """,
    }
    report = run_check(integration=integration)
    codes = _codes(report)
    assert "design:api-imports-ha" in codes
    syntax = _only(report, "design:python-3.13")
    assert syntax.file == "custom_components/demo/late.py"
    assert syntax.line == 4


def test_wheel_tree_reads_in_place(tmp_path: Path) -> None:
    wheel = tmp_path / "homeassistant-2026.11.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for relpath, text in _new_ha().items():
            archive.writestr(relpath, textwrap.dedent(text).lstrip("\n"))
    package = tmp_path / "custom_components" / "demo"
    _write(package, INTEGRATION)
    _write(tmp_path / "old", OLD_HA)
    tree = fc.open_tree(wheel)
    assert tree.version() == "2026.11.0"
    report = fc.check(
        tree, fc.open_tree(tmp_path / "old"), integration_dir=package, display_root=tmp_path
    )
    assert report.ok, report.render()


def test_cli_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    package = tmp_path / "custom_components" / "demo"
    _write(package, INTEGRATION)
    _write(tmp_path / "old", OLD_HA)
    _write(tmp_path / "good", _new_ha())
    _write(tmp_path / "bad", _new_ha({"exceptions.py": None}))
    common = ["--old", str(tmp_path / "old"), "--integration", str(package)]
    assert fc.main(["--wheel", str(tmp_path / "good"), *common]) == 0
    assert "Incompatibilities: none" in capsys.readouterr().out
    assert fc.main(["--wheel", str(tmp_path / "bad"), *common]) == 1
    out = capsys.readouterr().out
    assert "Incompatibilities (1):" in out
    assert "__init__.py:10: [missing-module]" in out
    assert "Result: INCOMPATIBLE with Home Assistant 2026.11.0" in out


# -- fetching and caching the wheel ------------------------------------------------------------


def _fake_wheel(directory: Path, version: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"homeassistant-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("homeassistant/__init__.py", "")
    return path


def _no_pip(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("pip must not run")


def test_fresh_cache_needs_no_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = _fake_wheel(tmp_path, "2026.11.0")
    (tmp_path / fc.STAMP_NAME).write_text("{}")
    monkeypatch.setattr(fc.subprocess, "run", _no_pip)
    result = fc.fetch_newest_wheel(tmp_path)
    assert result.path == wheel
    assert not result.downloaded
    assert "cached" in result.reason


def test_offline_without_cache_skips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(fc.subprocess, "run", _no_pip)
    result = fc.fetch_newest_wheel(tmp_path / "empty", offline=True)
    assert result.path is None
    assert fc.main(["--offline", "--cache-dir", str(tmp_path / "empty")]) == 0
    assert capsys.readouterr().out.startswith("SKIPPED: ")


def test_unreachable_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(
            command, 1, "", "ERROR: Could not find a version that satisfies the requirement"
        )

    monkeypatch.setattr(fc.subprocess, "run", unreachable)
    result = fc.fetch_newest_wheel(tmp_path / "cache")
    assert result.path is None
    assert result.reason.startswith("registry unreachable: pip download exited with 1")
    # A stale cached wheel is still better than nothing.
    wheel = _fake_wheel(tmp_path / "cache", "2026.10.2")
    result = fc.fetch_newest_wheel(tmp_path / "cache")
    assert result.path == wheel
    assert "registry unreachable" in result.reason


def test_download_replaces_older_wheels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = _fake_wheel(tmp_path, "2026.10.2")
    stamp = tmp_path / fc.STAMP_NAME
    stamp.write_text("{}")
    os.utime(stamp, (time.time() - 48 * 3600,) * 2)
    calls: list[list[str]] = []

    def pip(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        _fake_wheel(Path(command[command.index("-d") + 1]), "2026.11.0")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(fc.subprocess, "run", pip)
    result = fc.fetch_newest_wheel(tmp_path)
    assert result.path == tmp_path / "homeassistant-2026.11.0-py3-none-any.whl"
    assert result.downloaded
    assert not old.exists()
    assert json.loads(stamp.read_text())["wheel"] == result.path.name
    (command,) = calls
    assert command[:4] == [sys.executable, "-m", "pip", "download"]
    assert {"--no-deps", "--only-binary=:all:"} <= set(command)
    assert command[command.index("--python-version") + 1] == "3.14"
    # The second run within the day does not call pip at all.
    monkeypatch.setattr(fc.subprocess, "run", _no_pip)
    assert fc.fetch_newest_wheel(tmp_path).path == result.path


def test_wheel_version_order() -> None:
    names = ["2026.2.3", "2026.10.0", "2026.10.0b1", "2025.12.5"]
    ordered = sorted(
        (Path(f"homeassistant-{name}-py3-none-any.whl") for name in names), key=fc.wheel_version
    )
    assert [path.name.split("-")[1] for path in ordered] == [
        "2025.12.5",
        "2026.2.3",
        "2026.10.0b1",
        "2026.10.0",
    ]


# -- the real thing -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def newest_wheel() -> Path:
    """The newest homeassistant wheel on PyPI (pip runs in a subprocess; cached for a day)."""
    result = fc.fetch_newest_wheel(fc.CACHE_DIR)
    if result.path is None:
        pytest.skip(f"newest Home Assistant wheel not available: {result.reason}")
    return result.path


def test_integration_runs_on_the_newest_release(newest_wheel: Path) -> None:
    newest = fc.WheelTree(newest_wheel)
    oldest = fc.installed_tree()
    assert oldest is not None
    report = fc.check(newest, oldest)
    print(report.render())
    assert fc.wheel_version(newest_wheel) > (2025, 4, 4)
    assert report.oldest == "2025.4.4"
    assert report.checked["imports"] > 30
    assert report.checked["calls"] > 30
    assert report.ok, report.render()
