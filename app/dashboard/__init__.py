"""The operator's dashboard: one function gathers everything (`data.gather`, which the agent's
tool returns too); renderers draw it (`render`) or print it as JSON."""
