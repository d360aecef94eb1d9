# Section of _kernels.pyx: softmax kernels (filled by the softmax work).
