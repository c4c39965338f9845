"""The UI-free core of mnist-tui: data, model versions, training engine and run store.

Importing this package is cheap: torch is imported by the modules that need it, when they
are imported, so listing runs or model versions never pays for it.
"""
