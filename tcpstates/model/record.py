"""Frozen records that cost nothing to define: the value classes of the commands run most.

``@dataclass`` writes each class's methods as source text and compiles them when its module is
imported: 0.8 ms for a small class, 1.8 ms for Socket, and 5 ms more to import dataclasses
itself (it loads inspect, ast, dis and tokenize). A listing loads about twenty-five record
classes: 25 ms before a socket is read, as long as reading 20,000 of them. A ``Record``
subclass is the same frozen, slotted value class, from methods compiled once, here, into this
module's .pyc; mypy sees a frozen dataclass (PEP 681's dataclass_transform).
tests/test_record.py holds Record to ``@dataclass(frozen=True, slots=True)`` on the same classes.

What it keeps of a frozen dataclass: the fields from the annotations, in order; defaults, and
``field(default_factory=...)``; ``__init__`` by position or keyword, with dataclasses' errors;
``__eq__`` and ``__hash__`` over the fields, against the same class only; ``__repr__``;
assignment refused; ``__match_args__``; copying and pickling; ``replace``, ``fields`` and
``as_dict`` instead of dataclasses' functions. What it leaves out: ``__post_init__``,
``init=False`` fields, ordering, and records deriving from records.

The modules on that path also spell ``TYPE_CHECKING = False`` instead of importing it: typing
costs 2 ms to load, and mypy reads any name TYPE_CHECKING as typing's.
"""

from __future__ import annotations

from operator import attrgetter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, ClassVar, TypeVar, dataclass_transform

    R = TypeVar("R", bound="Record")
    T = TypeVar("T")
else:

    def dataclass_transform(**_: object) -> Callable[[T], T]:
        return lambda cls: cls


class _Factory:
    """A default made afresh for each record (a mutable one): ``field``'s value."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], object]) -> None:
        self.make = make


def field(*, default_factory: Callable[[], T]) -> T:
    """A field whose default ``default_factory`` makes for each record, as dataclasses' is."""
    return _Factory(default_factory)  # type: ignore[return-value]


_TWIN = "__twin__"  # in a class body: a bulk constructor's twin, its slots given (see below)


class FrozenRecordError(AttributeError):
    """A record's field assigned to or deleted; an AttributeError, as dataclasses' is."""


class _RecordType(type):
    """Reads a record class's fields from its annotations and gives it slots for them."""

    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> _RecordType:
        if not bases or namespace.pop(_TWIN, False):  # Record itself, or a bulk constructor
            return super().__new__(mcs, name, bases, namespace)
        if bases != (Record,):
            raise TypeError(f"{name}: a record derives from Record alone")
        if "__annotations__" not in namespace and "__annotate__" in namespace:
            # Python 3.14 evaluates a class's annotations lazily, unless the module says
            # ``from __future__ import annotations`` (ours all do): fields would go unseen.
            raise TypeError(f"{name}: a record's module needs from __future__ import annotations")
        annotations = namespace.get("__annotations__", {})
        names = tuple(n for n, kind in annotations.items() if not _class_var(kind))
        defaults = {n: namespace.pop(n) for n in names if n in namespace}
        _check_order(name, names, defaults)
        namespace.update(__slots__=names, __match_args__=names)
        cls = super().__new__(mcs, name, bases, namespace)
        cls._fields, cls._defaults = names, defaults  # type: ignore[attr-defined]
        cls._getter = _getter(names)  # type: ignore[attr-defined]
        return cls


def _class_var(kind: object) -> bool:
    text = str(kind)  # a string under ``from __future__ import annotations``
    return text.startswith(("ClassVar", "typing.ClassVar"))


def _check_order(name: str, names: tuple[str, ...], defaults: dict[str, object]) -> None:
    """A field without a default after one with: dataclasses refuses it, and so do we."""
    seen_default = False
    for field_name in names:
        if field_name in defaults:
            seen_default = True
        elif seen_default:
            raise TypeError(f"{name}: non-default argument {field_name!r} follows default argument")


def _getter(names: tuple[str, ...]) -> Callable[[object], tuple[object, ...]]:
    """The fields' values as one tuple, read in C (attrgetter) where there are several."""
    if len(names) > 1:
        return attrgetter(*names)
    if names:
        one = attrgetter(names[0])
        return lambda record: (one(record),)
    return lambda record: ()


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
class Record(metaclass=_RecordType):
    """The base of a frozen record: declare fields as a dataclass does."""

    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]]
    _defaults: ClassVar[dict[str, object]]
    _getter: ClassVar[Callable[[object], tuple[object, ...]]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        names, defaults = self._fields, self._defaults
        if len(args) > len(names):
            raise TypeError(_call_error(self, f"takes {_takes(names, defaults)}", len(args)))
        put = object.__setattr__
        for name, value in zip(names, args):  # noqa: B905 - the rest are keywords
            put(self, name, value)
        missing = []
        for name in names[len(args) :]:
            if name in kwargs:
                value = kwargs.pop(name)
            elif name in defaults:
                value = defaults[name]
                if type(value) is _Factory:
                    value = value.make()
            else:
                missing.append(name)
                continue
            put(self, name, value)
        if missing:
            raise TypeError(_call_error(self, _missing(missing)))
        if kwargs:
            name = next(iter(kwargs))
            problem = (
                "multiple values for argument"
                if name in names
                else "an unexpected keyword argument"
            )
            raise TypeError(_call_error(self, f"got {problem} {name!r}"))

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenRecordError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenRecordError(f"cannot delete field {name!r}")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return _values(self) == _values(other)

    def __hash__(self) -> int:
        return hash(_values(self))

    def __repr__(self) -> str:
        shown = ", ".join(f"{n}={v!r}" for n, v in zip(self._fields, _values(self), strict=True))
        return f"{type(self).__qualname__}({shown})"

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:
        return type(self), _values(self)


def _call_error(record: Record, problem: str, given: int | None = None) -> str:
    """A wrong call's message, in Python's words for the __init__ a dataclass would have."""
    tail = "" if given is None else f" but {given + 1} were given"
    return f"{type(record).__name__}.__init__() {problem}{tail}"


def _takes(names: tuple[str, ...], defaults: dict[str, object]) -> str:
    most = len(names) + 1  # self too, as Python counts
    least = most - len(defaults)
    return (
        f"{most} positional arguments"
        if least == most
        else f"from {least} to {most} positional arguments"
    )


def _missing(names: list[str]) -> str:
    quoted = [repr(name) for name in names]
    listed = (
        quoted[0]
        if len(quoted) == 1
        else " and ".join([", ".join(quoted[:-1]) + ("," if len(quoted) > 2 else ""), quoted[-1]])
    )
    noun = "argument" if len(names) == 1 else "arguments"
    return f"missing {len(names)} required positional {noun}: {listed}"


def _values(record: Record) -> tuple[object, ...]:
    """The fields' values, in order: through the class, where the getter is no method."""
    return type(record)._getter(record)


def replace(record: R, **changes: Any) -> R:
    """A copy of ``record`` with ``changes``, as dataclasses.replace makes one."""
    return type(record)(**{**dict(zip(record._fields, _values(record), strict=True)), **changes})


def bulk_constructor(cls: type[R]) -> Callable[..., R]:
    """A constructor for records made by the 100,000, by position: the same frozen ``cls``,
    several times cheaper.

    ``Record.__init__`` reads each argument by name and sets it through ``object.__setattr__``:
    about 4 us for Socket's 23 fields, 0.4 s at 100,000 sockets. A mutable twin with the same
    slots sets them as plain attributes and turns itself into a ``cls`` by ``__class__``
    assignment, which Python allows between classes of one layout: under 1 us. Its
    ``__init__`` is the one piece of generated code here, compiled once (0.1 ms). What comes
    out is a frozen ``cls`` in every respect (tests/test_record.py holds it to ``cls``).
    """
    names, defaults = cls._fields, cls._defaults
    if any(type(value) is _Factory for value in defaults.values()):
        raise TypeError(f"{cls.__name__}: a bulk constructor makes no default afresh")
    lines = [f"def __init__(self, {', '.join(names)}):"]
    lines += [f"    self.{name} = {name}" for name in names]
    lines.append("    self.__class__ = cls")
    scope: dict[str, Any] = {"cls": cls}
    exec("\n".join(lines), scope)  # names are identifiers: a class's annotations
    init = scope["__init__"]
    init.__defaults__ = tuple(defaults[n] for n in names if n in defaults)
    # Both of object's: __setattr__ and __delattr__ share one C slot, and were either Record's,
    # every store would go through Python (2 us a Socket instead of 0.35).
    body = {
        "__slots__": names,
        "__init__": init,
        "__setattr__": object.__setattr__,
        "__delattr__": object.__delattr__,
        _TWIN: True,
    }
    return _RecordType(f"{cls.__name__}UnderConstruction", (Record,), body)


def fields(record: Record | type[Record]) -> tuple[str, ...]:
    """The names of a record's fields, in order."""
    return record._fields


def as_dict(record: Record) -> dict[str, Any]:
    """The fields by name, in order (their values as they are: not copied)."""
    return dict(zip(record._fields, _values(record), strict=True))
