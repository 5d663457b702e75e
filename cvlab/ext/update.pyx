# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""In-place update rules, float32 and float64 (fused types), on elements [start, stop) of flat
C-contiguous arrays.

Each kernel performs, per element, the same IEEE operations in the same order and precision
as the pure rule in cvlab/train/optim.py does with numpy (the Python-float hyperparameters
rounded to the array's dtype first, as numpy does with them), so the results are equal bit for
bit. No operation may be fused into another: multiply-adds are not contracted (the pragma
below; the module is compiled without FMA by default anyway).
"""

cdef extern from *:
    """
    #if defined(__GNUC__) && !defined(__clang__)
    #pragma GCC optimize ("fp-contract=off")
    #endif
    #if defined(__clang__)
    #pragma clang fp contract(off)
    #endif
    """

from libc.math cimport sqrt, sqrtf

ctypedef fused floating:
    float
    double


cdef inline floating _sqrt(floating value) noexcept nogil:
    if floating is float:
        return sqrtf(value)
    else:
        return sqrt(value)


def sgd(floating[::1] w, const floating[::1] dw, double learning_rate, Py_ssize_t start,
        Py_ssize_t stop):
    """w -= learning_rate * dw  (as next_w = w - learning_rate * dw)."""
    cdef floating lr = <floating>learning_rate
    cdef floating step
    cdef Py_ssize_t i
    with nogil:
        for i in range(start, stop):
            step = lr * dw[i]
            w[i] = w[i] - step


def sgd_momentum(floating[::1] w, const floating[::1] dw, floating[::1] velocity,
                 double momentum, double learning_rate, Py_ssize_t start, Py_ssize_t stop):
    """velocity = momentum * velocity - learning_rate * dw; w = w + velocity."""
    cdef floating mu = <floating>momentum, lr = <floating>learning_rate
    cdef floating kept, step, v
    cdef Py_ssize_t i
    with nogil:
        for i in range(start, stop):
            kept = mu * velocity[i]
            step = lr * dw[i]
            v = kept - step
            velocity[i] = v
            w[i] = w[i] + v


def rmsprop(floating[::1] w, const floating[::1] dw, floating[::1] cache, double decay_rate,
            double one_minus_decay, double learning_rate, double epsilon, Py_ssize_t start,
            Py_ssize_t stop):
    """cache = decay * cache + (1 - decay) * dw * dw;
    w = w - learning_rate * dw / (sqrt(cache) + epsilon)."""
    cdef floating decay = <floating>decay_rate, rest = <floating>one_minus_decay
    cdef floating lr = <floating>learning_rate, eps = <floating>epsilon
    cdef floating kept, scaled, added, c, root, step
    cdef Py_ssize_t i
    with nogil:
        for i in range(start, stop):
            kept = decay * cache[i]
            scaled = rest * dw[i]
            added = scaled * dw[i]
            c = kept + added
            cache[i] = c
            root = _sqrt(c)
            root = root + eps
            step = lr * dw[i]
            step = step / root
            w[i] = w[i] - step


def adam(floating[::1] w, const floating[::1] dw, floating[::1] m, floating[::1] v,
         double beta1, double one_minus_beta1, double beta2, double one_minus_beta2,
         double v_correction, double epsilon, double step_size, Py_ssize_t start,
         Py_ssize_t stop):
    """m = beta1 * m + (1 - beta1) * dw; v = beta2 * v + (1 - beta2) * dw**2;
    w = w - step_size * m / (sqrt(v * v_correction) + epsilon), with v_correction =
    1 / (1 - beta2**t) and step_size = learning_rate / (1 - beta1**t)."""
    cdef floating b1 = <floating>beta1, c1 = <floating>one_minus_beta1
    cdef floating b2 = <floating>beta2, c2 = <floating>one_minus_beta2
    cdef floating vc = <floating>v_correction, eps = <floating>epsilon
    cdef floating lr = <floating>step_size
    cdef floating g, mi, vi, part, root, step
    cdef Py_ssize_t i
    with nogil:
        for i in range(start, stop):
            g = dw[i]
            mi = m[i] * b1
            part = c1 * g
            mi = mi + part
            m[i] = mi
            vi = v[i] * b2
            part = g * g
            part = c2 * part
            vi = vi + part
            v[i] = vi
            root = vi * vc
            root = _sqrt(root)
            root = root + eps
            step = mi / root
            step = step * lr
            w[i] = w[i] - step
