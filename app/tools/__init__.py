"""LangChain tools: thin, typed wrappers over the operations (app.api.operations), local or a
server's."""

from app.tools.registry import SPENDING_OR_DESTRUCTIVE, TOOL_NAMES, build_tools

__all__ = ["SPENDING_OR_DESTRUCTIVE", "TOOL_NAMES", "build_tools"]
