"""Reading a sweep back: `sweep --show` and the Sweep screen, on a finished study built with
Optuna directly (no training): six trials, complete, pruned and failed, each with its run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import optuna
from textual.widgets import DataTable, OptionList, Static

from mnist_tui.cli.sweep_show import cmd_show
from mnist_tui.core.sweep import study as studies
from mnist_tui.core.sweep.report import list_sweeps, read_sweep
from mnist_tui.ui.app import MnistTuiApp
from mnist_tui.ui.screens.run_detail import RunDetailScreen
from mnist_tui.ui.screens.sweep import SweepScreen
from mnist_tui.ui.widgets.sweep_charts import SweepChart
from tests.ui_helpers import press, settle, write_run

SCORES = [97.1, 98.4, None, 96.2, None, 98.9]  # None: trial 2 pruned, trial 4 failed
SPACE = {
    "lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True),
    "batch_size": optuna.distributions.CategoricalDistribution([64, 128, 256]),
    "dropout": optuna.distributions.FloatDistribution(0.0, 0.5),
}


def finished_study(runs_dir: Path, name: str = "lab") -> list[Path]:
    """A finished 6-trial study of v4 in the runs folder's journal, a run folder per trial
    marked with the study (the best, trial 5, with its test accuracy); the runs' folders."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=name, storage=studies.open_storage(runs_dir, name), direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    setup = {"model": "v4", "trials": 6, "epochs": 2, "limit": 2000, "holdout": 500, "metric": "holdout_acc", "direction": "maximize", "pruner": "median"}
    study.set_user_attr(studies.SETUP, setup)
    folders = []
    for number, score in enumerate(SCORES):
        trial = study.ask(SPACE)
        run = f"2026111{number}T100000Z-v4-{name[:2]}tri{number}"
        accs = [score - 1, score] if score is not None else [90.0]
        folder = write_run(runs_dir, run, "v4", "finished" if score is not None else "stopped", accs, epochs_total=2, lr=trial.params["lr"], seed=number)
        cfg = json.loads((folder / "config.json").read_text())
        cfg["config"].update(study=name, trial=number)
        (folder / "config.json").write_text(json.dumps(cfg))
        folders.append(folder)
        trial.set_user_attr(studies.RUN, run)
        trial.set_user_attr(studies.SECONDS, 80.0 + number)
        if score is not None:
            study.tell(trial, score)
        elif number == 2:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            trial.set_user_attr(studies.FAILED_WHY, "diverged: loss is nan at epoch 1")
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
    study.set_user_attr(studies.BEST_TEST, {"trial": 5, "run": folders[5].name, "test_acc": 98.71, "test_images": 10000})
    studies.remember(runs_dir, name, None)
    return folders


def test_report_reads_the_study(runs_dir):
    finished_study(runs_dir)
    report = read_sweep(runs_dir, "lab")
    assert [t.state for t in report.trials] == ["complete", "complete", "pruned", "complete", "failed", "complete"]
    assert report.best is not None and report.best.number == 5 and report.best.value == 98.9
    assert [b for _, _, b in report.history] == [97.1, 98.4, 98.4, 98.9]
    assert {name for name, _ in report.importances} == {"lr", "batch_size", "dropout"}
    assert report.best_test is not None and report.best_test.test_acc == 98.71
    assert report.state == "finished" and report.log_params == {"lr"}


def _show(runs_dir, capsys, show: str, as_json: bool = False) -> tuple[int, str, str]:
    code = cmd_show(argparse.Namespace(show=show, json=as_json, runs=str(runs_dir), storage=None))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_show_prints_the_trials_and_the_best(runs_dir, capsys):
    folders = finished_study(runs_dir)
    code, out, _ = _show(runs_dir, capsys, "lab")
    assert code == 0
    for state in ("complete", "pruned", "failed"):
        assert state in out
    assert "best: trial 5 · holdout_acc 98.90%" in out
    assert f"run {folders[5].name}" in out and "settings: lr=" in out
    assert "test accuracy (looked at once, at the end): 98.71% (trial 5, 10,000 images)" in out
    assert "trial 4 failed: diverged" in out
    code, out, _ = _show(runs_dir, capsys, "lab", as_json=True)
    data = json.loads(out)
    assert code == 0 and data["best"]["number"] == 5 and data["best_test"]["test_acc"] == 98.71
    assert [t["state"] for t in data["trials"]] == ["complete", "complete", "pruned", "complete", "failed", "complete"]
    assert set(data["importances"]) == {"lr", "batch_size", "dropout"}


def test_show_of_no_such_study_is_one_line(runs_dir, capsys):
    finished_study(runs_dir)
    code, out, err = _show(runs_dir, capsys, "other")
    assert code == 1 and out == "" and err.count("\n") == 1 and "no study named other" in err


def test_show_through_the_command_line(runs_dir, capsys):
    from mnist_tui.cli import main

    finished_study(runs_dir)
    assert main(["sweep", "--show", "lab", "--runs", str(runs_dir)]) == 0
    assert "best: trial 5" in capsys.readouterr().out
    assert main(["sweep", "--show", "lab", "--json", "--runs", str(runs_dir)]) == 0
    assert json.loads(capsys.readouterr().out)["best"]["number"] == 5


def damage(runs_dir: Path) -> None:
    """A second study whose journal is garbage in the middle, and a pointer file that is not JSON."""
    finished_study(runs_dir, "broken")
    journal = studies.journal_path(runs_dir, "broken")
    lines = journal.read_text().splitlines(True)
    journal.write_text("".join(lines[:3]) + '{"op_code": 4, "x": [}\n' + "".join(lines[3:]))
    (studies.sweeps_dir(runs_dir) / "zeta.json").write_text("[not json")
    (studies.sweeps_dir(runs_dir) / "zeta.journal").write_text("\x00\x01 nonsense")


def test_a_damaged_study_costs_only_its_line(runs_dir, capsys):
    finished_study(runs_dir)
    damage(runs_dir)
    listed = {s.name: s for s in list_sweeps(runs_dir)}
    assert listed["lab"].state == "finished" and listed["lab"].best == 98.9
    assert listed["broken"].state == "damaged" and listed["broken"].reason
    assert listed["zeta"].state == "damaged"
    code, out, _ = _show(runs_dir, capsys, "")
    assert code == 0 and "lab" in out and "broken" in out and "damaged" in out


def _screen(app) -> SweepScreen:
    assert isinstance(app.screen, SweepScreen)
    return app.screen


def _cells(app) -> list[list[str]]:
    table = app.screen.query_one("#sweep-trials", DataTable)
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


async def test_the_sweep_screen_shows_the_finished_study(runs_dir):
    folders = finished_study(runs_dir)
    app = MnistTuiApp(runs_dir=runs_dir, start_mode="runs")
    async with app.run_test(size=(140, 50)) as pilot:
        await press(pilot, "f7")
        await settle(pilot)
        screen = _screen(app)
        rows = _cells(app)
        assert [r[2] for r in rows] == ["complete", "complete", "pruned", "complete", "failed", "complete"]
        assert "98.90%" in rows[5] and folders[5].name in rows[5]
        best = str(screen.query_one("#sweep-best", Static).render())
        assert "best: trial 5" in best and "settings: lr=" in best and "98.71%" in best
        importance = str(screen.query_one("#sweep-importance", Static).render())
        assert all(name in importance for name in ("lr", "batch_size", "dropout"))
        objective = screen.query_one("#sweep-objective", SweepChart)
        assert objective.plotted[0][2] == [97.1, 98.4, 96.2, 98.9] and objective.plotted[1][2] == [97.1, 97.1, 98.4, 98.4, 98.4, 98.4, 98.9]
        # Enter opens the trial's run, escape comes back.
        await press(pilot, "enter")
        await settle(pilot)
        assert isinstance(app.screen, RunDetailScreen) and app.screen.records[0].path == folders[0]
        await press(pilot, "escape")
        assert app.screen is screen


async def test_marked_trials_compare_as_runs(runs_dir):
    folders = finished_study(runs_dir)
    app = MnistTuiApp(runs_dir=runs_dir, start_mode="runs")
    async with app.run_test(size=(140, 50)) as pilot:
        await press(pilot, "f7")
        await settle(pilot)
        await press(pilot, "space", "space")
        await press(pilot, "c")
        await settle(pilot)
        assert isinstance(app.screen, RunDetailScreen) and [r.path for r in app.screen.records] == folders[:2]


async def test_resizing_every_chart_mode(runs_dir):
    finished_study(runs_dir)
    app = MnistTuiApp(runs_dir=runs_dir, start_mode="runs")
    async with app.run_test(size=(100, 30)) as pilot:
        await press(pilot, "f7")
        await settle(pilot)
        screen = _screen(app)
        scatter = screen.query_one("#sweep-scatter", SweepChart)
        seen = []
        for _ in range(3):  # lr (log), batch_size (choices), dropout (linear)
            for size in ((60, 20), (160, 50)):
                await pilot.resize_terminal(*size)
                await settle(pilot)
                assert app.is_running and scatter.plotted and len(scatter.plotted[0][1]) == 4
            seen.append(scatter.title)
            await press(pilot, "p")
        assert "lr (log)" in seen[0] and "batch_size" in seen[1] and "dropout" in seen[2]


async def test_run_detail_opens_its_sweep(runs_dir):
    folders = finished_study(runs_dir)
    finished_study(runs_dir, "other")  # newer: f7 would show it, S must show the run's own
    app = MnistTuiApp(runs_dir=runs_dir, start_mode="runs")
    async with app.run_test(size=(140, 50)) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#runs-table", DataTable)
        table.move_cursor(row=[r.run for r in app.screen.rows].index(folders[3].name))
        await press(pilot, "enter")
        await settle(pilot)
        assert isinstance(app.screen, RunDetailScreen)
        await press(pilot, "S")
        await settle(pilot)
        screen = _screen(app)
        assert screen.report is not None and screen.report.name == "lab"
        assert screen.query_one("#sweep-studies", OptionList).display  # two studies: the picker


async def test_the_screen_opens_beside_a_damaged_study(runs_dir):
    finished_study(runs_dir)
    damage(runs_dir)
    app = MnistTuiApp(runs_dir=runs_dir, start_mode="runs")
    async with app.run_test(size=(120, 40)) as pilot:
        await press(pilot, "f7")
        await settle(pilot)
        screen = _screen(app)
        assert screen.report is not None and screen.report.name == "lab"
        picker = screen.query_one("#sweep-studies", OptionList)
        options = [picker.get_option_at_index(i) for i in range(picker.option_count)]
        assert {o.id for o in options if o.disabled} == {"broken", "zeta"}


async def test_the_screen_with_no_sweeps_says_how_to_start_one(runs_dir):
    runs_dir.mkdir(parents=True)
    app = MnistTuiApp(runs_dir=runs_dir, start_mode="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "f7")
        await settle(pilot)
        assert "mnist-tui sweep" in str(_screen(app).query_one("#sweep-title", Static).render())
        await press(pilot, "space", "c", "p", "enter")
        # The random walk's seeds 11, 15, 16, 17: a click where the empty table's header was.
        await pilot.click(offset=(1, 5))
        await settle(pilot)
        assert app.is_running and app.return_code is None


async def test_every_theme_draws_the_sweep_screen(runs_dir, tmp_path):
    finished_study(runs_dir)
    app = MnistTuiApp(runs_dir=runs_dir, start_mode="runs")
    async with app.run_test(size=(100, 30)) as pilot:
        await press(pilot, "f7")
        await settle(pilot)
        for theme in sorted(app.available_themes):
            app.theme = theme
            await settle(pilot)
            app.save_screenshot(str(tmp_path / "shot.svg"))  # every widget of the screen rendered
            assert app.is_running and isinstance(app.screen, SweepScreen), theme


async def test_an_unfinished_study_with_no_trial_running_is_read_again(runs_dir, monkeypatch):
    """Between two trials no trial runs: the screen still follows the study (with backoff),
    reading that study alone, and fANOVA is not refit while no trial completes."""
    import asyncio

    from mnist_tui.core.sweep import report as reports
    from mnist_tui.ui.screens import sweep as screen_module

    finished_study(runs_dir)
    study = optuna.load_study(study_name="lab", storage=studies.open_storage(runs_dir, "lab"))
    study.set_user_attr(studies.SETUP, {**studies.setup_of(study), "trials": 8})  # unfinished, nothing running
    monkeypatch.setattr(screen_module, "REFRESH_S", 0.1)
    listings, fits = [], []
    monkeypatch.setattr(screen_module, "list_sweeps", lambda d: listings.append(d) or list_sweeps(d))
    real_fanova = reports._fanova
    monkeypatch.setattr(reports, "_fanova", lambda s: fits.append(1) or real_fanova(s))
    reports._IMPORTANCES.clear()
    app = MnistTuiApp(runs_dir=runs_dir, start_mode="runs")
    async with app.run_test(size=(140, 50)) as pilot:
        await press(pilot, "f7")
        await settle(pilot)
        trial = study.ask(SPACE)
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        deadline = asyncio.get_running_loop().time() + 20
        while len(_cells(app)) < 7 and asyncio.get_running_loop().time() < deadline:
            await pilot.pause(0.1)
        assert len(_cells(app)) == 7 and _cells(app)[6][2] == "pruned"
        assert len(listings) == 1 and len(fits) == 1
