"""Small immutable records without :mod:`dataclasses`, for the modules a cold start imports.

``import dataclasses`` imports :mod:`inspect`, and with it ``ast``, ``dis`` and ``tokenize``:
about 20 ms of every ``aws_signing_helper credential-process`` on a small machine, a tenth of
the whole command.

The rule: a record declared in a module that ``credential-process`` imports is a :class:`Value`;
every other record is a ``@dataclass`` (as a rule ``frozen=True, slots=True``).
Those modules are ``rolesanywhere.credentials``, ``.retry``, ``.errors``, ``.values``, the
``x509`` modules but ``diagnostics``, ``sigv4.canonical`` and the ``session`` modules but
``refresh`` (arn, endpoints, protocol, http11, transport, client): a record there is built on
every cold start, and one dataclass would put the import back. tests/test_package.py checks
that the command imports no ``dataclasses``. A module that leaves that path (or joins it)
changes idiom with it. A class that parses lazily, such as
:class:`~rolesanywhere.x509.identity.Identity`, may use plain ``__slots__`` instead.

A subclass lists its fields in ``__slots__`` (a base's fields come first) and writes a typed
``__init__`` that passes every field, in order, to ``super().__init__``. Instances are
read-only; equality, hashing, ``repr``, copying and pickling follow the fields.
"""

from __future__ import annotations

from operator import attrgetter

TYPE_CHECKING = False  # no typing import at run time: a cold start imports this module
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, ClassVar

__all__ = ["Value"]


class Value:
    """Base of an immutable record whose fields are its ``__slots__``."""

    __slots__ = ()
    #: Every field, the bases' first (computed for each subclass).
    _fields: ClassVar[tuple[str, ...]] = ()
    #: Fields that ``repr`` leaves out (secrets, bulky bytes).
    _hidden: ClassVar[frozenset[str]] = frozenset()
    #: Fields that equality and hashing ignore.
    _uncompared: ClassVar[frozenset[str]] = frozenset()
    _compared: ClassVar[tuple[str, ...]] = ()

    # The slots' own setters (they bypass __setattr__), and a getter of the compared fields.
    _setters: ClassVar[tuple[Callable[[object, object], None], ...]] = ()
    _key: ClassVar[staticmethod[[object], tuple[object, ...]]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("__slots__", ())
        cls._fields = cls._fields + ((own,) if isinstance(own, str) else tuple(own))
        cls._setters = tuple(getattr(cls, name).__set__ for name in cls._fields)
        # positional ``case Record(a, b)`` patterns
        type.__setattr__(cls, "__match_args__", cls._fields)
        compared = tuple(f for f in cls._fields if f not in cls._uncompared)
        cls._compared = compared
        getter = attrgetter(*compared) if compared else (lambda _: ())
        # attrgetter of one name returns the bare value: keep keys tuples. staticmethod: a
        # lambda would otherwise bind to the instance and an attrgetter would not.
        key = (lambda item: (getter(item),)) if len(compared) == 1 else getter
        cls._key = staticmethod(key)

    def __init__(self, *values: object) -> None:
        setters = self._setters
        if len(values) != len(setters):
            raise TypeError(f"{type(self).__name__} takes {len(setters)} values, got {len(values)}")
        for setter, value in zip(setters, values):  # noqa: B905 - lengths checked above
            setter(self, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only: cannot assign to {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only: cannot delete {name!r}")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Value)
        return self._key(self) == other._key(other)

    def __hash__(self) -> int:
        return hash((type(self), self._key(self)))

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={getattr(self, name)!r}" for name in self._fields if name not in self._hidden
        )
        return f"{type(self).__name__}({shown})"

    def __getstate__(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __setstate__(self, state: tuple[object, ...]) -> None:
        for setter, value in zip(self._setters, state, strict=True):
            setter(self, value)
