"""model/record.py: a Record is the frozen dataclass it stands for, on every record class we have.

Each Record subclass in the package is rebuilt as ``@dataclass(frozen=True, slots=True)`` from
the same annotations and defaults, and the two are held to one behaviour: construction by
position and keyword, the errors of a wrong call, equality, hashing, repr, assignment refused,
replace and copying; and each bulk constructor to the plain one.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import pickle
import pkgutil
from typing import Any

import pytest

import tcpstates
from tcpstates.model import record
from tcpstates.model.record import Record, as_dict, bulk_constructor, field, fields, replace


def _every_record() -> list[type[Record]]:
    for module in pkgutil.walk_packages(tcpstates.__path__, "tcpstates."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    return sorted(Record.__subclasses__(), key=lambda cls: cls.__module__ + cls.__qualname__)


RECORDS = [cls for cls in _every_record() if not cls.__name__.endswith("UnderConstruction")]


def _twin_dataclass(cls: type[Record]) -> Any:
    """``cls`` as the frozen dataclass it would be: same name, fields, defaults."""
    specs = []
    for name in fields(cls):
        default = cls._defaults.get(name, dataclasses.MISSING)
        if isinstance(default, record._Factory):
            specs.append((name, object, dataclasses.field(default_factory=default.make)))
        else:
            specs.append((name, object, dataclasses.field(default=default)))
    made = dataclasses.make_dataclass(cls.__name__, specs, frozen=True, slots=True)
    made.__qualname__ = cls.__qualname__
    return made


def _values(cls: type[Record], seed: int) -> list[object]:
    """A value for every field without a default: distinct per field and per seed."""
    return [f"{name}-{seed}" for name in fields(cls) if name not in cls._defaults]


def test_every_record_class_is_found() -> None:
    names = {cls.__name__ for cls in RECORDS}
    assert {"Socket", "Query", "Place", "Layout", "Output", "Summary", "TcpInfo"} <= names


@pytest.mark.parametrize("cls", RECORDS, ids=lambda cls: f"{cls.__module__}.{cls.__name__}")
def test_a_record_behaves_as_its_frozen_dataclass(cls: type[Record]) -> None:
    plain = _twin_dataclass(cls)
    assert fields(cls) == tuple(f.name for f in dataclasses.fields(plain))
    assert cls.__match_args__ == plain.__match_args__
    ours, theirs = cls(*_values(cls, 1)), plain(*_values(cls, 1))
    assert repr(ours) == repr(theirs)
    assert hash(ours) == hash(theirs)
    assert ours == cls(*_values(cls, 1)) and (ours != cls(*_values(cls, 2))) == bool(
        _values(cls, 1)
    )
    assert ours != theirs  # another class, as between two dataclasses
    assert as_dict(ours) == dataclasses.asdict(theirs) or _nested(ours)
    named = dict(zip(fields(cls), _values(cls, 3), strict=False))
    assert repr(cls(**named)) == repr(plain(**named))
    with pytest.raises(AttributeError):
        ours.anything = 1  # type: ignore[attr-defined]
    assert not hasattr(ours, "__dict__")
    assert copy.deepcopy(ours) == ours and pickle.loads(pickle.dumps(ours)) == ours


def _nested(value: Record) -> bool:
    """dataclasses.asdict copies nested values; as_dict keeps them: equal where it matters."""
    return any(isinstance(v, (list, dict, tuple)) for v in as_dict(value).values())


class Sample(Record):
    a: int
    b: str = "b"
    c: list[int] = field(default_factory=list)


@dataclasses.dataclass(frozen=True, slots=True)
class SampleDataclass:
    a: int
    b: str = "b"
    c: list[int] = dataclasses.field(default_factory=list)


@pytest.mark.parametrize(
    "args, kwargs",
    [((), {}), ((1, "x", [], 4), {}), ((1,), {"a": 2}), ((1,), {"z": 2}), ((), {"b": "x"})],
)
def test_a_wrong_call_fails_as_a_dataclass_does(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    with pytest.raises(TypeError) as ours:
        Sample(*args, **kwargs)
    with pytest.raises(TypeError) as theirs:
        SampleDataclass(*args, **kwargs)
    assert str(ours.value).split("() ", 1)[1] == str(theirs.value).split("() ", 1)[1]


def test_defaults_and_factories() -> None:
    one, two = Sample(1), Sample(1)
    assert one.c == [] and one.c is not two.c  # made afresh, as default_factory does
    assert replace(one, b="y") == Sample(1, "y") and replace(one, b="y").c is one.c
    with pytest.raises(TypeError):
        replace(one, z=1)
    with pytest.raises(AttributeError, match="cannot assign to field 'a'"):
        one.a = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del one.a  # type: ignore[misc]


def test_a_record_refuses_what_dataclasses_refuse() -> None:
    with pytest.raises(TypeError, match="non-default argument 'b' follows default argument"):

        class Wrong(Record):
            a: int = 0
            b: int

    with pytest.raises(TypeError, match="derives from Record alone"):

        class Derived(Sample):
            d: int = 0


@pytest.mark.parametrize(
    "cls",
    [
        cls
        for cls in RECORDS
        if not any(isinstance(v, record._Factory) for v in cls._defaults.values())
    ],
    ids=lambda c: c.__name__,
)
def test_a_bulk_constructor_makes_the_plain_record(cls: type[Record]) -> None:
    make = bulk_constructor(cls)
    values = _values(cls, 5)
    made = make(*values)
    assert type(made) is cls
    assert made == cls(*values) and repr(made) == repr(cls(*values))
    with pytest.raises(AttributeError):
        made.anything = 1  # type: ignore[attr-defined]
    every = [f"{name}!" for name in fields(cls)]
    assert make(*every) == cls(*every)
