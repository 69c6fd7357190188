"""TLS for the clients: what ``verify=`` means, and a refused certificate as its own error.

``verify`` has requests' meaning in every client (sync, async, live feeds):

- ``True`` (the default): the server's certificate must chain to a trusted CA
  (requests: certifi's bundle; aiohttp and websockets: the system's);
- a path: it must chain to the CA certificates in that PEM file (or directory
  of them, as ``openssl rehash`` leaves it), and only to them; for a hub with
  a self-signed certificate, that certificate itself;
- ``False``: no check at all. The connection is encrypted, but anyone on the
  way can stand in for the hub and read the tokens.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any

from telehub.client.errors import CertificateRejected

Verify = bool | str | os.PathLike[str]


def ssl_context(verify: Verify) -> ssl.SSLContext | None:
    """The context aiohttp and websockets take for ``verify``; None keeps their default.

    A path is read now, so a missing or unreadable CA bundle fails where the
    client is made (FileNotFoundError, ssl.SSLError), not at its first call.
    """
    if verify is True:
        return None
    if verify is False:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    path = Path(verify)
    if path.is_dir():
        return ssl.create_default_context(capath=path)
    if not path.is_file():
        raise FileNotFoundError(f"verify={os.fspath(verify)!r}: no such CA bundle")
    return ssl.create_default_context(cafile=path)


def aiohttp_ssl(verify: Verify) -> ssl.SSLContext | bool:
    """``verify`` as aiohttp's ``ssl=`` takes it (True: aiohttp's own checks)."""
    context = ssl_context(verify)
    return True if context is None else context


def requests_verify(verify: Verify) -> bool | str:
    """``verify`` as requests takes it, a path checked now as :func:`ssl_context` does."""
    if isinstance(verify, bool):
        return verify
    ssl_context(verify)
    return os.fspath(verify)


def rejected(exc: BaseException, what: str) -> CertificateRejected | None:
    """CertificateRejected if ``exc`` (requests', urllib3's or aiohttp's, however deeply
    they wrap it) is the server's certificate failing verification; else None."""
    found = _verification_error(exc, depth=0)
    if found is None:
        return None
    return CertificateRejected(what, getattr(found, "verify_message", None) or str(found))


def _verification_error(exc: Any, *, depth: int) -> ssl.SSLCertVerificationError | None:
    # aiohttp's error is an SSLCertVerificationError too, but carries OpenSSL's inside.
    certificate_error = getattr(exc, "certificate_error", None)
    if isinstance(certificate_error, ssl.SSLCertVerificationError):
        return certificate_error
    if isinstance(exc, ssl.SSLCertVerificationError):
        return exc
    if not isinstance(exc, BaseException) or depth > 6:
        return None
    # requests: SSLError(MaxRetryError(reason=urllib3 SSLError(SSLCertVerificationError)))
    inner = [*exc.args, getattr(exc, "reason", None), exc.__cause__, exc.__context__]
    for candidate in inner:
        if isinstance(candidate, BaseException):
            found = _verification_error(candidate, depth=depth + 1)
            if found is not None:
                return found
    return None
