"""Sweeps: an Optuna study over a version's recipe, each trial an ordinary run (study.py says
where a study lives and what it records)."""
