"""Test certificates: a CA and certificates it signs, made with the `cryptography` package.

A certificate here names localhost and 127.0.0.1 (gRPC checks the SAN against the address
dialled) and is good for both TLS server and client authentication, as a pcpsim process
serves and dials with the same one.
"""

import datetime
import ipaddress
import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass
class Issued:
    cert: str  # paths of PEM files
    key: str


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _write(path: str, data: bytes) -> str:
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)
    return path


def _pem_key(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class Ca:
    def __init__(self, directory: str, name: str = "pcpsim-test-ca"):
        self.directory = directory
        os.makedirs(directory, exist_ok=True)
        self.key = _key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.path = _write(os.path.join(directory, f"{name}.pem"), self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, name: str, hosts=("localhost",), ips=("127.0.0.1",)) -> Issued:
        key = _key()
        now = datetime.datetime.now(datetime.UTC)
        san = [x509.DNSName(h) for h in hosts] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        return Issued(
            _write(os.path.join(self.directory, f"{name}.pem"), cert.public_bytes(serialization.Encoding.PEM)),
            _write(os.path.join(self.directory, f"{name}-key.pem"), _pem_key(key)),
        )
