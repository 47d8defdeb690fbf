"""Signed network membership through the generated bindings: roles, who may change them, and
removing a lost phone or a member. Devices in tmp_path exchange the network document with
export_document / merge_document, as they would after a meeting or a relay sync."""

import pytest

from nabij_ffi import (
    NabijError,
    RemovalReason,
    RemovedDevice,
    Role,
)


def send(src, dst, network):
    """`dst` merges `src`'s network document."""
    return dst.merge_document(src.export_document(network))


def roles(device, network):
    return {m.name: m.role for m in device.network(network).members}


def member(device, network, name):
    (m,) = [m for m in device.network(network).members if m.name == name]
    return m


@pytest.fixture
def network(open_device):
    """Anouk's device A made a network and added Bram's device B by card; B holds the network."""
    a, b = open_device("a"), open_device("b")
    a.set_display_name("Anouk")
    b.set_display_name("Bram")
    net = a.create_network("Wijknetwerk Noord")
    a.add_member_from_card(net, b.device_card())
    send(a, b, net)
    return a, b, net


def test_the_creator_is_admin_and_an_added_member_is_member(network):
    a, b, net = network
    assert roles(a, net) == {"Anouk": Role.ADMIN, "Bram": Role.MEMBER}
    assert member(a, net, "Anouk").devices == [a.device_key()]
    assert member(a, net, "Bram").id == b.member_id()
    assert a.network(net).removed == []
    # Every device resolves the same roles from the signed operations.
    assert b.network(net) == a.network(net)


def test_a_member_may_not_change_who_is_in_the_network(network, open_device):
    a, b, net = network
    c = open_device("c")
    before = b.heads(net)
    with pytest.raises(NabijError.NotAllowed, match="only an admin"):
        b.add_member_from_card(net, c.device_card())
    with pytest.raises(NabijError.NotAllowed):
        b.add_member(net, c.member_id(), "Cem", c.device_key())
    with pytest.raises(NabijError.NotAllowed):
        b.set_role(net, b.member_id(), Role.ADMIN)
    with pytest.raises(NabijError.NotAllowed):
        b.remove_device(net, a.device_key(), RemovalReason.COMPROMISED)
    with pytest.raises(NabijError.NotAllowed):
        b.remove_member(net, a.member_id(), RemovalReason.LEFT)
    # Nothing was written, and the error is a NabijError like the others.
    assert b.heads(net) == before
    assert roles(b, net) == {"Anouk": Role.ADMIN, "Bram": Role.MEMBER}
    assert issubclass(NabijError.NotAllowed, NabijError)
    # A device that holds the document without being on the roster may not either.
    send(a, c, net)
    with pytest.raises(NabijError.NotAllowed):
        c.add_member(net, c.member_id(), "Cem", c.device_key())


def test_an_admin_promotes_a_member_who_then_adds_someone(network, open_device):
    a, b, net = network
    c = open_device("c")
    c.set_display_name("Cem")
    a.set_role(net, b.member_id(), Role.ADMIN)
    assert roles(a, net)["Bram"] == Role.ADMIN
    send(a, b, net)
    assert roles(b, net)["Bram"] == Role.ADMIN

    b.add_member_from_card(net, c.device_card())
    send(b, a, net)
    send(b, c, net)
    for device in (a, b, c):
        assert roles(device, net) == {"Anouk": Role.ADMIN, "Bram": Role.ADMIN, "Cem": Role.MEMBER}
    assert member(a, net, "Cem").devices == [c.device_key()]

    # Setting the role a member has is a no-op; demoted again, Bram may no longer add.
    a.set_role(net, b.member_id(), Role.ADMIN)
    a.set_role(net, b.member_id(), Role.MEMBER)
    send(a, b, net)
    with pytest.raises(NabijError.NotAllowed):
        b.remove_device(net, c.device_key(), RemovalReason.LEFT)


def test_remove_device_lost_keeps_the_member(network, open_device):
    a, b, net = network
    # Bram's second phone, added to his member.
    phone = open_device("bram-phone")
    a.add_member(net, b.member_id(), "Bram", phone.device_key())
    assert sorted(member(a, net, "Bram").devices) == sorted([b.device_key(), phone.device_key()])

    a.remove_device(net, phone.device_key(), RemovalReason.LOST)
    n = a.network(net)
    assert n.removed == [RemovedDevice(device=phone.device_key(), reason=RemovalReason.LOST)]
    assert member(a, net, "Bram").devices == [b.device_key()]
    assert all(phone.device_key() not in m.devices for m in n.members)
    assert roles(a, net) == {"Anouk": Role.ADMIN, "Bram": Role.MEMBER}

    # Removing it again changes nothing (the first reason stays); an unknown device is not found.
    heads = a.heads(net)
    a.remove_device(net, phone.device_key(), RemovalReason.COMPROMISED)
    assert a.heads(net) == heads
    assert a.network(net).removed[0].reason == RemovalReason.LOST
    with pytest.raises(NabijError.NotFound):
        a.remove_device(net, open_device("elsewhere").device_key(), RemovalReason.LOST)
    with pytest.raises(NabijError.InvalidInput):
        a.remove_device(net, "not a key", RemovalReason.LOST)

    # The removal travels with the network document.
    send(a, b, net)
    assert b.network(net).removed == n.removed
    assert member(b, net, "Bram").devices == [b.device_key()]


def test_remove_member_removes_their_devices_with_the_reason(network, open_device):
    a, b, net = network
    phone = open_device("bram-phone")
    a.add_member(net, b.member_id(), "Bram", phone.device_key())

    a.remove_member(net, b.member_id(), RemovalReason.LEFT)
    n = a.network(net)
    assert [m.name for m in n.members] == ["Anouk"]
    assert sorted(n.removed, key=lambda r: r.device) == sorted(
        [
            RemovedDevice(device=b.device_key(), reason=RemovalReason.LEFT),
            RemovedDevice(device=phone.device_key(), reason=RemovalReason.LEFT),
        ],
        key=lambda r: r.device,
    )
    with pytest.raises(NabijError.NotFound, match="member"):
        a.remove_member(net, b.member_id(), RemovalReason.LEFT)
    with pytest.raises(NabijError.NotFound, match="member"):
        a.set_role(net, b.member_id(), Role.ADMIN)

    # Bram's device, once it holds the removal, sees itself removed and may change nothing.
    send(a, b, net)
    assert b.network(net) == n
    with pytest.raises(NabijError.NotAllowed):
        b.remove_member(net, a.member_id(), RemovalReason.LEFT)
