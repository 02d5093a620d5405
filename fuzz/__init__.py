"""Coverage-guided fuzzing (atheris) of the parsers that face untrusted input."""
