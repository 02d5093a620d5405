"""ecert: electronic medical insurance certificates."""

__version__ = "0.1.0"
