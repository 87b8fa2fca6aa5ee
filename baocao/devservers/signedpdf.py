"""Signed PDFs for the demo and the tests: what a unit's records office sends back once it has issued a report.

A real office prints the draft's final version to PDF and signs it with the chairman's digital certificate.
Here the first page's text is written to a one-page PDF (Vietnamese letters included: DejaVu Sans from
matplotlib, embedded as a subset, so the machine needs nothing but Python) and signed with pyHanko using a
self-signed certificate made with `cryptography`. The intake then reads the signature as it would a real
one: who signed, when, and whether the file is intact.
"""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path

__all__ = ["make_pdf", "self_signed", "sign_pdf", "signed_report_pdf"]

_FONT_SIZE = 11
_LEADING = 15


def _font_path() -> Path:
    import matplotlib

    return Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"


def _subset(text: str) -> tuple[bytes, dict[str, int], dict[int, int]]:
    """(font program, char -> glyph id, glyph id -> advance in 1/1000 em) of the characters of `text`."""
    import logging

    from fontTools import subset
    from fontTools.ttLib import TTFont

    font = TTFont(str(_font_path()))
    cmap = font.getBestCmap()
    chars = {ch for ch in text if ord(ch) in cmap}
    options = subset.Options()
    options.retain_gids = True
    options.notdef_outline = True
    logging.getLogger("fontTools.subset").setLevel(logging.ERROR)  # "FFTM NOT subset": a table PDF readers ignore
    sub = subset.Subsetter(options)
    sub.populate(unicodes=[ord(ch) for ch in chars])
    sub.subset(font)
    order = font.getGlyphOrder()
    scale = 1000 / font["head"].unitsPerEm
    gids = {ch: order.index(cmap[ord(ch)]) for ch in chars if cmap[ord(ch)] in order}
    widths = {gid: round(font["hmtx"][order[gid]][0] * scale) for gid in gids.values()}
    out = BytesIO()
    font.save(out)
    return out.getvalue(), gids, widths


def make_pdf(lines: list[str]) -> bytes:
    """A one-page A4 PDF showing `lines` (as many as fit), text extractable (ToUnicode)."""
    lines = [line for line in lines][: (842 - 100) // _LEADING]
    program, gids, widths = _subset("".join(lines) + " ")
    content = [b"BT", f"/F1 {_FONT_SIZE} Tf {_LEADING} TL 60 790 Td".encode()]
    for line in lines:
        hexes = "".join(f"{gids[ch]:04X}" for ch in line if ch in gids)
        content.append(f"<{hexes}> Tj T*".encode())
    content.append(b"ET")
    stream = zlib.compress(b"\n".join(content))
    cmap_lines = [f"<{gid:04X}> <{''.join(f'{b:02X}' for b in ch.encode('utf-16-be'))}>" for ch, gid in gids.items()]
    to_unicode = ("/CIDInit /ProcSet findresource begin 12 dict begin begincmap /CIDSystemInfo << /Registry (Adobe) "
                  "/Ordering (UCS) /Supplement 0 >> def /CMapName /Adobe-Identity-UCS def /CMapType 2 def "
                  "1 begincodespacerange <0000> <FFFF> endcodespacerange\n"
                  + "".join(f"{len(chunk)} beginbfchar\n" + "\n".join(chunk) + "\nendbfchar\n"
                            for chunk in (cmap_lines[i:i + 100] for i in range(0, len(cmap_lines), 100)))
                  + "endcmap CMapName currentdict /CMap defineresource pop end end").encode()
    w = " ".join(f"{gid} [{width}]" for gid, width in sorted(widths.items()))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> >> "
        b"/Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type0 /BaseFont /DejaVuSans /Encoding /Identity-H /DescendantFonts [6 0 R] "
        b"/ToUnicode 8 0 R >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /CIDFontType2 /BaseFont /DejaVuSans /CIDSystemInfo << /Registry (Adobe) "
        b"/Ordering (Identity) /Supplement 0 >> /FontDescriptor 7 0 R /CIDToGIDMap /Identity /W [" + w.encode()
        + b"] >>",
        b"<< /Type /FontDescriptor /FontName /DejaVuSans /Flags 32 /FontBBox [-1021 -463 1793 1232] "
        b"/ItalicAngle 0 /Ascent 928 /Descent -236 /CapHeight 729 /StemV 80 /FontFile2 9 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(to_unicode) + to_unicode + b"\nendstream",
        b"<< /Length %d /Length1 %d >>\nstream\n" % (len(program), len(program)) + program + b"\nendstream",
    ]
    out = BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % i + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def self_signed(common_name: str, organization: str) -> tuple[bytes, bytes]:
    """(certificate DER, PKCS#8 private key DER) of a self-signed signing certificate, valid for a year."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=400))
            .not_valid_after(now + timedelta(days=400))
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.DER),
            key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def sign_pdf(pdf: bytes, cert_der: bytes, key_der: bytes) -> bytes:
    """`pdf` with a PAdES signature by the certificate (an incremental update, as a signing tool writes it)."""
    from asn1crypto import keys, x509
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    cert = x509.Certificate.load(cert_der)
    signer = signers.SimpleSigner(signing_cert=cert, signing_key=keys.PrivateKeyInfo.load(key_der),
                                  cert_registry=SimpleCertificateStore.from_certs([cert]))
    out = signers.sign_pdf(IncrementalPdfFileWriter(BytesIO(pdf)),
                           signers.PdfSignatureMetadata(field_name="ChuKySo"), signer=signer)
    return out.getvalue()


def signed_report_pdf(lines: list[str], signer: str, organization: str) -> bytes:
    """The issued report as the demo's offices send it back: `lines` on a page, signed by `signer`."""
    cert, key = self_signed(signer, organization)
    return sign_pdf(make_pdf(lines), cert, key)
