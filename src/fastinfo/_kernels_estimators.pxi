# Section of _kernels.pyx: estimators kernels (filled by the estimators work).
