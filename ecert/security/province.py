"""A province client acting for one of its own hospitals at the insured person's province.

The treating province's ecert calls ours with its own access token (client kind ``province``,
private_key_jwt) and names the hospital in ``Ecert-On-Behalf-Of``. It may name only hospitals of
its own province (the ``province:NN`` scope it was registered with); from there on the request
is that institution's, so verify, visits and settlements run exactly as for a local hospital.
"""

from __future__ import annotations

import re

from ecert.errors import Forbidden
from ecert.security.tokens import Principal

ON_BEHALF_HEADER = "ecert-on-behalf-of"
#: Institution codes carry the institution's 6-digit area after the kind letter.
INSTITUTION_CODE = re.compile(r"^[A-Z][0-9]{6}[0-9A-Z]{1,13}$")
#: Marks a routed call, which is never routed on to a third province.
ROUTED_SCOPE = "routed"
#: What an institution acting through its province may do (never ``identity:full``).
ROUTED_SCOPES = frozenset({"verify", "settle", ROUTED_SCOPE})


def province_scope(area: str) -> str:
    """The scope that lets a province client act for institutions of ``area``'s province."""
    return f"province:{area[:2]}"


def province_of(principal: Principal) -> str:
    """The two-digit province a province client speaks for (from its ``province:NN`` scope)."""
    for scope in principal.scopes:
        if scope.startswith("province:"):
            return scope.removeprefix("province:")
    raise Forbidden("this client speaks for no province")


def acting_for(principal: Principal, institution_code: str | None) -> Principal:
    """The routed institution's principal, or the province client itself without the header."""
    if institution_code is None:
        return principal
    if not INSTITUTION_CODE.match(institution_code):
        raise Forbidden("Ecert-On-Behalf-Of must name an institution code")
    if province_scope(institution_code[1:7]) not in principal.scopes:
        raise Forbidden("a province client acts only for its own province's institutions")
    return Principal(
        principal.client_id,
        "institution",
        ROUTED_SCOPES,
        None,
        institution_code,
        principal.rate_limit,
    )
