"""Certificates for the HTTPS tests: a throwaway CA (trustme) and a hub certificate it signed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class TlsFiles:
    """PEM files in a temp dir: the CA to trust, and the server's certificate and key."""

    ca: Path
    cert: Path
    key: Path

    def settings(self) -> dict[str, object]:
        return {"http_tls_cert_file": self.cert, "http_tls_key_file": self.key}

    def env(self) -> dict[str, str]:
        return {
            "TELEHUB_HTTP_TLS_CERT_FILE": str(self.cert),
            "TELEHUB_HTTP_TLS_KEY_FILE": str(self.key),
        }


def make_tls_files(directory: Path, *names: str) -> TlsFiles:
    """A new CA, and a certificate for ``names`` (default 127.0.0.1 and localhost) it signed."""
    ca = trustme.CA()
    issued = ca.issue_cert(*(names or ("127.0.0.1", "localhost")))
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(
        ca=directory / "ca.pem", cert=directory / "cert.pem", key=directory / "key.pem"
    )
    ca.cert_pem.write_to_path(str(files.ca))
    # The chain (leaf, then any intermediates): what a server presents.
    files.cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(files.key))
    return files
