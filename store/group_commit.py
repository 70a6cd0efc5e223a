"""Group commit: writers that arrive while a write is under way go together in the next one.

Why: a database commit costs about the same for one row as for a hundred (the lock, the
fsync), and writers of one chain take their turns one at a time. In an alert storm a
hundred activities of one worker append to the audit trail at once; written one by one,
the last waits for ninety-nine commits (a containment waited seconds for its record).
Written as groups, it waits for at most two: the one under way, then its own group's.

Each caller still returns only once its own item is written (or has failed), so nothing
is acknowledged before it is durable. Items keep their order of arrival.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


@dataclass
class _Turn(Generic[In, Out]):
    item: In
    done: bool = False
    result: Out | None = None
    error: BaseException | None = field(default=None)

    def succeed(self, result: Out) -> None:
        self.result, self.done = result, True

    def fail(self, error: BaseException) -> None:
        self.error, self.done = error, True

    def outcome(self) -> Out:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]  # set with done, error unset


class GroupCommit(Generic[In, Out]):
    """Calls ``write`` with every item submitted while the previous call ran; thread-safe.

    ``write`` gets the items in order of arrival and returns one result per item. If it
    fails for a group of several, each item is written again on its own, so one bad item
    fails only its own caller.
    """

    def __init__(self, write: Callable[[list[In]], list[Out]]) -> None:
        self._write = write
        self._changed = threading.Condition()
        self._waiting: list[_Turn[In, Out]] = []
        self._writing = False

    def submit(self, item: In) -> Out:
        """Write ``item`` (with whatever else is waiting) and return its result."""
        turn: _Turn[In, Out] = _Turn(item)
        with self._changed:
            self._waiting.append(turn)
            while self._writing and not turn.done:
                self._changed.wait()
            if turn.done:  # a writer took it along
                return turn.outcome()
            self._writing = True
            group, self._waiting = self._waiting, []
        try:
            self._write_group(group)
        except BaseException as error:  # interrupted: nobody in the group waits for ever
            for other in group:
                if not other.done:
                    other.fail(error)
            raise
        finally:
            with self._changed:
                self._writing = False
                self._changed.notify_all()
        return turn.outcome()

    def _write_group(self, group: list[_Turn[In, Out]]) -> None:
        try:
            results = self._write([turn.item for turn in group])
        except Exception as error:
            if len(group) == 1:
                group[0].fail(error)
                return
            for turn in group:
                self._write_alone(turn)
            return
        for turn, result in zip(group, results, strict=True):
            turn.succeed(result)

    def _write_alone(self, turn: _Turn[In, Out]) -> None:
        try:
            [result] = self._write([turn.item])
        except Exception as error:
            turn.fail(error)
        else:
            turn.succeed(result)
