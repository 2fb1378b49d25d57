"""``python -m skdeepcluster``: the command line interface (see ``skdeepcluster --help``)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
