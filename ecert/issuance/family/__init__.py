"""Family codes: a holder shows QR codes for relatives who consented."""
