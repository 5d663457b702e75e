"""The numpy layer library: `*_forward(...) -> (out, cache)` / `*_backward(dout, cache)` pairs.

Everything follows the course's conventions (docs/course.md section 1). Files by family:
affine (affine, relu), losses (softmax, svm), batchnorm, layernorm, dropout, conv_naive,
pool_naive, fast (compiled conv/pool with a numpy fallback), conv_relu_pool (the fused
sandwich), spatial (spatial batchnorm, group norm) and sandwich (common layer sequences).
threads holds the threading policy (`set_threads(n)`: n threads for the layers, BLAS
single-threaded). The recurrent layers of the captioner
(rnn.py) work on torch tensors; they are re-exported here lazily, so importing the numpy layers
does not import torch.
"""

import importlib
from typing import Any

from cvlab.layers.affine import affine_backward, affine_forward, relu_backward, relu_forward
from cvlab.layers.batchnorm import batchnorm_backward, batchnorm_backward_alt, batchnorm_forward
from cvlab.layers.conv_naive import conv_backward_naive, conv_forward_naive
from cvlab.layers.dropout import dropout_backward, dropout_forward
from cvlab.layers.fast import (
    conv_backward_fast,
    conv_forward_fast,
    implementation,
    max_pool_backward_fast,
    max_pool_forward_fast,
    use_implementation,
)
from cvlab.layers.layernorm import layernorm_backward, layernorm_forward
from cvlab.layers.losses import softmax_loss, svm_loss
from cvlab.layers.pool_naive import max_pool_backward_naive, max_pool_forward_naive
from cvlab.layers.sandwich import (
    affine_norm_relu_backward,
    affine_norm_relu_forward,
    affine_relu_backward,
    affine_relu_forward,
    conv_bn_relu_backward,
    conv_bn_relu_forward,
    conv_relu_backward,
    conv_relu_forward,
    conv_relu_pool_backward,
    conv_relu_pool_forward,
)
from cvlab.layers.spatial import (
    spatial_batchnorm_backward,
    spatial_batchnorm_forward,
    spatial_groupnorm_backward,
    spatial_groupnorm_forward,
)
from cvlab.layers.threads import set_threads, use_threads

_RECURRENT = (
    "rnn_step_forward", "rnn_forward", "lstm_step_forward", "lstm_forward",
    "word_embedding_forward", "temporal_affine_forward", "temporal_softmax_loss",
)


def __getattr__(name: str) -> Any:
    if name in _RECURRENT:
        return getattr(importlib.import_module("cvlab.layers.rnn"), name)
    raise AttributeError(f"module 'cvlab.layers' has no attribute {name!r}")


__all__ = [*_RECURRENT,
    "affine_backward", "affine_forward", "affine_norm_relu_backward", "affine_norm_relu_forward",
    "affine_relu_backward", "affine_relu_forward", "batchnorm_backward", "batchnorm_backward_alt",
    "batchnorm_forward", "conv_backward_fast", "conv_backward_naive", "conv_bn_relu_backward",
    "conv_bn_relu_forward", "conv_forward_fast", "conv_forward_naive", "conv_relu_backward",
    "conv_relu_forward", "conv_relu_pool_backward", "conv_relu_pool_forward", "dropout_backward",
    "dropout_forward", "implementation", "layernorm_backward", "layernorm_forward",
    "max_pool_backward_fast", "max_pool_backward_naive", "max_pool_forward_fast",
    "max_pool_forward_naive", "relu_backward", "relu_forward", "softmax_loss",
    "spatial_batchnorm_backward", "spatial_batchnorm_forward", "spatial_groupnorm_backward",
    "spatial_groupnorm_forward", "svm_loss", "set_threads", "use_implementation", "use_threads",
]
