"""The student's functions and classes as cvlab's code sees them: stand-ins that run the real
ones in a worker (cvlab.impl.worker) and hand back plain arrays and numbers.

    impl = Implementation(layout, log_path, timeout_s=60, memory_gb=4)
    with impl.limit(60):                      # every request of the block before this deadline
        L = impl.namespace(["batchnorm_forward", "batchnorm_backward"])
        out, cache = L.batchnorm_forward(x, gamma, beta, bn_param)   # bn_param updated here
        dx, dgamma, dbeta = L.batchnorm_backward(dout, cache)        # cache: a handle
    impl.close()

- numpy functions: arrays and dicts go to the worker, the outputs come back; a forward pass's
  cache stays in the worker (a CacheHandle here); dict arguments (bn_param, config) are updated
  in place as the user's code left them, and the array arguments it wrote into are recorded
  in `impl.changed` (a side effect the checks judge).
- torch functions (rnn_layers_pytorch) are torch.autograd.Functions: the forward runs in the
  worker, and autograd's backward asks the worker for the gradients of its graph.
- classes (FullyConnectedNet, ThreeLayerConvNet, CaptioningRNN): a RemoteModel keeps the params
  here as arrays (tensors for the captioner), so checks can change them in place; each loss
  sends them along.

Names the folder does not have come from cvlab (`namespace(..., fallback=True)`), and
`impl.used` records which of the user's names a block of code called.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cvlab.impl.course import COURSE, TORCH_MODULES, Layout
from cvlab.impl.worker import ImplFailure, Worker
from cvlab.vocab import NUMPY_RULES

GIB = 1 << 30


@dataclass(frozen=True)
class CacheHandle:
    """A forward pass's cache, kept in the worker (generation: which worker process)."""

    handle: int
    generation: int


class Implementation:
    """The user's folder, run in two workers (numpy; torch for the recurrent code)."""

    def __init__(self, layout: Layout, log_path: Path, timeout_s: float = 60.0,
                 memory_gb: float = 4.0) -> None:
        self.layout, self.timeout_s = layout, float(timeout_s)
        memory = int(memory_gb * GIB)
        self.workers = {False: Worker(layout, log_path, memory),
                        True: Worker(layout, log_path, memory, with_torch=True)}
        self.deadline = time.monotonic() + self.timeout_s
        self.used: set[str] = set()  # the user's names called
        self.borrowed: set[str] = set()  # cvlab's names used in place of missing ones
        self.changed: list[dict[str, Any]] = []
        self._found: dict[str, dict[str, Any]] = {}

    @contextlib.contextmanager
    def limit(self, seconds: float | None = None) -> Iterator[None]:
        """Every request in the block must be answered within `seconds` (default timeout_s)
        of its start."""
        self.deadline = time.monotonic() + (self.timeout_s if seconds is None else seconds)
        yield

    def request(self, message: dict[str, Any], torch: bool = False) -> Any:
        return self.workers[torch].request(message, self.deadline)

    def find(self, names: list[str]) -> dict[str, dict[str, Any]]:
        """{name: {"status": "found" | a verdict kind, "detail", "traceback"}}, asked once."""
        wanted = [name for name in names if name not in self._found]
        by_worker: dict[bool, list[str]] = {}
        for name in wanted:
            module = self.layout.module_of(name)
            if not self.layout.file_of(module).is_file():  # no need to start a worker
                self._found[name] = {"status": "missing",
                                     "detail": f"{self.layout.display(module)} is not there"}
                continue
            by_worker.setdefault(COURSE[name].module in TORCH_MODULES, []).append(name)
        for torch, group in by_worker.items():
            answer = self.request({"op": "find", "names": group}, torch)
            self._found.update({name: dict(answer[name]) for name in group})
        return {name: self._found[name] for name in names}

    def has(self, name: str) -> bool:
        return self.find([name])[name]["status"] == "found"

    def namespace(self, names: list[str] | None = None, fallback: bool = False) -> Namespace:
        """The course's names: the user's for `names` (all found ones when None); the others
        cvlab's when `fallback`, else missing."""
        return Namespace(self, names, fallback)

    def close(self) -> None:
        for worker in self.workers.values():
            worker.close()

    def __enter__(self) -> Implementation:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Namespace:
    """Attribute access by the course's names: stand-ins for the user's, cvlab's otherwise."""

    def __init__(self, impl: Implementation, names: list[str] | None, fallback: bool) -> None:
        self._impl, self._names, self._fallback = impl, names, fallback

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in COURSE:
            raise AttributeError(name)
        mine = name in self._names if self._names is not None else self._impl.has(name)
        if mine:
            return stand_in(self._impl, name)
        if self._fallback:
            self._impl.borrowed.add(name)
            return reference(name)
        raise AttributeError(f"{name} is not among the functions checked here")


def stand_in(impl: Implementation, name: str) -> Any:
    """The stand-in of the user's `name`: a function or a model class."""
    spec = COURSE[name]
    if spec.returns == "class":
        return lambda *args, **kwargs: RemoteModel(impl, name, args, kwargs)
    if spec.module in TORCH_MODULES:
        return lambda *args, **kwargs: torch_call(impl, name, args, kwargs)
    return lambda *args, **kwargs: numpy_call(impl, name, args, kwargs)


def reference(name: str) -> Any:
    """cvlab's own object for a course name."""
    import cvlab.layers

    if name in NUMPY_RULES:
        from cvlab.train.optim import get_update_rule

        return get_update_rule(name)
    classes = {"FullyConnectedNet": "cvlab.models.fc_net", "ThreeLayerConvNet": "cvlab.models.cnn",
               "CaptioningRNN": "cvlab.models.nets.captioning"}
    if name in classes:
        import importlib

        return getattr(importlib.import_module(classes[name]), name)
    return getattr(cvlab.layers, name)


def positional(name: str, args: tuple, kwargs: dict[str, Any]) -> list[Any]:
    """The arguments in the course's parameter order (keywords by the course's names)."""
    params = COURSE[name].params
    values = list(args)
    for param in params[len(values):]:
        if param in kwargs:
            values.append(kwargs.pop(param))
        else:
            break
    if kwargs:
        raise TypeError(f"{name}: unexpected argument(s) {', '.join(kwargs)} for the course's "
                        f"{name}({', '.join(params)})")
    return values


# --- numpy functions ----------------------------------------------------------------------


def _outgoing(impl: Implementation, value: Any, torch: bool) -> Any:
    worker = impl.workers[torch]
    if isinstance(value, CacheHandle):
        if value.generation != worker.generation:
            raise RuntimeError("a cache of a worker that has since ended was used")
        return {"__cache__": value.handle}
    if isinstance(value, (list, tuple)):
        return [_outgoing(impl, item, torch) for item in value]
    if isinstance(value, dict):
        return {str(k): _outgoing(impl, v, torch) for k, v in value.items()}
    if isinstance(value, (np.ndarray, np.generic)) or value is None \
            or isinstance(value, (bool, int, float, str)):
        return value
    return np.asarray(value)


def numpy_call(impl: Implementation, name: str, args: tuple, kwargs: dict[str, Any]) -> Any:
    """The user's numpy function `name` on these arguments, run in the worker."""
    values = positional(name, args, kwargs)
    impl.used.add(name)
    result = impl.request({"op": "call", "name": name,
                           "args": [_outgoing(impl, v, False) for v in values]})
    for index, after in result["dicts"].items():
        target = values[int(index)]
        if isinstance(target, dict) and isinstance(after, dict):
            for key in [k for k in target if k not in after]:
                del target[key]
            target.update(after)
    impl.changed.extend({"function": name, **change} for change in result["changed"])
    outputs = [_incoming(o, name) for o in result["outputs"]]
    if COURSE[name].returns == "cache":
        cache = result["outputs"][1]
        return outputs[0], CacheHandle(int(cache["__cache__"]), impl.workers[False].generation)
    return outputs[0] if len(outputs) == 1 else tuple(outputs)


def _incoming(value: Any, name: str) -> Any:
    """An output as the checks use it: arrays and numbers (an update rule's config: a dict of
    them)."""
    if isinstance(value, dict):
        return {key: _incoming(item, name) for key, item in value.items()}
    if isinstance(value, list):
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise ImplFailure("wrong forward", f"{name} returned a nested list, not an array")
        return array
    if not isinstance(value, (np.ndarray, bool, int, float, str)):
        raise ImplFailure("wrong forward", f"{name} returned a {type(value).__name__}, not an "
                          "array or a number")
    return value


# --- torch functions ----------------------------------------------------------------------


def _tensor_message(values: list[Any], needs: list[bool]) -> tuple[list[Any], list[bool]]:
    import torch

    out, grads = [], []
    for value, need in zip(values, needs):
        if isinstance(value, torch.Tensor):
            out.append({"__tensor__": value.detach().cpu().numpy()})
        else:
            out.append(value)
        grads.append(bool(need) and isinstance(value, torch.Tensor))
    return out, grads


_AUTOGRAD: Any = None


def remote_autograd() -> Any:
    """The torch.autograd.Function that runs a call in the worker (made on first use)."""
    global _AUTOGRAD
    if _AUTOGRAD is not None:
        return _AUTOGRAD
    import torch

    class RemoteCall(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, impl: Any, message: Any, *values: Any) -> Any:
            needs = list(ctx.needs_input_grad[2:])
            args, grads = _tensor_message(list(values), needs)
            result = impl.request({**message, "args": args, "grad": grads}, True)
            ctx.impl, ctx.graph, ctx.grads = impl, result["graph"], grads
            outputs = [torch.from_numpy(np.asarray(o)) for o in result["outputs"]]
            return outputs[0] if len(outputs) == 1 else tuple(outputs)

        @staticmethod
        def backward(ctx: Any, *grad_outputs: Any) -> Any:
            if ctx.graph is None:
                return (None, None, *[None] * len(ctx.grads))
            grads = [None if g is None else g.detach().cpu().numpy() for g in grad_outputs]
            answer = ctx.impl.request({"op": "torch_backward", "graph": ctx.graph,
                                       "grads": grads}, True)["grads"]
            leaves = iter(answer)
            results = []
            for wanted in ctx.grads:
                grad = next(leaves) if wanted else None
                results.append(None if grad is None else torch.from_numpy(np.asarray(grad)))
            return (None, None, *results)

    _AUTOGRAD = RemoteCall
    return _AUTOGRAD


def torch_call(impl: Implementation, name: str, args: tuple, kwargs: dict[str, Any]) -> Any:
    """The user's torch function `name`, differentiable through the worker."""
    values = positional(name, args, kwargs)
    impl.used.add(name)
    return remote_autograd().apply(impl, {"op": "torch_call", "name": name}, *values)


# --- models -------------------------------------------------------------------------------


def _constructor_args(value: Any) -> Any:
    """dtypes (np.float64, torch.float64) travel as their names."""
    if isinstance(value, type) and issubclass(value, np.generic):
        return {"__dtype__": np.dtype(value).name}
    if type(value).__name__ == "dtype" and type(value).__module__ == "torch":
        return {"__dtype__": str(value).replace("torch.", "")}
    if isinstance(value, np.dtype):
        return {"__dtype__": value.name}
    return value


class RemoteModel:
    """The user's model class, built in the worker; `params` live here (numpy arrays, or
    tensors for the captioner) and go with each loss; attributes set here (reg) too."""

    def __init__(self, impl: Implementation, name: str, args: tuple,
                 kwargs: dict[str, Any]) -> None:
        torch = COURSE[name].module in TORCH_MODULES
        object.__setattr__(self, "_state", {"impl": impl, "name": name, "torch": torch,
                                            "attrs": {}})
        impl.used.add(name)
        answer = impl.request({"op": "new", "class": name,
                               "args": [_constructor_args(a) for a in args],
                               "kwargs": {k: _constructor_args(v) for k, v in kwargs.items()}},
                              torch)
        object.__setattr__(self, "_handle", answer["handle"])
        params = {k: np.asarray(v) for k, v in answer["params"].items()}
        if torch:
            import torch as torch_module

            params = {k: torch_module.from_numpy(v).requires_grad_(v.dtype.kind == "f")
                      for k, v in params.items()}
        object.__setattr__(self, "params", params)

    def __setattr__(self, key: str, value: Any) -> None:
        if key == "params":
            object.__setattr__(self, key, value)
        else:
            self._state["attrs"][key] = value

    def __getattr__(self, key: str) -> Any:
        attrs = object.__getattribute__(self, "_state")["attrs"]
        if key in attrs:
            return attrs[key]
        raise AttributeError(key)

    def loss(self, X: Any, y: Any = None) -> Any:
        state = self._state
        if state["torch"]:
            return self._torch_loss(X, y)
        result = state["impl"].request({
            "op": "loss", "label": f"{state['name']}.loss", "object": self._handle,
            "params": dict(self.params),
            "attrs": dict(state["attrs"]), "X": np.asarray(X),
            "y": None if y is None else np.asarray(y)})
        if y is None:
            return np.asarray(result["scores"])
        grads = {k: np.asarray(v) for k, v in result["grads"].items()}
        return float(result["loss"]), grads

    def numeric_gradient(self, name: str, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """The numeric gradient of loss(X, y) with respect to params[name] and its entries at
        kinks (cvlab.gradcheck.numerical_gradient_off_kinks, run in the worker)."""
        state = self._state
        result = state["impl"].request({
            "op": "numeric", "label": f"{state['name']}.loss", "object": self._handle,
            "params": dict(self.params),
            "attrs": dict(state["attrs"]), "X": np.asarray(X), "y": np.asarray(y),
            "param": name})
        numeric, kinked = np.asarray(result["numeric"]), np.asarray(result["kinked"])
        shape = np.shape(self.params[name])
        if numeric.shape != shape or kinked.shape != shape or kinked.dtype != bool:
            raise RuntimeError(f"the worker's numeric gradient of {name} is not shaped {shape}")
        return numeric, kinked

    def _torch_loss(self, features: Any, captions: Any) -> Any:
        import torch

        names = sorted(self.params)
        tensors = [torch.as_tensor(np.asarray(v)) if not isinstance(v, torch.Tensor) else v
                   for v in (features, captions)]
        message = {"op": "torch_call", "object": self._handle, "method": "loss",
                   "param_names": names, "label": f"{self._state['name']}.loss"}
        return remote_autograd().apply(self._state["impl"], message,
                                       *[self.params[n] for n in names], *tensors)
