"""values.Value: read-only records whose fields are their __slots__."""

from __future__ import annotations

import copy
import pickle

import pytest

from rolesanywhere.values import Value


class Point(Value):
    __slots__ = ("x", "y")

    x: int
    y: int

    def __init__(self, x: int, y: int = 0) -> None:
        super().__init__(x, y)


class Labelled(Point):
    __slots__ = ("label", "secret", "note")
    _hidden = frozenset({"secret"})
    _uncompared = frozenset({"note"})

    label: str
    secret: str
    note: str

    def __init__(self, x: int, y: int, label: str, secret: str, note: str = "") -> None:
        Value.__init__(self, x, y, label, secret, note)


def test_fields_come_from_slots_base_first() -> None:
    assert Point._fields == ("x", "y")
    assert Labelled._fields == ("x", "y", "label", "secret", "note")
    item = Labelled(1, 2, "a", "s3cr3t", "n")
    assert (item.x, item.y, item.label, item.secret, item.note) == (1, 2, "a", "s3cr3t", "n")


def test_equality_and_hash_follow_the_compared_fields() -> None:
    assert Point(1, 2) == Point(1, 2)
    assert Point(1, 2) != Point(2, 1)
    assert hash(Point(1, 2)) == hash(Point(1, 2))
    assert len({Point(1, 2), Point(1, 2), Point(1, 3)}) == 2
    # "note" is not compared; "secret" is.
    assert Labelled(1, 2, "a", "s", "one") == Labelled(1, 2, "a", "s", "two")
    assert hash(Labelled(1, 2, "a", "s", "one")) == hash(Labelled(1, 2, "a", "s", "two"))
    assert Labelled(1, 2, "a", "s") != Labelled(1, 2, "a", "t")


def test_other_types_are_never_equal() -> None:
    assert Point(1, 2) != (1, 2)
    assert Point(1, 2) != Labelled(1, 2, "", "")
    assert Point(1, 2).__eq__((1, 2)) is NotImplemented


def test_repr_names_fields_and_hides_the_hidden_ones() -> None:
    assert repr(Point(1)) == "Point(x=1, y=0)"
    text = repr(Labelled(1, 2, "a", "s3cr3t", "n"))
    assert text == "Labelled(x=1, y=2, label='a', note='n')"
    assert "s3cr3t" not in text


def test_instances_are_read_only() -> None:
    item = Point(1, 2)
    with pytest.raises(AttributeError, match="read-only"):
        item.x = 5  # type: ignore[misc]
    with pytest.raises(AttributeError, match="read-only"):
        del item.y
    with pytest.raises(AttributeError):
        item.z = 1  # type: ignore[attr-defined]
    assert (item.x, item.y) == (1, 2)


def test_wrong_number_of_values_is_refused() -> None:
    with pytest.raises(TypeError, match="takes 2 values, got 3"):
        Value.__init__(Point.__new__(Point), 1, 2, 3)


def test_copy_and_pickle_keep_every_field() -> None:
    item = Labelled(1, 2, "a", "s", "n")
    pickled = pickle.loads(pickle.dumps(item))  # noqa: S301 - bytes made just above
    for clone in (copy.copy(item), copy.deepcopy(item), pickled):
        assert type(clone) is Labelled
        assert clone == item
        assert clone.note == "n"


class One(Value):
    __slots__ = ("only",)

    only: object

    def __init__(self, only: object) -> None:
        super().__init__(only)


def test_a_single_field_record_compares_by_that_field() -> None:
    assert One((1, 2)) == One((1, 2))
    assert One((1, 2)) != One((1,))
    assert One(1) != One((1,))  # the key is a tuple of fields, not the bare field
    assert hash(One("a")) == hash(One("a"))


def test_positional_match_patterns_follow_the_fields() -> None:
    match Labelled(1, 2, "a", "s"):
        case Labelled(x, y, label):
            assert (x, y, label) == (1, 2, "a")
        case _:  # pragma: no cover
            raise AssertionError("no match")
