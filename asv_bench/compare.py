"""Side-by-side comparison of fastinfo with its peers: a thin wrapper of ``fastinfo._bench.main``.

    python asv_bench/compare.py [--threads N] [--quick] [--only W1,W5] [--format table|json|csv] [-v]

Equivalent to ``fastinfo bench``. See ``asv_bench/README_section.md`` for what it measures.
"""
import sys

from fastinfo._bench import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
