"""Provinces that settle each other's insured (跨省直接结算, spec §9; docs/federation.md)."""
