"""Request dependencies shared by the alert API's routes: API-key authentication with
roles, and the error responses every authenticated route documents."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader, APIKeyQuery

from services.alert_api.auth import KeyRing, Principal, Role
from services.alert_api.models import Problem
from services.alert_api.sessions import request_principal

KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False,
                          description="An API key with the read or operator role")
KEY_QUERY = APIKeyQuery(name="api_key", auto_error=False,
                        description="The API key, for clients that cannot set headers")
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "Missing or unknown API key"},
    403: {"model": Problem, "description": "The key's role does not allow this"},
}


def authorize(keys: KeyRing, key: str | None, needed: Role) -> Principal:
    """The principal of ``key``; 401 for a missing or unknown key, 403 for a weaker role."""
    principal = keys.lookup(key)
    if principal is None:
        raise HTTPException(401, "missing or unknown API key (send it as X-API-Key)",
                            headers={"WWW-Authenticate": "ApiKey"})
    if not principal.role.allows(needed):
        raise HTTPException(403, f"the {principal.role.value} role cannot do this "
                                 f"(needs {needed.value})")
    return principal


def require(needed: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency that authenticates the request (``X-API-Key``, else the console's
    session cookie: ``sessions``) and checks its role."""
    async def dependency(request: Request,
                         key: Annotated[str | None, Depends(KEY_HEADER)]) -> Principal:
        if key is None:
            principal = await request_principal(request)
            if principal is not None:
                if not principal.role.allows(needed):
                    raise HTTPException(403, f"the {principal.role.value} role cannot do "
                                             f"this (needs {needed.value})")
                return principal
        return authorize(request.app.state.keys, key, needed)
    return dependency


Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
"""A parameter that must be an operator (module level: FastAPI resolves it by name)."""
Reader = Annotated[Principal, Depends(require(Role.READ))]
"""A parameter that must have at least the read role."""
