"""One ledger for everyone: accounts, year-to-date usage, policies, the catalogue, what mutual
aid may draw on, and the read model of a settlement — shared by settlement, lookups and imports.

Other packages use only the names below; the modules behind them are the ledger's own. The
ledger imports shared pieces (db, benefits, clock, errors, identity), never a domain
(``[tool.importlinter]`` in pyproject.toml).
"""

from ecert.ledger.catalogue import (
    Classified,
    Entry,
    ItemClass,
    Reason,
    classify,
    fen,
    over_limit,
)
from ecert.ledger.exceptions import InsufficientBalance, NoPolicy
from ecert.ledger.policies import BASIC_TYPES, PolicyCache, business_year, person_policy
from ecert.ledger.repositories import (
    HOLDER_CATEGORIES,
    balance,
    catalogue_entries,
    credit,
    credit_claimed_sql,
    credit_many,
    ensure_account,
    find_policy,
    holder_balances,
    lock_person,
    lock_usage,
    move,
    mutual_aid_available,
    mutual_aid_sources,
    store_usage,
    upsert_catalogue,
    upsert_policies,
    usage,
)
from ecert.ledger.views import (
    COLUMN_FIELDS,
    Costs,
    SettlementView,
    costs_of,
    mutual_aid_paid,
    settlement_view,
)

__all__ = [
    "BASIC_TYPES",
    "COLUMN_FIELDS",
    "HOLDER_CATEGORIES",
    "Classified",
    "Costs",
    "Entry",
    "InsufficientBalance",
    "ItemClass",
    "NoPolicy",
    "PolicyCache",
    "Reason",
    "SettlementView",
    "balance",
    "business_year",
    "catalogue_entries",
    "classify",
    "costs_of",
    "credit",
    "credit_claimed_sql",
    "credit_many",
    "ensure_account",
    "fen",
    "find_policy",
    "holder_balances",
    "lock_person",
    "lock_usage",
    "move",
    "mutual_aid_available",
    "mutual_aid_paid",
    "mutual_aid_sources",
    "over_limit",
    "person_policy",
    "settlement_view",
    "store_usage",
    "upsert_catalogue",
    "upsert_policies",
    "usage",
]
