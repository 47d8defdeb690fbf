"""End-to-end tests of the generated Python bindings: every call goes through the cdylib."""

import gc
import threading

import pytest

from nabij_ffi import (
    CaimerText,
    CaseFilter,
    CaseItem,
    CaseStatus,
    CaseUpdate,
    ChangeListener,
    Consent,
    ConsentStatus,
    Device,
    DocKind,
    HitKind,
    LearningPointStatus,
    LearningPointUpdate,
    MeetingUpdate,
    NabijError,
    NewAgreement,
    NewCase,
    NewLearningPoint,
    NewMeeting,
    NewNote,
    NewPerspective,
    NoteKind,
    PerspectiveKind,
    caimer_fields,
)


def new_case(device, subject="Familie K.", **kw):
    return device.create_case(NewCase(subject=subject, **kw))


def team(a, b):
    """A network of `a` that `b` was invited to and holds: a device takes changes to a document
    only from devices of a network it is shared with."""
    net = a.create_network("Wijknetwerk")
    b.join(a.invite_from_card(net, b.device_card()))
    b.merge_document(a.export_document(net))
    return net


def observation(text):
    return NewNote(kind=NoteKind.OBSERVATION, text=text)


class Recorder(ChangeListener):
    """A listener that records every call."""

    def __init__(self):
        self.calls = []

    def on_change(self, doc_ids):
        self.calls.append(list(doc_ids))


# ---------------------------------------------------------------------------------------------
# Identity and persistence


def test_identity_and_display_name(device):
    assert len(device.device_key()) > 40
    assert len(device.member_id()) > 16
    assert device.display_name().startswith("device ")
    device.set_display_name("  Anna (wijkteam Noord) ")
    assert device.display_name() == "Anna (wijkteam Noord)"
    with pytest.raises(NabijError.InvalidInput, match="display name"):
        device.set_display_name("   ")
    assert device.display_name() == "Anna (wijkteam Noord)"


def test_reopen_keeps_identity_and_data(open_device, store_key):
    a = open_device("a")
    key, member = a.device_key(), a.member_id()
    a.set_display_name("Anna")
    case = new_case(a)
    path = a.path()
    del a
    gc.collect()
    again = Device.open(path, store_key)
    assert (again.device_key(), again.member_id(), again.display_name()) == (key, member, "Anna")
    assert again.case(case).subject == "Familie K."
    assert [(d.id, d.kind) for d in again.document_ids()] == [(case, DocKind.CASE)]
    assert again.kind_of(case) == DocKind.CASE
    assert again.reindex() == 1
    assert again.check_integrity() == []


# ---------------------------------------------------------------------------------------------
# Cases and notes


def test_create_case_add_and_edit_notes(device):
    device.set_display_name("Anna")
    case_id = new_case(
        device,
        tags=["Wonen", "schulden"],
        at_stake="Dreigende uithuiszetting",
        client_voice="Ik wil hier blijven wonen.",
    )
    case = device.case(case_id)
    assert case.id == case_id
    assert case.subject == "Familie K."
    assert case.status == CaseStatus.OPEN
    assert case.tags == ["schulden", "wonen"]
    assert case.at_stake == "Dreigende uithuiszetting"
    assert case.client_voice == "Ik wil hier blijven wonen."
    assert case.created_by.name == "Anna"
    assert case.created_by.device == device.device_key()
    assert case.created_by.member == device.member_id()
    assert case.created_at > 1_600_000_000_000
    assert case.conflicts == []
    assert case.consent.status == ConsentStatus.UNKNOWN

    note_id = device.add_note(case_id, observation("Huisbezoek: moeder is bezorgd over de huur."))
    note = device.note(case_id, note_id)
    assert (note.id, note.case_id, note.kind) == (note_id, case_id, NoteKind.OBSERVATION)
    assert note.author.name == "Anna"

    text = device.edit_note(case_id, note_id, "Huisbezoek: moeder is erg bezorgd over de huur.")
    assert text == "Huisbezoek: moeder is erg bezorgd over de huur."
    text = device.splice_note(case_id, note_id, 0, len("Huisbezoek"), "Telefonisch contact")
    assert text == "Telefonisch contact: moeder is erg bezorgd over de huur."
    assert device.note(case_id, note_id).text == text

    more = device.add_notes(
        case_id,
        [
            NewNote(kind=NoteKind.REFLECTION, text="Past de aanpak nog?"),
            NewNote(kind=NoteKind.QUESTION, text="Wie kent de woningcorporatie?"),
        ],
    )
    assert len(more) == 2
    timeline = device.case_timeline(case_id)
    assert [n.id for n in timeline][0] == note_id
    assert {n.id for n in timeline} == {note_id, *more}
    assert timeline[0].text == text

    device.update_case(
        case_id,
        CaseUpdate(
            status=CaseStatus.CLOSED,
            add_tags=["Werk"],
            remove_tags=["schulden"],
            caimer=[CaimerText(field="context", text="Krappe woningmarkt")],
            consent=Consent(status=ConsentStatus.GIVEN, scope="wijknetwerk", date="2024-03-01"),
        ),
    )
    case = device.case(case_id)
    assert case.status == CaseStatus.CLOSED
    assert case.tags == ["werk", "wonen"]
    assert case.caimer.context == "Krappe woningmarkt"
    assert case.consent == Consent(
        status=ConsentStatus.GIVEN, scope="wijknetwerk", date="2024-03-01"
    )
    assert "context" in caimer_fields()


def test_case_items_and_agreements(device):
    case_id = new_case(device)
    device.add_case_item(case_id, CaseItem.OPGAVE(text="Huurachterstand"))
    device.add_case_item(case_id, CaseItem.TURNING_POINT(when="2019", description="Verhuizing"))
    device.add_case_item(case_id, CaseItem.ACTOR(name="Oma", relation="grootmoeder"))
    agreement = device.add_case_item(
        case_id, CaseItem.AGREEMENT(text="Bel de corporatie", owner="Anna", due="2024-04-01")
    )
    case = device.case(case_id)
    assert [o.text for o in case.opgaven] == ["Huurachterstand"]
    assert [(t.when, t.description) for t in case.turning_points] == [("2019", "Verhuizing")]
    assert [(a.name, a.relation) for a in case.actors] == [("Oma", "grootmoeder")]
    assert [(a.id, a.done, a.due) for a in case.agreements] == [(agreement, False, "2024-04-01")]
    device.set_case_agreement_done(case_id, agreement, True)
    assert device.case(case_id).agreements[0].done is True
    with pytest.raises(NabijError.InvalidInput, match="due date"):
        device.add_case_item(case_id, CaseItem.AGREEMENT(text="x", owner="", due="2023-02-30"))


# ---------------------------------------------------------------------------------------------
# Queries


def test_queries_list_timeline_learning_points_meetings(device):
    net = device.create_network("Wijknetwerk Noord")
    other = device.create_network("Wijknetwerk Zuid")
    k = new_case(device, "Familie K.", tags=["wonen"], networks=[net])
    j = new_case(device, "Meneer J.", tags=["schulden"], networks=[other])
    device.add_note(k, observation("Eerste contact."))
    device.update_case(j, CaseUpdate(status=CaseStatus.CLOSED))

    # list_cases: newest activity first, and every filter.
    everything = device.list_cases(CaseFilter())
    assert {c.id for c in everything} == {k, j}
    assert everything[0].id == j  # closed last, so newest activity
    assert [c.id for c in device.list_cases(CaseFilter(status=CaseStatus.OPEN))] == [k]
    assert [c.id for c in device.list_cases(CaseFilter(tag="Schulden"))] == [j]
    assert [c.id for c in device.list_cases(CaseFilter(network=net))] == [k]
    assert [c.id for c in device.list_cases(CaseFilter(limit=1, offset=1))] == [k]
    summary = device.list_cases(CaseFilter(network=net))[0]
    assert (summary.subject, summary.note_count, summary.tags) == ("Familie K.", 1, ["wonen"])
    assert summary.has_conflicts is False

    # Learning points citing a case.
    lp = device.create_learning_point(
        NewLearningPoint(
            title="Vroeg signaleren van huurachterstand",
            insight="Bel de corporatie voor de tweede maand.",
            cases=[k],
            sources=["Handreiking vroegsignalering"],
            tags=["wonen"],
        )
    )
    device.update_learning_point(
        lp,
        LearningPointUpdate(
            status=LearningPointStatus.DISCUSSED,
            add_perspectives=[
                NewPerspective(kind=PerspectiveKind.DISSENT, who="schuldhulp", text="Te laat.")
            ],
        ),
    )
    citing = device.learning_points_citing(k)
    assert [(c.id, c.case_count) for c in citing] == [(lp, 1)]
    assert device.learning_points_citing(j) == []
    assert [x.id for x in device.list_learning_points()] == [lp]
    assert [x.id for x in device.list_learning_points(status=LearningPointStatus.DISCUSSED)] == [lp]
    assert device.list_learning_points(status=LearningPointStatus.ADOPTED) == []
    assert [x.id for x in device.list_learning_points(tag="wonen")] == [lp]
    point = device.learning_point(lp)
    assert point.cases == [k]
    assert [s.text for s in point.sources] == ["Handreiking vroegsignalering"]
    assert [(p.kind, p.who) for p in point.perspectives] == [(PerspectiveKind.DISSENT, "schuldhulp")]

    # Meetings and their contents.
    meeting = device.create_meeting(
        NewMeeting(
            date="2024-05-01", network=net, place="Buurthuis", participants=["Anna"], agenda=[k, j]
        )
    )
    device.update_meeting(
        meeting,
        MeetingUpdate(
            minutes="Besproken: huurachterstand.",
            add_learning_points=[lp],
            add_agreements=[NewAgreement(text="Navragen bij corporatie", owner="Anna")],
        ),
    )
    contents = device.meeting_contents(meeting)
    assert contents.meeting.id == meeting
    assert contents.meeting.network == net
    assert [c.id for c in contents.agenda] == [k, j]
    assert [x.id for x in contents.learning_points] == [lp]
    assert [m.id for m in device.list_meetings()] == [meeting]
    m = device.meeting(meeting)
    assert (m.place, m.minutes, m.participants) == ("Buurthuis", "Besproken: huurachterstand.", ["Anna"])
    assert [a.text for a in m.agreements] == ["Navragen bij corporatie"]

    # Networks.
    names = [(n.name, n.member_count) for n in device.list_networks()]
    assert names == [("Wijknetwerk Noord", 1), ("Wijknetwerk Zuid", 1)]


def test_networks_and_members(open_device):
    a, b = open_device("a"), open_device("b")
    b.set_display_name("Bram")
    net = a.create_network("Wijknetwerk Noord")
    a.add_member(net, b.member_id(), "Bram", b.device_key())
    network = a.network(net)
    assert network.name == "Wijknetwerk Noord"
    members = {m.name: m for m in network.members}
    assert set(members) == {a.display_name(), "Bram"}
    assert members["Bram"].devices == [b.device_key()]
    assert members["Bram"].id == b.member_id()


def test_search_ranks_and_marks_snippets(device):
    k = new_case(device, "Familie K.")
    strong = device.add_note(
        k, observation("Huurachterstand loopt op. De huurachterstand is nu drie maanden.")
    )
    weak = device.add_note(
        k,
        observation(
            "Lang gesprek over school, werk, vrienden, de buurt, de hond en ook kort over "
            "de huurachterstand en wat verder nog speelt in het gezin deze weken."
        ),
    )
    device.add_note(k, observation("Niets over geld."))

    hits = device.search("huurachterstand")
    note_hits = [h for h in hits if h.kind == HitKind.NOTE]
    assert [h.note_id for h in note_hits] == [strong, weak]
    assert all(h.doc_id == k and h.title == "Familie K." for h in note_hits)
    assert "[Huurachterstand]" in note_hits[0].snippet or "[huurachterstand]" in note_hits[0].snippet
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    # The last word matches as a prefix; the limit applies.
    assert len(device.search("huurachter")) == len(hits)
    assert len(device.search("huurachterstand", 1)) == 1
    # Any text is a valid query, even FTS syntax.
    assert device.search('NEAR( "x OR') == []
    assert device.search("") == []
    # Case fields are found too.
    assert [h.kind for h in device.search("Familie")] == [HitKind.CASE]


# ---------------------------------------------------------------------------------------------
# Merging


def test_concurrent_edits_merge_both_ways(open_device):
    a, b = open_device("a"), open_device("b")
    a.set_display_name("Anna")
    b.set_display_name("Bram")
    case = new_case(a, networks=[team(a, b)])
    note = a.add_note(case, observation("Moeder wil hulp bij de administratie."))

    first = b.merge_document(a.export_document(case))
    assert (first.doc_id, first.kind, first.changed) == (case, DocKind.CASE, True)
    assert b.note(case, note).text == "Moeder wil hulp bij de administratie."
    assert b.merge_document(a.export_document(case)).changed is False

    # Both edit the same note while apart.
    a.edit_note(case, note, "Maandag: moeder wil hulp bij de administratie.")
    b.edit_note(case, note, "Moeder wil hulp bij de administratie en de huur.")

    # Exchange both ways.
    from_a, from_b = a.export_document(case), b.export_document(case)
    assert b.merge_document(from_a).changed is True
    assert a.merge_document(from_b).changed is True

    text_a, text_b = a.note(case, note).text, b.note(case, note).text
    assert text_a == text_b
    assert "Maandag:" in text_a and "en de huur" in text_a
    assert a.heads(case) == b.heads(case)
    # The derived tables followed the merge.
    assert [n.text for n in b.case_timeline(case)] == [text_a]
    assert b.search("huur")[0].doc_id == case
    devices = {e.device for e in a.history(case)}
    assert devices == {a.device_key(), b.device_key()}


def test_changes_since_and_merge_changes(open_device):
    a, b = open_device("a"), open_device("b")
    case = new_case(a, networks=[team(a, b)])
    b.merge_document(a.export_document(case))
    a.add_note(case, observation("Nieuw bericht."))
    delta = a.changes_since(case, b.heads(case))
    assert len(delta) < len(a.export_document(case))
    outcome = b.merge_changes(case, delta)
    assert outcome.changed is True
    assert [n.text for n in b.case_timeline(case)] == ["Nieuw bericht."]
    assert b.merge_changes(case, a.changes_since(case, b.heads(case))).changed is False
    with pytest.raises(NabijError.InvalidInput, match="change hash"):
        a.changes_since(case, ["not-hex"])


# ---------------------------------------------------------------------------------------------
# Errors


def test_invalid_input(device):
    with pytest.raises(NabijError.InvalidInput, match="subject is required"):
        device.create_case(NewCase(subject="   "))
    with pytest.raises(NabijError.InvalidInput, match="subject is too long"):
        device.create_case(NewCase(subject="x" * 201))
    case = new_case(device)
    with pytest.raises(NabijError.InvalidInput, match="note text is required"):
        device.add_note(case, observation(""))
    note = device.add_note(case, observation("kort"))
    with pytest.raises(NabijError.InvalidInput, match="outside a text"):
        device.splice_note(case, note, 10, 1, "x")
    with pytest.raises(NabijError.InvalidInput, match="CAIMeR"):
        device.update_case(case, CaseUpdate(caimer=[CaimerText(field="gossip", text="x")]))
    with pytest.raises(NabijError.InvalidInput, match="meeting date"):
        device.create_meeting(NewMeeting(date="1 mei"))
    # Nothing was written by the refused calls.
    assert [c.id for c in device.list_cases(CaseFilter())] == [case]
    assert [n.text for n in device.case_timeline(case)] == ["kort"]
    # All errors are NabijError, and Exceptions.
    assert issubclass(NabijError.InvalidInput, NabijError)
    assert issubclass(NabijError, Exception)


def test_malformed_ids_are_invalid_input(device):
    case = new_case(device)
    typo = case[:3] + ("a" if case[3] != "a" else "b") + case[4:]
    for bad in ["", "not an id", typo, device.device_key()]:
        with pytest.raises(NabijError.InvalidInput):
            device.case(bad)
    with pytest.raises(NabijError.InvalidInput, match="note id"):
        device.note(case, "0OIl")
    with pytest.raises(NabijError.InvalidInput):
        device.create_case(NewCase(subject="x", networks=["nope"]))
    with pytest.raises(NabijError.InvalidInput):
        device.list_cases(CaseFilter(network="nope"))
    with pytest.raises(NabijError.InvalidInput):
        device.add_member(case, "nope", "Bram", device.device_key())


def test_unknown_ids_are_not_found(open_device):
    a, b = open_device("a"), open_device("b")
    elsewhere = new_case(b)  # a valid id, of a case a does not hold
    with pytest.raises(NabijError.NotFound, match="not found"):
        a.case(elsewhere)
    with pytest.raises(NabijError.NotFound):
        a.case_timeline(elsewhere)
    with pytest.raises(NabijError.NotFound):
        a.add_note(elsewhere, observation("x"))
    with pytest.raises(NabijError.NotFound):
        a.export_document(elsewhere)
    with pytest.raises(NabijError.NotFound):
        a.meeting_contents(elsewhere)
    case = new_case(a)
    unknown_note = b.add_note(elsewhere, observation("x"))
    with pytest.raises(NabijError.NotFound, match="note"):
        a.note(case, unknown_note)
    with pytest.raises(NabijError.NotFound, match="note"):
        a.edit_note(case, unknown_note, "x")
    with pytest.raises(NabijError.NotFound, match="note"):
        a.splice_note(case, unknown_note, 0, 0, "x")
    # The id of another kind of document is bad input, not a missing document.
    net = a.create_network("Noord")
    with pytest.raises(NabijError.InvalidInput, match="not a case"):
        a.case(net)


def test_opening_a_non_sqlite_file_is_a_storage_error(tmp_path, store_key):
    path = tmp_path / "notes.txt"
    path.write_text("boodschappenlijst: melk, brood")
    with pytest.raises(NabijError.Storage, match="not a Nabij store"):
        Device.open(str(path), store_key)
    assert path.read_text() == "boodschappenlijst: melk, brood"
    with pytest.raises(NabijError.Storage):
        Device.open(str(tmp_path / "no-such-dir" / "x.sqlite"), store_key)


@pytest.mark.parametrize(
    "garbage",
    [b"", b"\x00", b"garbage bytes, not automerge", bytes(range(256)) * 4, b"\x85\x6f\x4a\x83" + b"\xff" * 64],
)
def test_merging_garbage_is_an_error_not_a_crash(open_device, garbage):
    a = open_device("a")
    case = new_case(a)
    with pytest.raises(NabijError) as raised:
        a.merge_document(garbage)
    assert isinstance(raised.value, NabijError.InvalidInput)
    before = a.heads(case)
    if garbage:
        with pytest.raises(NabijError.InvalidInput):
            a.merge_changes(case, garbage)
    else:
        assert a.merge_changes(case, garbage).changed is False  # no changes is no news
    assert a.heads(case) == before
    # The device still works and holds what it held.
    assert a.case(case).subject == "Familie K."
    assert a.check_integrity() == []


def test_merging_a_truncated_document_is_refused(open_device):
    a, b = open_device("a"), open_device("b")
    case = new_case(a, client_voice="Ik wil hier blijven wonen. " * 20)
    whole = a.export_document(case)
    with pytest.raises(NabijError.InvalidInput):
        b.merge_document(whole[: len(whole) // 2])
    assert b.document_ids() == []


# ---------------------------------------------------------------------------------------------
# Listeners


def test_listener_receives_changed_doc_ids_until_cancelled(open_device):
    a, b = open_device("a"), open_device("b")
    rec = Recorder()
    sub = a.subscribe(rec)
    assert sub.is_active()

    case = new_case(a)
    assert rec.calls == [[case]]
    a.add_note(case, observation("x"))
    assert rec.calls == [[case], [case]]
    # A refused write notifies nobody.
    with pytest.raises(NabijError.InvalidInput):
        a.add_note(case, observation(" "))
    assert len(rec.calls) == 2
    # A merge that brings something new notifies; one that brings nothing does not.
    net = team(b, a)
    assert rec.calls[-1] == [net]
    other = new_case(b, "Meneer J.", networks=[net])
    a.merge_document(b.export_document(other))
    assert rec.calls[-1] == [other]
    a.merge_document(b.export_document(other))
    assert len(rec.calls) == 4
    # A case no network shares is its writer's alone: another device takes none of it.
    private = new_case(b, "Alleen van B.")
    with pytest.raises(NabijError.InvalidInput, match="shared with no network held here"):
        a.merge_document(b.export_document(private))
    assert len(rec.calls) == 4

    sub.cancel()
    assert not sub.is_active()
    sub.cancel()  # twice is harmless
    a.add_note(case, observation("after cancel"))
    assert len(rec.calls) == 4


def test_dropping_the_subscription_unsubscribes(device):
    rec = Recorder()
    sub = device.subscribe(rec)
    case = new_case(device)
    assert rec.calls == [[case]]
    del sub
    gc.collect()
    device.add_note(case, observation("after drop"))
    assert rec.calls == [[case]]


def test_several_listeners_and_a_failing_one(device):
    class Boom(ChangeListener):
        def on_change(self, doc_ids):
            raise RuntimeError("listener bug")

    rec = Recorder()
    boom = device.subscribe(Boom())
    keep = device.subscribe(rec)
    # The failing listener neither fails the committed write nor stops the others.
    case = new_case(device)
    assert rec.calls == [[case]]
    assert device.case(case).subject == "Familie K."
    boom.cancel()
    keep.cancel()


def test_listener_may_query_the_device(device):
    seen = []

    class Reader(ChangeListener):
        def on_change(self, doc_ids):
            seen.extend(device.case(d).subject for d in doc_ids)

    sub = device.subscribe(Reader())
    new_case(device, "Familie K.")
    assert seen == ["Familie K."]
    sub.cancel()


def test_device_is_shared_across_threads(device):
    case = new_case(device)
    errors = []

    def worker(n):
        try:
            for i in range(10):
                device.add_note(case, observation(f"thread {n} note {i}"))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(device.case_timeline(case)) == 40
    assert device.list_cases(CaseFilter())[0].note_count == 40
