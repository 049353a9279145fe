"""Oppen's operations as one interface: run locally over the services, or remotely over HTTP
against `oppen serve`, with tokens, roles and team scoping."""
