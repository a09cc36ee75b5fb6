"""What both adapters read from a request head beyond its plain fields: the client's and the
server's address, the scheme, one header's value."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

from ._interface import Header

DEFAULT_PORTS = {"http": 80, "https": 443}


def header_value(headers: Sequence[Header], name: str) -> Optional[str]:
    """The first value of the header ``name`` (lowercase), or None."""
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def scheme(headers: Sequence[Header]) -> str:
    """``https`` when the hub says the client used TLS (``x-forwarded-proto``), else ``http``."""
    proto = header_value(headers, "x-forwarded-proto")
    if proto is not None and proto.split(",")[0].strip().lower() == "https":
        return "https"
    return "http"


def split_host_port(text: str) -> Tuple[str, Optional[int]]:
    """``"host:port"``, ``"[v6]:port"`` or either without the port, as (host, port or None).
    A port that is not a number counts as absent; IPv6 brackets are dropped."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return text, None
        host, rest = text[1:end], text[end + 1 :]
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:  # a bare IPv6 address, or no port
        host, port_text = text, ""
    return host, int(port_text) if port_text.isdigit() else None


def peer_address(peer: str) -> Optional[Tuple[str, int]]:
    """The client's (ip, port) from the request's ``peer``, or None if unknown."""
    if not peer:
        return None
    host, port = split_host_port(peer)
    return host, port if port is not None else 0


def server_address(headers: Sequence[Header], url_scheme: str) -> Tuple[str, int]:
    """The (name, port) the client addressed, from ``Host`` (port by scheme if absent);
    ``("localhost", port)`` for a request without one."""
    host = header_value(headers, "host")
    default_port = DEFAULT_PORTS.get(url_scheme, 80)
    if not host:
        return "localhost", default_port
    name, port = split_host_port(host.strip())
    return name or "localhost", port if port is not None else default_port
