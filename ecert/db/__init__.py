"""Storage: ORM models (one place for all domains), engine/session set-up, migrations."""
