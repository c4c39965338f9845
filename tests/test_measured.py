"""Measured figures are data: the benchmarks write measured.json, the registry reads it, the
tests read a fixed copy, and a damaged file costs figures, never the app."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from mnist_tui.core import measured
from mnist_tui.core.versions import PRESETS, VERSIONS

REGISTRY = "from mnist_tui.core.versions import VERSIONS, QUICK; print(VERSIONS['v4'].measured, dict(VERSIONS['v4'].epoch_seconds), QUICK.run_seconds)"


def test_the_tests_read_the_fixed_copy_and_every_entry_has_figures():
    assert Path(os.environ[measured.MEASURED_ENV]) == Path(__file__).with_name("data") / "measured.json"
    for name, version in VERSIONS.items():
        assert version.measured and dict(version.epoch_seconds).keys() == {"bf16", "fp32"}, name
    assert all(preset.measured and preset.run_seconds for preset in PRESETS.values())


def test_the_shipped_file_names_every_version_and_preset():
    shipped = measured.read(measured.SHIPPED)
    assert set(shipped["versions"]) == set(VERSIONS) and set(shipped["presets"]) == set(PRESETS)
    for kind, names in (("versions", VERSIONS), ("presets", PRESETS)):
        for name in names:
            accuracy, seconds = measured.figures(kind, name, shipped)
            assert accuracy and seconds, (kind, name)


def test_a_new_measurement_reaches_the_registry_without_a_code_change(tmp_path):
    target = tmp_path / "measured.json"
    target.write_text(measured.SHIPPED.read_text())
    measured.record("versions", "v4", accuracy=[99.123, 99.2], seconds={"fp32": 6.54}, note="benchmarks/accuracy.py, today", target=target)
    measured.record("presets", "quick", seconds={"bf16": 28.0}, target=target)
    env = {**os.environ, measured.MEASURED_ENV: str(target)}
    out = subprocess.run([sys.executable, "-c", REGISTRY], capture_output=True, text=True, env=env, check=True).stdout
    assert out.strip() == "(99.12, 99.2) {'bf16': 9.6, 'fp32': 6.5} (('fp32', 23.4), ('bf16', 28.0))"
    written = json.loads(target.read_text())
    assert written["versions"]["v3"] == json.loads(measured.SHIPPED.read_text())["versions"]["v3"]  # the rest is kept
    assert written["versions"]["v4"]["notes"]["fp32"] == written["versions"]["v4"]["notes"]["accuracy"] == "benchmarks/accuracy.py, today"
    assert written["versions"]["v4"]["notes"]["bf16"] == json.loads(measured.SHIPPED.read_text())["versions"]["v4"]["notes"]["bf16"]
    target.write_text('{"versions": [], "presets": {"quick": 3}}')  # a damaged file is written anew
    measured.record("presets", "quick", accuracy=[99.0], target=target)
    assert measured.figures("presets", "quick", measured.read(target)) == ((99.0,), ())


def test_a_damaged_file_costs_its_figures_not_the_app(tmp_path):
    bad = tmp_path / "measured.json"
    for blob in (b"\xff\xfe not json", b"[1, 2]", b"{" * 100_000, b'{"versions": []}', b"", b" " * (measured.MAX_BYTES + 1)):
        bad.write_bytes(blob)
        assert measured.figures("versions", "v4", measured.read(bad)) == ((), ())
    odd = {
        "versions": {"v4": {"accuracy": [99.5, "99", None, True, float("nan"), 101, -1, 98.0], "seconds": {"fp32": -3, "bf16": 1e400, "tf32": 5, "fp32 ": 1}}}
    }
    bad.write_text(json.dumps(odd))
    assert measured.figures("versions", "v4", measured.read(bad)) == ((99.5, 98.0), ())
    env = {**os.environ, measured.MEASURED_ENV: str(tmp_path / "missing.json")}
    out = subprocess.run([sys.executable, "-c", REGISTRY], capture_output=True, text=True, env=env, check=True).stdout
    assert out.strip() == "() {} ()"
