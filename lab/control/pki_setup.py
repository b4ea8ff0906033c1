"""The run's CAs for services in other containers, made once under a file lock."""

from __future__ import annotations

import fcntl
import hashlib
import tempfile
from pathlib import Path

from lab.pki import LabPKI


def ensure_pki(state: Path, leaf_dir: Path) -> LabPKI:
    """Load the CAs the runner exported to ``<state>/pki``; make them when there are none
    (one maker under a lock, the other containers wait on the lock and load)."""
    pki_dir = state / "pki"
    pki_dir.mkdir(parents=True, exist_ok=True)
    leaf_dir.mkdir(parents=True, exist_ok=True)
    with open(state / "pki.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not all((pki_dir / f).exists() for f in LabPKI.EXPORT_FILES):
                LabPKI(Path(tempfile.mkdtemp(prefix="pki-", dir=leaf_dir))).export(pki_dir)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return LabPKI.load(pki_dir, leaf_dir / "leaves")


def ca_fingerprint(pki: LabPKI) -> str:
    """SHA-256 of the CA certificate: how the runner tells a service uses this run's CA."""
    return hashlib.sha256(pki.ca.cert_pem.bytes()).hexdigest()
