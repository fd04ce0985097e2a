"""The documentation is complete: every public name has a docstring and a place in the API
reference, the how-to code runs, and (with the docs extra installed) `mkdocs build --strict`
passes.

Public names are those a namespace's `__init__.py` re-exports explicitly, the convention
neurodyn follows throughout (`from ._rnn import RateRNN as RateRNN`, `from . import models as
models`); a namespace that defines `__all__` is taken at its word instead.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "neurodyn"
DOCS = ROOT / "docs"
API = DOCS / "api"


def _namespaces() -> list[str]:
    """`neurodyn` and every public sub-package (a folder with an `__init__.py`, no `_`)."""
    subpackages = sorted(
        p.parent.name for p in PACKAGE.glob("*/__init__.py") if not p.parent.name.startswith("_")
    )
    return ["neurodyn", *(f"neurodyn.{name}" for name in subpackages)]


def _public_names(modname: str) -> list[str]:
    module = importlib.import_module(modname)
    if hasattr(module, "__all__"):
        return list(module.__all__)
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    names = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level >= 1:
            names += [a.name for a in node.names if a.asname == a.name]
    return names


NAMESPACES = _namespaces()
PUBLIC = [(ns, name) for ns in NAMESPACES for name in _public_names(ns)]


@functools.cache
def _module_bodies() -> list[list[ast.stmt]]:
    return [ast.parse(p.read_text(encoding="utf-8")).body for p in sorted(PACKAGE.rglob("*.py"))]


def _attribute_docstring(name: str) -> str | None:
    """The string literal right after a module-level assignment of `name` (PEP 257 style)."""
    for body in _module_bodies():
        for node, following in zip(body, body[1:]):
            targets = (
                [node.target]
                if isinstance(node, ast.AnnAssign)
                else node.targets
                if isinstance(node, ast.Assign)
                else []
            )
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                if isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant):
                    if isinstance(following.value.value, str):
                        return following.value.value
    return None


def _own_docstring(obj, name: str) -> str | None:
    if inspect.ismodule(obj) or inspect.isclass(obj) or callable(obj):
        doc = obj.__doc__
        if inspect.isclass(obj):
            # dataclasses (and so Equinox modules) without a docstring get their signature
            if doc and doc.startswith(f"{obj.__name__}("):
                return None
            # NamedTuples without a docstring get "Name(field, ...)" too
            if doc and re.fullmatch(rf"{obj.__name__}\(.*\)", doc.strip(), re.S):
                return None
        return doc
    return _attribute_docstring(name)  # a constant: its docstring sits in the source


def test_namespaces_are_found():
    assert {"neurodyn", "neurodyn.models", "neurodyn.optim", "neurodyn.tasks"} <= set(NAMESPACES)
    assert {"neurodyn.plants", "neurodyn.analysis", "neurodyn.training"} <= set(NAMESPACES)
    assert len(PUBLIC) > 100


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_every_namespace_has_a_docstring(namespace):
    doc = importlib.import_module(namespace).__doc__
    assert doc and doc.strip()


@pytest.mark.parametrize("namespace,name", PUBLIC, ids=[f"{ns}.{n}" for ns, n in PUBLIC])
def test_every_public_name_has_a_docstring(namespace, name):
    obj = getattr(importlib.import_module(namespace), name)
    doc = _own_docstring(obj, name)
    assert doc and doc.strip(), f"{namespace}.{name} has no docstring"


def _reference_entries() -> set[str]:
    entries = set()
    for page in API.glob("*.md"):
        entries |= set(re.findall(r"^:::\s*([\w.]+)\s*$", page.read_text("utf-8"), re.M))
    return entries


def test_every_public_name_is_in_the_api_reference():
    entries = _reference_entries()
    missing = []
    for namespace, name in PUBLIC:
        obj = getattr(importlib.import_module(namespace), name)
        if inspect.ismodule(obj):  # sub-packages have their own page
            assert obj.__name__ in NAMESPACES
            continue
        if f"{namespace}.{name}" not in entries:
            missing.append(f"{namespace}.{name}")
    assert not missing, f"not in docs/api/*.md (add a `::: name` line): {missing}"


def test_the_api_reference_names_only_public_names():
    public = {f"{ns}.{n}" for ns, n in PUBLIC}
    stale = sorted(_reference_entries() - public)
    assert not stale, f"docs/api/*.md documents names that are not public: {stale}"


def _nav_files(nav) -> list[str]:
    files = []
    for item in nav:
        if isinstance(item, str):
            files.append(item)
        elif isinstance(item, dict):
            for value in item.values():
                files += _nav_files(value) if isinstance(value, list) else [value]
    return files


def _mkdocs_config() -> dict:
    yaml = pytest.importorskip("yaml")

    class Loader(yaml.SafeLoader):
        pass

    # mkdocs.yml may use `!!python/name:` tags; they are irrelevant here
    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda *args: None)
    return yaml.load((ROOT / "mkdocs.yml").read_text("utf-8"), Loader=Loader)


def test_every_page_is_in_the_nav_and_every_nav_entry_exists():
    nav = _nav_files(_mkdocs_config()["nav"])
    pages = {
        p.relative_to(DOCS).as_posix()
        for p in DOCS.rglob("*.md")
        if not p.relative_to(DOCS).as_posix().startswith("_")
    }
    # docs/benchmarks.md is written by the benchmarks; it may not exist yet in a checkout
    assert not (set(nav) - pages - {"benchmarks.md"}), set(nav) - pages
    assert not (pages - set(nav)), f"pages missing from the nav: {pages - set(nav)}"
    api_pages = {p for p in nav if p.startswith("api/")}
    assert api_pages == {f"api/{p.name}" for p in API.glob("*.md")}


def test_every_tutorial_has_a_page():
    for script in sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py")):
        page = DOCS / "tutorials" / f"{script.stem}.md"
        assert page.exists(), f"no docs page for {script.name}"
        assert f"<!-- tutorial: {script.name} -->" in page.read_text("utf-8")


def test_tutorial_hook_renders_percent_scripts():
    sys.path.insert(0, str(DOCS / "_hooks"))
    try:
        from tutorials import percent_to_markdown
    finally:
        sys.path.pop(0)
    text = (
        "# ---\n# jupyter:\n#   jupytext:\n#     formats: py:percent\n# ---\n\n"
        "# %% [markdown]\n# # Title\n#\n# See [the next one](02_reaching.py).\n\n"
        "# %%\nx = 1  # a comment\n\n\n# %%\nprint(x)\n"
    )
    md = percent_to_markdown(text)
    assert md.startswith("# Title\n\nSee [the next one](02_reaching.md).")
    assert "```python\nx = 1  # a comment\n```" in md
    assert "```python\nprint(x)\n```" in md
    assert "jupytext" not in md


def _python_blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text("utf-8"), re.S)


def test_the_several_devices_example_runs(tmp_path):
    """The sharding example of the GPU how-to, on two simulated CPU devices."""
    blocks = [b for b in _python_blocks(DOCS / "how-to" / "gpu-and-devices.md") if "Mesh" in b]
    assert len(blocks) == 1
    script = tmp_path / "example.py"
    script.write_text(
        blocks[0]
        + "\nassert len(jax.devices()) == 2\n"
        # the same step without sharding (the example's last line updated `params`)
        + "p0 = jax.tree.map(lambda p, d: p + 0.5 * d, params, direction)\n"
        + "_, ref, _ = sofo(p0, V, h0, xs)\n"
        + "for a, b in zip(jax.tree.leaves(direction), jax.tree.leaves(ref)):\n"
        + "    assert float(jnp.abs(a - b).max()) <= 1e-4 * float(jnp.abs(b).max())\n"
        + "print('ok')\n"
    )
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
        "JAX_PLATFORMS": "cpu",
    }
    proc = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.strip().endswith("ok")


def test_mkdocs_build_strict(tmp_path):
    """`mkdocs build --strict` passes, offline (needs the docs extra: `pip install .[docs]`)."""
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    pytest.importorskip("material")
    # build from a copy, so that a missing docs/benchmarks.md (written by the benchmarks) can
    # be stood in for without touching the checkout
    work = tmp_path / "repo"
    work.mkdir()
    shutil.copy(ROOT / "mkdocs.yml", work / "mkdocs.yml")
    shutil.copytree(DOCS, work / "docs")
    shutil.copytree(ROOT / "tutorials", work / "tutorials", ignore=shutil.ignore_patterns("_out"))
    (work / "neurodyn").symlink_to(PACKAGE, target_is_directory=True)
    if not (work / "docs" / "benchmarks.md").exists():
        (work / "docs" / "benchmarks.md").write_text("# Benchmarks\n")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    assert (site / "index.html").exists()
    models = (site / "api" / "models" / "index.html").read_text("utf-8")
    assert 'id="neurodyn.models.RateRNN"' in models
    tutorial = (site / "tutorials" / "06_analysing_dynamics" / "index.html").read_text("utf-8")
    assert "fixed_points" in tutorial and "similarity" in tutorial


def test_equations_render_offline():
    """MathJax is served from docs/ (vendored with its licence), never from a CDN."""
    scripts = _mkdocs_config().get("extra_javascript", [])
    assert scripts and not [s for s in scripts if "://" in str(s)], scripts
    for script in scripts:
        assert (DOCS / script).is_file(), script
    vendored = DOCS / "javascripts" / "mathjax"
    assert "Apache License" in (vendored / "LICENSE").read_text("utf-8")
    assert 'VERSION="3.2.2"' in (vendored / "tex-svg.js").read_text("utf-8")
    assert not [s for s in _mkdocs_config().get("extra_css", []) if "://" in str(s)]
