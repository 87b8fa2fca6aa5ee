"""LibreOffice and poppler for the tests that print a report: where the official meets it is on paper.

The `office` session fixture finds `soffice`, `pdftotext` and `pdftoppm`. Where one is missing and the machine
allows it (root, with apt-get), it installs them once, quietly (the issue asks that these tests not silently
skip on a fresh machine); otherwise the tests that need them skip and say why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGES = ("libreoffice-writer-nogui", "libreoffice-calc-nogui", "poppler-utils", "fonts-liberation2")
TOOLS = ("soffice", "pdftotext", "pdftoppm", "pdfinfo")


@dataclass(frozen=True)
class Office:
    soffice: str

    def to_pdf(self, source: Path, workdir: Path) -> Path:
        """Convert with a private profile (no clash with another LibreOffice running) into ``workdir``."""
        profile = (workdir / "lo-profile").as_uri()
        subprocess.run([self.soffice, f"-env:UserInstallation={profile}", "--headless", "--norestore",
                        "--convert-to", "pdf", "--outdir", str(workdir), str(source)],
                       check=True, capture_output=True, timeout=300)
        pdf = workdir / (source.stem + ".pdf")
        assert pdf.exists(), f"LibreOffice wrote no {pdf.name}"
        return pdf

    @staticmethod
    def page_texts(pdf: Path) -> list[str]:
        """The text of each page (pdftotext separates pages with a form feed)."""
        out = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True, text=True,
                             timeout=120).stdout
        pages = out.split("\f")
        return pages[:-1] if pages and not pages[-1].strip() else pages

    @staticmethod
    def page_sizes(pdf: Path) -> list[tuple[float, float]]:
        """(width, height) in points of each page."""
        out = subprocess.run(["pdfinfo", "-f", "1", "-l", "9999", str(pdf)], check=True, capture_output=True,
                             text=True, timeout=60).stdout
        sizes = []
        for line in out.splitlines():
            if line.startswith("Page") and "size:" in line:
                numbers = line.split("size:")[1].split()
                sizes.append((float(numbers[0]), float(numbers[2])))
        return sizes


def _missing() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def _install() -> str:
    """Install the packages with apt-get when we may; '' on success, else why not."""
    if os.name != "posix" or os.geteuid() != 0:
        return "not root, so they cannot be installed here"
    if shutil.which("apt-get") is None:
        return "no apt-get to install them with"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-q", "--no-install-recommends",
               *PACKAGES]
    done = subprocess.run(install, capture_output=True, env=env, timeout=1800)
    if done.returncode != 0:  # stale package lists on a fresh machine: update them once and try again
        subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=600", "update", "-q"], capture_output=True, env=env,
                       timeout=600)
        done = subprocess.run(install, capture_output=True, env=env, timeout=1800)
    if done.returncode != 0:
        return "apt-get install failed: " + done.stderr.decode("utf-8", "replace").strip()[-300:]
    return ""


@pytest.fixture(scope="session")
def office() -> Office:
    """LibreOffice and poppler-utils, installed once per session where missing and possible; else skip."""
    missing = _missing()
    if missing:
        why = _install()
        missing = _missing()
        if missing:
            pytest.skip(f"{', '.join(missing)} missing ({' '.join(PACKAGES)}): {why or 'still missing after install'}")
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    assert soffice is not None
    return Office(soffice)
