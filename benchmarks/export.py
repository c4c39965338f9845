"""Export checked: each format of `mnist-tui export` for trained v2, v4 and v5 runs.

    .venv/bin/python benchmarks/export.py                      # runs/ (training what is missing)
    .venv/bin/python benchmarks/export.py --runs DIR --models v4,v5
    .venv/bin/python benchmarks/export.py --epochs 3           # shorter runs of the recipes
    .venv/bin/python benchmarks/export.py --formats onnx-int8 --calibration 64,512,4096

For each model it takes the newest finished run in the runs folder that trained with the
version's own recipe on all 60,000 images and was tested on all 10,000 (no --limit,
--test-limit, --holdout or changed epochs), or trains one there with that recipe on the CPU.
With --epochs N, runs of the recipe shortened to N epochs (its schedule over N) instead: for a
machine too busy for the whole recipes; the table says so.
Then it exports the run's last checkpoint to every format of mnist_tui/core/export.py, each in
a process of its own (as `mnist-tui export` does), into a temporary folder, and prints the check each export makes: the file's size and how many times
smaller it is than the fp32 weights, its test accuracy beside the checkpoint's (fp32), its
agreement with the checkpoint, and its CPU latency per image at batch 1 and batch 256 (the
median call of repeated calls for LATENCY_SECONDS each). The table, the machine (lscpu's model
and flags), the load average and the command are appended to benchmarks/results/export.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "export.md"

from mnist_tui.core import export, exporters  # noqa: E402
from mnist_tui.core.store import RunRecord, default_runs_dir, list_runs  # noqa: E402
from mnist_tui.core.versions import get_version  # noqa: E402


def full_recipe_run(runs: Path, model: str, epochs: int | None = None) -> RunRecord | None:
    """The newest finished run of `model` trained with its recipe (`epochs` long if given) on all the data."""
    epochs = epochs or get_version(model).recipe.epochs
    found = []
    for record in list_runs(runs):
        config = record.config.get("config") if isinstance(record.config.get("config"), dict) else {}
        whole = config.get("limit") is None and config.get("test_limit") is None and not config.get("holdout")
        own = config.get("recipe", {}).get("epochs") == epochs and record.epochs_done == epochs
        if record.model == model and record.status == "finished" and whole and own:
            found.append(record)
    return max(found, key=lambda r: r.created) if found else None


def train(runs: Path, model: str, epochs: int | None) -> RunRecord:
    """A run of the version's own recipe (`epochs` long if given), on the CPU, in `runs`."""
    from mnist_tui.core.events import EpochFinished, RunFailed
    from mnist_tui.core.train import train as train_run

    print(f"training {model} with its recipe in {runs} ...", flush=True)
    overrides = {"epochs": epochs} if epochs else {}
    for event in train_run(get_version(model).config(device="cpu", runs_dir=str(runs), **overrides)):
        if isinstance(event, EpochFinished):
            print(f"  {model} epoch {event.epoch}/{event.epochs}: test acc {event.test_acc:.2f}% ({event.seconds:.0f} s)", flush=True)
        elif isinstance(event, RunFailed):
            raise SystemExit(f"training {model} failed: {event.reason}")
    found = full_recipe_run(runs, model, epochs)
    if found is None:
        raise SystemExit(f"training {model} finished but left no finished run in {runs}")
    return found


# One export per process, as `mnist-tui export` makes it, so that no figure depends on what
# ran before it in the same process (the ONNX exporter, ONNX Runtime's sessions).
EXPORT_ONE = """
import json, sys
from pathlib import Path
from mnist_tui.core import export, exporters
if sys.argv[4] != "-":
    exporters.CALIBRATION_IMAGES = int(sys.argv[4])
print(json.dumps(export.export(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])).to_dict()))
"""


def in_own_process(run: Path, fmt: str, out: Path, calibration: str) -> export.ExportReport:
    done = subprocess.run([sys.executable, "-c", EXPORT_ONE, str(run), fmt, str(out), calibration], capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"exporting {run.name} to {fmt} failed:\n{done.stderr[-2000:]}")
    return export.ExportReport(**json.loads(done.stdout.strip().splitlines()[-1]))


def lscpu() -> tuple[str, str]:
    """(model name, flags) as lscpu prints them."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return export.cpu_model(), "(lscpu not available)"
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    return fields.get("Model name", export.cpu_model()).strip(), fields.get("Flags", "").strip()


def row(report: export.ExportReport) -> str:
    return (
        f"| {report.model} | {report.format}{f', {report.calibration_images} cal.' if report.calibration_images else ''} | {report.bytes / 1024:,.1f} | {report.smaller:.2f}x | {report.accuracy:.2f} | "
        f"{report.checkpoint_accuracy:.2f} | {report.agreement:.2f} | {report.latency_ms['1']:.3f} | {report.latency_ms['256']:.4f} |"
    )


HEADER = (
    "| model | format | size KiB | smaller than fp32 weights | test acc % | checkpoint acc % (fp32) | agreement % | ms/image b1 | ms/image b256 |\n"
    "|---|---|---:|---:|---:|---:|---:|---:|---:|"
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default=None, help="runs folder (default: the project's runs/)")
    parser.add_argument("--models", default="v2,v4,v5")
    parser.add_argument("--formats", default=",".join(export.FORMATS))
    parser.add_argument("--no-train", action="store_true", help="skip a model without a finished full-recipe run")
    parser.add_argument("--epochs", type=int, default=None, help="runs of the recipes shortened to N epochs (default: each recipe's own)")
    parser.add_argument("--calibration", default=str(exporters.CALIBRATION_IMAGES), help="onnx-int8 calibrated on each of these numbers of training images")
    args = parser.parse_args(argv)
    runs = default_runs_dir(args.runs)
    load_before = os.getloadavg()
    rows, used = [], []
    for model in args.models.split(","):
        record = full_recipe_run(runs, model, args.epochs)
        if record is None and args.no_train:
            print(f"no finished {model} run of its recipe in {runs}: skipped")
            continue
        record = record or train(runs, model, args.epochs)
        recipe = f"its recipe for {args.epochs} of {get_version(model).recipe.epochs} epochs" if args.epochs else "its recipe"
        used.append(f"{record.run_id}: {recipe}, {record.metrics[-1].test_acc:.2f}% in its own test pass ({record.precision})")
        with tempfile.TemporaryDirectory() as folder:
            for fmt, count in [(f, c) for f in args.formats.split(",") for c in (args.calibration.split(",") if f == "onnx-int8" else ["-"])]:
                started = time.perf_counter()
                report = in_own_process(record.path, fmt, Path(folder) / f"{model}-{count}{export.FORMATS[fmt]}", count)
                rows.append(row(report))
                print(rows[-1], f"({time.perf_counter() - started:.0f} s)", flush=True)
    write(rows, used, load_before, argv)


def write(rows: list[str], used: list[str], load_before: tuple[float, float, float], argv: list[str] | None) -> None:
    import onnxruntime
    import torch

    name, flags = lscpu()
    command = " ".join(["benchmarks/export.py", *(sys.argv[1:] if argv is None else argv)])
    load_after = os.getloadavg()
    text = "\n".join(
        [
            f"### Export checked: {name}, {os.cpu_count()} CPUs, torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, Python {platform.python_version()}",
            "",
            f"{datetime.date.today().isoformat()}; `.venv/bin/python {command}`",
            "",
            HEADER,
            *rows,
            "",
            "Runs: " + "; ".join(used) + ".",
            "",
            f"Accuracy and agreement on all 10,000 test images; latency per image on the CPU, the median call over "
            f"{exporters.LATENCY_SECONDS} s of calls at each batch size, on {torch.get_num_threads()} threads. "
            f"int8: ONNX Runtime static quantisation (QDQ, per-channel int8 weights, uint8 activations), "
            f"calibrated on the number of training images its row names (cal.), drawn with a fixed seed. "
            f"Load average {load_before[0]:.1f} before, {load_after[0]:.1f} after: the machine's two cores are shared "
            f"with other engineers' work (this process at niceness {os.nice(0)}), so latencies are upper bounds of a quiet machine's.",
            "",
            f"CPU flags: {flags}",
            "",
        ]
    )
    print("\n" + text)
    with open(RESULTS, "a") as fh:
        fh.write(("\n" if RESULTS.exists() and RESULTS.stat().st_size else "") + text)


if __name__ == "__main__":
    main()
