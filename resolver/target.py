"""Which URLs a node may send a request to on behalf of a client: pure, no I/O.

A recursive node fetches URLs that other nodes name (a secondary's registered URL, an
enterprise's ``nodeUrl``, a referral). Followed blindly, that is server-side request
forgery: an anonymous client makes the node call an internal service. So every node URL
is checked before it is asked anything::

    scheme        http or https only
    userinfo      none (no "user:pass@host")
    query, frag   none; the path is only a base path (the API paths are appended)
    host          an IP literal that is loopback, private, link-local, unspecified,
                  multicast or reserved (or the name "localhost") is refused unless
                  the node runs with --allow-private-nodes (the demo on 127.0.0.1 and
                  containers on a private network need it)

Host *names* other than ``localhost`` pass this check: what they resolve to is checked
when connecting, by :class:`resolver.address_guard.GuardedResolver`, which also defeats
DNS rebinding (the address checked is the address connected to).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_public_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether ``address`` is a global unicast address another node may have.

    >>> is_public_address(ipaddress.ip_address("203.0.113.9")), is_public_address(
    ...     ipaddress.ip_address("10.0.0.1"))
    (False, False)
    >>> is_public_address(ipaddress.ip_address("8.8.8.8"))
    True
    """
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return is_public_address(address.ipv4_mapped)
    return address.is_global and not address.is_multicast


@dataclass(frozen=True, slots=True)
class TargetPolicy:
    """Where node-to-node requests may go.

    >>> TargetPolicy().problem("http://127.0.0.1:8001")
    'its host is a loopback or private address (see --allow-private-nodes)'
    >>> TargetPolicy(allow_private=True).problem("http://127.0.0.1:8001") is None
    True
    """

    allow_private: bool = False

    def problem(self, url: str) -> str | None:
        """None if a node may be asked at ``url``, else why not (safe to show anyone:
        it says nothing the caller did not send)."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return "it is not a valid URL"
        if parts.scheme not in ("http", "https"):
            return "only http and https node URLs are followed"
        if parts.username is not None or parts.password is not None or "@" in parts.netloc:
            return "a node URL carries no user name or password"
        if parts.query or parts.fragment or "?" in url or "#" in url:
            return "a node URL has no query or fragment"
        host = parts.hostname
        if not host:
            return "a node URL names a host"
        if port == 0:
            return "a node URL has a valid port"
        if self.allow_private or self.host_allowed(host):
            return None
        # The host is not repeated: the URL may come from another node, and what a
        # client is told never carries another node's text.
        return "its host is a loopback or private address (see --allow-private-nodes)"

    def host_allowed(self, host: str) -> bool:
        """Whether ``host`` (a name or an IP literal) may be connected to, judged
        without resolving names."""
        if self.allow_private:
            return True
        name = host.strip("[]").rstrip(".").lower()
        if name in LOCAL_NAMES or name.endswith(".localhost"):
            return False
        try:
            address = ipaddress.ip_address(name.partition("%")[0])
        except ValueError:
            return True  # a name: checked on connecting (resolver.address_guard)
        return is_public_address(address)

    def address_allowed(self, address: str) -> bool:
        """Whether a resolved address may be connected to."""
        if self.allow_private:
            return True
        try:
            return is_public_address(ipaddress.ip_address(address.partition("%")[0]))
        except ValueError:
            return False
