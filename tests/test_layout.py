"""The package boundaries of the design: which top-level package may import which."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PROJECT_PACKAGES = {"lamb", "bert", "data", "trainer", "finetune"}
ALLOWED = {
    "lamb": set(),
    "bert": set(),
    "data": set(),
    "trainer": {"lamb", "bert", "data"},
    "finetune": {"lamb", "bert", "data", "trainer"},
}


def imported_project_packages(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {name.split(".")[0] for name in names} & PROJECT_PACKAGES
    return found


def test_packages_import_only_what_the_design_allows():
    violations = []
    for package, allowed in ALLOWED.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            for imported in imported_project_packages(path) - allowed - {package}:
                violations.append(f"{path.relative_to(ROOT)} imports {imported}")
    assert violations == []


def test_only_the_command_lines_read_flags():
    readers = []
    for package in PROJECT_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "FLAGS" in path.read_text():
                readers.append(str(path.relative_to(ROOT)))
    assert readers == []


def test_requirements_are_pinned_exactly():
    for name in (
        "requirements.txt",
        "requirements-beam.txt",
        "requirements-dev.txt",
        "requirements-bench.txt",
    ):
        for line in (ROOT / name).read_text().splitlines():
            line = line.split("#")[0].strip()
            if line and not line.startswith("-r"):
                assert "==" in line, f"{name}: {line} is not pinned with =="
