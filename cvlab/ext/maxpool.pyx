# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Max pooling kernels, float32 and float64: any window and stride (overlapping or not).

The forward records, per output, the flat index (row * W + col) of the first maximum of its
window; the backward adds each upstream gradient at that index, in one sequential pass.
"""

import numpy as np

cimport numpy as cnp

ctypedef fused floating:
    float
    double

cnp.import_array()


def max_pool_forward(floating[:, :, :, ::1] x, Py_ssize_t pool_height, Py_ssize_t pool_width,
                     Py_ssize_t stride, Py_ssize_t H_out, Py_ssize_t W_out):
    """x (N, C, H, W) -> (out (N, C, H_out, W_out), argmax (N, C, H_out, W_out) int64)."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], W = x.shape[3]
    dtype = np.float32 if floating is float else np.float64
    out_array = np.empty((N, C, H_out, W_out), dtype=dtype)
    idx_array = np.empty((N, C, H_out, W_out), dtype=np.int64)
    cdef floating[:, :, :, ::1] out = out_array
    cdef cnp.int64_t[:, :, :, ::1] idx = idx_array
    cdef Py_ssize_t n, c, i, j, di, dj, top, left, best_index
    cdef floating best, value
    with nogil:
        for n in range(N):
            for c in range(C):
                for i in range(H_out):
                    top = i * stride
                    for j in range(W_out):
                        left = j * stride
                        best = x[n, c, top, left]
                        best_index = top * W + left
                        for di in range(pool_height):
                            for dj in range(pool_width):
                                value = x[n, c, top + di, left + dj]
                                if value > best:
                                    best = value
                                    best_index = (top + di) * W + left + dj
                        out[n, c, i, j] = best
                        idx[n, c, i, j] = best_index
    return out_array, idx_array


def max_pool_backward(floating[:, :, :, ::1] dout, cnp.int64_t[:, :, :, ::1] idx,
                      Py_ssize_t H, Py_ssize_t W):
    """Route dout (N, C, H_out, W_out) to the recorded maxima: dx (N, C, H, W)."""
    cdef Py_ssize_t N = dout.shape[0], C = dout.shape[1]
    cdef Py_ssize_t H_out = dout.shape[2], W_out = dout.shape[3]
    dtype = np.float32 if floating is float else np.float64
    dx_array = np.zeros((N, C, H, W), dtype=dtype)
    cdef floating[:, :, ::1] dx = dx_array.reshape(N, C, H * W)
    cdef Py_ssize_t n, c, i, j
    with nogil:
        for n in range(N):
            for c in range(C):
                for i in range(H_out):
                    for j in range(W_out):
                        dx[n, c, idx[n, c, i, j]] += dout[n, c, i, j]
    return dx_array
