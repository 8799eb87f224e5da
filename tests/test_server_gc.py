"""A serving process hides its start-up objects from the garbage collector once its index is ready."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from hashsvc.server import freeze_startup_objects_when_ready


@dataclass
class FakeLive:
    """What the helper uses of a LiveIndex: its readiness and the listeners its tail loop calls."""

    ready: bool = False
    listeners: list[Callable[[], None]] = field(default_factory=list)

    def tail_once(self) -> None:
        for listener in self.listeners:
            listener()


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # other tests' garbage must stay collectable


@pytest.mark.usefixtures("unfrozen")
def test_nothing_is_frozen_while_the_index_loads_then_everything_alive_once_it_is_ready() -> None:
    live = FakeLive()
    freeze_startup_objects_when_ready(live)  # type: ignore[arg-type]
    live.tail_once()
    assert gc.get_freeze_count() == 0
    live.ready = True
    live.tail_once()
    frozen = gc.get_freeze_count()
    assert frozen > 1000  # the interpreter's and test run's objects, at least


@pytest.mark.usefixtures("unfrozen")
def test_it_freezes_only_once_so_objects_made_by_requests_stay_collectable() -> None:
    live = FakeLive(ready=True)
    freeze_startup_objects_when_ready(live)  # type: ignore[arg-type]
    live.tail_once()
    first = gc.get_freeze_count()
    made_by_requests = [[n] for n in range(5000)]
    live.tail_once()
    # Only a freeze adds to the count; frozen objects that other threads of this process release leave it (seen
    # in CI: 4 fewer). A second freeze would have added the 5,000 lists.
    assert gc.get_freeze_count() <= first
    assert made_by_requests  # alive across the second tail
