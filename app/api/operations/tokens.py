"""The API server's bearer tokens (admins).

The interface (TokensOperations) and its implementations over this process's services
(LocalTokens) and over HTTP (RemoteTokens); app.api.operations puts the domains together."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from app.api.access import Role
from app.api.operations.base import (
    LocalBase,
    RemoteBase,
)
from app.api.tokens import TokenService, token_dict


class TokensOperations(ABC):
    """Tokens: see the module docstring."""

    @abstractmethod
    def create_token(self, team: str, role: str, name: str = "") -> dict[str, Any]: ...

    @abstractmethod
    def list_tokens(self) -> dict[str, Any]: ...

    @abstractmethod
    def revoke_token(self, token_id: int) -> dict[str, Any]: ...


class LocalTokens(LocalBase, TokensOperations):
    """Tokens over the services of this process."""

    def _tokens(self) -> TokenService:
        if self._token_service is None:
            self._token_service = TokenService(self.services.engine)
        return self._token_service

    def create_token(self, team: str, role: str, name: str = "") -> dict[str, Any]:
        self.principal.require(Role.ADMIN, "creating a token")
        with self._write_lock:
            row, secret = self._tokens().create(team, role, name)
        return {"token": secret, **token_dict(row)}

    def list_tokens(self) -> dict[str, Any]:
        self.principal.require(Role.ADMIN, "listing tokens")
        return {"tokens": [token_dict(t) for t in self._tokens().list()]}

    def revoke_token(self, token_id: int) -> dict[str, Any]:
        self.principal.require(Role.ADMIN, "revoking a token")
        with self._write_lock:
            return token_dict(self._tokens().revoke(token_id))


class RemoteTokens(RemoteBase, TokensOperations):
    """Tokens over HTTP."""

    def create_token(self, team: str, role: str, name: str = "") -> dict[str, Any]:
        return self._call("POST", "/tokens", json={"team": team, "role": role, "name": name})

    def list_tokens(self) -> dict[str, Any]:
        return self._call("GET", "/tokens")

    def revoke_token(self, token_id: int) -> dict[str, Any]:
        return self._call("DELETE", f"/tokens/{int(token_id)}")
