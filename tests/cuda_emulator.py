"""CUDA-graph capture emulated on the CPU, so that the captured-step code (lom/training/captured_steps.py) runs, unchanged, in every
CI run on a machine without a GPU.

`emulated_cuda_graphs()` patches what lom/training/captured_steps.py calls — `torch.cuda.CUDAGraph`, `graph`, `Stream`, `stream`,
`current_stream`, `synchronize` — with the classes below, lets capture happen on the CPU (`lom.training.captured_steps.can_capture`)
and lets capturable optimisers step there, as they do on a GPU. Then:

- capture (`with torch.cuda.graph(g)`) records every ATen op the step dispatches with the tensors it reads and
  writes, through a `TorchDispatchMode`. The ops run, so the Python of the step sees real values, but when capture
  ends every byte they changed in memory that existed before it is put back, and so is the state of every
  generator: like a real capture, it changes no parameter and draws no random number;
- `g.replay()` re-runs the recorded ops on the same tensors (a step's outputs are written into the tensors capture
  returned, its static memory), and random ops draw again from their generators, which advances them as a real
  replay advances registered generators;
- what a real capture refuses raises `CaptureRefused`: a read of a tensor's value on the host (`.item()`,
  `bool(tensor)`, `_local_scalar_dense`), an op whose output shape depends on data (`nonzero`, boolean indexing,
  `unique`), an op marked unsafe for CUDA graphs, a draw from a generator that was not registered with the graph
  (the default generator always is), and a synchronisation while capturing.

Run as a script, it runs `train.py` under emulation: `python tests/cuda_emulator.py train.py --device cpu ...`.
"""

from __future__ import annotations

import contextlib
import runpy
import sys
from typing import Any, Iterator
from unittest import mock

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

import lom.training.captured_steps

aten = torch.ops.aten
HOST_READS = (aten._local_scalar_dense.default, aten.is_nonzero.default, aten.equal.default)
INDEX_OPS = (aten.index.Tensor, aten.index_put.default, aten.index_put_.default)


class CaptureRefused(RuntimeError):
    """What a real CUDA graph capture would have refused."""


_capturing: list["EmulatedGraph"] = []  # the graph being captured, if any (captures do not nest)


def _written(func, args: tuple, kwargs: dict) -> list[torch.Tensor]:
    """The tensors an op writes into, from its schema's alias annotations (`Tensor(a!)`)."""
    out = []
    for i, arg in enumerate(func._schema.arguments):
        if arg.alias_info is None or not arg.alias_info.is_write:
            continue
        value = args[i] if i < len(args) else kwargs.get(arg.name)
        out += [t for t in tree_flatten(value)[0] if isinstance(t, torch.Tensor)]
    return out


def _aliases_an_input(func) -> bool:
    """Whether the op's outputs are views of (or the same tensors as) its inputs."""
    return any(ret.alias_info is not None for ret in func._schema.returns)


class _Recorder(TorchDispatchMode):
    def __init__(self, graph: "EmulatedGraph"):
        super().__init__()
        self.graph = graph

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self.graph.refuse_if_uncapturable(func, args, kwargs)
        for tensor in _written(func, args, kwargs):
            self.graph.keep_original(tensor)
        out = func(*args, **kwargs)
        self.graph.ops.append((func, args, kwargs, out))
        if not _aliases_an_input(func):
            for tensor in tree_flatten(out)[0]:
                if isinstance(tensor, torch.Tensor):
                    self.graph.made.add(tensor.untyped_storage().data_ptr())
        return out


class EmulatedGraph:
    """torch.cuda.CUDAGraph's interface, on the CPU (see the module docstring)."""

    def __init__(self, *args, **kwargs):
        self.ops: list[tuple[Any, tuple, dict, Any]] = []
        self.generators: list[torch.Generator] = [torch.default_generator]
        self.originals: dict[int, tuple[torch.UntypedStorage, torch.UntypedStorage]] = {}
        self.made: set[int] = set()  # storages allocated during capture
        self.generator_states: list[torch.Tensor] = []
        self.recorder: _Recorder | None = None

    def register_generator_state(self, generator: torch.Generator) -> None:
        self.generators.append(generator)

    # -- capture ------------------------------------------------------------------------------------------------
    def capture_begin(self, *args, **kwargs) -> None:
        if _capturing:
            raise CaptureRefused("a capture began inside another capture")
        _capturing.append(self)
        self.generator_states = [g.get_state() for g in self.generators]
        self.recorder = _Recorder(self)
        self.recorder.__enter__()

    def capture_end(self) -> None:
        try:
            self.recorder.__exit__(None, None, None)
        finally:
            for storage, original in self.originals.values():  # a real capture runs no kernel
                storage.copy_(original)
            for generator, state in zip(self.generators, self.generator_states):
                generator.set_state(state)
            self.originals.clear()
            _capturing.pop()

    def keep_original(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key not in self.made and key not in self.originals:
            self.originals[key] = (storage, storage.clone())

    def refuse_if_uncapturable(self, func, args: tuple, kwargs: dict) -> None:
        name = func.name()
        if func in HOST_READS or torch.Tag.data_dependent_output in func.tags:
            raise CaptureRefused(f"{name} reads a tensor's value on the host (.item(), bool(), int()) during capture")
        if torch.Tag.dynamic_output_shape in func.tags:
            raise CaptureRefused(f"{name}'s output shape depends on the data, which capture cannot record")
        if torch.Tag.cudagraph_unsafe in func.tags:
            raise CaptureRefused(f"{name} is not safe inside a CUDA graph")
        flat = tree_flatten((args, kwargs))[0]
        if func in INDEX_OPS and any(isinstance(t, torch.Tensor) and t.dtype in (torch.bool, torch.uint8)
                                     for t in tree_flatten(args[1])[0]):
            raise CaptureRefused(f"{name} with a boolean mask has an output shape that depends on the data")
        registered = {g._cdata for g in self.generators}  # dispatch hands ops new wrappers of the same generators
        for generator in (x for x in flat if isinstance(x, torch.Generator)):
            if generator._cdata not in registered:
                raise CaptureRefused(f"{name} draws from a generator that is not registered with the graph "
                                     "(graph.register_generator_state)")

    # -- replay -------------------------------------------------------------------------------------------------
    def replay(self) -> None:
        if _capturing:
            raise CaptureRefused("a graph was replayed during a capture")
        # The ops were recorded below autograd (its backward already among them): they replay there too.
        with torch._C._AutoDispatchBelowADInplaceOrView():
            for func, args, kwargs, out in self.ops:
                result = func(*args, **kwargs)
                if _aliases_an_input(func):
                    continue
                for static, fresh in zip(tree_flatten(out)[0], tree_flatten(result)[0]):
                    if isinstance(static, torch.Tensor):
                        static.copy_(fresh)


class EmulatedStream:
    """A CUDA stream on the CPU: work is already in order, so waiting is a no-op."""

    def __init__(self, *args, **kwargs):
        pass

    def wait_stream(self, stream) -> None:
        pass

    def synchronize(self) -> None:
        synchronize()


_DEFAULT_STREAM = EmulatedStream()


def synchronize(*args) -> None:
    if _capturing:
        raise CaptureRefused("torch.cuda.synchronize() during capture")


@contextlib.contextmanager
def graph(cuda_graph: EmulatedGraph, pool=None, stream=None, **kwargs) -> Iterator[None]:
    synchronize()
    cuda_graph.capture_begin()
    try:
        yield
    finally:
        cuda_graph.capture_end()


def _capturable_devices(supports_xla: bool = True) -> list[str]:
    return ["cuda", "cpu"]


@contextlib.contextmanager
def emulated_cuda_graphs() -> Iterator[None]:
    """While active, lom/training/captured_steps.py captures and replays steps on the CPU (see the module docstring)."""
    patches = [
        mock.patch.object(torch.cuda, "CUDAGraph", EmulatedGraph),
        mock.patch.object(torch.cuda, "graph", graph),
        mock.patch.object(torch.cuda, "Stream", EmulatedStream),
        mock.patch.object(torch.cuda, "stream", lambda stream=None: contextlib.nullcontext()),
        mock.patch.object(torch.cuda, "current_stream", lambda device=None: _DEFAULT_STREAM),
        mock.patch.object(torch.cuda, "synchronize", synchronize),
        mock.patch.object(lom.training.captured_steps, "can_capture", lambda device: True),
        # Capturable optimisers step on CUDA devices; here the CPU stands in for one.
        mock.patch("torch.optim.adam._get_capturable_supported_devices", _capturable_devices),
    ]
    with contextlib.ExitStack() as stack:
        for patch in patches:
            stack.enter_context(patch)
        yield


if __name__ == "__main__":
    script, sys.argv = sys.argv[1], sys.argv[1:]
    with emulated_cuda_graphs():
        runpy.run_path(script, run_name="__main__")
