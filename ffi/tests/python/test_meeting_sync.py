"""Meeting sync through the generated bindings: two (or three) devices in one process, syncing
over QUIC on loopback. Every await is bounded in time; nothing leaves 127.0.0.1."""

import asyncio
import gc
import threading
import time

import pytest

from nabij_ffi import (
    CaseFilter,
    ChangeListener,
    NabijError,
    NewCase,
    NewNote,
    NoteKind,
    ProgressListener,
    RemovalReason,
    read_device_card,
)

LOOPBACK = "127.0.0.1:0"
# Generous for a loaded 2-core machine; a sync on loopback takes well under a second.
TIMEOUT = 30


def run(coro, timeout=TIMEOUT):
    """Runs one coroutine to completion on a fresh event loop, failing after `timeout` s."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def observation(text):
    return NewNote(kind=NoteKind.OBSERVATION, text=text)


class Progress(ProgressListener):
    """Records every progress report (called from a network thread for a listener)."""

    def __init__(self):
        self.calls = []
        self._lock = threading.Lock()

    def on_progress(self, progress):
        with self._lock:
            self.calls.append(progress)


class Boom(ProgressListener):
    def on_progress(self, progress):
        raise RuntimeError("progress listener bug")


@pytest.fixture
def network(open_device):
    """A holds a network that lists B (added by B's card) and a case with two notes in it."""
    a, b = open_device("a"), open_device("b")
    a.set_display_name("Anouk")
    b.set_display_name("Bram")
    net = a.create_network("Wijknetwerk Noord")
    b.join(a.invite_from_card(net, b.device_card()))
    case = a.create_case(NewCase(subject="Familie K.", networks=[net]))
    a.add_notes(
        case,
        [
            observation("Moeder wil hulp bij de administratie."),
            observation("De huurachterstand is nu drie maanden."),
        ],
    )
    return a, b, net, case


def timeline(device, case):
    return [n.text for n in device.case_timeline(case)]


async def meet_once(host, guest, net):
    """One meeting: `host` listens on loopback for `net`, `guest` syncs with its ticket."""
    listener = await host.listen(bind=LOOPBACK, network_id=net)
    try:
        return await guest.sync_with(listener.ticket())
    finally:
        await listener.stop()


# ---------------------------------------------------------------------------------------------
# Device cards


def test_device_card_names_the_device_and_its_member(open_device):
    b = open_device("b")
    b.set_display_name("Bram")
    card = b.device_card()
    assert card.startswith("nabijcard1")
    info = read_device_card(card)
    assert (info.device_key, info.member_id, info.name) == (b.device_key(), b.member_id(), "Bram")


def test_adding_by_card_puts_the_device_on_the_roster(network):
    a, b, net, _ = network
    members = {m.name: m for m in a.network(net).members}
    assert set(members) == {"Anouk", "Bram"}
    assert members["Bram"].id == b.member_id()
    assert members["Bram"].devices == [b.device_key()]


def test_bad_cards_are_invalid_input(network):
    a, b, net, _ = network
    card = b.device_card()
    for bad in ["", "hello", card[:-3], "nabij1" + card[len("nabijcard1") :]]:
        with pytest.raises(NabijError.InvalidInput):
            read_device_card(bad)
        with pytest.raises(NabijError.InvalidInput):
            a.add_member_from_card(net, bad)
    with pytest.raises(NabijError.InvalidInput, match="document id"):
        a.add_member_from_card("not an id", card)


# ---------------------------------------------------------------------------------------------
# Syncing


def test_two_devices_sync_both_ways_over_loopback(network):
    a, b, net, case = network
    served = Progress()
    pulled = Progress()

    async def scenario():
        listener = await a.listen(bind=LOOPBACK, network_id=net, progress=served)
        assert listener.is_listening()
        ticket = listener.ticket()
        assert ticket.startswith("nabij1")
        assert listener.local_port() > 0

        # B joins: it receives the roster, the case and its notes.
        first = await b.sync_with(ticket, progress=pulled)

        # B writes a note; the next sync brings it to A. A throwing progress listener does
        # not fail the sync.
        b.add_note(case, observation("Bram: moeder belt morgen de woningcorporatie."))
        second = await b.sync_with(ticket, progress=Boom())

        # Nothing changed since: the third sync only compares digests.
        third = await b.sync_with(ticket)

        await listener.stop()
        assert not listener.is_listening()
        await listener.stop()  # harmless
        return first, second, third

    first, second, third = run(scenario())

    assert first.peer == a.device_key()
    assert first.documents_received >= 2, first  # the network's roster and the case
    assert first.bytes_received > 0 and first.bytes_sent > 0
    assert first.wire_bytes_received >= first.bytes_received
    assert first.wire_bytes_sent >= first.bytes_sent
    assert 0 <= first.duration_ms < TIMEOUT * 1000

    assert [n.name for n in b.list_networks()] == ["Wijknetwerk Noord"]
    assert b.case(case).subject == "Familie K."
    assert sorted(timeline(b, case)) == sorted(timeline(a, case))
    assert "De huurachterstand is nu drie maanden." in timeline(b, case)
    assert [c.id for c in b.list_cases(CaseFilter())] == [case]

    assert pulled.calls, "B's progress listener was not called"
    assert {p.peer for p in pulled.calls} == {a.device_key()}
    assert all(p.docs_done <= p.docs_total for p in pulled.calls)
    assert pulled.calls[-1].bytes_received > 0
    assert served.calls, "A's progress listener was not called"
    assert {p.peer for p in served.calls} == {b.device_key()}

    assert second.documents_sent >= 1, second
    assert "Bram: moeder belt morgen de woningcorporatie." in timeline(a, case)
    assert sorted(timeline(a, case)) == sorted(timeline(b, case))
    assert a.heads(case) == b.heads(case)

    assert (third.documents_sent, third.documents_received) == (0, 0), third


def test_a_device_not_on_the_roster_is_refused(network, open_device):
    a, _, net, case = network
    stranger = open_device("stranger")

    async def scenario():
        listener = await a.listen(bind=LOOPBACK, network_id=net)
        try:
            with pytest.raises(NabijError.Network, match="refused"):
                await stranger.sync_with(listener.ticket())
        finally:
            await listener.stop()

    run(scenario())
    assert stranger.list_networks() == []
    assert stranger.list_cases(CaseFilter()) == []


def test_bad_tickets_and_addresses_are_invalid_input(network):
    a, b, net, _ = network

    async def scenario():
        listener = await a.listen(bind=LOOPBACK)
        ticket = listener.ticket()
        changed = ticket[:-1] + ("2" if ticket[-1] != "2" else "3")
        try:
            for bad in ["", "hello", ticket[:-3], changed, b.device_card()]:
                with pytest.raises(NabijError.InvalidInput):
                    await b.sync_with(bad)
            for bad in ["", "127.0.0.1", "localhost:0", "127.0.0.1:99999"]:
                with pytest.raises(NabijError.InvalidInput, match="bind address"):
                    await a.listen(bind=bad)
            with pytest.raises(NabijError.InvalidInput, match="document id"):
                await a.listen(bind=LOOPBACK, network_id="not an id")
            # A port already taken cannot be listened on.
            with pytest.raises(NabijError.Network):
                await a.listen(bind=f"127.0.0.1:{listener.local_port()}")
        finally:
            await listener.stop()

    run(scenario())


def test_syncing_with_ones_own_ticket_is_a_network_error(network):
    a, *_ = network

    async def scenario():
        listener = await a.listen(bind=LOOPBACK)
        try:
            with pytest.raises(NabijError.Network, match="own"):
                await a.sync_with(listener.ticket())
        finally:
            await listener.stop()

    run(scenario())


def test_a_stopped_listener_is_not_reached(network):
    a, b, *_ = network

    async def scenario():
        listener = await a.listen(bind=LOOPBACK)
        ticket = listener.ticket()
        await listener.stop()
        # No answer on the port: a timeout after the handshake bound given, not a hang.
        started = time.monotonic()
        with pytest.raises(NabijError.Network):
            await b.sync_with(ticket, connect_timeout_ms=2000)
        return time.monotonic() - started

    elapsed = run(scenario())
    assert 1.5 < elapsed < 10, elapsed
    assert b.list_networks() == []


def test_dropping_the_listener_stops_listening(network):
    a, *_ = network

    async def listen_on(port):
        return await a.listen(bind=f"127.0.0.1:{port}")

    listener = run(listen_on(0))
    port = listener.local_port()
    with pytest.raises(NabijError.Network):
        run(listen_on(port))
    del listener
    gc.collect()
    # The socket is closed by the network thread shortly after the drop: the port is free.
    deadline = time.monotonic() + 10
    while True:
        try:
            again = run(listen_on(port))
            break
        except NabijError.Network:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    assert again.local_port() == port
    run(again.stop())


# ---------------------------------------------------------------------------------------------
# Invitations


def test_a_network_arrives_only_after_its_invitation_is_accepted(open_device):
    a, c = open_device("inviter"), open_device("newcomer")
    a.set_display_name("Anouk")
    net = a.create_network("Wijknetwerk Oost")
    a.create_case(NewCase(subject="Familie P.", networks=[net]))
    invitation = a.invite_from_card(net, c.device_card())
    assert invitation.startswith("nabijinvite1")
    info = c.read_invitation(invitation)
    assert (info.network, info.network_name, info.inviter_name) == (net, "Wijknetwerk Oost", "Anouk")

    async def sync_once():
        listener = await a.listen(bind=LOOPBACK, network_id=net)
        try:
            return await c.sync_with(listener.ticket())
        finally:
            await listener.stop()

    # On the roster but not accepted: the newcomer takes nothing (no one plants a network).
    report = run(sync_once())
    assert report.documents_received == 0
    assert c.list_networks() == []
    # Damaged, forged or someone else's invitations are invalid input.
    for bad in [invitation[:-3], invitation.replace("nabijinvite1", "nabij1"), "nabijinvite1xyz"]:
        with pytest.raises(NabijError.InvalidInput):
            c.join(bad)
    other = open_device("other")
    with pytest.raises(NabijError.InvalidInput):
        other.join(invitation)
    c.join(invitation)
    assert [p.network for p in c.pending_invitations()] == [net]
    report = run(sync_once())
    assert report.documents_received == 2
    assert [n.id for n in c.list_networks()] == [net]
    assert c.pending_invitations() == []


def test_a_removed_phone_wipes_the_network_when_it_meets_a_member(network):
    a, b, net, case = network

    async def sync_once():
        listener = await a.listen(bind=LOOPBACK, network_id=net)
        try:
            return await b.sync_with(listener.ticket())
        finally:
            await listener.stop()

    run(sync_once())
    assert [n.id for n in b.list_networks()] == [net]
    assert timeline(b, case) != []
    heard = []

    class Heard(ChangeListener):
        def on_change(self, doc_ids):
            heard.extend(doc_ids)

    sub = b.subscribe(Heard())
    a.remove_device(net, b.device_key(), RemovalReason.LOST)
    assert [r.device for r in a.network(net).removed] == [b.device_key()]
    # The phone meets the admin's device again: it is handed its removal, and wipes.
    report = run(sync_once())
    assert report.documents_received == 0
    assert b.list_networks() == []
    assert b.list_cases(CaseFilter()) == []
    assert b.search("administratie") == []
    assert net in heard and case in heard
    sub.cancel()


def test_withdrawn_consent_deletes_the_colleagues_copy_and_the_worker_keeps_it(network):
    from nabij_ffi import CaseUpdate, Consent, ConsentStatus

    a, b, net, case = network

    def consent(status):
        return CaseUpdate(
            consent=Consent(status=status, scope="Wijknetwerk Noord", date="2026-11-30")
        )

    run(meet_once(a, b, net))
    assert b.case(case).subject == "Familie K."
    # Only the case's worker (or an admin) may withdraw: Bram is neither.
    with pytest.raises(NabijError.NotAllowed):
        b.update_case(case, consent(ConsentStatus.WITHDRAWN))
    assert b.case(case).consent.status == ConsentStatus.UNKNOWN

    a.update_case(case, consent(ConsentStatus.WITHDRAWN))
    kept = a.case(case)
    assert kept.consent.status == ConsentStatus.WITHDRAWN and kept.networks == []
    assert "consent" in a.history(case)[-1].summary
    # While withdrawn, the case cannot be shared.
    with pytest.raises(NabijError.NotAllowed, match="consent"):
        a.update_case(case, CaseUpdate(share_with=[net]))

    run(meet_once(a, b, net))
    with pytest.raises(NabijError.NotFound):
        b.case(case)
    assert b.search("huurachterstand", 10) == []
    assert a.case(case).subject == "Familie K.", "the worker keeps the case"


def test_a_redacted_note_leaves_the_colleagues_copy_of_the_history(network):
    a, b, net, case = network
    note = a.add_note(case, observation("Buurman Vrijthoff hoorde geschreeuw."))
    run(meet_once(a, b, net))
    assert "Buurman Vrijthoff hoorde geschreeuw." in timeline(b, case)
    # Only the case's worker (or an admin) may redact: Bram is neither; a reason is required.
    with pytest.raises(NabijError.NotAllowed):
        b.redact_note(case, note, "De buurman hoorde geschreeuw.", "Naam van een buurman")
    with pytest.raises(NabijError.InvalidInput, match="reason"):
        a.redact_note(case, note, "De buurman hoorde geschreeuw.", " ")

    new = a.redact_note(case, note, "De buurman hoorde geschreeuw.", "Naam van een buurman")
    assert new != case
    with pytest.raises(NabijError.NotFound):
        a.case(case)
    assert "De buurman hoorde geschreeuw." in timeline(a, new)
    assert a.search("Vrijthoff", 10) == []

    run(meet_once(a, b, net))
    with pytest.raises(NabijError.NotFound):
        b.case(case)
    assert timeline(b, new) == timeline(a, new)
    assert b.search("Vrijthoff", 10) == []
