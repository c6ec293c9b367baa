"""``hearby certs``: a private CA and TLS certificates for hearby's services (development).

    hearby certs --out var/tls                        # ca.pem/ca.key + hearby.pem/hearby.key
    hearby certs --out var/tls --name ranker --hosts ranker,ranker.hearby.svc

The leaf certificate is valid for server and client authentication, so one file per
service serves TLS and presents it for mTLS. Point the services at them with
``HEARBY_TLS_CERT_FILE``, ``HEARBY_TLS_KEY_FILE``, ``HEARBY_TLS_CA_FILE`` (and
``HEARBY_TLS_MUTUAL=true`` for mTLS). An existing CA in ``--out`` is reused, so every
certificate made there is trusted by the same CA. In production use your own PKI
(cert-manager on Kubernetes, see docs/DEPLOY.md); these are for a laptop or CI.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_HOSTS = (
    "localhost",
    "127.0.0.1",
    "::1",
    "control",
    "vectorstore",
    "ranker",
    "catalog",
    "feedback",
    "embedder",
    "dashboard",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--out DIR [--name NAME] [--hosts a,b] [--days N]``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__.split("\n\n", 1)[1] if __doc__ else None
    parser.add_argument("--out", type=Path, required=True, help="folder for the PEM files")
    parser.add_argument("--name", default="hearby", help="file stem of the leaf (hearby)")
    parser.add_argument(
        "--hosts",
        default=",".join(DEFAULT_HOSTS),
        help="comma-separated DNS names and IPs the certificate is valid for "
        "(default: localhost, loopback and the service names)",
    )
    parser.add_argument("--days", type=int, default=365, help="validity in days (365)")


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _names(hosts: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def ensure_ca(out: Path, days: int) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The CA in ``out`` (``ca.pem``/``ca.key``), made first if absent."""
    cert_path, key_path = out / "ca.pem", out / "ca.key"
    if cert_path.exists() and key_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return x509.load_pem_x509_certificate(cert_path.read_bytes()), key
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hearby development CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    out.mkdir(parents=True, exist_ok=True)
    _write_key(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def issue(out: Path, name: str, hosts: list[str], days: int = 365) -> tuple[Path, Path, Path]:
    """Issues ``<name>.pem``/``<name>.key`` in ``out``, signed by its CA.

    Returns:
        The certificate, key and CA paths.
    """
    ca_cert, ca_key = ensure_ca(out, days)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(_names(hosts)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = out / f"{name}.pem", out / f"{name}.key"
    _write_key(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path, out / "ca.pem"


def run(args: argparse.Namespace) -> int:
    """Entry point of ``hearby certs``: writes the files and prints the settings to use."""
    hosts = [h.strip() for h in args.hosts.split(",") if h.strip()]
    cert, key, ca = issue(args.out, args.name, hosts, args.days)
    print(f"HEARBY_TLS_CERT_FILE={cert}")
    print(f"HEARBY_TLS_KEY_FILE={key}")
    print(f"HEARBY_TLS_CA_FILE={ca}")
    print("# add HEARBY_TLS_MUTUAL=true for mTLS between services")
    return 0
