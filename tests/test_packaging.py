"""pyproject.toml is the one source of dependencies; environment.yml must agree with it."""

from __future__ import annotations

from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]
MIRRORED_EXTRAS = ("postgres", "api", "notebook", "monitor")  # what `pagekit[all]` holds


def test_environment_yml_lists_the_same_dependencies_as_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"])
    for extra in MIRRORED_EXTRAS:
        wanted |= set(project["optional-dependencies"][extra])
    assert set(project["optional-dependencies"]["all"]) == {
        f"pagekit[{','.join(MIRRORED_EXTRAS)}]"
    }, "pagekit[all] and the extras mirrored in environment.yml have drifted apart"

    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {line for line in pip_section if not line.startswith("-e")}
    assert listed - wanted == set(), "environment.yml lists packages pyproject.toml does not"
    assert wanted - listed == set(), "environment.yml misses packages from pyproject.toml"
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python.endswith(project["requires-python"]), (python, project["requires-python"])


def test_the_top_level_layout_of_design_md_exists() -> None:
    for name in ("pagekit", "notebooks", "dashboards", "tests", "bench", "environment.yml",
                 "pyproject.toml", "Makefile", "README.md", "CHANGES.md", ".ci/run"):  # fmt: skip
        assert (ROOT / name).exists(), f"{name} is missing"
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
