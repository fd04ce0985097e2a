"""Every tutorial runs as a plain script in fast mode, ends without error and writes figures.

The tutorials (`tutorials/NN_*.py`, jupytext py:percent) run in subprocesses with
`NEURODYN_FAST=1` (smaller sizes, a few iterations), the Agg backend and
`NEURODYN_TUTORIAL_OUT` pointing at a temporary folder. They are dominated by XLA
compilation, which is single-threaded, so they run two at a time when this process may use
two or more cores (`os.sched_getaffinity`), one at a time otherwise.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py"))
TIMEOUT_S = 300

# the figures each tutorial must write, by file stem (a tutorial may write more)
EXPECTED_FIGURES = {
    "01_quickstart": {"learning_curves", "trained_trial", "weights"},
    "02_reaching": {"trial_structure", "learning_curve", "hand_trajectories", "psth"},
    "03_long_horizons": {"memory_vs_T", "learning_curve", "traces", "error_since_switch"},
    "04_custom_model_and_task": {"learning_curve", "trial"},
    "05_inside_sofo": {"damping", "effect_of_K"},
    "06_analysing_dynamics": {
        "psth_bit0_pulse",
        "pca_trajectories",
        "fixed_points",
        "jpca",
        "dpca",
        "similarity",
    },
}


def _n_workers() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(2, cores))


def _run(path: Path, out: Path) -> tuple[subprocess.CompletedProcess, float]:
    env = {
        **os.environ,
        "NEURODYN_FAST": "1",
        "NEURODYN_TUTORIAL_OUT": str(out),
        "MPLBACKEND": "Agg",
        "PYTHONUNBUFFERED": "1",
    }
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    return proc, time.perf_counter() - t0


@pytest.fixture(scope="module")
def tutorial_runs(tmp_path_factory):
    """Run every tutorial once (two at a time where two cores are available)."""
    out = tmp_path_factory.mktemp("tutorials")
    with ThreadPoolExecutor(_n_workers()) as pool:
        runs = dict(zip(TUTORIALS, pool.map(lambda p: _run(p, out), TUTORIALS)))
    return out, runs


def test_every_tutorial_is_tested():
    assert [p.stem for p in TUTORIALS] == sorted(EXPECTED_FIGURES)


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs_in_fast_mode(path, tutorial_runs):
    out, runs = tutorial_runs
    proc, seconds = runs[path]
    assert proc.returncode == 0, (
        f"{path.name} failed (exit {proc.returncode}) after {seconds:.0f} s:\n"
        f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    )
    print(f"{path.name}: {seconds:.1f} s in fast mode")
    written = {f.stem for f in (out / path.stem).glob("*.png")}
    missing = EXPECTED_FIGURES[path.stem] - written
    assert not missing, f"{path.name} did not write {sorted(missing)} (wrote {sorted(written)})"
    for figure in (out / path.stem).glob("*.png"):
        assert figure.stat().st_size > 1000, f"{figure} is (almost) empty"
    if "FAST_NOTE" in path.read_text(encoding="utf-8"):  # fast-mode figures say so in their title
        from PIL import Image

        for figure in (out / path.stem).glob("*.png"):
            with Image.open(figure) as image:
                title = image.info.get("Title", "")
            assert "NEURODYN_FAST=1" in title and "briefly trained" in title, figure.name


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_is_a_jupytext_percent_script(path):
    text = path.read_text(encoding="utf-8")
    assert "format_name: percent" in text.split("# ---", 2)[1]
    assert "# %% [markdown]" in text and "\n# %%\n" in text
    assert "NEURODYN_FAST" in text and "NEURODYN_TUTORIAL_OUT" in text
    assert 'matplotlib.use("Agg")' in text
