"""The certificates of one emulated control plane: its own CA, a serving certificate for
127.0.0.1/localhost, and client certificates, as a kubeadm-made cluster has them.

ECDSA P-256 keys: generated in about a millisecond each (RSA 2048 takes ~100 ms), and accepted by
kubectl (Go's crypto/tls), urllib3 and OpenSSL alike. Client certificates name the user in the
subject's CN and its groups in O, the way kube-apiserver's x509 authenticator reads them.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = datetime.timedelta(days=2)


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, both PEM."""

    cert_pem: bytes
    key_pem: bytes


def _name(common_name: str, organizations: tuple[str, ...] = ()) -> x509.Name:
    parts = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    return x509.Name([*parts, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class CertificateAuthority:
    """A CA made for one emulator instance; signs its serving certificate and client certificates."""

    def __init__(self, common_name: str = "kubeemu-ca") -> None:
        now = datetime.datetime.now(datetime.UTC)
        self._key: ec.EllipticCurvePrivateKey = ec.generate_private_key(ec.SECP256R1())
        self._name = _name(common_name)
        self._cert = (
            x509.CertificateBuilder().subject_name(self._name).issuer_name(self._name)
            .public_key(self._key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        self.cert_pem = self._cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        """The CA's private key (handed to an emulator subprocess so that both sides share the CA)."""
        return _key_pem(self._key)

    @classmethod
    def from_pem(cls, cert_pem: bytes, key_pem: bytes) -> CertificateAuthority:
        """The CA made elsewhere (by the process that started this emulator)."""
        authority = cls.__new__(cls)
        key = serialization.load_pem_private_key(key_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("the CA key must be an ECDSA key")
        authority._key = key
        authority._cert = x509.load_pem_x509_certificate(cert_pem)
        authority._name = authority._cert.subject
        authority.cert_pem = cert_pem
        return authority

    def _issue(self, subject: x509.Name, usage: x509.ObjectIdentifier,
               names: list[x509.GeneralName] | None = None) -> KeyPair:
        now = datetime.datetime.now(datetime.UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(self._name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False)
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))

    def serving(self) -> KeyPair:
        """The API server's certificate: valid for IP 127.0.0.1, ::1 and DNS localhost."""
        return self._issue(_name("kubeemu-apiserver"), ExtendedKeyUsageOID.SERVER_AUTH,
                           [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                            x509.IPAddress(ipaddress.ip_address("::1"))])

    def client(self, user: str, groups: tuple[str, ...] = ()) -> KeyPair:
        """A client certificate for `user` (subject CN) in `groups` (subject O), as kube-apiserver reads it."""
        return self._issue(_name(user, groups), ExtendedKeyUsageOID.CLIENT_AUTH)

    def client_context(self) -> ssl.SSLContext:
        """An SSL context for clients that trusts this CA only (hostname checked)."""
        return ssl.create_default_context(cadata=self.cert_pem.decode())
