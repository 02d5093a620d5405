"""The server: create_app(settings), the runtime, request plumbing (auth, rate limit, problems)."""
