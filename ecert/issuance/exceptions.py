"""Refusals of the issuance domain that are not shared with verification."""

from __future__ import annotations

from ecert.errors import Forbidden


class SuspendedByAgency(Forbidden):
    """Raised when a person tries to lift a suspension the agency imposed."""

    code = "suspended_by_agency"
    title = "Only the agency can lift this suspension"


class ChannelNotBound(Forbidden):
    """Raised when a person lifts their own suspension through a channel they never bound."""

    code = "channel_not_bound"
    title = "Lift the suspension through a channel where the e-cert is bound"
