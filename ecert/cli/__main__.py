"""``python -m ecert.cli``: the ``ecert`` command."""

from ecert.cli.main import main

if __name__ == "__main__":
    main()
