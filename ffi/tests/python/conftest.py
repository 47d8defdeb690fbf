"""Fixtures for the binding tests: the generated `nabij_ffi` module and devices in tmp_path.

The module is looked up in $NABIJ_PYTHON_BINDINGS (set by ffi/test-bindings.sh), else in
<repo>/target/bindings/python. The directory must also hold libnabij_ffi.so (the generated
module loads the library from its own directory).
"""

import os
import pathlib
import sys

import pytest

_REPO = pathlib.Path(__file__).resolve().parents[3]
_BINDINGS = pathlib.Path(
    os.environ.get("NABIJ_PYTHON_BINDINGS", _REPO / "target" / "bindings" / "python")
)
sys.path.insert(0, str(_BINDINGS))

import nabij_ffi  # noqa: E402


@pytest.fixture
def nabij():
    """The generated module."""
    return nabij_ffi


# The key the tests' stores are encrypted with, as an app's are with the key it keeps in the
# Android Keystore or iOS Keychain. Fixed, so a test can reopen a store: never for a real app.
STORE_KEY = bytes(range(32))


@pytest.fixture
def store_key():
    """The tests' store key (32 bytes)."""
    return STORE_KEY


@pytest.fixture
def device(tmp_path):
    """A fresh device on its own encrypted store file."""
    return nabij_ffi.Device.open(str(tmp_path / "device.sqlite"), STORE_KEY)


@pytest.fixture
def open_device(tmp_path):
    """Opens a device on tmp_path/<name>.sqlite, encrypted (several devices, or a reopen)."""

    def open_(name):
        return nabij_ffi.Device.open(str(tmp_path / f"{name}.sqlite"), STORE_KEY)

    return open_
