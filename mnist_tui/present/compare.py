"""What tells runs apart: their settings side by side, and legend labels from the differences."""

from __future__ import annotations


def run_settings(record) -> dict[str, object]:
    """A run's settings from its config.json, flat: model, the recipe's fields, seed, device,
    precision, training images (a damaged or foreign file gives what it can)."""
    config = record.config.get("config") if isinstance(record.config, dict) else None
    config = config if isinstance(config, dict) else {}
    recipe = config.get("recipe") if isinstance(config.get("recipe"), dict) else {}
    flat = {"model": record.model, **recipe}
    for key in ("seed", "device", "precision", "limit", "test_limit", "holdout", "processes", "target"):
        if key in config:
            flat[key] = config[key]
    return {k: v for k, v in flat.items() if isinstance(v, (str, int, float, type(None)))}


# Settings by how much they tell runs apart, with the words the Train form uses (short).
# A setting named "" shows its value alone ('fp32', 'adamw').
SETTING_NAMES = {
    "limit": "images", "epochs": "epochs", "lr": "lr", "batch_size": "batch", "optimizer": "", "scheduler": "",
    "seed": "seed", "precision": "", "dropout": "dropout", "rotate": "rotate", "translate": "shift", "scale": "zoom",
    "weight_decay": "decay", "momentum": "momentum", "step_size": "step", "test_batch_size": "test batch",
    "device": "", "holdout": "held out", "test_limit": "test images",
    "processes": "processes", "target": "target",
}  # fmt: skip


def setting_text(value: object) -> str:
    """'2,000', '0.001', 'adamw', 'all' (no limit)."""
    if value is None:
        return "all"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def differing_settings(records: list) -> dict[str, list[object]]:
    """The settings whose values are not the same in every run (most telling first, by their
    short names), with each run's value."""
    settings = [run_settings(r) for r in records]
    keys = dict.fromkeys(k for s in settings for k in s if k != "model")
    ordered = [k for k in SETTING_NAMES if k in keys] + [k for k in keys if k not in SETTING_NAMES]
    return {SETTING_NAMES.get(k) or k: [s.get(k) for s in settings] for k in ordered if len({repr(s.get(k)) for s in settings}) > 1}


VALUE_ALONE = {key for key, name in SETTING_NAMES.items() if not name}
NONE_MEANS = {"images": "all", "test images": "all", "target": "none"}  # a None elsewhere: not recorded, the default


def _label_part(name: str, value: object) -> str:
    """'lr=0.02', 'images=all', 'adamw' (a setting shown by its value alone), '' (no value of
    such a setting to show)."""
    alone = name in VALUE_ALONE  # 'adamw', 'fp32': their value says which setting it is
    if value is None:
        return "" if alone else f"{name}={NONE_MEANS.get(name, 'default')}"
    return setting_text(value) if alone else f"{name}={setting_text(value)}"


def short_labels(records: list) -> list[str]:
    """Legend labels: the version, then every setting that differs between the runs (lr first,
    then the most telling), and the short id when that is not enough ('v2 images=2,000',
    'v4 lr=0.01 seed=2', 'v2 lr=0.1 images=all epochs=3 adamw')."""
    differ = differing_settings(records)
    names = sorted(differ, key=lambda name: name != "lr")  # stable: the rest keep their order
    labels = []
    for i, r in enumerate(records):
        parts = [r.model] + [_label_part(name, differ[name][i]) for name in names]
        labels.append(" ".join(p for p in parts if p))
    if len(set(labels)) < len(labels):
        labels = [f"{label} {r.run_id[-6:]}" for label, r in zip(labels, records)]
    return labels
