"""Oppen: an agent-driven ML-ops orchestrator for reinforcement-learning schedulers."""

__version__ = "0.1.0"
