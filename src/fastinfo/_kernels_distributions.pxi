# Section of _kernels.pyx: distributions kernels (filled by the distributions work).
