"""`--precision auto` on a CPU with native bf16 trains in whichever of fp32 and bf16 the
measured table (measured.json's precision section, written by benchmarks/precision.py) says
is faster for the version on this CPU class, and says so on the start line; anything the
table cannot answer falls back to bf16 wherever it is native."""

from __future__ import annotations

import json

import pytest
import torch

from mnist_tui.core import device, fused, hardware, measured

CPU = torch.device("cpu")
INFO = {"model": "Test  CPU 9000", "vendor": "GenuineIntel", "family": "6", "number": "143", "flags": "fpu avx2 fma avx512f avx512_bf16"}
KEY = "Test CPU 9000 · family 6 model 143 · avx512_bf16"
FP32_WHY = "faster than bf16 for v4 on this CPU, measured"


@pytest.fixture
def table(tmp_path, monkeypatch):
    """A tmp measured.json that core/measured.py reads, a CPU with native bf16 and working
    fused kernels; returns a function recording one version's step ms on a CPU key."""
    target = tmp_path / "measured.json"
    monkeypatch.setenv(measured.MEASURED_ENV, str(target))
    monkeypatch.setattr(hardware, "cpu_info", lambda: INFO)
    monkeypatch.setattr(device, "bf16_native", lambda _device: True)
    monkeypatch.setattr(hardware, "cpu_bf16_native", lambda: True)
    monkeypatch.setattr(fused, "available", lambda: True)

    def write(version: str, fp32: float, bf16: float, cpu: str = KEY) -> None:
        measured.record_step_ms(cpu, version, {"fp32": fp32, "bf16": bf16}, about={"date": "2026-12-01", "command": "test"}, target=target)

    return write


def test_the_cpu_key_names_the_model_its_generation_and_its_vector_class():
    assert hardware.cpu_key(INFO) == KEY
    classes = {"amx_bf16 amx_tile avx512_bf16 avx512f": "amx", "avx512f avx512bw": "avx512", "avx2 fma": "avx2", "neon asimd": "other", "": "other"}
    assert {flags: hardware.isa_class(flags) for flags in classes} == classes
    assert hardware.cpu_key({}) == "unknown CPU · other"
    assert len(hardware.cpu_key({"model": "x" * 10_000, "flags": "avx2"})) == hardware.KEY_CAP


def test_auto_trains_fp32_where_the_table_measured_it_faster_on_this_cpu(table):
    table("v4", fp32=7.5, bf16=9.8)
    assert device.choose_precision("auto", CPU, "v4") == ("fp32", FP32_WHY)
    assert device.resolve_precision("auto", CPU, "v4") == "fp32"
    assert hardware.auto_precision("auto", "v4") == "fp32"  # the estimates shown before a run agree


def test_auto_trains_bf16_where_the_table_measured_it_faster(table):
    table("v4", fp32=9.8, bf16=7.5)
    assert device.choose_precision("auto", CPU, "v4") == ("bf16", "faster than fp32 for v4 on this CPU, measured")


def test_without_an_entry_for_this_cpu_and_version_auto_keeps_bf16_where_native(table):
    table("v4", fp32=7.5, bf16=9.8, cpu="Another CPU · avx512_bf16")
    table("v3", fp32=7.5, bf16=9.8)
    assert device.choose_precision("auto", CPU, "v4") == ("bf16", "")
    assert device.choose_precision("auto", CPU, None) == ("bf16", "")  # no version named
    assert hardware.auto_precision("auto", "v4") == "bf16"


@pytest.mark.parametrize(
    "blob",
    [
        b"\xff\xfe not json",
        b"{" * 100_000,
        b"[]",
        b'{"precision": []}',
        b'{"precision": {"KEY": []}}',
        b'{"precision": {"KEY": {"v4": {"step_ms": [7, 9]}}}}',
        b'{"precision": {"KEY": {"v4": {"step_ms": {"fp32": "7", "bf16": 9}}}}}',
        b'{"precision": {"KEY": {"v4": {"step_ms": {"fp32": true, "bf16": 9}}}}}',
        b'{"precision": {"KEY": {"v4": {"step_ms": {"fp32": -1, "bf16": 9}}}}}',
        b'{"precision": {"KEY": {"v4": {"step_ms": {"fp32": 1e400, "bf16": 9}}}}}',
        b'{"precision": {"KEY": {"v4": {"step_ms": {"fp32": 7}}}}}',
        b'{"precision": {"KEY": {"v4": {"step_ms": {"fp32": 7, "bf16": 7}}}}}',
    ],
)
def test_a_damaged_table_falls_back_to_todays_rule_without_an_error(table, tmp_path, blob):
    (tmp_path / "measured.json").write_bytes(blob.replace(b"KEY", KEY.encode()))
    assert device.choose_precision("auto", CPU, "v4") == ("bf16", "")
    assert hardware.auto_precision("auto", "v4") == "bf16"


def test_a_cpu_without_native_bf16_trains_fp32_whatever_the_table_says(table, monkeypatch):
    table("v4", fp32=9.8, bf16=1.0)
    monkeypatch.setattr(device, "bf16_native", lambda _device: False)
    monkeypatch.setattr(hardware, "cpu_bf16_native", lambda: False)
    assert device.choose_precision("auto", CPU, "v4") == ("fp32", "")
    assert hardware.auto_precision("auto", "v4") == "fp32"


def test_without_the_fused_kernels_fp32_is_not_chosen_for_speed(table, monkeypatch):
    """The table's fp32 figures were measured with the fused kernels; without them fp32 is
    slower than measured, so auto keeps bf16."""
    table("v4", fp32=7.5, bf16=9.8)
    monkeypatch.setattr(fused, "available", lambda: False)
    assert device.choose_precision("auto", CPU, "v4") == ("bf16", "")


def test_an_explicit_mode_cuda_and_mps_ignore_the_table(table):
    table("v4", fp32=7.5, bf16=9.8)
    assert device.choose_precision("bf16", CPU, "v4") == ("bf16", "")
    assert device.choose_precision("fp32", CPU, "v4") == ("fp32", "")
    assert device.choose_precision("auto", torch.device("cuda"), "v4") == ("bf16", "")  # bf16_native is patched True
    assert device.choose_precision("auto", torch.device("mps"), "v4") == ("fp32", "")
    assert hardware.auto_precision("fp32", "v4") == "fp32"


def test_recording_keeps_the_rest_of_the_file_and_the_other_cpus(table, tmp_path):
    target = tmp_path / "measured.json"
    target.write_text(measured.SHIPPED.read_text())
    table("v4", fp32=7.512, bf16=9.8)
    table("v4", fp32=20.0, bf16=10.0, cpu="Another CPU · avx512_bf16")
    written = json.loads(target.read_text())
    assert written["versions"] == json.loads(measured.SHIPPED.read_text())["versions"]
    assert written["precision"][KEY]["v4"] == {"step_ms": {"fp32": 7.51, "bf16": 9.8}, "date": "2026-12-01", "command": "test"}
    assert measured.step_ms("Another CPU · avx512_bf16", "v4") == {"fp32": 20.0, "bf16": 10.0}


def _started(**changes):
    from mnist_tui.core.events import RunStarted
    from mnist_tui.core.versions import get_version

    facts = dict(run_id="r", run_dir=None, config=get_version("v4").config(), device="cpu", device_name="CPU, 2 threads")
    facts.update(params=7_432, precision="fp32", train_size=60_000, test_size=10_000, batches_per_epoch=938)
    return RunStarted(**{**facts, **changes})


def test_the_start_line_says_why_auto_chose_the_mode():
    from mnist_tui.present.training import started_facts, started_line

    line = started_facts(_started(precision_reason=FP32_WHY))
    assert line == "7,432 params · CPU, 2 threads · fp32 (faster than bf16 for v4 on this CPU, measured) · 60,000 train / 10,000 test images"
    assert started_line(_started(precision_reason=FP32_WHY)).plain.split(" · ")[3] == f"fp32 ({FP32_WHY})"
    assert "· fp32 ·" in started_facts(_started())  # no reason, no parentheses


def test_a_real_run_records_the_measured_choice_and_shows_it(table, tmp_path):
    """Through the engine: config.json records the mode used and why; the start line built
    from it (as every follower builds it) says both; a damaged reason is dropped."""
    from mnist_tui.core.events import run_started
    from mnist_tui.present.training import started_facts
    from tests.builders import trained_run

    table("v4", fp32=9.8, bf16=7.5)  # bf16: the choice that needs no fused kernels
    record = trained_run(tmp_path / "runs", "v4", limit=256, test_limit=128)
    meta = json.loads((record.path / "config.json").read_text())
    assert (meta["config"]["precision"], meta["precision"], meta["precision_reason"]) == ("auto", "bf16", "faster than fp32 for v4 on this CPU, measured")
    assert "· bf16 (faster than fp32 for v4 on this CPU, measured) ·" in started_facts(run_started(record.path, meta))
    assert "· bf16 ·" in started_facts(run_started(record.path, {**meta, "precision_reason": ["not", "text"]}))
