"""Students' folders for the impl= tests (`cvlab gradcheck impl=`, `cvlab reproduce impl=`,
`model=impl_fc`): the course's layout (cs231n/ with layers.py, layer_utils.py, fast_layers.py,
optim.py, rnn_layers_pytorch.py, classifiers/...) whose modules re-export cvlab's own correct
code under the course's names, importing each other as the course's files do (`from .layers
import *`, `from cs231n.layers import *`, the optional im2col_cython of fast_layers.py).
A defect is a module's extra source, appended: it defines a course name anew.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

LAYER_NAMES = (
    "affine_forward", "affine_backward", "relu_forward", "relu_backward", "softmax_loss",
    "svm_loss", "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt",
    "layernorm_forward", "layernorm_backward", "dropout_forward", "dropout_backward",
    "conv_forward_naive", "conv_backward_naive", "max_pool_forward_naive",
    "max_pool_backward_naive", "spatial_batchnorm_forward", "spatial_batchnorm_backward",
    "spatial_groupnorm_forward", "spatial_groupnorm_backward",
)
UTIL_NAMES = ("affine_relu_forward", "affine_relu_backward", "conv_relu_forward",
              "conv_relu_backward", "conv_relu_pool_forward", "conv_relu_pool_backward",
              "conv_bn_relu_forward", "conv_bn_relu_backward")
FAST_NAMES = ("conv_forward_fast", "conv_backward_fast", "max_pool_forward_fast",
              "max_pool_backward_fast")
RNN_NAMES = ("rnn_step_forward", "rnn_forward", "lstm_step_forward", "lstm_forward",
             "word_embedding_forward", "temporal_affine_forward", "temporal_softmax_loss")


def _imports(module: str, names: tuple[str, ...]) -> str:
    return f"from {module} import (\n" + "".join(f"    {name},\n" for name in names) + ")\n"


COURSE_FILES = {
    "__init__.py": "",
    "layers.py": "import numpy as np\n\n" + _imports("cvlab.layers", LAYER_NAMES),
    "layer_utils.py": "from .layers import *\nfrom .fast_layers import *\n\n"
                      + _imports("cvlab.layers", UTIL_NAMES),
    "fast_layers.py": textwrap.dedent("""\
        try:
            from cs231n.im2col_cython import col2im_cython, im2col_cython
        except ImportError:
            print("run the following from the cs231n directory and try again:")
            print("python setup.py build_ext --inplace")
        """) + _imports("cvlab.layers", FAST_NAMES),
    "optim.py": "from cvlab.train.optim import adam, rmsprop, sgd, sgd_momentum\n",
    "rnn_layers_pytorch.py": "import torch\n\n" + _imports("cvlab.layers.rnn", RNN_NAMES),
    "classifiers/__init__.py": "",
    "classifiers/fc_net.py": "from cs231n.layers import *\nfrom cs231n.layer_utils import *\n"
                             "from cvlab.models.fc_net import FullyConnectedNet\n",
    "classifiers/cnn.py": "from ..layers import *\nfrom ..fast_layers import *\n"
                          "from cvlab.models.cnn import ThreeLayerConvNet\n",
    "classifiers/rnn_pytorch.py": "from ..rnn_layers_pytorch import *\n"
                                  "from cvlab.models.nets.captioning import CaptioningRNN\n",
}


def course_folder(root: Path, defects: dict[str, str] | None = None,
                  without: tuple[str, ...] = ()) -> Path:
    """root holding cs231n/: every course file of COURSE_FILES but those in `without`, each
    with the source in `defects` appended (dedented). Returns root."""
    package = root / "cs231n"
    for name, source in COURSE_FILES.items():
        if name in without:
            continue
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        extra = textwrap.dedent((defects or {}).get(name, ""))
        path.write_text(source + ("\n\n" + extra if extra else ""))
    return root


def combine(*defects: str) -> str:
    """Several defects as one module's extra source (each dedented)."""
    return "\n".join(textwrap.dedent(defect) for defect in defects)


def single_layers_file(root: Path, extra: str = "") -> Path:
    """root holding a single layers.py (cvlab's layers under the course's names + `extra`)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "layers.py").write_text(COURSE_FILES["layers.py"] + "\n\n" + textwrap.dedent(extra))
    return root


# Defects, one per course function, each the way a student's code goes wrong.
DGAMMA_TWICE = """
    from cvlab.layers import batchnorm_backward as _correct_batchnorm_backward

    def batchnorm_backward(dout, cache):
        dx, dgamma, dbeta = _correct_batchnorm_backward(dout, cache)
        return dx, 2 * dgamma, dbeta
"""
FORGETS_RUNNING_MEAN = """
    from cvlab.layers import spatial_batchnorm_forward as _correct_spatial_forward

    def spatial_batchnorm_forward(x, gamma, beta, bn_param):
        before = bn_param.get("running_mean", np.zeros(x.shape[1]))
        out, cache = _correct_spatial_forward(x, gamma, beta, bn_param)
        bn_param["running_mean"] = before
        return out, cache
"""
NORMALIZES_IN_PLACE = """
    def layernorm_forward(x, gamma, beta, ln_param):
        std = np.sqrt(x.var(axis=1, keepdims=True) + ln_param.get("eps", 1e-5))
        x -= x.mean(axis=1, keepdims=True)
        x /= std  # x_hat is x itself: the caller's array, and the cache, alias it
        return gamma * x + beta, (x, gamma, std)

    def layernorm_backward(dout, cache):
        x_hat, gamma, std = cache
        dx_hat = dout * gamma
        dx = (dx_hat - dx_hat.mean(axis=1, keepdims=True)
              - x_hat * (dx_hat * x_hat).mean(axis=1, keepdims=True)) / std
        return dx, (dout * x_hat).sum(axis=0), dout.sum(axis=0)
"""
RESEEDS_GLOBAL_RNG = """
    def dropout_forward(x, dropout_param):
        p, mode = dropout_param["p"], dropout_param["mode"]
        if "seed" in dropout_param:
            np.random.seed(dropout_param["seed"])
        mask = None
        out = x
        if mode == "train":
            mask = (np.random.rand(*x.shape) < p) / p
            out = x * mask
        return out, (dropout_param, mask)
"""
RELU_SKELETON = """
    def relu_forward(x):
        out = None
        # TODO: Implement the ReLU forward pass.
        cache = x
        return out, cache
"""
SVM_SKELETON = """
    def svm_loss(x, y):
        pass
"""
MAXPOOL_BACKWARD_RAISES = """
    def max_pool_backward_naive(dout, cache):
        raise NotImplementedError("max pool backward")
"""
CONV_CRASHES = """
    def conv_forward_naive(x, w, b, conv_param):
        rows = x.reshape(-1, 7)  # a wrong reshape: ValueError
        return rows, (x, w, b, conv_param)
"""
AFFINE_BACKWARD_ABORTS = """
    import os

    def affine_backward(dout, cache):
        os.abort()  # like a segfault in a compiled extension
"""
SOFTMAX_EXITS = """
    import sys

    def softmax_loss(x, y):
        sys.exit(3)
"""
AFFINE_RELU_ALLOCATES = """
    def affine_relu_forward(x, w, b):
        buffer = np.zeros(1 << 28)  # 2 GiB of address space
        return buffer, None
"""
RELU_LOOPS = """
    def relu_forward(x):
        while True:
            x = x + 0
"""
