"""Shared security pieces: PII encryption and keyed hash, signing keys, OAuth2, guards, audit."""
