"""A custom model's compiled log-density as a C callback that nutpie calls without the GIL.

On the nutpie path a custom model's log-density and gradient are one PyTensor function
compiled by PyTensor's Numba backend (:func:`bayesgmm.sampling._compile_custom_functions`).
Called from Python (nutpie's public ``from_pyfunc`` interface) every evaluation takes the GIL,
so the chains run one at a time. This module wraps the *same compiled Numba function* in a
C callback (``numba.cfunc``, ``nogil``) with the signature of
:func:`bayesgmm._logdensity.c_callbacks`, which :mod:`bayesgmm._nutpie_private` hands to
nutpie: the chains then run in parallel and no Python runs per evaluation.

Three things here are not promised by their libraries, so all are checked before use and
any failure becomes :class:`CallbackUnavailable`, on which the caller uses the public path
(the same function through ``from_pyfunc``; same values, same draws, tested):

- PyTensor's Numba linker keeps the compiled function as ``function.vm.jit_fn``, a Numba
  dispatcher taking the function graph's inputs as ``*args`` (ours: the point, the lifted
  constants, then the shared variables' values), with one compiled overload;
- the callback's arguments must have that overload's types exactly (checked: otherwise an
  error here, never a second, minute-long compilation of the model);
- the callback calls the overload's native function by its symbol, with Numba's calling
  convention, instead of linking its code (which would re-optimise and re-generate the whole
  model's machine code, about 5 s per process for the hierarchical example of
  ``bench/custom_model_speed.py``).

The constants (the observed data among them) travel in one byte buffer whose address nutpie
passes to the callback, so the callback's code does not depend on the data's values. The
callback is compiled in each process (a fraction of a second: the function it calls is
already compiled or loaded from PyTensor's cache).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

__all__ = ["CallbackUnavailable", "LogDensityCallback", "log_density_callback"]


class CallbackUnavailable(RuntimeError):
    """The compiled function cannot be wrapped in a C callback (set-up only)."""


@dataclass(frozen=True)
class LogDensityCallback:
    """C callbacks ``logp(dim, x, grad, logp, data)`` and ``expand(dim, n_out, x, out, data)``.

    ``user_data`` is the byte buffer whose address nutpie passes as ``data``; it must live as
    long as the callbacks are used (the nutpie model keeps a reference). ``expand`` copies the
    point (``n_out == dim``).
    """

    logp: Any
    expand: Any
    user_data: np.ndarray
    n_dim: int
    compiled: Any  # the compiled function the callback calls: kept alive with it


def _numba_helpers():
    import numba
    from numba import types
    from numba.extending import intrinsic

    @intrinsic
    def byte_offset(typingctx, ptr, offset):
        """``ptr + offset`` bytes, for a ``void *`` and an integer."""
        if ptr != types.voidptr or not isinstance(offset, types.Integer):
            return None

        def codegen(context, builder, signature, args):
            base, off = args
            return builder.gep(base, [off])

        return types.voidptr(types.voidptr, offset), codegen

    return numba, types, byte_offset


def _caller(compiled: Any):
    """An intrinsic ``call_compiled(args) -> (ok, result)`` calling ``compiled`` in place.

    ``compiled`` is a Numba compile result already in memory (``dispatcher.overloads[sig]``).
    The call goes to its native function by symbol, which Numba's JIT has loaded with it, so
    the callback does not link (re-optimise and re-generate) the whole model's code: about
    5 s per process for the hierarchical example. ``ok`` is False when the function raised
    (``result`` is then empty and must not be used).
    """
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    name = compiled.fndesc.mangled_name
    argtypes = compiled.fndesc.argtypes
    restype = compiled.signature.return_type

    # the function takes its inputs as one tuple (PyTensor's cached ``*args`` wrapper) or one
    # by one (a function PyTensor does not cache): the callback always passes one tuple
    packed = len(argtypes) == 1 and isinstance(argtypes[0], types.BaseTuple)

    @intrinsic
    def call_compiled(typingctx, args):
        if not isinstance(args, types.BaseTuple):
            return None
        if (args,) != tuple(argtypes) and tuple(args) != tuple(argtypes):
            return None

        def codegen(context, builder, signature, llargs):
            (tup,) = llargs
            values = (
                [tup] if packed else [builder.extract_value(tup, i) for i in range(len(argtypes))]
            )
            fnty = context.call_conv.get_function_type(restype, argtypes)
            fn = cgutils.get_or_insert_function(builder.module, fnty, name)
            status, out = context.call_conv.call_function(builder, fn, restype, argtypes, values)
            ok = builder.not_(status.is_error)
            # on an error the result is not a value: hand back nulls (which release nothing)
            value = builder.select(ok, out, cgutils.get_null_value(out.type))
            return context.make_tuple(builder, signature.return_type, [ok, value])

        return types.Tuple([types.boolean, restype])(args), codegen

    return call_compiled


def _copy_point(dim, n_out, x_ptr, out_ptr, data_ptr):  # pragma: no cover - compiled
    if n_out != dim:
        return 1
    for i in range(dim):
        out_ptr[i] = x_ptr[i]
    return 0


@cache
def _expand_callback():
    """The expansion callback: it copies the point (one for every model; cached on disk)."""
    numba, types, _ = _numba_helpers()
    f64p = types.CPointer(types.float64)
    sig = types.int64(types.uint64, types.uint64, f64p, f64p, types.voidptr)
    return numba.cfunc(sig, nogil=True, cache=True)(_copy_point)


def _pack(arrays: list[np.ndarray]) -> tuple[np.ndarray, list[int]]:
    """One 8-byte-aligned byte buffer holding ``arrays`` (C order) and their offsets."""
    offsets, pos = [], 0
    for a in arrays:
        offsets.append(pos)
        pos += (a.nbytes + 7) // 8 * 8
    buf = np.zeros(max(pos, 8) // 8, dtype=np.float64).view(np.uint8)  # 8-byte aligned
    for a, off in zip(arrays, offsets, strict=True):
        buf[off : off + a.nbytes] = np.ascontiguousarray(a).view(np.uint8).ravel()
    return buf, offsets


def log_density_callback(function: Any, constants: list[np.ndarray], n_dim: int):
    """C callbacks of a compiled PyTensor function ``(x, *constants) -> (logp, grad)``.

    Parameters
    ----------
    function : pytensor.compile.function.types.Function
        Compiled with the Numba backend and called once (so its Numba function is compiled
        or loaded); its inputs are the flat point ``x`` (float64, length ``n_dim``) and
        ``constants``; the graph may also read shared variables (their current values are
        used).
    constants : list of ndarray
        The values of the function's inputs after ``x``, in order; each must be a writeable
        C-contiguous array (the compiled signature is that of such arrays).
    n_dim : int

    Raises
    ------
    CallbackUnavailable
        If PyTensor's or Numba's internals are not the ones this was written for, or the
        compiled signature is not the one the callback would call.
    """
    try:
        numba, types, byte_offset = _numba_helpers()
        jit_fn = function.vm.jit_fn
        cells = function.vm.inputs
        signatures = list(jit_fn.signatures)
    except (ImportError, AttributeError, TypeError) as exc:
        raise CallbackUnavailable(f"{type(exc).__name__}: {exc}") from exc
    n_const = len(constants)
    if len(cells) < 1 + n_const or len(signatures) != 1:
        raise CallbackUnavailable(
            f"the compiled function has {len(cells)} inputs and {len(signatures)} compiled "
            f"signatures; expected at least {1 + n_const} and one"
        )
    # inputs after the constants: shared variables (PyMC's dim lengths), fixed for this model
    shared = []
    for cell in cells[1 + n_const :]:
        if cell[0] is None:
            raise CallbackUnavailable("an input of the compiled function has no value")
        shared.append(np.array(cell[0], copy=True))
    args = [np.asarray(c) for c in constants] + shared
    planned = types.Tuple(
        [types.Array(types.float64, 1, "C")]
        + [types.Array(numba.from_dtype(a.dtype), a.ndim, "C") for a in args]
    )
    compiled = signatures[0]
    if len(compiled) == 1 and isinstance(compiled[0], types.BaseTuple):
        compiled = compiled[0]  # PyTensor's cached wrapper takes *args: one tuple
    else:
        compiled = types.Tuple(list(compiled))
    if compiled != planned:
        raise CallbackUnavailable(
            f"the compiled signature {compiled} is not the callback's arguments {planned}"
        )
    user_data, offsets = _pack(args)
    lines = [
        "def logp_callback(dim, x_ptr, grad_ptr, logp_ptr, data_ptr):",
        f"    if dim != {n_dim}:",
        "        return 1",
        f"    x = numba.carray(x_ptr, ({n_dim},))",
    ]
    for i, (a, off) in enumerate(zip(args, offsets, strict=True)):
        lines.append(
            f"    a{i} = numba.carray(byte_offset(data_ptr, {off}), {tuple(a.shape)!r}, "
            f"np.{a.dtype.name})"
        )
    call = ", ".join(["x", *(f"a{i}" for i in range(len(args)))])
    lines += [
        f"    ok, out = call_compiled(({call},))",
        "    if not ok:",  # it raised (a numerical error inside the model): as nutpie does
        "        return 1",
        "    value = out[0][()]",
        "    grad_in = out[1]",
        f"    grad = numba.carray(grad_ptr, ({n_dim},))",
        "    finite = True",
        f"    for i in range({n_dim}):",
        "        grad[i] = grad_in[i]",
        "        if not np.isfinite(grad_in[i]):",
        "            finite = False",
        "    logp_ptr[0] = value",
        "    if not np.isfinite(value):",
        "        return 4",
        "    if not finite:",
        "        return 3",
        "    return 0",
    ]
    try:
        compiled_fn = jit_fn.overloads[signatures[0]]
        namespace: dict[str, Any] = {
            "numba": numba,
            "np": np,
            "call_compiled": _caller(compiled_fn),
            "byte_offset": byte_offset,
        }
    except (ImportError, AttributeError, KeyError, TypeError) as exc:
        raise CallbackUnavailable(f"{type(exc).__name__}: {exc}") from exc
    exec(compile("\n".join(lines), "<bayesgmm log-density callback>", "exec"), namespace)
    f64p = types.CPointer(types.float64)
    sig = types.int64(types.uint64, f64p, f64p, f64p, types.voidptr)
    try:
        logp = numba.cfunc(sig, nogil=True)(namespace["logp_callback"])
        expand = _expand_callback()
    except Exception as exc:  # typing or lowering failed: not the internals we know
        raise CallbackUnavailable(f"{type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
    return LogDensityCallback(
        logp=logp, expand=expand, user_data=user_data, n_dim=n_dim, compiled=compiled_fn
    )
