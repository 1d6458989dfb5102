"""The layers of the code: import-linter's contracts (pyproject.toml, run by `make lint`) hold, and cover what
import-linter cannot see by itself."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import chronogram

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
# What workflow code may take from the core: the boundary types, and the values they re-export.
WORKFLOW_VISIBLE = {"chronogram.contracts"}


def _contract(contract_id: str) -> dict[str, object]:
    return next(contract for contract in CONTRACTS if contract["id"] == contract_id)


def _core_modules() -> set[str]:
    found = {
        info.name
        for info in pkgutil.walk_packages(chronogram.__path__, prefix="chronogram.")
        # A subpackage stands for its modules: forbidding chronogram.instagram forbids them all.
        if info.name.count(".") == 1
    }
    return found


def test_workflows_are_forbidden_every_core_module_but_the_contracts() -> None:
    """A new core module is forbidden to workflow code until someone decides otherwise here."""
    forbidden = set(_contract("workflows-only-contracts")["forbidden_modules"])  # type: ignore[call-overload]
    core = _core_modules()
    assert core - WORKFLOW_VISIBLE <= forbidden, (
        f"not forbidden to workflows: {core - WORKFLOW_VISIBLE - forbidden}"
    )
    assert not forbidden & WORKFLOW_VISIBLE


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_the_worker_process_imports_no_api() -> None:
    # worker.py is a module, not a package: import-linter does not follow it.
    ours = {"api", "scripts", "sandbox", "devstack", "bench", "tests"}
    assert not _imported_roots(ROOT / "worker.py") & ours


def test_lint_imports_fails_on_a_crossed_layer(tmp_path: Path) -> None:
    """The contracts are live: the same check over a copy of the tree where the core imports the API fails."""
    copy = tmp_path / "tree"
    for name in ("chronogram", "workflows", "activities", "api", "scripts", "sandbox", "devstack", "bench"):
        _copy_sources(ROOT / name, copy / name)
    (copy / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    lint = [str(Path(sys.executable).with_name("lint-imports"))]
    kept = subprocess.run(lint, cwd=copy, capture_output=True, text=True, check=False)
    assert kept.returncode == 0, kept.stdout + kept.stderr

    crossed = copy / "chronogram" / "storage.py"
    crossed.write_text("import api.errors  # noqa\n" + crossed.read_text())
    broken = subprocess.run(lint, cwd=copy, capture_output=True, text=True, check=False)
    assert broken.returncode != 0
    assert "BROKEN" in broken.stdout and "chronogram.storage -> api.errors" in broken.stdout


def _copy_sources(source: Path, target: Path) -> None:
    for path in source.rglob("*.py"):
        destination = target / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(path.read_text())
