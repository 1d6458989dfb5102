"""The layout of the tests: a test module imports test code only from its own folder or from tests.support, so
that each folder can be read, run and changed on its own, and what folders share has one home."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
SHARED = "tests.support"


def _package_of(path: Path, root: Path) -> str:
    """The dotted package of a file below ``root`` (the tests folder): tests/api/helpers.py -> tests.api."""
    return ".".join(("tests", *path.parent.relative_to(root).parts))


def _is_package(module: str, root: Path) -> bool:
    return (root.parent.joinpath(*module.split(".")) / "__init__.py").exists()


def _folder_of(module: str, root: Path) -> str:
    """The package a dotted test module lives in, or the module itself when it is a package."""
    return module if _is_package(module, root) else module.rpartition(".")[0]


def _imported(path: Path, root: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module) for every import in the file, wherever it stands (also inside functions), and
    every module named in a pytest_plugins list; ``from package import name`` imports package.name."""
    package = _package_of(path, root).split(".")
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}" if _is_package(module, root) else module
        elif isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "pytest_plugins" for target in node.targets
        ):
            for item in ast.walk(node.value):
                if isinstance(item, ast.Constant) and isinstance(item.value, str):
                    yield node.lineno, item.value


def _crossings(path: Path, root: Path = TESTS) -> list[str]:
    """The imports of test code from another folder than the file's own, other than from tests.support."""
    package = _package_of(path, root)
    found = []
    for line, module in dict.fromkeys(_imported(path, root)):
        if module != "tests" and not module.startswith("tests."):
            continue
        if module == SHARED or module.startswith(SHARED + "."):
            continue
        if _folder_of(module, root) != package:
            found.append(f"{path.relative_to(root.parent)}:{line} imports {module}")
    return found


def test_test_modules_import_only_their_own_folder_and_tests_support() -> None:
    files = sorted(TESTS.rglob("*.py"))
    assert TESTS / "conftest.py" in files and TESTS / "support" / "media.py" in files
    crossings = [crossing for path in files for crossing in _crossings(path)]
    assert not crossings, "import shared test code from tests.support instead:\n  " + "\n  ".join(crossings)


def test_the_check_sees_every_kind_of_import(tmp_path: Path) -> None:
    """The check itself, on a tree of its own: a module of tests/api importing in every way there is."""
    root = tmp_path / "tests"
    for folder in ("", "api", "db", "engine", "graph", "replay", "stack", "support", "workflows"):
        (root / folder).mkdir(exist_ok=True)
        (root / folder / "__init__.py").touch()
    probe = root / "api" / "test_probe.py"
    probe.write_text(
        "import httpx\n"
        "import tests.db.factories\n"
        "from tests.engine import seed\n"
        "from tests import graph\n"
        "from ..workflows import fakes\n"
        "from tests.conftest import ISOLATED_NAMESPACES\n"
        "from tests.api.helpers import at\n"
        "from tests.api import helpers\n"
        "from .helpers import at as now\n"
        "from . import helpers as also\n"
        "from tests.support.media import jpeg\n"
        "from tests.support import factories\n"
        "from ..support import fakes as shared\n"
        "def later():\n"
        "    from tests.replay.scenarios import SCENARIOS\n"
        "pytest_plugins = ['tests.stack.smoke_workflows', 'tests.support.db']\n"
    )
    crossings = _crossings(probe, root)
    assert sorted(crossing.split(" imports ")[1] for crossing in crossings) == [
        "tests.conftest",
        "tests.db.factories",
        "tests.engine.seed",
        "tests.graph",
        "tests.replay.scenarios",
        "tests.stack.smoke_workflows",
        "tests.workflows.fakes",
    ]
    assert crossings[0].startswith("tests/api/test_probe.py:2 imports ")
