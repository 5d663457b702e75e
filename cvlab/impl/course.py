"""The course's package as a student's folder holds it: where each name lives, the course's
signatures, and how the notebooks import it (docs/course.md sections 1-3).

Two layouts (`find_layout`):
- the course's: a folder holding `cs231n/` (layers.py, layer_utils.py, fast_layers.py,
  optim.py, solver.py, rnn_layers_pytorch.py, classifiers/fc_net.py, classifiers/cnn.py,
  classifiers/rnn_pytorch.py, captioning_solver_pytorch.py; any subset). The folder goes on
  sys.path, as the notebooks that sit next to cs231n/ have it, so `from cs231n.layers import
  *`, the relative `from .layers import *` and the optional compiled `cs231n/im2col_cython`
  that fast_layers.py tries to import work as in the notebooks;
- a single `layers.py`, importable as `layers`: every name is looked up there.

`COURSE` maps each course name to the module that holds it, its parameters in order and what it
returns: "cache" for a forward pass ((out, cache)), a count of values, or "class".
"""

from __future__ import annotations

import hashlib
import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvlab.errors import UserError

PACKAGE = "cs231n"
SINGLE_MODULE = "layers"


@dataclass(frozen=True)
class CourseName:
    """A name of the course's API: its module (relative to cs231n), its parameters in the
    course's order, and what it returns ("cache": (out, cache); n: n values; "class")."""

    module: str
    params: tuple[str, ...]
    returns: int | str


def _names(module: str, returns: int | str, *entries: tuple[str, str]) -> dict[str, CourseName]:
    return {name: CourseName(module, tuple(params.split()), returns) for name, params in entries}


BACKWARD = "dout cache"
COURSE: dict[str, CourseName] = {
    **_names("layers", "cache", ("affine_forward", "x w b"), ("relu_forward", "x"),
             ("batchnorm_forward", "x gamma beta bn_param"),
             ("layernorm_forward", "x gamma beta ln_param"),
             ("dropout_forward", "x dropout_param"),
             ("conv_forward_naive", "x w b conv_param"),
             ("max_pool_forward_naive", "x pool_param"),
             ("spatial_batchnorm_forward", "x gamma beta bn_param"),
             ("spatial_groupnorm_forward", "x gamma beta G gn_param")),
    **_names("layers", 3, ("affine_backward", BACKWARD), ("batchnorm_backward", BACKWARD),
             ("batchnorm_backward_alt", BACKWARD), ("layernorm_backward", BACKWARD),
             ("conv_backward_naive", BACKWARD), ("spatial_batchnorm_backward", BACKWARD),
             ("spatial_groupnorm_backward", BACKWARD)),
    **_names("layers", 1, ("relu_backward", BACKWARD), ("dropout_backward", BACKWARD),
             ("max_pool_backward_naive", BACKWARD)),
    **_names("layers", 2, ("softmax_loss", "x y"), ("svm_loss", "x y")),
    **_names("fast_layers", "cache", ("conv_forward_fast", "x w b conv_param"),
             ("max_pool_forward_fast", "x pool_param")),
    **_names("fast_layers", 3, ("conv_backward_fast", BACKWARD)),
    **_names("fast_layers", 1, ("max_pool_backward_fast", BACKWARD)),
    **_names("layer_utils", "cache", ("affine_relu_forward", "x w b"),
             ("conv_relu_forward", "x w b conv_param"),
             ("conv_relu_pool_forward", "x w b conv_param pool_param"),
             ("conv_bn_relu_forward", "x w b gamma beta conv_param bn_param")),
    **_names("layer_utils", 3, ("affine_relu_backward", BACKWARD),
             ("conv_relu_backward", BACKWARD), ("conv_relu_pool_backward", BACKWARD)),
    **_names("layer_utils", 5, ("conv_bn_relu_backward", BACKWARD)),
    **_names("optim", 2, ("sgd", "w dw config"), ("sgd_momentum", "w dw config"),
             ("rmsprop", "w dw config"), ("adam", "w dw config")),
    **_names("rnn_layers_pytorch", 1, ("rnn_step_forward", "x prev_h Wx Wh b"),
             ("rnn_forward", "x h0 Wx Wh b"), ("lstm_forward", "x h0 Wx Wh b"),
             ("word_embedding_forward", "x W"), ("temporal_affine_forward", "x w b"),
             ("temporal_softmax_loss", "x y mask")),
    **_names("rnn_layers_pytorch", 2, ("lstm_step_forward", "x prev_h prev_c Wx Wh b")),
    **_names("classifiers.fc_net", "class", ("FullyConnectedNet", "")),
    **_names("classifiers.cnn", "class", ("ThreeLayerConvNet", "")),
    **_names("classifiers.rnn_pytorch", "class", ("CaptioningRNN", "")),
    **_names("solver", "class", ("Solver", "")),
    **_names("captioning_solver_pytorch", "class", ("CaptioningSolverPytorch", "")),
}
TORCH_MODULES = ("rnn_layers_pytorch", "classifiers.rnn_pytorch", "captioning_solver_pytorch")


@dataclass(frozen=True)
class Layout:
    """Where a student's code is: `root` goes on sys.path; `package` is "cs231n", or None for
    a single layers.py (imported as `layers`)."""

    folder: Path
    root: Path
    package: str | None

    def module_name(self, module: str) -> str:
        """The import name of a course module (e.g. cs231n.classifiers.fc_net, or layers)."""
        return f"{self.package}.{module}" if self.package else SINGLE_MODULE

    def file_of(self, module: str) -> Path:
        """The file that holds a course module."""
        if self.package is None:
            return self.root / f"{SINGLE_MODULE}.py"
        return self.root / self.package / (module.replace(".", "/") + ".py")

    def display(self, module: str) -> str:
        """The file of a course module as the user knows it (cs231n/layers.py, layers.py)."""
        return str(self.file_of(module).relative_to(self.root))

    def module_of(self, name: str) -> str:
        """The course module that holds `name` (layers for every name of a single file)."""
        return COURSE[name].module if self.package else SINGLE_MODULE


def find_layout(path: str | Path) -> Layout:
    """The layout of `path`: a folder holding cs231n/ (or the cs231n/ folder itself), or a
    folder holding a single layers.py (or that file). UserError (one line) otherwise."""
    folder = Path(path).expanduser().resolve()
    if folder.is_file() and folder.name == f"{SINGLE_MODULE}.py":
        return Layout(folder, folder.parent, None)
    if (folder / PACKAGE).is_dir():
        return Layout(folder, folder, PACKAGE)
    if folder.name == PACKAGE and folder.is_dir():
        return Layout(folder, folder.parent, PACKAGE)
    if (folder / f"{SINGLE_MODULE}.py").is_file():
        return Layout(folder, folder, None)
    raise UserError(f"impl={path}: {implementation_problem(path)}; give the folder that holds "
                    "your cs231n/ package (the assignment's folder) or a layers.py")


def implementation_problem(path: str | Path) -> str | None:
    """What keeps `path` from being a student's folder (None: it is one)."""
    folder = Path(path).expanduser()
    if not folder.exists():
        return f"{path} does not exist"
    if folder.is_file():
        return None if folder.name == f"{SINGLE_MODULE}.py" else f"{path} is a file"
    if (folder / PACKAGE).is_dir() or (folder / f"{SINGLE_MODULE}.py").is_file() \
            or (folder.name == PACKAGE):
        return None
    return f"{path} holds neither a cs231n/ folder nor a layers.py"


def digest(layout: Layout) -> str:
    """A short digest of the Python files of the implementation (which code trained a run)."""
    files = ([layout.file_of(SINGLE_MODULE)] if layout.package is None
             else sorted((layout.root / layout.package).rglob("*.py")))
    hasher = hashlib.sha256()
    for path in files:
        hasher.update(str(path.relative_to(layout.root)).encode())
        hasher.update(path.read_bytes() if path.is_file() else b"")
    return hasher.hexdigest()[:16]


def import_module(layout: Layout, module: str) -> Any:
    """Import a course module of the layout as the notebooks do (its root first on sys.path).
    ModuleNotFoundError when its file is not there; the module's own errors propagate."""
    if not layout.file_of(module).is_file():
        raise ModuleNotFoundError(f"{layout.display(module)} is not there")
    if str(layout.root) not in sys.path:
        sys.path.insert(0, str(layout.root))
    _forget_other_folders(layout)
    return importlib.import_module(layout.module_name(module))


def _forget_other_folders(layout: Layout) -> None:
    """Drop a cs231n (or layers) imported from another folder, with its submodules: a process
    that trains two students' folders one after the other imports each from its own."""
    top = layout.package or SINGLE_MODULE
    loaded = sys.modules.get(top)
    where = getattr(loaded, "__file__", None) or next(iter(getattr(loaded, "__path__", [])), None)
    if loaded is None or (where and Path(where).resolve().is_relative_to(layout.root)):
        return
    for name in [name for name in sys.modules if name == top or name.startswith(top + ".")]:
        del sys.modules[name]


def load_class(folder: str | Path, name: str) -> Any:
    """The user's class `name` (FullyConnectedNet, ThreeLayerConvNet) from impl=`folder`,
    imported in this process (a training job's). UserError when it is not there."""
    layout = find_layout(folder)
    module = layout.module_of(name)
    try:
        found = getattr(call_student(f"importing {layout.display(module)}", import_module,
                                     layout, module), name, None)
    except ModuleNotFoundError as err:
        raise UserError(f"impl={folder}: {err}") from None
    if not isinstance(found, type):
        raise UserError(f"impl={folder}: {layout.display(module)} has no class {name}")
    return found


def call_student(what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
    """`function(*args, **kwargs)`, a student's code in this process (a training job's): their
    sys.exit becomes a UserError saying so, never this process's quiet end."""
    try:
        return function(*args, **kwargs)
    except SystemExit as exit_:
        raise UserError(f"your code called sys.exit({exit_.code!r}) while {what}; it must "
                        "return or raise instead") from None
