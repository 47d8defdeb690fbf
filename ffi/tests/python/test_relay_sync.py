"""Relay sync through the generated bindings: a real `nabij-relay` process on loopback, two
devices that never meet, a background sync loop, and bad keys. Every wait is bounded."""

import asyncio
import os
import pathlib
import subprocess
import threading

import pytest

from nabij_ffi import NabijError, NewCase, NewNote, NoteKind, ProgressListener, RelaySyncListener

TIMEOUT = 60
_REPO = pathlib.Path(__file__).resolve().parents[3]


def run(coro, timeout=TIMEOUT):
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture
def relay(tmp_path):
    """A relay process on 127.0.0.1 (the binary from $NABIJ_RELAY_BIN, set by
    ffi/test-bindings.sh); yields (address, key)."""
    binary = os.environ.get("NABIJ_RELAY_BIN", str(_REPO / "target" / "debug" / "nabij-relay"))
    assert os.path.exists(binary), f"{binary} missing: cargo build -p nabij-sync-server"
    log = open(tmp_path / "relay.log", "wb")
    proc = subprocess.Popen(
        [binary, "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "relay")],
        stdout=subprocess.PIPE,
        stderr=log,
    )
    try:
        words = proc.stdout.readline().decode().split()
        assert words[:3] == ["nabij", "relay", "listening"], words
        yield words[4], words[6]
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0, "the relay stops cleanly on SIGTERM"
        log.close()


class Progress(ProgressListener):
    def __init__(self):
        self.calls = []

    def on_progress(self, progress):
        self.calls.append(progress)


def test_two_devices_that_never_meet_converge_through_the_relay(open_device, relay):
    address, key = relay
    a, b = open_device("a"), open_device("b")
    net = a.create_network("Wijknetwerk Zuid")
    b.join(a.invite_from_card(net, b.device_card()))
    case = a.create_case(NewCase(subject="Familie D.", networks=[net]))
    a.add_note(case, NewNote(kind=NoteKind.OBSERVATION, text="Eerste huisbezoek"))

    progress = Progress()
    pushed = run(a.sync_with_relay(address, key, progress))
    assert pushed.blobs_pushed == 2 and pushed.rosters_registered == 1
    assert pushed.rejected == [] and pushed.refusals == []
    assert progress.calls and progress.calls[-1].peer == key

    pulled = run(b.sync_with_relay(address, key))
    assert pulled.documents_changed == 2
    assert (pulled.deferred, pulled.opened_later) == (0, 0), "every key was there"
    assert [n.text for n in b.case_timeline(case)] == ["Eerste huisbezoek"]

    b.add_note(case, NewNote(kind=NoteKind.OBSERVATION, text="Tweede huisbezoek"))
    run(b.sync_with_relay(address, key))
    back = run(a.sync_with_relay(address, key))
    assert back.documents_changed == 1 and back.blobs_pushed == 0
    assert [n.text for n in a.case_timeline(case)] == ["Eerste huisbezoek", "Tweede huisbezoek"]


def test_bad_and_wrong_relay_keys(device, relay):
    address, key = relay
    for bad in ["", "nabijrelay1", key[:-1], "nabij1abc"]:
        with pytest.raises(NabijError.InvalidInput):
            run(device.sync_with_relay(address, bad))
    # A well-formed key the relay does not hold: the handshake fails, nothing is sent.
    other = key[:-2] + ("2" if key[-2] != "2" else "3") + key[-1]
    try:
        run(device.sync_with_relay(address, other, None, 5000))
    except NabijError.InvalidInput:
        pass  # the changed character broke the checksum instead: also refused
    except NabijError.Network:
        pass
    else:
        pytest.fail("a relay with another key was trusted")


class Synced(RelaySyncListener):
    def __init__(self):
        self.reports = []
        self.errors = []
        self.pushed = threading.Event()

    def on_synced(self, report):
        self.reports.append(report)
        if report.blobs_pushed > 0:
            self.pushed.set()

    def on_failed(self, error):
        self.errors.append(error)


def test_the_background_loop_pushes_local_changes(open_device, relay):
    address, key = relay
    a, b = open_device("a"), open_device("b")
    net = a.create_network("Wijknetwerk West")
    b.join(a.invite_from_card(net, b.device_card()))
    listener = Synced()

    async def scenario():
        looped = await a.start_relay_sync(address, key, 3600, listener)
        # The first tick syncs at once; a change is pushed a moment after it settles.
        a.create_case(NewCase(subject="Meneer V.", networks=[net]))
        ok = await asyncio.get_running_loop().run_in_executor(None, listener.pushed.wait, 30)
        await looped.stop()
        return ok

    assert run(scenario()), f"nothing pushed: {listener.reports} {listener.errors}"
    pulled = run(b.sync_with_relay(address, key))
    assert pulled.documents_changed == 2
