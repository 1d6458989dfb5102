"""docker-compose.temporal.yml cannot run here (no Docker engine), so check what can be checked without one."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from chronogram.contracts import SEARCH_ATTRIBUTES
from chronogram.settings import PROJECT_ROOT

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.temporal.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    parsed: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return parsed


def test_names_the_services_readme_documents(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {
        "postgresql", "temporal-admin-tools", "temporal", "temporal-create-namespace", "temporal-ui",
    }  # fmt: skip
    published = {
        name: [str(port).split(":")[0] for port in service.get("ports", [])]
        for name, service in compose["services"].items()
    }
    assert published["temporal"] == ["7233"]
    assert published["temporal-ui"] == ["8080"]
    readme = Path(PROJECT_ROOT / "README.md").read_text()
    for documented in ("docker-compose.temporal.yml", "localhost:7233", "http://localhost:8080"):
        assert documented in readme


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service["image"]
        assert re.fullmatch(r"[\w./-]+:\d+(\.\d+)+", image), (
            f"{name}: image {image!r} is not pinned to a version"
        )


def test_creates_exactly_the_project_search_attributes(compose: dict[str, Any]) -> None:
    script = "\n".join(compose["services"]["temporal-create-namespace"]["command"])
    declared = dict(re.findall(r"(\w+)=(Keyword|Datetime|Int|Double|Bool|Text|KeywordList)\b", script))
    assert declared == {key.name: key._metadata_type for key in SEARCH_ATTRIBUTES}


def test_servers_wait_for_their_dependencies(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert (
        services["temporal"]["depends_on"]["temporal-admin-tools"]["condition"]
        == "service_completed_successfully"
    )
    assert services["temporal-admin-tools"]["depends_on"]["postgresql"]["condition"] == "service_healthy"
    assert services["temporal-ui"]["depends_on"]["temporal"]["condition"] == "service_healthy"
