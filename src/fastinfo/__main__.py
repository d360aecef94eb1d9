"""``python -m fastinfo``: the same command line as the ``fastinfo`` console script."""
import sys

from fastinfo._cli import main

if __name__ == "__main__":
    sys.exit(main())
