"""LangChain tools: thin, typed wrappers over the services in app.core and app.training."""

from app.tools.registry import SPENDING_OR_DESTRUCTIVE, build_tools

__all__ = ["SPENDING_OR_DESTRUCTIVE", "build_tools"]
