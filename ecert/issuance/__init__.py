"""Issuance: e-certs bound to devices, rotating QR codes, numeric codes, keys, revocation feed."""
