"""The guards RestrictedPython's rewritten code calls, and the builtins a script gets.

RestrictedPython turns ``a.b`` into ``_getattr_(a, 'b')``, ``a.b = c`` and
``a[k] = c`` into ``_write_(a).b = c``, iteration into ``_getiter_(x)``, classes
into ``class X(metaclass=__metaclass__)``. This module supplies those names for
one handler step, plus the builtins the policy allows.

Attribute reads are allow-listed by the *exact* type of the object: API objects
expose only their public names, the script's own classes and plain values (str,
int, list, dict...) their non-private names, exceptions only ``args``, anything
else (functions, methods, frames, modules not allowed) nothing. Reaching for a
private or internal name (``_x``, ``__class__``, ``gi_frame``, ``f_back``,
``format``, ``mro``...) is a :class:`Violation`: it ends the step, and a script
cannot catch it (it derives from BaseException, which scripts cannot name, and
the step state remembers it even if a ``finally`` swallows it).
"""

from __future__ import annotations

import builtins
import operator
import re
import sys
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NoReturn

from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence

from callscript.sandbox.compiler import FORBIDDEN_ATTRIBUTES

SCRIPT_MODULE = "script"
_ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]{6,}")
_VALUE_TYPES = frozenset(
    {
        str, bytes, int, float, bool, complex, list, dict, set, frozenset, tuple, range, slice,
        type(None), type({}.keys()), type({}.values()), type({}.items()),
    }
)  # fmt: skip
_GENERATOR_NAMES = frozenset({"send", "close"})
_RE_TYPES = (re.Pattern, re.Match)
_INPLACE: Mapping[str, Callable[[Any, Any], Any]] = types.MappingProxyType(
    {
        "+=": operator.iadd, "-=": operator.isub, "*=": operator.imul, "/=": operator.itruediv,
        "//=": operator.ifloordiv, "%=": operator.imod, "**=": operator.ipow,
        "<<=": operator.ilshift, ">>=": operator.irshift, "&=": operator.iand,
        "|=": operator.ior, "^=": operator.ixor, "@=": operator.imatmul,
    }
)  # fmt: skip


class SandboxStop(BaseException):
    """Ends a handler step; scripts cannot catch it (see the module docstring)."""

    def __init__(self, message: str = "", line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


class Suspend(SandboxStop):
    """proxy() has no recorded outcome yet: the step ends here, Pending."""


class Violation(SandboxStop):
    """The script reached for something the sandbox forbids."""


class CpuExceeded(SandboxStop):
    """The step used its CPU budget."""


class StepState:
    """What every guard and API object of one step shares: the first stop, if any."""

    def __init__(self, script_name: str) -> None:
        self.script_name = script_name
        self.stopped: SandboxStop | None = None
        self.running = False

    def halt(self, stop: SandboxStop) -> NoReturn:
        """Record ``stop`` (the first one wins, except that running out of CPU
        always counts) and raise it."""
        if self.stopped is None or (
            isinstance(stop, CpuExceeded) and not isinstance(self.stopped, CpuExceeded)
        ):
            if stop.line is None:
                stop.line = self.script_line()
            self.stopped = stop
        raise self.stopped

    def check(self) -> None:
        """Raise the recorded stop again: after a stop the API answers nothing."""
        if self.stopped is not None:
            raise self.stopped

    def script_line(self) -> int | None:
        """The line of the innermost script frame on the stack."""
        frame: types.FrameType | None = sys._getframe(1)
        while frame is not None:
            if frame.f_code.co_filename == self.script_name:
                return frame.f_lineno
            frame = frame.f_back
        return None


class ScriptType(type):
    """The metaclass of every class a script defines (RestrictedPython's ``__metaclass__``).

    Marks the class as the script's own, and gives it a repr without a memory address.
    """

    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> ScriptType:
        namespace.setdefault("__repr__", _script_repr)
        return super().__new__(mcs, name, bases, namespace)


def _script_repr(self: object) -> str:
    return f"<{type(self).__name__} object>"


def scrub(text: str, hidden: Iterable[str] = ()) -> str:
    """Text that may leave the sandbox: no memory address, none of the ``hidden`` paths."""
    text = _ADDRESS_RE.sub("0x…", text)
    for path in hidden:
        if path and len(path) > 1:
            text = text.replace(path, "…")
    return text


def describe(obj: object) -> str:
    """A short name for ``obj`` in messages (never its repr)."""
    kind = type(obj)
    if kind is ScriptType or kind is type:
        return f"class {getattr(obj, '__name__', '?')}"
    return f"{kind.__name__!r} object"


class Guards:
    """The guard functions and builtins of one step.

    Args:
        state: the step's shared state.
        public: exact API type -> the attribute names a script may read.
        writable: exact API type -> a function wrapping an object for assignment.
        modules: importable module name -> module (already imported).
    """

    def __init__(
        self,
        state: StepState,
        public: Mapping[type, frozenset[str]],
        writable: Mapping[type, Callable[[Any], object]],
        modules: Mapping[str, types.ModuleType],
    ) -> None:
        self.state = state
        self.public = public
        self.writable = writable
        self.modules = modules

    def getattr(self, obj: object, name: object, *default: object) -> object:
        """``_getattr_`` and the ``getattr`` builtin."""
        if type(name) is not str:
            raise TypeError("an attribute name must be a string")
        if name.startswith("_") or name in FORBIDDEN_ATTRIBUTES:
            self.state.halt(Violation(f"access to attribute {name!r} is not allowed in scripts"))
        if not self.readable(obj, name):
            if default:
                return default[0]
            raise AttributeError(f"{describe(obj)} has no attribute {name!r} available to scripts")
        return getattr(obj, name, *default)

    def readable(self, obj: object, name: str) -> bool:
        """Whether a script may read ``obj.name`` (``name`` is already non-private)."""
        kind = type(obj)
        public = self.public.get(kind)
        if public is not None:
            return name in public
        if kind is ScriptType or type(kind) is ScriptType or kind in _VALUE_TYPES:
            return True
        if kind is type:
            return obj in _VALUE_TYPES
        if isinstance(obj, BaseException):
            return name == "args"
        if kind is types.GeneratorType:
            return name in _GENERATOR_NAMES
        if kind is types.ModuleType:
            # An allowed module's own names, but not the modules it imported (re.functools).
            allowed = self.modules.get(getattr(obj, "__name__", "")) is obj
            return allowed and type(getattr(obj, name, None)) is not types.ModuleType
        return isinstance(obj, _RE_TYPES) and bool(self.modules)

    def hasattr(self, obj: object, name: object) -> bool:
        """The ``hasattr`` builtin, through the same guard."""
        try:
            self.getattr(obj, name)
        except AttributeError:
            return False
        return True

    def write(self, obj: object) -> object:
        """``_write_``: the object an assignment ``obj.x = v`` / ``obj[k] = v`` goes to."""
        kind = type(obj)
        if kind is dict or kind is list or kind is ScriptType or type(kind) is ScriptType:
            return obj
        wrap = self.writable.get(kind)
        if wrap is not None:
            return wrap(obj)
        raise TypeError(f"a script cannot modify {describe(obj)}")

    def import_(
        self,
        name: str,
        globals: object = None,
        locals: object = None,
        fromlist: object = (),
        level: int = 0,
    ) -> types.ModuleType:
        """``__import__``: only the modules the policy allows, already loaded."""
        module = self.modules.get(name) if type(name) is str and level == 0 else None
        if module is None:
            self.state.halt(Violation(f"import of {name!r} is not allowed by the sandbox policy"))
        return module

    def repr(self, obj: object) -> str:
        """The ``repr`` builtin, without memory addresses."""
        return scrub(builtins.repr(obj))

    def globals(self, allowed: Iterable[str], api: Mapping[str, object]) -> dict[str, object]:
        """A fresh globals dict for one step: guards, allowed builtins, the API names."""
        chosen: dict[str, object] = {"None": None, "True": True, "False": False}
        for name in allowed:
            chosen[name] = getattr(builtins, name)
        chosen["getattr"] = self.getattr
        chosen["hasattr"] = self.hasattr
        chosen["repr"] = self.repr
        wanted = {*allowed, "None", "True", "False"}
        chosen = {name: value for name, value in chosen.items() if name in wanted}
        chosen.update(
            {
                "__build_class__": builtins.__build_class__,
                "__import__": self.import_,
                "_getattr_": self.getattr,
                "_getitem_": operator.getitem,
                "_getiter_": iter,
                "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
                "_unpack_sequence_": guarded_unpack_sequence,
                "_write_": self.write,
                "_inplacevar_": _inplacevar,
                "_apply_": _apply,
            }
        )
        out: dict[str, object] = {
            "__builtins__": chosen,
            "__metaclass__": ScriptType,
            "__name__": SCRIPT_MODULE,
        }
        out.update(api)
        return out


def _inplacevar(op: str, target: Any, value: Any) -> Any:
    return _INPLACE[op](target, value)


def _apply(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return func(*args, **kwargs)
