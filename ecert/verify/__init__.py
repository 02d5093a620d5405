"""Verification: online verify of QR and numeric codes (→ ec_token), and the offline verifier."""
