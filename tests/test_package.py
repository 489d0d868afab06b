"""Packaging: version, license, typing marker, submodules reachable, the console script."""

import tomllib
from pathlib import Path

import recurrax

ROOT = Path(__file__).parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_version_license_and_typing_marker_match_the_metadata():
    project = PYPROJECT["project"]
    assert recurrax.__version__ == project["version"]
    assert project["license"] == "Apache-2.0"
    assert "Apache License" in (ROOT / "LICENSE").read_text()[:200]
    assert (Path(recurrax.__file__).parent / "py.typed").exists()
    assert project["scripts"]["recurrax"] == "recurrax.cli:main"
    assert not any(d.startswith("chex") for d in project["dependencies"])  # tests only


def test_documented_submodules_are_reachable_after_import():
    for name in recurrax.SUBMODULES:
        module = getattr(recurrax, name)
        assert module.__name__ == f"recurrax.{name}"
    assert recurrax.tasks.formal.get("anbn").name == "anbn"
    assert callable(recurrax.analysis.gradflow.gradient_flow)
