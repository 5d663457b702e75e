# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""im2col / col2im for convolutions, float32 and float64 (fused types), padding done on the fly.

Layout: cols has shape (C * HH * WW, N * H_out * W_out); row k = (c * HH + di) * WW + dj,
column n * H_out * W_out + i * W_out + j holds x[n, c, i * stride + di - pad, j * stride + dj - pad]
(zero outside the input). col2im adds the columns back into dx (N, C, H, W), in one
sequential pass (overlapping windows accumulate correctly).
"""

import numpy as np

cimport numpy as cnp
from libc.string cimport memcpy, memset

ctypedef fused floating:
    float
    double

cnp.import_array()


cdef inline Py_ssize_t _first_valid(Py_ssize_t offset, Py_ssize_t stride) noexcept nogil:
    # smallest j >= 0 with j * stride + offset >= 0
    if offset >= 0:
        return 0
    return (-offset + stride - 1) // stride


cdef inline Py_ssize_t _end_valid(Py_ssize_t offset, Py_ssize_t stride, Py_ssize_t size,
                                  Py_ssize_t count) noexcept nogil:
    # one past the largest j < count with j * stride + offset < size
    cdef Py_ssize_t end
    if size - offset <= 0:
        return 0
    end = (size - offset + stride - 1) // stride
    return end if end < count else count


def im2col(floating[:, :, :, ::1] x, Py_ssize_t HH, Py_ssize_t WW, Py_ssize_t pad,
           Py_ssize_t stride, Py_ssize_t H_out, Py_ssize_t W_out, out=None):
    """x (N, C, H, W) C-contiguous -> cols (C * HH * WW, N * H_out * W_out), same dtype.

    `out`, when given, is a C-contiguous array of that shape and dtype to write into.
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t P = H_out * W_out
    dtype = np.float32 if floating is float else np.float64
    if out is None:
        cols_array = np.empty((C * HH * WW, N * P), dtype=dtype)
    else:
        cols_array = out
    cdef floating[:, ::1] cols = cols_array
    cdef Py_ssize_t c, di, dj, n, i, j, k, row, j_lo, j_hi, base
    cdef floating* dst
    cdef const floating* src
    with nogil:
        for c in range(C):
            for di in range(HH):
                for dj in range(WW):
                    k = (c * HH + di) * WW + dj
                    j_lo = _first_valid(dj - pad, stride)
                    j_hi = _end_valid(dj - pad, stride, W, W_out)
                    for n in range(N):
                        for i in range(H_out):
                            base = n * P + i * W_out
                            dst = &cols[k, base]
                            row = i * stride + di - pad
                            if row < 0 or row >= H or j_hi <= j_lo:
                                memset(dst, 0, W_out * sizeof(floating))
                                continue
                            for j in range(j_lo):
                                dst[j] = 0
                            src = &x[n, c, row, 0]
                            if stride == 1:
                                memcpy(dst + j_lo, src + j_lo + dj - pad,
                                       (j_hi - j_lo) * sizeof(floating))
                            else:
                                for j in range(j_lo, j_hi):
                                    dst[j] = src[j * stride + dj - pad]
                            for j in range(j_hi, W_out):
                                dst[j] = 0
    return cols_array


def col2im(floating[:, ::1] cols, Py_ssize_t N, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
           Py_ssize_t HH, Py_ssize_t WW, Py_ssize_t pad, Py_ssize_t stride,
           Py_ssize_t H_out, Py_ssize_t W_out, out=None):
    """cols (C * HH * WW, N * H_out * W_out) -> dx (N, C, H, W): the adjoint of im2col.

    `out`, when given, is a C-contiguous (N, C, H, W) array to overwrite with the result.
    """
    cdef Py_ssize_t P = H_out * W_out
    dtype = np.float32 if floating is float else np.float64
    if out is None:
        dx_array = np.zeros((N, C, H, W), dtype=dtype)
    else:
        dx_array = out
        dx_array.fill(0)
    cdef floating[:, :, :, ::1] dx = dx_array
    cdef Py_ssize_t c, di, dj, n, i, j, k, row, j_lo, j_hi
    cdef const floating* src
    cdef floating* dst
    with nogil:
        for c in range(C):
            for di in range(HH):
                for dj in range(WW):
                    k = (c * HH + di) * WW + dj
                    j_lo = _first_valid(dj - pad, stride)
                    j_hi = _end_valid(dj - pad, stride, W, W_out)
                    if j_hi <= j_lo:
                        continue
                    for n in range(N):
                        for i in range(H_out):
                            row = i * stride + di - pad
                            if row < 0 or row >= H:
                                continue
                            src = &cols[k, n * P + i * W_out]
                            dst = &dx[n, c, row, 0]
                            if stride == 1:
                                for j in range(j_lo, j_hi):
                                    dst[j + dj - pad] += src[j]
                            else:
                                for j in range(j_lo, j_hi):
                                    dst[j * stride + dj - pad] += src[j]
    return dx_array
