"""Group commit: callers that arrive during a write are written together, each getting
its own result, and one bad item fails only its own caller."""

from __future__ import annotations

import threading
import time

import pytest

from store.group_commit import GroupCommit


class Ledger:
    """A write that takes a while (as a commit does) and remembers each group it got."""

    def __init__(self, refuse: str | None = None) -> None:
        self.groups: list[list[str]] = []
        self.refuse = refuse

    def write(self, items: list[str]) -> list[str]:
        time.sleep(0.01)
        if self.refuse in items:
            raise ValueError(f"refused {self.refuse}")
        self.groups.append(list(items))
        return [item.upper() for item in items]


def submit_together(commits: GroupCommit[str, str], items: list[str]) -> dict[str, object]:
    start = threading.Barrier(len(items))
    outcomes: dict[str, object] = {}

    def submit(item: str) -> None:
        start.wait()
        try:
            outcomes[item] = commits.submit(item)
        except ValueError as error:
            outcomes[item] = error

    pool = [threading.Thread(target=submit, args=(item,)) for item in items]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in pool), "a caller never returned"
    return outcomes


def test_callers_arriving_together_are_written_in_few_groups_each_with_its_own_result() -> None:
    ledger = Ledger()
    items = [f"item-{n}" for n in range(30)]
    outcomes = submit_together(GroupCommit(ledger.write), items)
    assert outcomes == {item: item.upper() for item in items}
    assert sorted(item for group in ledger.groups for item in group) == sorted(items)
    assert len(ledger.groups) < 10, ledger.groups


def test_one_bad_item_fails_only_its_caller() -> None:
    ledger = Ledger(refuse="item-7")
    items = [f"item-{n}" for n in range(20)]
    outcomes = submit_together(GroupCommit(ledger.write), items)
    failed = outcomes.pop("item-7")
    assert isinstance(failed, ValueError) and "item-7" in str(failed)
    assert outcomes == {item: item.upper() for item in items if item != "item-7"}
    written = [item for group in ledger.groups for item in group]
    assert sorted(written) == sorted(outcomes) and len(written) == len(set(written))


def test_a_lone_caller_is_written_at_once() -> None:
    ledger = Ledger()
    commits = GroupCommit(ledger.write)
    assert commits.submit("a") == "A"
    assert commits.submit("b") == "B"
    assert ledger.groups == [["a"], ["b"]]


def test_an_interrupted_write_releases_everyone_waiting_on_it() -> None:
    def interrupted(items: list[str]) -> list[str]:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        GroupCommit(interrupted).submit("a")
