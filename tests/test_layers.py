"""The package's import graph runs strictly downward through its layers, so it has no import
circles: every `import` in `neurodyn/` — at module level or inside a function — is read from
the source (AST) and must point into its own package or a lower layer. A new upward import
fails here, naming the file, the line and the two packages."""

import ast
import pathlib

import pytest

import neurodyn

ROOT = pathlib.Path(neurodyn.__file__).parent

# Lowest first. A package may import its own modules and anything in an earlier entry.
LAYERS: list[set[str]] = [
    {"_version", "_custom_types", "_validation", "_data"},
    {"optim"},
    {"plants"},
    {"models"},
    {"tasks"},
    {"training"},
    {"config"},
    {"analysis"},
    {"runs"},
    {"cli", "__main__"},
]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}


def _module_name(path: pathlib.Path, root: pathlib.Path) -> tuple[str, bool]:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    is_pkg = parts[-1] == "__init__"
    return ".".join(parts[:-1] if is_pkg else parts), is_pkg


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "neurodyn"


def _imports(path: pathlib.Path, root: pathlib.Path):
    """(line, absolute module) for every neurodyn import in `path`, at any depth."""
    module, is_pkg = _module_name(path, root)
    package = module.split(".") if is_pkg else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "neurodyn":
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "neurodyn":
                continue
            if target == "neurodyn":  # `from .. import tasks`: each name is a module
                for alias in node.names:
                    yield node.lineno, f"neurodyn.{alias.name}"
            else:
                yield node.lineno, target


def _violations(path: pathlib.Path, root: pathlib.Path = ROOT) -> list[str]:
    src = _top(_module_name(path, root)[0])
    where = path.relative_to(root.parent)
    out = []
    for line, target in _imports(path, root):
        dst = _top(target)
        if dst == src:
            continue
        if dst == "neurodyn" or dst not in RANK:
            out.append(f"{where}:{line} {src} imports {target}, which is not a layer")
        elif RANK[dst] >= RANK[src]:
            out.append(f"{where}:{line} {src} imports {target} (a higher layer)")
    return out


SOURCES = sorted(p for p in ROOT.rglob("*.py") if _top(_module_name(p, ROOT)[0]) != "neurodyn")


def test_every_subpackage_has_a_layer():
    tops = {_top(_module_name(p, ROOT)[0]) for p in SOURCES}
    assert tops <= set(RANK), f"add to LAYERS: {sorted(tops - set(RANK))}"


def test_the_checker_reports_an_upward_import(tmp_path):
    fake = tmp_path / "neurodyn" / "optim" / "_x.py"
    fake.parent.mkdir(parents=True)
    fake.write_text(
        "import jax\n\n\ndef f():\n    from ..analysis import load\n    from . import _y\n"
    )
    assert _violations(fake, tmp_path / "neurodyn") == [
        "neurodyn/optim/_x.py:5 optim imports neurodyn.analysis (a higher layer)"
    ]
    (fake.parent / "_z.py").write_text("from .. import fit\n")
    assert "not a layer" in _violations(fake.parent / "_z.py", tmp_path / "neurodyn")[0]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down(path):
    assert _violations(path) == []


# Names another package takes from a private module: none (#24); a new one fails.
PRIVATE_IMPORTS_LEFT: set[tuple[str, str]] = set()


def test_no_new_private_imports_across_packages():
    found = set()
    for path in SOURCES:
        src = _top(_module_name(path, ROOT)[0])
        for _, target in _imports(path, ROOT):
            dst = _top(target)
            parts = target.split(".")
            if dst != src and len(parts) > 2 and parts[2].startswith("_"):
                found.add((src, target))
    assert found <= PRIVATE_IMPORTS_LEFT, sorted(found - PRIVATE_IMPORTS_LEFT)
