# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Fused kernels of the conv - relu - max pool sandwich and an allocation-free relu backward,
float32 and float64 (fused types), a block of images per call.

bias_relu_pool: a = rows + bias, s = max(a, 0) (NaN stays NaN, as np.maximum), then max pooling
of s with the index of each window's first maximum (row-major), as max_pool_forward_fast.
relu_pool_backward: the gradient of that with respect to a: each window's upstream gradient
goes to its maximum when the maximum is > 0 (a relu that passed it), in window order.
relu_backward: dx = dout * (x > 0) without a mask array (the same products, bit for bit).
"""

import numpy as np

cimport numpy as cnp
from libc.string cimport memset

ctypedef fused floating:
    float
    double

cnp.import_array()


cdef inline floating _relu(floating a) noexcept nogil:
    # np.maximum(a, 0): NaN stays NaN
    return 0 if a < 0 else a


def bias_relu_pool(const floating[:, :] rows, const floating[::1] bias, Py_ssize_t W_conv,
                   Py_ssize_t pool_height, Py_ssize_t pool_width, Py_ssize_t stride,
                   floating[:, :, :, ::1] pooled, cnp.uint8_t[:, :, :, ::1] argmax):
    """rows (F, n * H_conv * W_conv): the conv output of n images without the bias, image m
    in columns m * P ... (m + 1) * P - 1 (each row contiguous; rows may be a column slice of a
    wider array); writes pooled (n, F, H', W') and argmax (n, F, H', W'): the offset
    di * pool_width + dj of the first maximum in each window."""
    cdef Py_ssize_t n = pooled.shape[0], F = pooled.shape[1]
    cdef Py_ssize_t H_out = pooled.shape[2], W_out = pooled.shape[3]
    cdef Py_ssize_t m, f, i, j, di, dj, best_offset, row_stride, P
    cdef floating b, s, s1, s2, s3, best
    cdef const floating* top
    cdef const floating* bottom
    cdef floating* out_row
    cdef cnp.uint8_t* arg_row
    if n == 0 or F == 0 or H_out == 0 or W_out == 0:
        return
    if rows.strides[1] != sizeof(floating):
        raise ValueError("bias_relu_pool: each row of `rows` must be contiguous")
    if rows.shape[0] != F or rows.shape[1] % n:
        raise ValueError("bias_relu_pool: rows must be (F, n * H_conv * W_conv)")
    P = rows.shape[1] // n
    row_stride = rows.strides[0] // sizeof(floating)
    with nogil:
        for m in range(n):
            for f in range(F):
                b = bias[f]
                for i in range(H_out):
                    top = &rows[0, 0] + f * row_stride + m * P + i * stride * W_conv
                    out_row = &pooled[m, f, i, 0]
                    arg_row = &argmax[m, f, i, 0]
                    if pool_height == 2 and pool_width == 2 and stride == 2:
                        bottom = top + W_conv
                        for j in range(W_out):
                            best = _relu(top[2 * j] + b)
                            best_offset = 0
                            s1 = _relu(top[2 * j + 1] + b)
                            s2 = _relu(bottom[2 * j] + b)
                            s3 = _relu(bottom[2 * j + 1] + b)
                            if s1 > best:
                                best = s1
                                best_offset = 1
                            if s2 > best:
                                best = s2
                                best_offset = 2
                            if s3 > best:
                                best = s3
                                best_offset = 3
                            out_row[j] = best
                            arg_row[j] = <cnp.uint8_t>best_offset
                        continue
                    for j in range(W_out):
                        best = _relu(top[j * stride] + b)
                        best_offset = 0
                        for di in range(pool_height):
                            for dj in range(pool_width):
                                s = _relu(top[di * W_conv + j * stride + dj] + b)
                                if s > best:
                                    best = s
                                    best_offset = di * pool_width + dj
                        out_row[j] = best
                        arg_row[j] = <cnp.uint8_t>best_offset


def relu_pool_backward(const floating[:, :, :, ::1] dpool, const floating[:, :, :, ::1] pooled,
                       const cnp.uint8_t[:, :, :, ::1] argmax, Py_ssize_t W_conv,
                       Py_ssize_t pool_height, Py_ssize_t pool_width, Py_ssize_t stride,
                       floating[:, :] drows, double[:, ::1] db):
    """dpool, pooled, argmax (n, F, H', W') -> drows (F, n * H_conv * W_conv), overwritten
    (each row contiguous): the gradient with respect to the pre-relu conv output of the n
    images, in the layout of bias_relu_pool's rows; db (n, F) gets each image's filter sums."""
    cdef Py_ssize_t n = dpool.shape[0], F = dpool.shape[1]
    cdef Py_ssize_t H_out = dpool.shape[2], W_out = dpool.shape[3]
    cdef Py_ssize_t m, f, i, j, k, row_stride, P
    cdef Py_ssize_t[256] shift  # offset in the window -> offset in the plane
    cdef double total
    cdef floating g
    cdef floating* plane
    cdef floating* top
    cdef const floating* grad_row
    cdef const floating* pooled_row
    cdef const cnp.uint8_t* arg_row
    if n == 0 or F == 0 or drows.shape[1] == 0:
        return
    if drows.strides[1] != sizeof(floating):
        raise ValueError("relu_pool_backward: each row of `drows` must be contiguous")
    if drows.shape[0] != F or drows.shape[1] % n:
        raise ValueError("relu_pool_backward: drows must be (F, n * H_conv * W_conv)")
    if pool_height * pool_width > 256:
        raise ValueError("relu_pool_backward: pool windows of at most 256 positions")
    P = drows.shape[1] // n
    for k in range(pool_height * pool_width):
        shift[k] = (k // pool_width) * W_conv + k % pool_width
    row_stride = drows.strides[0] // sizeof(floating)
    with nogil:
        for m in range(n):
            for f in range(F):
                plane = &drows[0, 0] + f * row_stride + m * P
                memset(plane, 0, P * sizeof(floating))
                total = 0
                for i in range(H_out):
                    top = plane + i * stride * W_conv
                    grad_row = &dpool[m, f, i, 0]
                    pooled_row = &pooled[m, f, i, 0]
                    arg_row = &argmax[m, f, i, 0]
                    for j in range(W_out):
                        if pooled_row[j] > 0:
                            g = grad_row[j]
                            top[j * stride + shift[arg_row[j]]] += g
                            total += g
                db[m, f] = total


def relu_backward(const floating[::1] dout, const floating[::1] x, floating[::1] out):
    """out = dout * (x > 0) elementwise (flat, same length; out may be dout)."""
    cdef Py_ssize_t i, n = dout.shape[0]
    cdef floating one = 1, zero = 0
    with nogil:
        for i in range(n):
            out[i] = dout[i] * (one if x[i] > 0 else zero)
