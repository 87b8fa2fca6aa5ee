"""STARTTLS and credentials in clear (issue 17, point 8).

Real parts: pymap offering STARTTLS with a self-signed certificate made here (`cryptography`),
aiosmtpd requiring STARTTLS, both on loopback; the clients trust the certificate through
SSL_CERT_FILE, as a production host trusts its CA. "Another host" cannot be reached from a test:
the decision is tested as a plain function, and end to end with the host classification injected
(:attr:`baocao.mail.smtp.SmtpSettings.local`, :attr:`baocao.intake.inbox.ImapSettings.local`), never by a
setting that calls loopback remote.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import ssl
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from baocao.intake.inbox import ImapSettings, MailboxError, fetch_since
from baocao.mail.cleartext import verdict
from baocao.mail.mime import Mail
from baocao.mail.smtp import SmtpSettings, send_all_sync
from tests.support.servers import ImapServer, SmtpServer


def remote(_host: str) -> bool:
    """The classification of a host that is not this machine (injected: no test reaches one)."""
    return False


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 and localhost: (cert PEM path, key PEM path)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


@pytest.fixture
def trusted(certificate: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    monkeypatch.setenv("SSL_CERT_FILE", certificate[0])
    yield certificate


def mail(key: str) -> Mail:
    return Mail(key=key, sender="Sở Nội vụ <noreply@baocao.example>", to=("daumoi@nhichieu.example",),
                subject="Nhắc nộp báo cáo", text="Kính gửi đơn vị.")


def smtp(server: SmtpServer, **kw: object) -> SmtpSettings:
    values: dict[str, object] = dict(host="127.0.0.1", port=server.port, timeout=5.0, concurrency=1,
                                     max_attempts=2, backoff_base=0.01, backoff_max=0.05,
                                     username="baocao", password="mat-khau-smtp")
    values.update(kw)
    return SmtpSettings(**values)  # type: ignore[arg-type]


def imap(server: ImapServer, **kw: object) -> ImapSettings:
    values: dict[str, object] = dict(host="127.0.0.1", port=server.port, username=server.username,
                                     password=server.password, timeout=10)
    values.update(kw)
    return ImapSettings(**values)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ the decision
def test_credentials_in_clear_to_another_host_are_warned_about_or_refused() -> None:
    assert verdict("mail.example.vn", encrypted=False, credentials=True, policy="warn") == "warn"
    assert verdict("mail.example.vn", encrypted=False, credentials=True, policy="refuse") == "refuse"
    assert verdict("mail.example.vn", encrypted=True, credentials=True, policy="refuse") == "ok"
    assert verdict("mail.example.vn", encrypted=False, credentials=False, policy="refuse") == "ok"  # nothing to leak
    for local in ("127.0.0.1", "localhost", "::1", "[::1]", "127.8.9.10"):
        assert verdict(local, encrypted=False, credentials=True, policy="refuse") == "ok", local
    assert verdict("127.0.0.1", encrypted=False, credentials=True, policy="refuse", local=remote) == "refuse"


# ------------------------------------------------------------------------------------------ IMAP
def test_imap_upgrades_with_starttls_when_offered(trusted: tuple[str, str]) -> None:
    with ImapServer(cert=trusted[0], key=trusted[1]) as server:
        uid = server.append(b"From: a@b.example\r\nSubject: x\r\n\r\nbody\r\n")
        # "refuse" with the host taken as remote: the login goes ahead only on the upgraded connection.
        got = list(fetch_since(imap(server, plaintext_credentials="refuse", local=remote), uidvalidity=None,
                               last_uid=0))
    assert [m.uid for m in got] == [uid]


def test_imap_starttls_checks_the_servers_certificate(certificate: tuple[str, str]) -> None:
    """The upgrade is real: with a certificate the client does not trust, the session fails before
    any LOGIN (the old client logged in in clear and never looked at the certificate)."""
    with ImapServer(cert=certificate[0], key=certificate[1]) as server:
        with pytest.raises(MailboxError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
            list(fetch_since(imap(server), uidvalidity=None, last_uid=0))


def test_imap_refuses_or_warns_before_a_login_in_clear(caplog: pytest.LogCaptureFixture) -> None:
    with ImapServer() as server:  # no STARTTLS offered
        with pytest.raises(MailboxError, match="no TLS.*refused"):
            list(fetch_since(imap(server, plaintext_credentials="refuse", local=remote), uidvalidity=None,
                             last_uid=0))
        caplog.set_level(logging.WARNING, logger="baocao.mail")
        list(fetch_since(imap(server, local=remote), uidvalidity=None, last_uid=0))  # "warn": logs in
        assert any("IMAP server 127.0.0.1" in r.getMessage() and "in clear" in r.getMessage()
                   for r in caplog.records)
        caplog.clear()
        list(fetch_since(imap(server, plaintext_credentials="refuse"), uidvalidity=None, last_uid=0))  # loopback
        assert not any("in clear" in r.getMessage() for r in caplog.records)
        assert server.password not in caplog.text


# ------------------------------------------------------------------------------------------ SMTP
def test_smtp_upgrades_with_starttls_and_only_then_logs_in(trusted: tuple[str, str]) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*trusted)
    with SmtpServer(username="baocao", password="mat-khau-smtp", tls_context=context) as server:
        (result,) = send_all_sync([mail("tls-1")], smtp(server, plaintext_credentials="refuse", local=remote))
        assert result.status == "sent", result
        assert server.auth_attempts == [("baocao", True)] and len(server.messages) == 1


def test_smtp_refuses_to_send_a_password_in_clear_to_another_host(caplog: pytest.LogCaptureFixture) -> None:
    with SmtpServer(username="baocao", password="mat-khau-smtp") as server:  # no STARTTLS offered
        refused = send_all_sync([mail("clear-1"), mail("clear-2")],
                                smtp(server, plaintext_credentials="refuse", local=remote))
        assert {r.status for r in refused} == {"temporary"}
        assert all("no TLS" in (r.detail or "") for r in refused), refused
        assert server.auth_attempts == [] and server.messages == []  # the password never went out
        caplog.set_level(logging.WARNING, logger="baocao.mail")
        (warned,) = send_all_sync([mail("clear-3")], smtp(server, local=remote))  # "warn": logged, then sent
        assert warned.status == "sent"
        assert any("SMTP server 127.0.0.1" in r.getMessage() and "in clear" in r.getMessage()
                   for r in caplog.records)
        assert "mat-khau-smtp" not in caplog.text
