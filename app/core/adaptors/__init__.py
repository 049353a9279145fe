"""Adaptors for the SDKs Oppen drives: one module per SDK, imported lazily with a helpful
error when it is missing, clients made once and cached, and the SDK's exceptions reached only
through small accessors. No other module imports these SDKs (SkyPilot's sky/adaptors)."""
