"""What marks a staff member's session, and which roles a route admits.

Staff sign in on the console (``ecert.agency``) and get a short-lived access token in an
HttpOnly, SameSite=Strict cookie scoped to ``/v1/agency``. A request carried by that cookie and
not by an ``Authorization`` header must also send :data:`CSRF_HEADER`: a cross-site form cannot
set a header, and a cross-site script cannot without a CORS preflight that ecert never grants.
"""

from __future__ import annotations

from typing import Any

from ecert.db.models import StaffRole

#: Client id prefix of staff principals (``staff:<login>``).
PREFIX = "staff:"
COOKIE = "ecert_staff"
COOKIE_PATH = "/v1/agency"
CSRF_HEADER = "x-ecert-csrf"
#: Route option naming the roles a route admits (on a handler or its controller).
ROLES_OPT = "staff_roles"
#: Who may use an agency route that names no roles: the counter, not the key operator.
COUNTER = frozenset({StaffRole.CLERK, StaffRole.SUPERVISOR})
SUPERVISOR = frozenset({StaffRole.SUPERVISOR})
OPERATOR = frozenset({StaffRole.OPERATOR})


def roles_opt(roles: frozenset[StaffRole]) -> dict[str, Any]:
    """``opt=`` for a route or controller that admits only ``roles`` among staff."""
    return {ROLES_OPT: roles}


def admitted(opt: dict[str, Any]) -> frozenset[StaffRole]:
    roles = opt.get(ROLES_OPT, COUNTER)
    assert isinstance(roles, frozenset)
    return roles


def opter(client_id: str, name: str | None) -> dict[str, str]:
    """The national envelope's operator fields, for the audit detail of a staff action."""
    return {"opter": client_id.removeprefix(PREFIX), "opter_name": name or ""}
