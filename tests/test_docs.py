"""The README and docs/ as a reader meets them: short, every link resolves, every promise tested."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CODE = re.compile(r"```.*?```", re.S)
TEST_NAME = re.compile(r"(test_\w+\.py)(?:::(test_\w+))?|(test_\w+)")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = CODE.sub("", page.read_text(encoding="utf-8"))
    return {_slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", text, re.M)}


def _links(page: Path) -> list[str]:
    return LINK.findall(CODE.sub("", page.read_text(encoding="utf-8")))


def test_the_readme_is_a_short_page():
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 200


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(page: Path):
    broken = []
    for link in _links(page):
        if re.match(r"[a-z]+:", link):
            continue  # https:, mailto:: the web is not checked offline
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            broken.append(f"{link}: no such file")
        elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
            broken.append(f"{link}: no heading #{anchor} in {target.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)


def _defined_tests() -> dict[str, set[str]]:
    """Every test function in tests/, by file name."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / "tests").glob("test_*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name.startswith("test_")}
        found[path.name] = names
    return found


def _reliability_rows() -> list[list[str]]:
    text = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| fault")]
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows]


def test_every_reliability_promise_names_tests_that_exist():
    """The reliability table is the list of promises: each row's last cell names the tests
    that check it: `test_file.py::test_name`, then bare names of tests in the same file, or a
    whole `test_file.py`. Each must exist in tests/."""
    defined = _defined_tests()
    every = set().union(*defined.values())
    rows = _reliability_rows()
    assert len(rows) >= 30
    problems = []
    for cells in rows:
        fault, tests = cells[0][:50], cells[-1]
        named = TEST_NAME.findall(tests)
        if not named:
            problems.append(f"{fault}: names no test")
        last_file = None
        for file, name_in_file, bare in named:
            if file:
                last_file = file
                if file not in defined:
                    problems.append(f"{fault}: no file tests/{file}")
            name = name_in_file or bare
            if not name:
                continue
            where = defined.get(last_file, set()) if last_file else every
            if name not in where:
                problems.append(f"{fault}: no test {name} in {last_file or 'tests/'}")
    assert not problems, "\n".join(problems)


def test_the_readme_networks_table_shows_the_measured_figures():
    """The README's accuracies are the shipped measurements (core/measured.json, written by
    benchmarks/accuracy.py), not numbers typed once and left behind."""
    import json
    import statistics

    from mnist_tui.core import measured

    figures = json.loads(measured.SHIPPED.read_text(encoding="utf-8"))["versions"]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| (v\d) \|.*\| (\d+\.\d+)%[^|]*\|$", readme, re.M)}
    assert set(rows) == set(figures) == {"v1", "v2", "v3", "v4", "v5"}
    for version, shown in rows.items():
        assert shown == f"{statistics.mean(figures[version]['accuracy']):.2f}", version
