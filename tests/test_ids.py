"""Ids: well-formed, unique, and ordered by creation time (what keeps SQLite's id
indexes appending at their end)."""

from __future__ import annotations

import time

from telentir_box.ids import is_valid_id, new_id


def test_new_ids_are_valid_and_distinct() -> None:
    ids = [new_id("obj") for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert all(is_valid_id(i, "obj") for i in ids)
    assert not any(is_valid_id(i, "key") for i in ids[:10])


def test_an_id_from_a_later_millisecond_sorts_after() -> None:
    earlier = new_id("obj")
    started = time.time_ns() // 1_000_000
    while time.time_ns() // 1_000_000 == started:
        pass
    later = new_id("obj")
    assert earlier < later


def test_malformed_ids_are_refused() -> None:
    for value in (
        "",
        "obj_",
        "obj_short",
        "OBJ_0123456789abcdef01",
        "obj_../../etc/passwd00",
        "obj_" + "a" * 65,
    ):
        assert not is_valid_id(value)
