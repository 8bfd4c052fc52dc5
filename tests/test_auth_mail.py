"""Outgoing mail: STARTTLS verifies the SMTP server's certificate (a real local server
with a certificate from a test CA), a failed delivery tells the caller nothing, and a
box without SMTP says at start that reset links only go to the log."""

from __future__ import annotations

import ipaddress
import logging
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from litestar.testing import TestClient

from telentir_box.app import create_app
from telentir_box.config import load_config
from tests.auth_support import FAST_ENV, OWNER, Inbox, call, setup_owner, smtp_server
from tests.conftest import free_port


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, signing_key = issuer or (name, key)
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
    )
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    else:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(signing_key, hashes.SHA256())


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, ssl.SSLContext]:
    """A test CA (its certificate in the returned file) and a server context for
    127.0.0.1 with a certificate that CA signed."""
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("telentir-box test CA", ca_key, None)
    server = _certificate("127.0.0.1", server_key, (ca.subject, ca_key))
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "server.pem", tmp_path / "server.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return ca_file, context


@pytest.fixture
def tls_inbox(tls_files: tuple[Path, ssl.SSLContext]) -> Iterator[tuple[Inbox, int]]:
    port = free_port()
    with smtp_server(port, tls_context=tls_files[1], require_starttls=True) as inbox:
        yield inbox, port


@pytest.mark.parametrize("trusted", [True, False])
def test_mail_starttls_verifies_the_server_certificate(
    env: dict[str, str],
    data_dir: Path,
    tls_files: tuple[Path, ssl.SSLContext],
    tls_inbox: tuple[Inbox, int],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    trusted: bool,
) -> None:
    if trusted:
        # How an operator trusts a private CA: OpenSSL's default verify paths.
        monkeypatch.setenv("SSL_CERT_FILE", str(tls_files[0]))
    else:
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    smtp = {
        "TELENTIR_BOX_SMTP__HOST": "127.0.0.1",
        "TELENTIR_BOX_SMTP__PORT": str(tls_inbox[1]),
        "TELENTIR_BOX_SMTP__STARTTLS": "true",
    }
    config = load_config(environ={**env, **FAST_ENV, **smtp})
    with caplog.at_level(logging.ERROR), TestClient(create_app(config)) as client:
        setup_owner(client, data_dir)
        response = call(client, "POST", "/api/auth/password/forgot", json={"email": OWNER})
    # the same answer either way: a failed delivery must not reveal that the account exists
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    delivered = [m["To"] for m in tls_inbox[0].messages]
    failures = [r for r in caplog.records if r.getMessage() == "mail not sent"]
    if trusted:
        assert (delivered, failures) == ([OWNER], [])
    else:
        assert delivered == []
        assert len(failures) == 1
        assert "CERTIFICATE_VERIFY_FAILED" in failures[0].error  # type: ignore[attr-defined]


def test_mail_unconfigured_warns_at_start_and_logs_the_link(
    env: dict[str, str], data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = load_config(environ={**env, **FAST_ENV})
    with caplog.at_level(logging.WARNING), TestClient(create_app(config)) as client:
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("SMTP is not configured" in m and "production" in m for m in warnings)
        setup_owner(client, data_dir)
        response = call(client, "POST", "/api/auth/password/forgot", json={"email": OWNER})
        assert response.status_code == 200
    logged = [r for r in caplog.records if getattr(r, "to", None) == OWNER]
    assert len(logged) == 1
    assert "/reset-password?token=tbr_" in logged[0].body  # type: ignore[attr-defined]
