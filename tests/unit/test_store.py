"""coordinator.store: the coordinator's durable epoch and taken ranges."""

import json
import os
import threading

import pytest

from coordinator import store as store_mod
from coordinator.__main__ import parse_args as coordinator_args
from coordinator.store import FILE, File, Memory, State, Store, StoreError, StoreFenced, TakenRange


def _doc(path) -> dict:
    with open(os.path.join(path, FILE)) as f:
        return json.load(f)


def test_epochs_and_ranges_survive_a_reopen(tmp_path):
    s = Store.open(str(tmp_path))
    assert s.begin_epoch() == 1
    s.add(2048, 512, "cma")
    s.add(1024, 1024, "offline")
    again = Store.open(str(tmp_path))
    assert again.ranges == [TakenRange(1024, 1024, "offline"), TakenRange(2048, 512, "cma")]
    assert again.begin_epoch() == 2
    again.remove(2048, 512)
    assert Store.open(str(tmp_path)).ranges == [TakenRange(1024, 1024, "offline")]
    assert _doc(tmp_path)["epoch"] == 2


def test_a_write_replaces_the_file_whole_and_leaves_no_temporary(tmp_path, monkeypatch):
    """The new file is written beside the old and renamed over it: a crash before the rename (here the
    rename fails) leaves the old file as it was."""
    s = Store.open(str(tmp_path))
    s.begin_epoch()
    s.add(0, 512, "cma")
    before = (tmp_path / FILE).read_bytes()

    def crash(src, dst):
        raise OSError("power lost")

    monkeypatch.setattr(store_mod.os, "replace", crash)
    with pytest.raises(OSError):
        s.add(512, 512, "cma")
    assert (tmp_path / FILE).read_bytes() == before
    monkeypatch.undo()
    assert Store.open(str(tmp_path)).ranges == [TakenRange(0, 512, "cma")]
    s.add(1024, 512, "cma")
    assert os.listdir(tmp_path) == [FILE]  # this process's temporary was written again and renamed


def test_every_write_is_fsynced_file_then_directory(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def fsync(fd):
        synced.append(os.path.isdir(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(store_mod.os, "fsync", fsync)
    Store.open(str(tmp_path)).begin_epoch()
    assert synced == [False, True]


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{not json",
        b'{"version": 2, "epoch": 1, "ranges": []}',
        b'{"version": 1, "epoch": -1, "ranges": []}',
        b'{"version": 1, "epoch": 1}',
        b'{"version": 1, "epoch": 1, "ranges": [{"start": 0, "nr_pages": 0, "owner": "cma"}]}',
        b'{"version": 1, "epoch": 1, "ranges": [{"start": 0, "nr_pages": 512, "owner": "cpu0"}]}',
    ],
)
def test_a_corrupt_file_is_an_error_never_a_reset(tmp_path, content):
    (tmp_path / FILE).write_bytes(content)
    with pytest.raises(StoreError, match="not a coordinator state file"):
        Store.open(str(tmp_path))
    assert (tmp_path / FILE).read_bytes() == content


def test_an_unusable_directory_is_a_clear_error(tmp_path, monkeypatch):
    with pytest.raises(StoreError, match="not a directory"):
        Store.open(str(tmp_path / "missing"))
    # Permission bits do not stop root (whom the tests run as here), so the refusal of a directory
    # this process may not write is shown with os.access answering as it does for other users.
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(StoreError, match="not writable"):
        Store.open(str(tmp_path))
    assert not (tmp_path / FILE).exists()


def test_a_coordinator_superseded_on_its_directory_changes_nothing(tmp_path):
    first = Store.open(str(tmp_path))
    first.begin_epoch()
    second = Store.open(str(tmp_path))
    assert second.begin_epoch() == 2
    with pytest.raises(StoreFenced, match="epoch 2 has started"):
        first.add(0, 512, "cma")
    assert _doc(tmp_path) == {"version": 1, "epoch": 2, "ranges": [], "dead": {}, "rebuilt": 0}


def test_a_change_and_a_new_epoch_on_one_directory_never_interleave(tmp_path, monkeypatch):
    """The first coordinator's add reads epoch 1, then the second begins epoch 2 before the add writes:
    without the directory's flock the add wrote epoch 1 back over 2 (and the second's start, from the
    ranges it had opened with, would have dropped the range). The second must wait for the write."""
    first = Store.open(str(tmp_path))
    first.begin_epoch()
    second = Store.open(str(tmp_path))  # opened before the range is taken
    began = threading.Event()
    other = threading.Thread(target=lambda: (second.begin_epoch(), began.set()))
    real_read = File.read

    def read(medium):
        value = real_read(medium)
        if threading.current_thread() is not other and not other.is_alive() and not began.is_set():
            other.start()  # the second begins between this read and the add's write
            began.wait(0.5)  # without the lock it is done well within this; with it, it waits for the write
        return value

    monkeypatch.setattr(File, "read", read)
    first.add(0, 512, "cma")
    other.join()
    assert _doc(tmp_path) == {
        "version": 1,
        "epoch": 2,
        "ranges": [{"start": 0, "nr_pages": 512, "owner": "cma"}],
        "dead": {},
        "rebuilt": 0,
    }
    assert second.ranges == [TakenRange(0, 512, "cma")]
    with pytest.raises(StoreFenced):
        first.add(512, 512, "cma")


def test_coordinators_sharing_one_memory_are_fenced_as_on_a_directory():
    """The virtual cluster's coordinators share a Memory as the wall ones share --state-dir."""
    disk = Memory()
    first = Store.on(disk)
    assert first.begin_epoch() == 1
    first.add(0, 512, "cma")
    second = Store.on(disk)
    assert second.begin_epoch() == 2 and second.ranges == [TakenRange(0, 512, "cma")]
    with pytest.raises(StoreFenced, match="epoch 2 has started"):
        first.add(512, 512, "cma")
    assert disk.read() == State(2, (TakenRange(0, 512, "cma"),))


def test_without_a_directory_the_store_is_in_memory(tmp_path):
    s = Store.open(None)
    assert s.begin_epoch() == 1
    s.add(0, 512, "cma")
    assert s.ranges == [TakenRange(0, 512, "cma")]
    assert Store.open(None).begin_epoch() == 1


def test_the_coordinator_refuses_a_bad_state_dir_at_start(tmp_path, capsys):
    """--state-dir is checked with the other flags: a missing directory or a damaged file is a usage
    error naming it, before anything serves."""
    with pytest.raises(SystemExit):
        coordinator_args(["--nodes", "2", "--state-dir", str(tmp_path / "missing")], environ={})
    assert "not a directory" in capsys.readouterr().err
    (tmp_path / FILE).write_text("{")
    with pytest.raises(SystemExit):
        coordinator_args(["--nodes", "2"], environ={"PCPSIM_STATE_DIR": str(tmp_path)})
    assert "not a coordinator state file" in capsys.readouterr().err
    (tmp_path / FILE).unlink()
    assert coordinator_args(["--nodes", "2", "--state-dir", str(tmp_path)], environ={}).store.epoch == 0


def test_a_cpu_declared_dead_is_known_to_every_later_coordinator_and_a_fenced_one_declares_none(tmp_path):
    """The last incarnation declared dead of each CPU survives the coordinator (sweep seed 1938: a new
    coordinator accepted a dead process's claim of pages the old one had given to another CPU)."""
    first = Store.open(str(tmp_path))
    first.begin_epoch()
    first.declare_dead(1, "aa")
    first.declare_dead(1, "bb")  # a later process of cpu1, declared dead in its turn
    first.declare_dead(3, "cc")
    assert _doc(tmp_path)["dead"] == {"1": "bb", "3": "cc"}
    second = Store.open(str(tmp_path))
    second.begin_epoch()
    assert second.declared_dead(1, "bb") and second.declared_dead(3, "cc")
    assert not second.declared_dead(1, "aa") and not second.declared_dead(2, "bb")
    with pytest.raises(StoreFenced):
        first.declare_dead(2, "dd")
    assert _doc(tmp_path)["dead"] == {"1": "bb", "3": "cc"}


def test_a_state_file_written_before_dead_was_kept_reads_as_none_declared_and_a_bad_one_is_refused(tmp_path):
    (tmp_path / "coordinator-state.json").write_text('{"version": 1, "epoch": 4, "ranges": []}')
    s = Store.open(str(tmp_path))
    assert s.epoch == 4 and s.dead == {}
    for bad in ('["x"]', '{"1": 7}', '{"one": "aa"}', '{"1": ""}'):
        (tmp_path / "coordinator-state.json").write_text(f'{{"version": 1, "epoch": 4, "ranges": [], "dead": {bad}}}')
        with pytest.raises(StoreError, match="not a coordinator state file"):
            Store.open(str(tmp_path))


def test_the_newest_epoch_that_rebuilt_its_zone_is_known_to_every_later_coordinator(tmp_path):
    """Sweep seed 4365: the epoch whose recovery ended survives it, so a later coordinator refuses a claim
    of holdings from an earlier epoch (Store.rebuilt_since). A fenced coordinator records nothing."""
    first = Store.open(str(tmp_path))
    first.begin_epoch()
    second = Store.open(str(tmp_path))
    second.begin_epoch()
    assert second.rebuilt_since(1) == 0  # no recovery has ended yet
    with pytest.raises(StoreFenced):
        first.rebuilt_zone()
    second.rebuilt_zone()
    assert _doc(tmp_path)["rebuilt"] == 2
    third = Store.open(str(tmp_path))
    third.begin_epoch()
    assert (third.rebuilt_since(1), third.rebuilt_since(2), third.rebuilt_since(3)) == (2, 0, 0)
    third.declare_dead(1, "aa")  # another change keeps it
    assert Store.open(str(tmp_path)).rebuilt == 2


def test_a_state_file_written_before_rebuilt_was_kept_reads_as_none_and_a_bad_one_is_refused(tmp_path):
    (tmp_path / FILE).write_text('{"version": 1, "epoch": 4, "ranges": [], "dead": {}}')
    assert Store.open(str(tmp_path)).rebuilt == 0
    for bad in ("-1", "5", "true", '"2"'):
        (tmp_path / FILE).write_text(f'{{"version": 1, "epoch": 4, "ranges": [], "dead": {{}}, "rebuilt": {bad}}}')
        with pytest.raises(StoreError, match="not a coordinator state file"):
            Store.open(str(tmp_path))
