"""Packaging: cells/ and tasks/ live inside rnnbench, never as top-level packages."""

import subprocess
import sys
from pathlib import Path

import pytest

import rnnbench
import rnnbench.cells
import rnnbench.tasks

REPO = Path(__file__).resolve().parents[1]


def test_folders_install_inside_rnnbench():
    assert Path(rnnbench.cells.__file__).parent == REPO / "cells"
    assert Path(rnnbench.tasks.__file__).parent == REPO / "tasks"


def test_no_top_level_cells_or_tasks_are_installed(tmp_path):
    code = "import importlib.util as u; print(u.find_spec('cells'), u.find_spec('tasks'))"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.stdout.strip() == "None None", out.stderr


@pytest.mark.parametrize("folder", ["cells", "tasks"])
def test_importing_a_folder_as_top_level_package_is_refused(folder):
    out = subprocess.run(
        [sys.executable, "-c", f"import {folder}"], cwd=REPO, capture_output=True, text=True
    )
    assert out.returncode != 0
    assert f"ImportError: the {folder}/ folder was imported as '{folder}'" in out.stderr
    assert f"imported as rnnbench.{folder}" in out.stderr


def test_every_subpackage_is_listed_for_the_wheel():
    """pyproject.toml lists packages by name: a subpackage left out is missing from an installed
    wheel (an editable install finds it anyway, so nothing else would notice)."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    listed = set(
        tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        "rnnbench." + ".".join(p.parent.relative_to(REPO / "rnnbench").parts)
        for p in (REPO / "rnnbench").rglob("__init__.py")
        if p.parent != REPO / "rnnbench"
    }
    assert found <= listed, sorted(found - listed)
