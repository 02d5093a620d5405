"""The QR format: the token codec, its compact JWS, and the code as an image (pure: no database)."""
