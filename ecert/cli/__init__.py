"""The ``ecert`` command, one module a command group; ``main.py`` assembles them."""
