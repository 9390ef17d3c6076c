"""Tests contact nothing but loopback (tests/conftest.py loopback_only, autouse)."""
import socket

import pytest
from conftest import NetworkContacted, is_loopback


def test_a_connection_to_another_host_fails_the_test():
    """The guard itself: loopback passes, anything else raises before any packet leaves."""
    assert is_loopback(("127.0.0.1", 80)) and is_loopback(("::1", 80, 0, 0)) and is_loopback("/tmp/x")
    assert not is_loopback(("93.184.216.34", 80)) and not is_loopback(("api.planet.com", 443))
    with socket.socket() as sock, pytest.raises(NetworkContacted):
        sock.connect(("203.0.113.1", 443))  # TEST-NET-3: never reached
