"""HTTPS for bench/clients.py: a throwaway CA and a hub certificate, and what the handshake was.

The certificate is what a self-hosted hub would have: ECDSA P-256 (certbot's default
key type, and the cheapest handshake of the common ones, so the Session's gain measured
with it is the smallest), issued for 127.0.0.1 by a CA the clients are given as
``verify=``. trustme makes both (a dev dependency).
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class Tls:
    """The CA file the clients trust, and the settings that make the server use its cert."""

    ca: Path
    env: dict[str, str]


def make_tls(workdir: Path) -> Tls:
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    tls_dir = workdir / "tls"
    tls_dir.mkdir(exist_ok=True)
    ca_file, cert, key = tls_dir / "ca.pem", tls_dir / "cert.pem", tls_dir / "key.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(key))
    env = {"TELEHUB_HTTP_TLS_CERT_FILE": str(cert), "TELEHUB_HTTP_TLS_KEY_FILE": str(key)}
    return Tls(ca_file, env)


def handshake(base: str, ca: Path) -> str:
    """What one connection to ``base`` negotiated, e.g. ``TLSv1.3 TLS_AES_256_GCM_SHA384``."""
    host, port = base.removeprefix("https://").rsplit(":", 1)
    context = ssl.create_default_context(cafile=ca)
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        cipher = tls.cipher()
        return f"{tls.version()} {cipher[0] if cipher else '?'}, ECDSA P-256 certificate"
