"""The force-field experiment and the MotorNet cross-check scripts (benchmarks/)."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name):
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
    return module


def test_perpendicular_deviation_on_known_paths():
    ff = _load("force_field")
    start = np.array([0.0, 0.0])
    target = np.array([[0.0, 1.0], [1.0, 0.0]])
    s = np.linspace(0, 1, 11)
    # reach 1 bows to the left (−x) by 0.2, reach 2 to the right (−y) by 0.1
    path1 = np.stack([-0.2 * np.sin(np.pi * s), s], -1)
    path2 = np.stack([s, -0.1 * np.sin(np.pi * s)], -1)
    dev = ff.perpendicular_deviation(
        np.stack([path1, path2]), start, target, np.array([0, 0]), np.array([10, 10])
    )
    np.testing.assert_allclose(dev, [0.2, -0.1], atol=1e-12)
    # outside the window the bow is not seen
    dev = ff.perpendicular_deviation(
        np.stack([path1, path2]), start, target, np.array([0, 0]), np.array([1, 1])
    )
    np.testing.assert_allclose(dev, [0.2 * np.sin(np.pi / 10), -0.1 * np.sin(np.pi / 10)])


@pytest.mark.slow
def test_force_field_quick_run(tmp_path):
    ff = _load("force_field")
    assert ff.main(["--quick", "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "force_field_quick.json").read_text())
    assert list(record["phases"]) == list(ff.PHASES)
    for phase in record["phases"].values():
        assert np.isfinite(phase["mean_abs_max_deviation_cm"])
        assert len(phase["max_perpendicular_deviation_cm"]) == 8
    assert (tmp_path / "force_field_quick.png").stat().st_size > 0


def test_motornet_crosscheck():
    """Runs only with the optional extra installed. Same skeleton parameters: the joint
    trajectories agree to MotorNet's float32 precision; whole arms: each muscle moves the
    joints it crosses the same way in both; MotorNet's muscles are stronger."""
    pytest.importorskip("motornet")
    pytest.importorskip("torch")
    mc = _load("motornet_crosscheck")
    rng = np.random.default_rng(0)
    skeleton = mc.skeleton_check(50, rng)
    assert skeleton["max_angle_excursion_rad"] > 0.01 and skeleton["inside_motornet_joint_box"]
    assert skeleton["relative_angle_difference"] < 1e-4
    strength = mc.strength_check()["torques_N_m"]
    for name, row in strength.items():
        ours, theirs = np.abs(row["ours"]), np.abs(row["motornet"])
        assert np.all(np.sign(row["ours"]) * np.sign(row["motornet"]) >= 0), name
        assert theirs.max() > 3 * ours.max(), name
    whole = mc.whole_arm_check(50, rng, 1)
    assert whole["single_muscle_direction_agreement"] == "6/6"
