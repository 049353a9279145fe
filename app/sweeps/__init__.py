"""Hyperparameter search: Optuna studies, kept in Oppen's own database, whose trials the
leading dispatcher queues as jobs (see docs/sweeps.md)."""
