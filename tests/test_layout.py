"""Packages depend one way: common <- datamodules <- lightning_modules <- evaluation <- experiments <- ablations
<- d2m."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ORDER = ["common", "datamodules", "lightning_modules", "evaluation", "experiments", "ablations", "d2m"]


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names & set(ORDER)


@pytest.mark.parametrize("package", ORDER)
def test_no_package_imports_upward(package):
    allowed = set(ORDER[: ORDER.index(package) + 1])
    offenders = []
    for path in (ROOT / package).rglob("*.py"):
        bad = imported_packages(path) - allowed
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not offenders, "\n".join(offenders)


def test_networks_know_nothing_of_lightning():
    for path in (ROOT / "lightning_modules" / "networks").rglob("*.py"):
        text = path.read_text()
        assert "pytorch_lightning" not in text and "import lightning" not in text, path
