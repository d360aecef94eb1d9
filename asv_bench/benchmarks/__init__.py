"""asv benchmarks of fastinfo, one module per family: softmax, distributions, estimators, sklearn.

Every class is parametrised by implementation (``"fastinfo"`` and the peers), dtype and size (the
last parameter, smallest first); data come from seeded generators in ``setup``; a peer that is not
installed raises ``NotImplementedError`` in ``setup``, which asv reports as a skip.
"""
