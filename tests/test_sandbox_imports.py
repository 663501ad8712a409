"""The sandbox is a service outside the adapter: it speaks HTTP only and imports nothing of the app."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import sandbox

APP_PACKAGES = ("adapter", "handlers", "config", "app")
SANDBOX_DIR = Path(sandbox.__file__).parent
SANDBOX_MODULES = sorted(SANDBOX_DIR.rglob("*.py"))
DYNAMIC_IMPORTS = ("import_module", "__import__")


def imported_modules(source, package_depth):
    """Yield (line, module) for each import in `source`, relative ones that leave the package resolved.

    `package_depth` is how many packages deep the module sits (1 for `sandbox/server.py`).
    """
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                yield node.lineno, node.module
            elif node.level > package_depth:
                # `from .. import adapter` climbs out of the sandbox to the project root.
                yield node.lineno, ".".join(filter(None, [node.module, *(a.name for a in node.names)]))
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and getattr(node.func, "attr", getattr(node.func, "id", None)) in DYNAMIC_IMPORTS):
            yield node.lineno, str(node.args[0].value)


def app_imports(source, package_depth=1):
    """Return `line: module` for each import of an app package in `source`."""
    return [
        f"{line}: {module}" for line, module in imported_modules(source, package_depth)
        if module.split(".")[0] in APP_PACKAGES
    ]


def test_the_sandbox_package_has_modules_to_check():
    assert {path.name for path in SANDBOX_MODULES} >= {"__init__.py", "server.py", "scripts.py"}


@pytest.mark.parametrize("path", SANDBOX_MODULES, ids=lambda path: path.name)
def test_no_sandbox_module_imports_the_adapter_handlers_or_config(path):
    depth = len(path.relative_to(SANDBOX_DIR.parent).parts) - 1
    assert app_imports(path.read_text(encoding="utf-8"), depth) == []


@pytest.mark.parametrize(
    "source",
    [
        "from adapter.signing import sign_headers",
        "import handlers.schemas",
        "from config import load_settings",
        "from .. import adapter",
        "from ..adapter import times",
        "import importlib\nimportlib.import_module('adapter.times')",
        "__import__('handlers')",
    ],
)
def test_the_import_check_catches_each_way_of_importing_the_app(source):
    assert len(app_imports(source)) == 1


def test_importing_the_sandbox_loads_no_app_module():
    names = ", ".join(
        ".".join(path.relative_to(SANDBOX_DIR.parent).with_suffix("").parts)
        for path in SANDBOX_MODULES if path.stem != "__init__"
    )
    loaded = subprocess.run(
        [sys.executable, "-c",
         f"import sys, {names}; print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"],
        cwd=SANDBOX_DIR.parent, capture_output=True, text=True, check=True,
    ).stdout.split()
    assert set(loaded) & set(APP_PACKAGES) == set()
