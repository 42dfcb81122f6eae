"""Which share of the enrollment port a peer's connections count against."""

from __future__ import annotations

import pytest

from gpulab_pki.enrollment.limits import Admission, Limits, peer_host, share_of


@pytest.mark.parametrize(
    ("peername", "host", "share"),
    [
        (("203.0.113.7", 50000), "203.0.113.7", "203.0.113.7"),
        # An IPv4 client of a dual-stack socket is the same IPv4 address.
        (("::ffff:203.0.113.7", 50000, 0, 0), "203.0.113.7", "203.0.113.7"),
        # One IPv6 host commonly holds a whole /64: every address in it shares one count.
        (("2001:db8:1:2:aaaa::1", 50000, 0, 0), "2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        (("2001:db8:1:2:ffff:ffff:ffff:ffff", 50000, 0, 0), "2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        (("fe80::1%eth0", 50000, 0, 2), "fe80::1", "fe80::/64"),
        (None, "", ""),
    ],
)
def test_a_peer_counts_against_its_ipv4_address_or_its_ipv6_slash_64(peername: object, host: str, share: str) -> None:
    assert peer_host(peername) == host
    assert share_of(host) == share


def test_admission_counts_in_all_and_per_share_and_frees_on_release() -> None:
    admission = Admission(
        Limits(max_connections=3, max_connections_per_address=2, handshake_timeout_s=1, idle_timeout_s=1)
    )
    assert admission.admit("a")
    assert admission.admit("a")
    assert not admission.admit("a"), "one over the share"
    assert admission.admit("b")
    assert not admission.admit("c"), "one over the port"
    admission.release("a")
    assert admission.admit("a")
    assert admission.total == 3
