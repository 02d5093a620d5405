"""The one registry of problem ``code``s: each with its HTTP status, title and meaning.

Every ``code`` a response can carry is listed here: the exception classes' codes (a test walks
every :class:`~ecert.errors.EcertError` subclass), the codes :mod:`ecert.server.problems` gives
Litestar's own errors, and the OpenAPI schema documents routes with them. ``docs/errors.md`` is
generated from this table (``ecert errors-doc``); a test keeps the committed file current.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class ErrorCode:
    code: str
    #: The status the code is sent with.
    status: int
    title: str
    #: One sentence for the integrator: what happened, and what to do about it.
    meaning: str


def _index(codes: Iterable[ErrorCode]) -> dict[str, ErrorCode]:
    table: dict[str, ErrorCode] = {}
    for entry in codes:
        if entry.code in table:
            raise ValueError(f"error code {entry.code!r} is registered twice")
        table[entry.code] = entry
    return table


_c = ErrorCode

CODES: Mapping[str, ErrorCode] = _index(
    [
        # Generic: requests, authentication, HTTP itself.
        _c("bad_request", 400, "Bad request", "The request cannot be processed as sent."),
        _c(
            "validation_failed",
            400,
            "The request is not valid",
            "A body field, query or path parameter is malformed; `errors` names the keys.",
        ),
        _c(
            "unauthorized",
            401,
            "Authentication required",
            "No valid access token (or client credential) was presented; get a new token.",
        ),
        _c(
            "forbidden",
            403,
            "Not allowed for this caller",
            "The caller is authenticated, but its kind or scopes do not allow this route.",
        ),
        _c(
            "not_found",
            404,
            "Not found",
            "The path or resource does not exist, or is not visible to the caller.",
        ),
        _c(
            "method_not_allowed",
            405,
            "Method Not Allowed",
            "The path exists, but not with this HTTP method.",
        ),
        _c(
            "conflict",
            409,
            "Conflict with the current state",
            "The request conflicts with the current state of the resource.",
        ),
        _c(
            "payload_too_large",
            413,
            "Request Entity Too Large",
            "The request body is larger than the server accepts (ECERT_MAX_BODY_BYTES).",
        ),
        _c(
            "unsupported_media_type",
            415,
            "Unsupported Media Type",
            "The body's content type is not one this route reads.",
        ),
        _c(
            "unprocessable",
            422,
            "Unprocessable Entity",
            "The request is well-formed but cannot be processed.",
        ),
        _c(
            "rate_limited",
            429,
            "Too many requests",
            "The caller exceeded its request budget; wait `Retry-After` seconds.",
        ),
        _c(
            "internal_error",
            500,
            "Internal error",
            "An unexpected failure; quote the `request_id` to support.",
        ),
        _c(
            "unavailable",
            503,
            "Service temporarily unavailable",
            "A dependency (database, store) is down or timed out; retry with the same "
            "Idempotency-Key after `Retry-After`.",
        ),
        _c(
            "error",
            400,
            "Error",
            "Any other HTTP error, with its own status, that has no more specific code.",
        ),
        _c(
            "pii_key_missing",
            503,
            "A data key is missing on this node",
            "A row is sealed with a data key this node does not hold (a key rotation out of "
            "order); another node may answer.",
        ),
        _c(
            "metrics_token_required",
            401,
            "The metrics token is required",
            "ECERT_METRICS_TOKEN is set and the scrape did not present it.",
        ),
        # OAuth token endpoint (RFC 6749 §5.2, RFC 7523).
        _c(
            "invalid_client",
            401,
            "Client authentication failed",
            "The client id, secret or client assertion was not accepted.",
        ),
        _c(
            "invalid_grant",
            400,
            "The grant is invalid",
            "The grant or the person assertion was not accepted.",
        ),
        _c(
            "unsupported_grant_type",
            400,
            "Unsupported grant type",
            "The token endpoint does not offer this grant type.",
        ),
        _c(
            "identity_mismatch",
            400,
            "The asserted identity does not match the register",
            "No insured person has the asserted ID number and name.",
        ),
        # Persons, e-certs, QR codes.
        _c(
            "invalid_id_number",
            422,
            "The ID number is not valid",
            "An ID number is malformed (length, date or check digit); it is never echoed back.",
        ),
        _c(
            "not_enrolled",
            422,
            "The person holds no active insurance enrolment",
            "The person has no active enrolment, so no e-cert is issued or verified.",
        ),
        _c(
            "no_ecert",
            404,
            "No e-cert is activated on this channel",
            "Activate the e-cert on this channel first (POST /v1/me/ecert).",
        ),
        _c(
            "ecert_suspended",
            409,
            "The e-cert is suspended",
            "The person's e-certs are suspended (a lost phone, or by the agency) until resumed.",
        ),
        _c(
            "ecert_revoked",
            409,
            "The e-cert is revoked or the code is from an old binding",
            "The e-cert was unbound, or the code belongs to a superseded binding.",
        ),
        _c(
            "suspended_by_agency",
            403,
            "Only the agency can lift this suspension",
            "The agency imposed this suspension; the person cannot lift it.",
        ),
        _c(
            "channel_not_bound",
            403,
            "Lift the suspension through a channel where the e-cert is bound",
            "A person may lift a suspension only through a channel where the e-cert is bound.",
        ),
        _c(
            "family_limit",
            409,
            "A person may show codes for at most five relatives",
            "The holder already has five relatives (pending or active).",
        ),
        _c(
            "family_link_not_found",
            404,
            "No such family link for this person",
            "The link is unknown or does not concern the caller.",
        ),
        _c("qr_invalid", 422, "The QR code is not valid", "The QR token was refused."),
        _c(
            "qr_malformed",
            422,
            "The QR code is not an ecert code",
            "The text is not an ecert QR token (prefix, digits, JWS structure, header).",
        ),
        _c(
            "qr_signature_invalid",
            422,
            "The QR code's signature is not valid",
            "The signature does not verify with the key its `kid` names.",
        ),
        _c(
            "qr_unknown_key",
            422,
            "The QR code was signed by an unknown or revoked key",
            "The `kid` is not a verifying key of ecert; refresh the JWKS or the code.",
        ),
        _c(
            "qr_expired",
            422,
            "The QR code has expired; refresh it",
            "The code's lifetime is over; the person shows a fresh one.",
        ),
        _c(
            "qr_not_yet_valid",
            422,
            "The QR code is not valid yet",
            "The code is issued in the future beyond the leeway (clock skew).",
        ),
        _c(
            "qr_wrong_issuer",
            422,
            "The QR code was issued elsewhere",
            "The code's issuer is not one this verifier trusts.",
        ),
        _c(
            "qr_replayed",
            409,
            "The QR code was already used",
            "A single-use code was presented again; the person shows a fresh one.",
        ),
        _c(
            "image_too_large",
            413,
            "The image has too many pixels",
            "The uploaded image claims more pixels than the decoder accepts.",
        ),
        # Cards.
        _c(
            "no_card",
            404,
            "No social security card is on record",
            "The person holds no card, or no card has the given number.",
        ),
        _c(
            "card_state",
            409,
            "The card's state does not allow this",
            "The card's state (active, reported lost, frozen, replaced) does not allow this.",
        ),
        _c(
            "card_not_usable",
            409,
            "This card may not be used; use the e-cert or a replacement card",
            "A card reported lost, frozen or replaced cannot open a visit.",
        ),
        # Verify and settle.
        _c(
            "institution_not_designated",
            403,
            "Only designated institutions may verify codes and settle",
            "The institution is not designated: it may not verify, open visits or settle.",
        ),
        _c(
            "ec_token_invalid",
            422,
            "Unknown settlement token; verify the code again",
            "The ec_token is unknown.",
        ),
        _c(
            "ec_token_expired",
            422,
            "The settlement token has expired; verify the code again",
            "The ec_token's lifetime is over; verify a fresh code.",
        ),
        _c(
            "ec_token_spent",
            409,
            "This settlement token was already used; verify the code again",
            "The ec_token already opened its one settlement or visit.",
        ),
        _c(
            "ec_token_wrong_institution",
            403,
            "This settlement token belongs to another institution",
            "Only the institution that verified the code may use its ec_token.",
        ),
        _c(
            "med_type_not_allowed",
            422,
            "This medical type is not allowed here or for this person",
            "The medical type does not fit the institution (pharmacy, hospital) or the person.",
        ),
        _c(
            "no_policy",
            422,
            "No benefit policy applies to this person this year",
            "No benefit policy is imported for the person's area, insurance type and category.",
        ),
        _c(
            "invalid_bill",
            422,
            "The bill cannot be priced",
            "The bill is empty, has a negative amount, or an unknown type or level.",
        ),
        _c(
            "invalid_policy",
            422,
            "The benefit policy is not valid",
            "A policy does not follow the import format.",
        ),
        _c(
            "insufficient_balance",
            409,
            "The personal account balance is insufficient",
            "The account holds less than the debit needs (a concurrent debit won); price again.",
        ),
        _c(
            "settlement_not_found",
            404,
            "No such settlement for this institution",
            "The settlement is unknown or was settled by another institution.",
        ),
        _c(
            "reversal_exceeds_settlement",
            422,
            "The reversal exceeds what is left of the settlement",
            "The reversal asks for more than is left of the settlement.",
        ),
        _c(
            "return_exceeds_line",
            422,
            "The return exceeds what is left of the line",
            "A line would be returned beyond its quantity (returns accumulate).",
        ),
        _c(
            "return_line_not_found",
            422,
            "No such line in this settlement",
            "A returned line is not a line of the settlement.",
        ),
        _c(
            "return_not_possible",
            409,
            "Lines of this settlement cannot be returned; reverse by amount or cancel it",
            "The settlement predates re-pricing or was partly reversed by amount; cancel it "
            "or reverse by amount.",
        ),
        _c(
            "reversal_mode_conflict",
            409,
            "Lines of this settlement were returned; return lines or cancel the rest",
            "Amount reversals do not mix with line returns of the same settlement.",
        ),
        _c(
            "idempotency_key_required",
            400,
            "Send an Idempotency-Key header",
            "A money-moving request needs an Idempotency-Key header.",
        ),
        _c(
            "idempotency_conflict",
            422,
            "This Idempotency-Key was used with a different request",
            "The key was already used with another body; use a new key for a new operation.",
        ),
        _c(
            "idempotency_in_progress",
            409,
            "A request with this Idempotency-Key is still being processed",
            "The first request with this key is still running (or was taken over); retry "
            "with the same key to get its answer.",
        ),
        _c(
            "mutual_aid_not_allowed",
            403,
            "Only an employee or retiree with a personal account may authorise mutual aid",
            "Only an employee or retired person with a personal account may let it pay for "
            "relatives.",
        ),
        _c(
            "mutual_aid_self",
            422,
            "A person cannot authorise mutual aid for themselves",
            "The relative named is the caller.",
        ),
        _c(
            "relative_not_matched",
            422,
            "No insured person matches this ID number and name",
            "The ID number is unknown or the name is wrong (one answer for both).",
        ),
        _c(
            "mutual_aid_not_found",
            404,
            "No such mutual aid authorisation for this person",
            "The authorisation is unknown, revoked, or not the caller's.",
        ),
        # Visits.
        _c(
            "visit_not_found",
            404,
            "No such visit for this institution",
            "The visit is unknown or was opened by another institution.",
        ),
        _c(
            "visit_not_open",
            409,
            "The visit is no longer open",
            "A settled or cancelled visit cannot change (fees, cancel, settle).",
        ),
        _c(
            "fee_quantity_invalid",
            422,
            "quantity must be a positive decimal string with at most 4 decimal places",
            "A fee line's quantity is not a positive decimal with at most 4 places.",
        ),
        _c(
            "fee_amount_mismatch",
            422,
            "amount is not quantity × unit_price rounded half up to the fen",
            "A fee line's amount differs from quantity × unit_price rounded half up.",
        ),
        _c(
            "fee_line_conflict",
            409,
            "Another line already has this line_no",
            "A different line was sent under a line number the visit already holds.",
        ),
        _c(
            "fee_line_not_found",
            404,
            "The visit has no line with this line_no",
            "The line number to delete is not on the visit.",
        ),
        # The agency's counter (docs/agency.md).
        _c(
            "staff_sign_in_failed",
            401,
            "Sign-in failed",
            "The login, password or TOTP code is wrong (which one is not said).",
        ),
        _c(
            "staff_locked",
            403,
            "This login is locked",
            "Too many failed sign-ins: wait 15 minutes or ask for `ecert staff reset`.",
        ),
        _c(
            "staff_exists",
            409,
            "This login is taken",
            "`ecert staff add` was given a login that already exists.",
        ),
        # Provinces (docs/federation.md).
        _c(
            "province_not_trusted",
            422,
            "That province is not on the trust list",
            "The code or ec_token was issued by a province this deployment does not settle with.",
        ),
        _c(
            "province_unavailable",
            503,
            "The insured person's province did not answer",
            "Retry after Retry-After with the same Idempotency-Key: nothing was recorded half.",
        ),
        # The national gateway (docs/national-interface.md): sent as `err_code` in a −1 envelope.
        _c(
            "envelope_malformed",
            400,
            "Not a national request envelope",
            "The body is not JSON or lacks infno/msgid; send the national envelope.",
        ),
        _c(
            "infno_unknown",
            400,
            "Transaction not offered",
            "The infno is not one this gateway offers (docs/national-interface.md lists them).",
        ),
        _c(
            "input_invalid",
            400,
            "The transaction's input is not valid",
            "`input` lacks a field or holds one of the wrong shape; err_msg names it.",
        ),
        _c(
            "amount_invalid",
            400,
            "Not an amount in yuan",
            "An amount is not decimal yuan with at most two places (or is negative).",
        ),
        _c(
            "mdtrt_cert_type_unsupported",
            400,
            "Credential type not supported",
            "mdtrt_cert_type must be 01 (ecToken), 02 (ID number) or 03 (card).",
        ),
        _c(
            "signature_invalid",
            401,
            "The signed headers do not verify",
            "The _api_* headers are missing, name an unknown access key or do not verify.",
        ),
        _c(
            "signature_expired",
            401,
            "The signed request is too old or too new",
            "_api_timestamp is more than five minutes from the server's clock; sign again.",
        ),
        _c(
            "signature_replayed",
            401,
            "The signature was used before",
            "Each signed request works once; sign the retry again with a new timestamp.",
        ),
        _c(
            "fixmedins_mismatch",
            403,
            "Another institution's code",
            "fixmedins_code names an institution other than the authenticated caller.",
        ),
        _c(
            "person_not_found",
            404,
            "No insured person with this number and name",
            "1101 by ID number found nobody with that number and name.",
        ),
        _c(
            "mdtrt_cert_mismatch",
            409,
            "Not the visit's credential",
            "The credential named in 2204–2208 is not the one the visit was opened with.",
        ),
        _c(
            "medfee_sumamt_mismatch",
            422,
            "medfee_sumamt differs from the fee lines",
            "The bill total sent differs from the sum of the visit's uploaded fee lines.",
        ),
    ]
)


def render_markdown() -> str:
    """``docs/errors.md``: the registry as a table per status."""
    lines = [
        "# Error codes",
        "",
        "<!-- Generated by `ecert errors-doc` from `ecert/errorcodes.py`; do not edit. -->",
        "",
        "Every refusal is an RFC 9457 `application/problem+json` body with `type` "
        "(`urn:ecert:problem:<code>`), `title`, `status`, `detail`, `instance`, `request_id` and "
        "a stable `code`, one of those below. The OpenAPI schema (`/schema/openapi.json`) lists "
        "the codes each route can answer with.",
        "",
        "| code | status | title | meaning |",
        "|---|---|---|---|",
    ]
    for entry in sorted(CODES.values(), key=lambda e: (e.status, e.code)):
        cells = (f"`{entry.code}`", str(entry.status), entry.title, entry.meaning)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
