"""Sweeps (issue 35): trial marks in a run's config, the search space, the worker and the
`mnist-tui sweep` command."""

from __future__ import annotations

import json

from mnist_tui.core.history import select
from mnist_tui.core.store import RunWriter, read_run
from tests.builders import written_run


def _trial_run(runs_dir, study: object, trial: object):
    """A finished one-epoch run whose config marks it as a trial of `study`."""
    config = {"model": "v2", "recipe": {"epochs": 1}, "study": study, "trial": trial}
    writer = RunWriter.create(runs_dir, "v2", {"config": config})
    writer.close("stopped")
    return writer.path


def test_a_trial_is_listed_with_its_study_and_number_and_old_runs_still_list(runs_dir):
    trial = _trial_run(runs_dir, "lr-v4", 3)
    old = written_run(runs_dir)
    records = {p: read_run(p) for p in (trial, old)}
    assert (records[trial].study, records[trial].trial, records[trial].status) == ("lr-v4", 3, "stopped")
    assert (records[old].study, records[old].trial, records[old].status) == (None, None, "stopped")
    assert [r.run for r in select(list(records.values()), "study:LR-v4")] == [trial.name]
    assert select(list(records.values()), "study:lr") == []  # the whole name, as tags


def test_a_trial_mark_out_of_bounds_makes_its_run_damaged_naming_it(runs_dir):
    for study, trial, named in (("bad name", 1, "study"), ("ok", -1, "trial"), ("ok", 10**10, "trial"), (7, 1, "study")):
        record = read_run(_trial_run(runs_dir, study, trial))
        assert record.status == "damaged" and named in record.reason, (study, trial, record.reason)
    assert json.loads((_trial_run(runs_dir, "ok", None) / "config.json").read_text())["config"]["trial"] is None
