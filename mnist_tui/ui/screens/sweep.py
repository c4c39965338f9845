"""A sweep: its trials, the best so far, the objective over trials, what each parameter
mattered and one parameter against the score; trials open and compare as runs."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.timer import Timer
from textual.widgets import DataTable, Header, OptionList, Static
from textual.widgets.option_list import Option

from mnist_tui.core.sweep.report import SweepReport, SweepSummary, TrialRow, list_sweeps, read_sweep, run_folder
from mnist_tui.core.sweep.study import SweepError
from mnist_tui.present import sweeps as words
from mnist_tui.ui.screens.base import AppScreen
from mnist_tui.ui.widgets.footer import KeyFooter
from mnist_tui.ui.widgets.sweep_charts import SweepChart, scatter_of, whole_ticks

REFRESH_S = 3.0  # how soon an unfinished study is read again
REFRESH_MAX_S = 30.0  # ... growing by half each time nothing changed, up to this


def _steps(xs: list[float], ys: list[float]) -> tuple[list[float], list[float]]:
    """A staircase through the points: the best so far holds until a trial beats it."""
    sx, sy = [], []
    for i, (x, y) in enumerate(zip(xs, ys)):
        if i:
            sx.append(x)
            sy.append(ys[i - 1])
        sx.append(x)
        sy.append(y)
    return sx, sy


class SweepScreen(AppScreen):
    BINDINGS = [
        ("escape", "app.pop_screen", "Back"),
        ("space", "mark", "Mark"),
        ("c", "compare", "Compare"),
        ("p", "next_param", "Parameter"),
        ("r", "reload", "Reload"),
    ]
    help_name = "Sweep"

    def __init__(self, name: str | None = None):
        super().__init__()
        self.wanted = name  # the study to show; None: the newest
        self.studies: list[SweepSummary] = []
        self.report: SweepReport | None = None
        self.problem = ""  # why the study asked for cannot be shown
        self.marked: set[int] = set()  # trial numbers
        self.param = 0  # which parameter the scatter shows
        self.wait_s = REFRESH_S  # until the next refresh
        self.timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="sweep"):
            yield Static("Reading the sweeps…", id="sweep-title")
            yield OptionList(id="sweep-studies")
            yield DataTable(id="sweep-trials", cursor_type="row", zebra_stripes=True)
            yield Static("", id="sweep-best")
            with Horizontal(id="sweep-charts"):
                yield SweepChart("objective", id="sweep-objective")
                yield SweepChart("parameter", id="sweep-scatter")
            yield Static("", id="sweep-importance")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#sweep-studies", OptionList).display = False
        self.query_one("#sweep-trials", DataTable).focus()
        self.read(self.wanted)

    # -- reading, off the UI thread -----------------------------------------------------------

    @property
    def reading(self) -> bool:
        return any(w.group == "sweep-read" and not w.is_finished for w in self.app.workers if w.node is self)

    def _tick(self) -> None:
        """An unfinished study is read again (its trials end, new ones start, a worker
        between two trials asks the next), the study alone, not the whole listing."""
        if self.report is None or self.report.state == "finished":
            return
        if self.is_current and not self.reading:
            self.read(self.report.name, listing=False)
        else:
            self._next_tick()

    def _schedule(self, changed: bool) -> None:
        """The next refresh: soon after a change, later each time nothing changed."""
        self.wait_s = REFRESH_S if changed else min(REFRESH_MAX_S, self.wait_s * 1.5)
        if self.report is not None and self.report.state != "finished":
            self._next_tick()

    def _next_tick(self) -> None:
        if self.timer is not None:
            self.timer.stop()  # one refresh pending at a time, whatever read last
        self.timer = self.set_timer(self.wait_s, self._tick)

    def action_reload(self) -> None:
        self.read(self.report.name if self.report else self.wanted)

    @work(thread=True, exclusive=True, exit_on_error=False, group="sweep-read")
    def read(self, name: str | None, listing: bool = True) -> None:
        """The studies of the runs folder (unless `listing` is False: a refresh) and the one
        to show (the newest readable when `name` is None), read off the UI thread. A study in
        a database is connected to only when it is asked for by name."""
        runs_dir = self.tui.runs_dir
        studies = list_sweeps(runs_dir) if listing else self.studies
        readable = [s for s in studies if s.state not in ("damaged", "remote")]
        if name is None and readable:
            name = max(readable, key=lambda s: (s.modified, s.name)).name
        report, problem = None, ""
        if name is None:
            problem = (
                f"No sweep in {runs_dir} could be read." if studies else f"No sweeps in {runs_dir} yet: `mnist-tui sweep --model v4 --trials 20` starts one."
            )
        else:
            storage = next((s.storage for s in studies if s.name == name), None)
            try:
                report = read_sweep(runs_dir, name, storage)
            except SweepError as exc:
                problem = str(exc)
        self.app.call_from_thread(self._read, studies, report, problem)

    def _read(self, studies: list[SweepSummary], report: SweepReport | None, problem: str) -> None:
        if report is None or self.report is None or report.name != self.report.name:
            self.marked = set()
            self.param = 0
        changed = report is None or self.report is None or report.trials != self.report.trials
        self.studies, self.report, self.problem = studies, report, problem
        self._schedule(changed)
        self.show_studies()
        self.show()

    # -- showing ------------------------------------------------------------------------------

    def show_studies(self) -> None:
        """The picker, when the runs folder holds more than one study: a damaged one is
        listed with its reason and cannot be picked."""
        picker = self.query_one("#sweep-studies", OptionList)
        picker.display = len(self.studies) > 1
        if not picker.display:
            return
        current = self.report.name if self.report else None
        picker.clear_options()
        for s in self.studies:
            line = Text(" · ".join(c for c in words.summary_cells(s) if c), style="bold" if s.name == current else "")
            picker.add_option(Option(line, id=s.name, disabled=s.state == "damaged"))
        if current is not None:
            picker.highlighted = next((i for i, s in enumerate(self.studies) if s.name == current), None)

    @on(OptionList.OptionSelected, "#sweep-studies")
    def study_picked(self, event: OptionList.OptionSelected) -> None:
        if event.option.id and (self.report is None or event.option.id != self.report.name):
            self.read(event.option.id)

    def show(self) -> None:
        report = self.report
        title = self.query_one("#sweep-title", Static)
        if report is None:
            title.update(Text(words.safe(self.problem), style="bold red" if self.studies else ""))
        else:
            title.update(Text(words.setup_line(report), style="bold"))
        self.show_trials()
        best = [*words.best_lines(report), words.best_test_line(report), *words.failure_lines(report)] if report else []
        self.query_one("#sweep-best", Static).update(Text("\n".join(best)))
        bars = words.importance_bars(report) if report else []
        heading = "importance (fANOVA)" if report and report.importances else "importance"
        self.query_one("#sweep-importance", Static).update(Text("\n").join([Text(heading, style="bold"), *bars]) if report else "")
        self.show_charts()

    def show_trials(self) -> None:
        table = self.query_one("#sweep-trials", DataTable)
        at = table.cursor_row
        table.clear(columns=True)
        report = self.report
        # No study, no table: a click on a header with no columns fails in Textual's DataTable.
        table.display = report is not None
        if report is None:
            return
        table.add_column(" ", key="mark")
        for header in words.trial_headers(report):
            table.add_column(Text(header), key=f"h-{header}")
        for row in report.trials:
            style = words.STATE_STYLES.get(row.state, "")
            cells = words.trial_cells(row, report)
            table.add_row(self._mark(row.number), Text(cells[0]), Text(cells[1], style=style), *(Text(c) for c in cells[2:]), key=str(row.number))
        if report.trials:
            table.move_cursor(row=min(at, len(report.trials) - 1))

    def _mark(self, number: int) -> Text:
        return Text("●" if number in self.marked else " ", style="bold magenta")

    def show_charts(self) -> None:
        objective = self.query_one("#sweep-objective", SweepChart)
        scatter = self.query_one("#sweep-scatter", SweepChart)
        report = self.report
        if report is None:
            objective.show("objective", ([], []))
            scatter.show("parameter", ([], []))
            return
        numbers = [float(n) for n, _, _ in report.history]
        metric = words.safe(report.metric)
        objective.show(
            f"{metric} by trial · best so far",
            (numbers, [v for _, v, _ in report.history]),
            _steps(numbers, [b for _, _, b in report.history]),
            xlabel="trial",
            ticks=whole_ticks(numbers),
        )
        names = words.param_names(report)
        if not names:
            scatter.show("parameter", ([], []))
            return
        name = names[self.param % len(names)]
        points = scatter_of(report, name)
        kind = {"log": " (log)", "categories": ""}.get(points.scale, "")
        scatter.show(
            f"{metric} against {name}{kind} · p: next of {len(names)}",
            (points.xs, points.ys),
            xlabel=name,
            ticks=points.ticks,
            pad=0.5 if points.scale == "categories" else 0.0,
        )

    # -- keys -----------------------------------------------------------------------------------

    @property
    def current_trial(self) -> TrialRow | None:
        table = self.query_one("#sweep-trials", DataTable)
        report = self.report
        if report is None or not report.trials or table.cursor_row is None or table.cursor_row >= len(report.trials):
            return None
        return report.trials[table.cursor_row]

    def action_next_param(self) -> None:
        self.param += 1
        self.show_charts()

    def action_mark(self) -> None:
        """Mark or unmark the trial under the cursor, then move down (as Runs does)."""
        row = self.current_trial
        if row is None:
            return
        self.marked.symmetric_difference_update({row.number})
        table = self.query_one("#sweep-trials", DataTable)
        table.update_cell(str(row.number), "mark", self._mark(row.number))
        table.move_cursor(row=min(table.cursor_row + 1, table.row_count - 1))

    @on(DataTable.RowSelected, "#sweep-trials")
    def open_trial(self) -> None:
        row = self.current_trial
        if row is not None:
            self.open_runs([row])

    def action_compare(self) -> None:
        chosen = [r for r in self.report.trials if r.number in self.marked] if self.report else []
        if len(chosen) < 2:
            self.notify("Mark two or more trials with space to compare them.", severity="warning")
            return
        self.open_runs(chosen)

    @work(thread=True, exclusive=True, exit_on_error=False, group="sweep-open")
    def open_runs(self, rows: list[TrialRow]) -> None:
        """The trials' runs read off the UI thread, then opened as Runs opens them: one run's
        detail, or several compared. A trial with no readable run is said, not opened."""
        from mnist_tui.core.store import read_run

        records, missing = [], []
        for row in rows:
            folder = run_folder(self.tui.runs_dir, row.run)
            record = read_run(folder) if folder is not None and folder.is_dir() else None
            if record is None or record.status == "damaged":
                missing.append(f"trial {row.number}: " + (f"run {row.run} is damaged: {record.reason}" if record else "no run folder recorded or found"))
            else:
                records.append(record)
        self.app.call_from_thread(self._open, records, missing)

    def _open(self, records: list, missing: list[str]) -> None:
        if missing:
            self.notify(words.safe("; ".join(missing)), severity="warning", markup=False)
        if not records or (missing and len(records) < 2 and len(missing) + len(records) > 1):
            return
        from mnist_tui.ui.screens.run_detail import RunDetailScreen

        self.app.push_screen(RunDetailScreen(records))
