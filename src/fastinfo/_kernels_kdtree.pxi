# Section of _kernels.pyx: kdtree kernels (filled by the kdtree work).
