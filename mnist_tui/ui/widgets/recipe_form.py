"""The editable recipe of a run, prefilled from a version's defaults, checked as you type."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, Label, Select, Static

from mnist_tui.core import hardware
from mnist_tui.core.config import (
    DEVICES,
    OPTIMIZERS,
    PRECISIONS,
    SCHEDULERS,
    Recipe,
    TrainConfig,
)
from mnist_tui.core.validate import config_problems
from mnist_tui.core.versions import get_version
from mnist_tui.ui.widgets.field import Field

# (field, label, kind): kind is int, float, or a tuple of choices for a Select.
FIELDS = (
    ("epochs", "Epochs", int),
    ("batch_size", "Batch size", int),
    ("lr", "Learning rate", float),
    ("optimizer", "Optimizer", OPTIMIZERS),
    ("scheduler", "Scheduler", SCHEDULERS),
    ("rotate", "Augment: rotate ± degrees", float),
    ("translate", "Augment: shift ± fraction", float),
    ("scale", "Augment: zoom ± fraction", float),
    ("seed", "Seed", int),
    ("device", "Device", DEVICES),
    ("precision", "Precision", PRECISIONS),
    ("limit", "Training images (blank: all)", int),
    ("test_limit", "Test images (blank: all)", int),
    ("target", "Stop at test acc % (blank: never)", float),
    ("processes", "Processes (DDP; batch split between them)", int),
)
# When Start trains the run (schedule.admit's modes): auto queues it while another run trains
# on the same device, else starts it now; queue always waits its turn; now shares the device.
WHEN = ("auto", "queue", "now")


class RecipeForm(Vertical):
    """Inputs for one run; `config` is the TrainConfig they describe, or None if invalid."""

    class Changed(Message):
        def __init__(self, form: RecipeForm):
            super().__init__()
            self.form = form

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.model = "v2"
        self.recipe = get_version("v2").recipe
        self.config: TrainConfig | None = None
        self.problems: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        for name, label, kind in FIELDS:
            yield Label(label, classes="field-label", id=f"label-{name}")
            if isinstance(kind, tuple):
                yield Select([(c, c) for c in kind], allow_blank=False, id=f"field-{name}", compact=True)
            else:
                # Plain text, checked as typed: an input restricted to digits would drop the "e"
                # of 1e308 and read 1308, changing what the user typed without a word.
                yield Field(id=f"field-{name}", compact=True)
            # Why the field is invalid, right under it (hidden while it is valid); the field
            # itself keeps its size, so what is being typed stays in sight.
            yield Static("", id=f"error-{name}", classes="field-error")
        yield Label("When (auto: queue while another run trains on the device)", classes="field-label", id="label-when")
        yield Select([(w, w) for w in WHEN], allow_blank=False, id="field-when", compact=True)

    @property
    def when(self) -> str:
        """When Start trains the run: auto, queue or now."""
        value = self.query_one("#field-when", Select).value
        return value if isinstance(value, str) and value in WHEN else WHEN[0]

    def load(self, model: str, base: TrainConfig | None = None, recipe: Recipe | None = None) -> None:
        """Fill every field from a recipe (the version's own unless given), keeping seed,
        device, precision and the subsets."""
        self.model = model
        keep = base or TrainConfig(model=model)
        recipe = recipe or get_version(model).recipe
        self.recipe = recipe  # the fields the form does not show come from it
        values = {
            **vars(recipe),
            "seed": keep.seed,
            "device": keep.device,
            "precision": keep.precision,
            "limit": keep.limit,
            "test_limit": keep.test_limit,
            "target": keep.target,
            "processes": keep.processes,
        }
        if keep.processes > 1:
            self.show_processes()
        with self.prevent(Input.Changed, Select.Changed):
            for name, _label, kind in FIELDS:
                value = values[name]
                if isinstance(kind, tuple):
                    self.query_one(f"#field-{name}", Select).value = value
                else:
                    self.query_one(f"#field-{name}", Input).value = "" if value is None else f"{value:g}" if kind is float else str(value)
        self.check()

    def on_mount(self) -> None:
        # On two cores and at most one GPU, several processes only train slower: the field
        # stays out of the way until asked for (palette: "Show the Processes field").
        if not hardware.several_processes_pay() and self.query_one("#field-processes", Input).value in ("", "1"):
            for widget in (self.query_one("#field-processes"), self.query_one("#label-processes")):
                widget.display = False

    def show_processes(self) -> None:
        """Show the Processes field (hidden where several processes cannot pay)."""
        for widget in (self.query_one("#field-processes"), self.query_one("#label-processes")):
            widget.display = True

    def _read(self) -> tuple[dict, dict[str, str]]:
        values, errors = {}, {}
        for name, label, kind in FIELDS:
            if isinstance(kind, tuple):
                values[name] = self.query_one(f"#field-{name}", Select).value
                continue
            text = self.query_one(f"#field-{name}", Input).value.strip()
            if not text and name in ("limit", "test_limit", "target"):
                values[name] = None
                continue
            try:
                values[name] = kind(text)
            except ValueError:
                errors[name] = f"{label.split(' (')[0].lower()}: {text!r} is not a {'whole number' if kind is int else 'number'}"
        return values, errors

    def check(self) -> None:
        """Re-read the fields, mark the invalid ones and list what is wrong."""
        values, errors = self._read()
        config = None
        if not errors:
            config = TrainConfig(model=self.model, recipe=self.recipe).replace(**values)
            errors = config_problems(config)
        for name, _label, _kind in FIELDS:
            self.query_one(f"#field-{name}").set_class(name in errors, "-invalid")
            reason = self.query_one(f"#error-{name}", Static)
            reason.update(Text(errors.get(name, "")))
            reason.display = name in errors
        self.problems = errors
        self.config = None if errors else config
        self.post_message(self.Changed(self))

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.check()

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self.check()
