"""Certificates and keys for a deployment: a private CA, the SuperLink's TLS certificate, and each
hospital's SuperNode authentication key pair.

For a real deployment the coordinator's IT may use its own CA instead (see docs/deployment.md); these
helpers make a complete, correct set for a local trial or a pilot. Private keys are written 0600.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["make_ca", "make_server_cert", "make_node_keys", "write_private"]


def write_private(path: Path, data: bytes) -> None:
    """Write a private key readable by its owner only (created 0600, never loosened)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)


def _pem_key(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mpclr"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(folder, common_name: str = "mpclr study CA", days: int = 365) -> tuple[Path, Path]:
    """A self-signed CA (P-384): folder/ca.crt (give it to every hospital) and folder/ca.key (keep it)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP384R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA384())
    )
    (folder / "ca.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    write_private(folder / "ca.key", _pem_key(key))
    return folder / "ca.crt", folder / "ca.key"


def make_server_cert(
    folder, hosts=("127.0.0.1", "localhost"), ca_dir=None, name: str = "server", days: int = 365
) -> tuple[Path, Path]:
    """A TLS server certificate signed by the CA in ca_dir (default: folder), valid for `hosts` (IP
    addresses or DNS names: every address the SuperLink is reached by). Returns (cert, key) paths."""
    folder = Path(folder)
    ca_dir = Path(ca_dir or folder)
    ca_cert = x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((ca_dir / "ca.key").read_bytes(), None)
    key = ec.generate_private_key(ec.SECP384R1())
    sans = []
    for h in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(str(hosts[0])))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA384())
    )
    (folder / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    write_private(folder / f"{name}.key", _pem_key(key))
    return folder / f"{name}.pem", folder / f"{name}.key"


def make_node_keys(folder, name: str = "supernode") -> tuple[Path, Path]:
    """A SuperNode authentication key pair (EC P-384, OpenSSH format, as Flower expects): the private
    key stays at the hospital (folder/name, 0600); the public key (folder/name.pub) goes to the coordinator,
    who registers it with `flwr supernode register`."""
    folder = Path(folder)
    key = ec.generate_private_key(ec.SECP384R1())
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    write_private(folder / name, private)
    (folder / f"{name}.pub").write_bytes(public + f" mpclr-{name}\n".encode())
    return folder / name, folder / f"{name}.pub"
