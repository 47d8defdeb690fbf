"""Encryption at rest through the bindings: open with the key from the platform keystore, a
wrong key is `WrongKey` and changes nothing, a plain store is encrypted in place, the key can
be changed, and the files hold none of the notes."""

import gc
import os
import stat

import pytest

from nabij_ffi import (
    CaseFilter,
    Device,
    NabijError,
    NewCase,
    NewNote,
    NoteKind,
    StoreState,
    encrypt_store,
    new_store_key,
    store_state,
)


def day(d):
    case = d.create_case(NewCase(subject="Familie Oudeweg"))
    d.add_note(case, NewNote(kind=NoteKind.OBSERVATION, text="De deurwaarder kwam dinsdag."))
    return case


def files_of(path):
    folder, name = os.path.split(path)
    return sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.startswith(name))


def contents(path):
    return {f: open(f, "rb").read() for f in files_of(path) if not f.endswith("-shm")}


def test_open_with_the_key_and_a_wrong_key_is_refused_untouched(tmp_path):
    path = str(tmp_path / "phone.sqlite")
    key = new_store_key()
    assert len(key) == 32 and key != new_store_key()
    assert store_state(path) == StoreState.ABSENT
    d = Device.open(path, key)
    assert d.is_encrypted()
    case = day(d)
    del d
    gc.collect()
    assert store_state(path) == StoreState.ENCRYPTED
    before = contents(path)
    with pytest.raises(NabijError.WrongKey):
        Device.open(path, new_store_key())
    with pytest.raises(NabijError.WrongKey):
        Device.open_unencrypted(path)
    assert contents(path) == before
    with pytest.raises(NabijError.InvalidInput, match="32 bytes"):
        Device.open(path, b"too short")
    again = Device.open(path, key)
    assert again.case(case).subject == "Familie Oudeweg"


def test_the_files_hold_no_note_and_are_owner_only(tmp_path):
    path = str(tmp_path / "phone.sqlite")
    d = Device.open(path, new_store_key())
    case = day(d)
    files = files_of(path)
    assert any(f.endswith("-wal") for f in files), files
    for f in files:
        data = open(f, "rb").read()
        for word in [b"deurwaarder", b"Oudeweg", case.encode()]:
            assert word not in data, (word, f)
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600, f


def test_a_plain_store_is_encrypted_in_place_and_the_key_can_change(tmp_path):
    path = str(tmp_path / "old.sqlite")
    plain = Device.open_unencrypted(path)
    assert not plain.is_encrypted()
    case = day(plain)
    assert store_state(path) == StoreState.PLAIN
    # Encrypting a store that is still open is refused, and the store still works.
    key = new_store_key()
    with pytest.raises(NabijError.Storage, match="open elsewhere"):
        encrypt_store(path, key)
    assert plain.case(case).subject == "Familie Oudeweg"
    del plain
    gc.collect()
    encrypt_store(path, key)
    encrypt_store(path, key)  # again: nothing to do
    assert store_state(path) == StoreState.ENCRYPTED
    d = Device.open(path, key)
    assert [n.text for n in d.case_timeline(case)] == ["De deurwaarder kwam dinsdag."]
    assert d.search("deurwaarder", 10)[0].doc_id == case

    new_key = new_store_key()
    d.rekey(new_key)
    d.add_note(case, NewNote(kind=NoteKind.OBSERVATION, text="Na de nieuwe sleutel."))
    del d
    gc.collect()
    with pytest.raises(NabijError.WrongKey):
        Device.open(path, key)
    assert len(Device.open(path, new_key).case_timeline(case)) == 2


def test_erasing_a_case_needs_a_reason_and_leaves_nothing(tmp_path, store_key):
    d = Device.open(str(tmp_path / "phone.sqlite"), store_key)
    case = day(d)
    with pytest.raises(NabijError.InvalidInput, match="reason"):
        d.erase(case, "  ")
    d.erase(case, "De cliënt vroeg erom")
    with pytest.raises(NabijError.NotFound):
        d.case(case)
    assert d.search("deurwaarder", 10) == []
    assert d.list_cases(CaseFilter()) == []
