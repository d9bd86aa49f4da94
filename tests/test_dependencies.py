"""Dependencies declared are dependencies used: every runtime requirement is imported by pipeline/, and
every third-party module pipeline/ imports is declared (as a requirement or in an extra)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    """The normalised distribution name of a requirement string (PEP 503)."""
    name = re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported_top_modules() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "pipeline").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"pipeline"}


def _imported_distributions() -> set[str]:
    dists = packages_distributions()
    return {_name(d) for module in _imported_top_modules() for d in dists.get(module, [module])}


def test_every_runtime_requirement_is_imported_by_the_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {_name(r) for r in project["dependencies"]}
    assert declared - _imported_distributions() == set()


def test_every_third_party_import_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {_name(r) for r in project["dependencies"]}
    declared |= {_name(r) for r in project["optional-dependencies"]["s3"]}
    declared |= {_name(r) for r in project["optional-dependencies"]["vips"]}
    # aiobotocore's own requirement, imported for its exceptions by the S3 source; yarl comes with aiohttp.
    transitive = {"botocore", "yarl"}
    assert _imported_distributions() - declared - transitive == set()


def test_the_public_names_resolve_and_importing_the_package_loads_no_network_stack() -> None:
    import subprocess

    probe = (
        "import sys, pipeline; "
        "assert 'aiohttp' not in sys.modules, 'import pipeline loaded aiohttp'; "
        "[getattr(pipeline, n) for n in pipeline.__all__]; print(len(pipeline.__all__))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == len(__import__("pipeline").__all__)
