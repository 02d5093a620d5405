"""OAuth2 token endpoint and client registration (RFC 6749, RFC 7523)."""
