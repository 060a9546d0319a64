"""The installed package: every subpackage is listed, and the trainer cannot be shadowed by a user's train.py."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_every_subpackage_is_listed_in_pyproject() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "datatools").rglob("__init__.py")}
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
    assert "datatools_train" in listed


def _shadowing_folder(tmp_path: Path) -> Path:
    """A user's project folder: a ``train.py`` that must never run, and a ``train/`` folder of data."""
    (tmp_path / "train.py").write_text("raise SystemExit('the user train.py ran')\n")
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "x.json").write_text("{}")
    return tmp_path


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # as a user runs it: only the installed packages
    return env


def test_python_m_datatools_train_from_a_folder_with_train_py(tmp_path: Path) -> None:
    folder = _shadowing_folder(tmp_path)
    for args in (["-m", "datatools", "train", "fit", "--help"], ["-m", "datatools_train", "predict", "--help"]):
        out = subprocess.run([sys.executable, *args], cwd=folder, capture_output=True, text=True, timeout=120,
                             env=_env())
        assert out.returncode == 0, out.stderr
        assert "user train.py ran" not in out.stdout + out.stderr
        assert "--out" in out.stdout


def test_datatools_help_from_a_folder_with_train_py(tmp_path: Path) -> None:
    folder = _shadowing_folder(tmp_path)
    out = subprocess.run([sys.executable, "-m", "datatools", "--help"], cwd=folder, capture_output=True, text=True,
                         timeout=120, env=_env())
    assert out.returncode == 0, out.stderr
    assert "train" in out.stdout


def _imported_modules(root: Path) -> set[str]:
    import ast

    names: set[str] = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return names


def test_iterative_stratification_is_a_test_dependency_only() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = " ".join(project["dependencies"]) + " ".join(project["optional-dependencies"]["train"])
    assert "iterative-stratification" not in runtime
    assert any(d.startswith("iterative-stratification") for d in project["optional-dependencies"]["dev"])
    for package in ("datatools", "train"):
        assert "iterstrat" not in _imported_modules(ROOT / package), f"{package}/ imports iterstrat"
