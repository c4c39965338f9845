"""The same numbers, bit for bit: a short run's every recorded figure equals the reference
in tests/data/same_numbers.json, recorded by the code before a refactor of the engine.

Each run trains v4 and v2 (seed 7, 256 training images, 2 epochs, 200 test images, fp32,
CPU) in a subprocess whose numeric code paths are pinned to ones every x86-64 CPU runs alike
(CI's CPUs vary: AMD EPYC with AVX-512 and bf16, AMD EPYC with AVX2 only, Intel Xeon with
AVX-512 and no bf16), since PyTorch otherwise picks its kernels by the CPU and their
vector widths decide the order in which floats are summed:

- ATEN_CPU_CAPABILITY=default: ATen's portable kernels, not its AVX2/AVX-512 builds;
- oneDNN off (torch.backends.mkldnn.enabled = False): its convolutions choose their blocking
  from the CPU's cache sizes, so even at one ISA (ONEDNN_MAX_CPU_ISA) the sums' order may
  follow the CPU; ATen's own convolution (im2col and MKL's sgemm) runs instead;
- MKL_CBWR=COMPATIBLE: MKL's conditional numerical reproducibility, the same results on
  every x86 CPU;
- one thread (OMP_NUM_THREADS=1, MKL_NUM_THREADS=1, torch.set_num_threads(1)): a reduction
  split over threads sums in another order;
- MNIST_TUI_FUSED=0: the fused batch-norm kernels (core/fused.py) are compiled with
  -march=native, so their vector width, FMA contraction and hence their rounding follow the
  CPU that built them. They are left out: no reference could be exact on every CPU. Their
  arithmetic is checked against PyTorch's by tests/test_fused.py instead. The same switch
  keeps the optimizer's step PyTorch's default (foreach) one, as it was when the reference
  was recorded: the fused CPU step (core/optim.py) rounds Adam(W)'s update differently in the
  last digit; tests/test_models.py checks it against the default.

One part still follows the CPU's maker: MKL's sgemm. With MKL_CBWR=COMPATIBLE, v2 (whose
Linear layers go through it) still differs in the 7th digit between the AMD EPYC the reference
was recorded on and an Intel Xeon (v4 is equal on both). The reference therefore holds, per
CPU vendor (/proc/cpuinfo's vendor_id), the figures that differ: the Intel ones were recorded
on 2026-12-07 and equal what the code before that day's changes gives on that Xeon, so they
carry the same promise. A CPU of a vendor with no figures of its own is held to the first.

What these runs prove is the engine's own part: seeds, the data order, augmentation, the
schedule, the loop and what it records. `python -m tests.test_same_numbers --record` writes
the reference anew (only when a change is meant to change the numbers).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REFERENCE = Path(__file__).with_name("data") / "same_numbers.json"
VERSIONS = ("v4", "v2")
SETTINGS = {"epochs": 2, "limit": 256, "test_limit": 200, "seed": 7, "device": "cpu", "precision": "fp32"}
NUMBERS = ("epoch", "epochs", "train_loss", "train_acc", "test_loss", "test_acc", "lr")  # the rest are timings
PINNED = {
    "ATEN_CPU_CAPABILITY": "default",
    "MKL_CBWR": "COMPATIBLE",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "MNIST_TUI_FUSED": "0",
}


def weights_checksum(state: dict) -> str:
    """sha256 over every tensor of a state dict, by name, of its exact bytes."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def record(version: str, runs: Path, seed: int) -> dict:
    """Train `version` in this process (pinned by the caller) and return what the run folder
    holds: every epoch's metrics line but its timings, the per-batch curve and the final
    weights' checksum."""
    import torch

    torch.set_num_threads(1)
    torch.backends.mkldnn.enabled = False
    from mnist_tui.core.store import checkpoint
    from mnist_tui.core.train import train
    from mnist_tui.core.versions import get_version

    config = get_version(version).config(**{**SETTINGS, "seed": seed}, runs_dir=str(runs))
    events = list(train(config))
    run_dir = events[-1].run_dir
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    metrics = [{k: line[k] for k in NUMBERS} for line in lines]
    points = (run_dir / "batches.csv").read_text().splitlines()  # the per-batch curve, as written
    return {"status": events[-1].status, "metrics": metrics, "points": points, "weights": weights_checksum(checkpoint.load(run_dir).model)}


def run_pinned(version: str, tmp: Path, seed: int = SETTINGS["seed"]) -> dict:
    """`record` in a subprocess with the numeric code paths pinned."""
    env = {**os.environ, **PINNED}
    code = f"import json, sys; from pathlib import Path; from tests.test_same_numbers import record; print(json.dumps(record({version!r}, Path({str(tmp)!r}), {seed})))"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=Path(__file__).parent.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def cpu_vendor() -> str:
    """/proc/cpuinfo's vendor_id ('GenuineIntel', 'AuthenticAMD'), '' where there is none."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return ""
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("vendor_id")), "")


def reference_for(version: str) -> dict:
    """The reference figures of `version` on this CPU's vendor (see the module's docstring)."""
    reference = json.loads(REFERENCE.read_text())
    return reference.get("by_vendor", {}).get(cpu_vendor(), {}).get(version) or reference[version]


@pytest.mark.parametrize("version", VERSIONS)
def test_a_short_run_records_the_reference_numbers_exactly(version, tmp_path):
    expected = reference_for(version)
    assert run_pinned(version, tmp_path) == expected  # ==, not approx: bit for bit


def test_another_seed_gives_other_numbers(tmp_path):
    """The comparison can fail: one changed setting changes the numbers."""
    expected = reference_for("v2")
    other = run_pinned("v2", tmp_path, seed=SETTINGS["seed"] + 1)
    assert other["weights"] != expected["weights"] and other["metrics"] != expected["metrics"]


if __name__ == "__main__" and sys.argv[1:] == ["--record"]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        figures = {v: run_pinned(v, Path(tmp) / v) for v in VERSIONS}
    old = json.loads(REFERENCE.read_text()) if REFERENCE.exists() else {}
    if old.get("vendor", cpu_vendor()) == cpu_vendor():  # the first vendor's figures, anew
        reference = {**old, **figures, "vendor": cpu_vendor()}
    else:  # another vendor's: only those that differ from the first's
        differ = {v: f for v, f in figures.items() if f != old.get(v)}
        reference = {**old, "by_vendor": {**old.get("by_vendor", {}), cpu_vendor(): differ}}
    REFERENCE.parent.mkdir(exist_ok=True)
    REFERENCE.write_text(json.dumps(reference, indent=1, sort_keys=True) + "\n")
    print(f"wrote {REFERENCE}")
