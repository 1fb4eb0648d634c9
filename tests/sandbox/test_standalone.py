"""What every emulator run alone (`python -m orbit.sandbox.<name>`) sets up."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from orbit.sandbox import standalone


@pytest.fixture
def restore_gc() -> Iterator[None]:
    callbacks = list(gc.callbacks)
    gc.disable()  # only the passes the test asks for
    yield
    gc.callbacks[:] = callbacks
    gc.unfreeze()
    gc.enable()


@pytest.mark.usefixtures("restore_gc")
def test_a_full_collection_freezes_what_survived_it() -> None:
    gc.unfreeze()
    standalone.freeze_survivors_of_full_collections()
    standalone.freeze_survivors_of_full_collections()  # installed once
    assert gc.callbacks.count(standalone._freeze_survivors) == 1
    kept = [{"message": n} for n in range(1000)]  # state the emulator keeps
    gc.collect(1)
    assert gc.get_freeze_count() == 0  # a young pass freezes nothing
    gc.collect()
    assert gc.get_freeze_count() >= len(kept)
    scanned = {id(o) for o in gc.get_objects()}
    assert not any(id(k) in scanned for k in kept)  # out of the collector's scans
