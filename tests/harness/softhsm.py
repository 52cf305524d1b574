"""A real PKCS#11 token for the tests: SoftHSM2 (Debian's softhsm2), in a private token folder.

Every token the tests make lives under the session's own folder; ``SOFTHSM2_CONF`` points the
library there before anything loads it (the library reads it once per process), and processes the
tests start inherit it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

MODULE = "/usr/lib/softhsm/libsofthsm2.so"


@dataclass
class SoftHsm:
    folder: Path
    conf: Path

    def new_token(self, label: str | None = None) -> str:
        """A freshly initialised token; returns its ``PORTAL_KMS`` URI (PIN from a 0600 file)."""
        label = label or "t-" + secrets.token_hex(4)
        pin = secrets.token_hex(8)
        pin_file = self.folder / f"{label}.pin"
        pin_file.write_text(pin + "\n")
        pin_file.chmod(0o600)
        subprocess.run(
            [
                "softhsm2-util",
                "--init-token",
                "--free",
                "--label",
                label,
                "--pin",
                pin,
                "--so-pin",
                secrets.token_hex(8),
            ],
            env={**os.environ, "SOFTHSM2_CONF": str(self.conf)},
            check=True,
            capture_output=True,
        )
        return f"pkcs11:token={label}?module-path={MODULE}&pin-source={pin_file}"


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsm]:
    if not (Path(MODULE).exists() and shutil.which("softhsm2-util")):
        pytest.fail("SoftHSM2 is missing: run scripts/setup test (it installs Debian's softhsm2).")
    folder = tmp_path_factory.mktemp("softhsm")
    (folder / "tokens").mkdir()
    conf = folder / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {folder / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    try:
        yield SoftHsm(folder, conf)
    finally:
        if previous is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = previous
