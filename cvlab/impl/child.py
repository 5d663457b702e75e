"""The worker's own side: the process in which a student's code runs (`impl=<folder>`).

    python -m cvlab.impl.child <fd> <folder> <address space limit in bytes> <torch: 0|1>

It reads requests from the socket `fd` and answers each with one message (cvlab.impl.wire:
plain values and numeric arrays, never pickle), until the socket closes. Its stdout and
stderr are the log file the parent gave it (what the user's code prints, and faulthandler's
traceback on a fatal signal or on SIGUSR1, which the parent sends before it kills a worker
that ran out of time). The address space is limited (RLIMIT_AS: the limit on top of what the
worker mapped after importing numpy, and torch for a torch worker), so a huge allocation is a
MemoryError in the user's code.

Requests (`op`): find (which course names the folder has), call (a numpy function: arrays in,
arrays out; a forward pass's cache stays here under a handle), new / loss / get / numeric (a
model: the user's class, its params sent with each loss; numeric: cvlab's numeric gradient of
its loss, computed here), torch_call / torch_backward (a torch function
or a model's loss, with autograd run here). Every request carries numpy's global RNG state
(and torch's, when asked) and every answer returns it as the user's code left it.

Answers: {"ok": true, "result": ...} or {"ok": false, "kind": <verdict>, "detail": one line,
"traceback": the user's frames only}, kind one of "not implemented", "crashed",
"wrong forward", "wrong backward", "missing", "internal" (a fault of this module).
"""

from __future__ import annotations

import faulthandler
import importlib
import os
import resource
import signal
import sys
import traceback
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cvlab.impl.course import COURSE, TORCH_MODULES, Layout, find_layout, import_module
from cvlab.impl.wire import decode, encode

KEEP = 32  # forward caches and autograd graphs kept (the checks use the last few)
CACHE_KEY, TENSOR_KEY, DTYPE_KEY = "__cache__", "__tensor__", "__dtype__"


class Failure(Exception):
    """What the user's code did instead of answering: a verdict kind, one line, the trimmed
    traceback."""

    def __init__(self, kind: str, detail: str, trace: str = "") -> None:
        super().__init__(detail)
        self.kind, self.detail, self.trace = kind, detail, trace


class State:
    """The worker's memory: the layout, imported modules (or why they failed), forward caches,
    autograd graphs and model objects, each under an integer handle."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.modules: dict[str, Any] = {}
        self.caches: OrderedDict[int, Any] = OrderedDict()
        self.graphs: OrderedDict[int, Any] = OrderedDict()
        self.objects: dict[int, Any] = {}
        self.counter = 0

    def keep(self, store: OrderedDict[int, Any] | dict[int, Any], value: Any) -> int:
        self.counter += 1
        store[self.counter] = value
        if isinstance(store, OrderedDict) and len(store) > KEEP:
            store.popitem(last=False)
        return self.counter


# --- the user's code, and what it did -----------------------------------------------------


def user_traceback(err: BaseException, root: Path) -> str:
    """The traceback of `err` trimmed to the frames in the user's folder."""
    frames = [frame for frame in traceback.extract_tb(err.__traceback__)
              if _is_user_file(frame.filename, root)]
    lines = ["Traceback (your code, most recent call last):\n", *traceback.format_list(frames),
             *traceback.format_exception_only(type(err), err)]
    return "".join(lines).rstrip()


def _is_user_file(filename: str, root: Path) -> bool:
    try:
        path = Path(filename).resolve()
    except (OSError, ValueError):
        return False
    return path.is_relative_to(root) and "site-packages" not in path.parts


def run_user(state: State, what: str, fn: Callable[..., Any], *args: Any,
             **kwargs: Any) -> Any:
    """fn(*args, **kwargs), the user's code; its failures become a Failure naming `what`."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError as err:
        raise Failure("not implemented", f"{what} raises NotImplementedError",
                      user_traceback(err, state.layout.root)) from None
    except SystemExit as err:
        raise Failure("crashed", f"{what} called sys.exit({err.code!r})",
                      user_traceback(err, state.layout.root)) from None
    except Exception as err:  # noqa: BLE001 - the user's error is the answer
        first = (str(err).strip().splitlines() or [""])[0]
        raise Failure("crashed", f"{what} raised {type(err).__name__}: {first}".rstrip(": "),
                      user_traceback(err, state.layout.root)) from None


def plain(value: Any, what: str, kind: str) -> Any:
    """A value of the user's turned into what the wire carries: arrays (from tensors too),
    numbers, strings, lists and dicts of them; Failure(kind) for anything else."""
    if value is None or isinstance(value, (bool, int, float, str, np.ndarray, np.generic)):
        if isinstance(value, np.ndarray) and value.dtype.kind not in "biuf":
            raise Failure(kind, f"{what} is an array of {value.dtype}, not of numbers")
        return value
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor
        return value.detach().cpu().numpy()
    if isinstance(value, (list, tuple)):
        return [plain(item, f"{what}[{i}]", kind) for i, item in enumerate(value)]
    if isinstance(value, dict):
        return {str(k): plain(v, f"{what}[{k!r}]", kind) for k, v in value.items()}
    raise Failure(kind, f"{what} is a {type(value).__name__}, not an array or a number")


# --- finding names ------------------------------------------------------------------------


def module_for(state: State, name: str) -> Any:
    """The user's module that holds `name`, imported once; Failure when its file is not there
    or importing it fails (the failure is remembered)."""
    module = state.layout.module_of(name)
    if module not in state.modules:
        display = state.layout.display(module)
        if not state.layout.file_of(module).is_file():
            state.modules[module] = Failure("missing", f"{display} is not there")
        else:
            try:
                state.modules[module] = run_user(state, f"importing {display}", import_module,
                                                 state.layout, module)
            except Failure as failure:
                state.modules[module] = failure
    found = state.modules[module]
    if isinstance(found, Failure):
        raise found
    return found


def lookup(state: State, name: str) -> Any:
    """The user's object called `name` (Failure "missing" when the module lacks it)."""
    found = getattr(module_for(state, name), name, None)
    if found is None or not callable(found):
        module = state.layout.display(state.layout.module_of(name))
        raise Failure("missing", f"{module} has no {name}")
    return found


def op_find(state: State, request: dict) -> dict:
    """{name: {"status": "found"} or {"status": <kind>, "detail", "traceback"}}."""
    answer = {}
    for name in request["names"]:
        try:
            lookup(state, name)
            answer[name] = {"status": "found"}
        except Failure as failure:
            answer[name] = {"status": failure.kind, "detail": failure.detail,
                            "traceback": failure.trace}
    return answer


# --- numpy functions ----------------------------------------------------------------------


def _argument(state: State, value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {CACHE_KEY}:
        if value[CACHE_KEY] not in state.caches:
            raise KeyError(f"cache {value[CACHE_KEY]} was dropped (only {KEEP} are kept)")
        return state.caches[value[CACHE_KEY]]
    return value


def _changes(params: tuple[str, ...], before: list[Any], after: list[Any]) -> list[dict]:
    """The array arguments the call wrote into: name, largest change and where."""
    changed = []
    for name, old, new in zip(params, before, after):
        if isinstance(old, np.ndarray) and old.shape == np.shape(new) \
                and not np.array_equal(old, new, equal_nan=True):
            diff = np.abs(np.asarray(new, dtype=np.float64) - old)
            at = np.unravel_index(int(np.nanargmax(diff)), diff.shape) if diff.size else ()
            changed.append({"arg": name, "max": float(np.nanmax(diff)),
                            "at": [int(i) for i in at]})
    return changed


def op_call(state: State, request: dict) -> dict:
    """A course function on the given arguments: its outputs (a forward pass's cache kept
    here, its handle returned), the dict arguments as the call left them, and the array
    arguments it wrote into."""
    name = request["name"]
    spec = COURSE[name]
    fn = lookup(state, name)
    args = [_argument(state, value) for value in request["args"]]
    before = [np.array(a, copy=True) if isinstance(a, np.ndarray) else None for a in args]
    result = run_user(state, name, fn, *args)
    outputs = outputs_of(name, spec.returns, result, "wrong forward")
    if spec.returns == "cache":
        outputs = [outputs[0], {CACHE_KEY: state.keep(state.caches, result[1])}]
    dicts = {str(i): plain(a, f"{spec.params[i]} after {name}", "wrong forward")
             for i, a in enumerate(args) if isinstance(a, dict) and i < len(spec.params)}
    return {"outputs": outputs, "dicts": dicts,
            "changed": _changes(spec.params, before, args)}


def outputs_of(name: str, returns: int | str, result: Any, kind: str) -> list[Any]:
    """The outputs of a course function as a list (plain values); Failure "not implemented"
    for the skeleton's placeholders (None, or None in place of an output), Failure `kind`
    for a result the course's API does not return."""
    count = 2 if returns == "cache" else int(returns)
    if result is None:
        raise Failure("not implemented", f"{name} returns None")
    values = list(result) if count > 1 and isinstance(result, (tuple, list)) else [result]
    if len(values) != count:
        raise Failure(kind, f"{name} returns {len(values)} value(s); the course's returns "
                      f"{count}")
    if returns == "cache":
        values = values[:1]
    empty = [i + 1 for i, value in enumerate(values) if value is None]
    if empty:
        raise Failure("not implemented", f"{name} returns None as its output "
                      f"{', '.join(map(str, empty))} of {count}")
    return [plain(value, f"output {i + 1} of {name}", kind) for i, value in enumerate(values)]


# --- models -------------------------------------------------------------------------------


def _constructor_value(value: Any, torch_class: bool) -> Any:
    if isinstance(value, dict) and set(value) == {DTYPE_KEY}:
        if torch_class:
            import torch

            return getattr(torch, value[DTYPE_KEY])
        return getattr(np, value[DTYPE_KEY])
    return value


def op_new(state: State, request: dict) -> dict:
    """An instance of the user's class: its handle and its params as built."""
    name = request["class"]
    torch_class = COURSE[name].module in TORCH_MODULES
    cls = lookup(state, name)
    args = [_constructor_value(v, torch_class) for v in request["args"]]
    kwargs = {k: _constructor_value(v, torch_class) for k, v in request["kwargs"].items()}
    model = run_user(state, f"{name}(...)", cls, *args, **kwargs)
    return {"handle": state.keep(state.objects, model), "params": _params(model, name)}


def _params(model: Any, name: str) -> dict[str, Any]:
    params = getattr(model, "params", None)
    if not isinstance(params, dict):
        raise Failure("wrong forward", f"{name}.params is a {type(params).__name__}, not a "
                      "dict of arrays")
    if not params:
        raise Failure("not implemented", f"{name}.__init__ leaves params empty")
    return plain(params, f"{name}.params", "wrong forward")


def _model(state: State, request: dict) -> Any:
    """The model of the request with the request's params and attributes set."""
    model = state.objects[request["object"]]
    model.params.update(request["params"])
    for key, value in request["attrs"].items():
        setattr(model, key, value)
    return model


def op_loss(state: State, request: dict) -> dict:
    """A numpy model's loss(X, y) with the given params and attributes: loss and grads, or the
    scores when y is None."""
    model = _model(state, request)
    name = f"{type(model).__name__}.loss"
    result = run_user(state, name, model.loss, request["X"], request["y"])
    if request["y"] is None:
        return {"scores": outputs_of(name, 1, result, "wrong forward")[0]}
    loss, grads = outputs_of(name, 2, result, "wrong forward")
    if not isinstance(grads, dict) or not isinstance(loss, (int, float, np.generic, np.ndarray)):
        raise Failure("wrong forward", f"{name} returns ({type(loss).__name__}, "
                      f"{type(grads).__name__}); the course's returns (loss, grads)")
    if not grads:
        raise Failure("not implemented", f"{name} returns loss {float(np.sum(loss)):g} and no "
                      "gradients")
    return {"loss": float(np.sum(loss)), "grads": grads}


def op_numeric(state: State, request: dict) -> dict:
    """The numeric gradient of a numpy model's loss with respect to one of its params, and the
    entries at kinks: cvlab's numerical_gradient_off_kinks run here, next to the user's code,
    instead of two round trips per entry (the parent judges it)."""
    from cvlab.gradcheck import numerical_gradient_off_kinks

    model = _model(state, request)
    name, X, y = f"{type(model).__name__}.loss", request["X"], request["y"]

    def loss(_: np.ndarray) -> float:
        result = run_user(state, name, model.loss, X, y)
        return float(np.sum(outputs_of(name, 2, result, "wrong forward")[0]))

    values = model.params[request["param"]]
    if not isinstance(values, np.ndarray) or values.dtype.kind != "f":
        raise Failure("wrong forward", f"{type(model).__name__}.params[{request['param']!r}] "
                      "is not an array of floats")
    numeric, kinked = numerical_gradient_off_kinks(loss, values)
    return {"numeric": numeric, "kinked": kinked}


# --- torch --------------------------------------------------------------------------------


def _torch_inputs(values: list[Any], grads: list[bool]) -> tuple[list[Any], list[Any]]:
    """The arguments as torch tensors where they were tensors in the parent (those needing a
    gradient made leaves that require one), and the list of those leaves."""
    import torch

    args, leaves = [], []
    for value, grad in zip(values, grads):
        if isinstance(value, dict) and set(value) == {TENSOR_KEY}:
            tensor = torch.from_numpy(value[TENSOR_KEY])
            if grad:
                tensor.requires_grad_(True)
                leaves.append(tensor)
            value = tensor
        args.append(value)
    return args, leaves


def op_torch_call(state: State, request: dict) -> dict:
    """A torch function (or a model's method with its params given first) run with autograd
    where a gradient is needed; its outputs, and a handle to the graph for torch_backward."""
    import torch

    args, leaves = _torch_inputs(request["args"], request["grad"])
    if "object" in request:
        model = state.objects[request["object"]]
        names = request["param_names"]
        for name, value in zip(names, args):
            model.params[name] = value
        what = f"{type(model).__name__}.{request['method']}"
        fn, args = getattr(model, request["method"]), args[len(names):]
    else:
        what = request["name"]
        fn = lookup(state, what)
    with torch.set_grad_enabled(bool(leaves)):
        result = run_user(state, what, fn, *args)
    if isinstance(result, float) and result == 0.0 or result is None:
        raise Failure("not implemented", f"{what} returns {result!r}, not a tensor")
    outputs = list(result) if isinstance(result, (tuple, list)) else [result]
    if not all(isinstance(o, torch.Tensor) for o in outputs):
        raise Failure("wrong forward", f"{what} returns {type(result).__name__}; the course's "
                      "returns torch tensors")
    handle = state.keep(state.graphs, (what, outputs, leaves)) if leaves else None
    return {"outputs": [o.detach().numpy() for o in outputs], "graph": handle}


def op_torch_backward(state: State, request: dict) -> dict:
    """The gradients of sum(output * grad) with respect to the leaves of a kept graph (None
    for a leaf no gradient reaches)."""
    import torch

    what, outputs, leaves = state.graphs[request["graph"]]
    pairs = [(o, torch.from_numpy(g)) for o, g in zip(outputs, request["grads"])
             if g is not None and o.requires_grad]
    if not pairs:
        raise Failure("wrong backward", f"no output of {what} depends on its inputs through "
                      "autograd (detached?)")
    grads = run_user(state, f"autograd through {what}", torch.autograd.grad,
                     [o for o, _ in pairs], leaves, [g for _, g in pairs], allow_unused=True)
    return {"grads": [None if g is None else g.detach().numpy() for g in grads]}


OPS: dict[str, Callable[[State, dict], Any]] = {
    "find": op_find, "call": op_call, "new": op_new, "loss": op_loss,
    "numeric": op_numeric,
    "torch_call": op_torch_call, "torch_backward": op_torch_backward,
}


# --- the loop -----------------------------------------------------------------------------


def _set_rng(request: dict) -> None:
    """The RNG states the parent sent (those that changed since the last request)."""
    if request.get("rng") is not None:
        keys, pos, has_gauss, cached = request["rng"]
        np.random.set_state(("MT19937", np.asarray(keys, dtype=np.uint32), int(pos),
                             int(has_gauss), float(cached)))
    if request.get("torch_rng") is not None:
        import torch

        torch.set_rng_state(torch.from_numpy(np.asarray(request["torch_rng"], dtype=np.uint8)))


def rng_state() -> dict:
    """numpy's global RNG state (and torch's, once torch is imported) as plain values."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {"rng": [keys, int(pos), int(has_gauss), float(cached)]}
    if "torch" in sys.modules:
        state["torch_rng"] = sys.modules["torch"].get_rng_state().numpy()
    return state


def _changed(before: dict, after: dict) -> dict:
    """The entries of the RNG state `after` that differ from `before`."""
    changed = {}
    for key, value in after.items():
        old = before.get(key)
        if key == "rng" and old is not None and old[1:] == value[1:] \
                and np.array_equal(old[0], value[0]):
            continue
        if key == "torch_rng" and old is not None and np.array_equal(old, value):
            continue
        changed[key] = value
    return changed


def answer(state: State, request: dict) -> dict:
    """The answer to one request (never raises), with the RNG states its code changed."""
    before: dict = {}
    try:
        _set_rng(request)
        before = rng_state()
        reply = {"ok": True, "result": OPS[request["op"]](state, request)}
    except Failure as failure:
        reply = {"ok": False, "kind": failure.kind, "detail": failure.detail,
                 "traceback": failure.trace}
    except Exception:  # noqa: BLE001 - reported to the parent, which raises it
        reply = {"ok": False, "kind": "internal", "detail": traceback.format_exc()}
    reply.update(_changed(before, rng_state()))
    return reply


def limit_memory(limit: int) -> None:
    """Address space: what is mapped now plus `limit` bytes (0: no limit)."""
    if limit <= 0:
        return
    mapped = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            mapped = int(line.split()[1]) * 1024
    total = mapped + limit
    resource.setrlimit(resource.RLIMIT_AS, (total, total))


def die_with_parent() -> None:
    """Linux: this worker is killed when the process that started it ends (a worker stuck in
    the user's infinite loop does not outlive a killed cvlab)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    from multiprocessing.connection import Connection

    fd, folder, limit, with_torch = (argv if argv is not None else sys.argv[1:])[:4]
    die_with_parent()
    faulthandler.enable(file=sys.stderr, all_threads=False)
    faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=False)
    if with_torch == "1":
        importlib.import_module("torch")
    limit_memory(int(limit))
    layout = find_layout(folder)
    os.chdir(layout.root)  # the notebooks run in the folder that holds cs231n/
    state, connection = State(layout), Connection(int(fd))
    while True:
        try:
            request = decode(connection.recv_bytes())
        except EOFError:
            return 0
        connection.send_bytes(_encoded(answer(state, request)))


def _encoded(reply: dict) -> bytes:
    """The reply's bytes; a reply that cannot be sent (an output too large for the address
    space left) is answered as the user's code having crashed."""
    try:
        return encode(reply)
    except (MemoryError, ValueError) as err:
        what = f"its answer could not be sent ({type(err).__name__}: {err})"
        return encode({"ok": False, "kind": "crashed", "detail": what, "traceback": ""})


if __name__ == "__main__":
    sys.exit(main())
