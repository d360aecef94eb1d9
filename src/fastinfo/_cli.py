"""The ``fastinfo`` command line (placeholder until the command-line work lands)."""
import sys


def main(argv=None):
    print("fastinfo: the command line is not built yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
