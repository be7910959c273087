"""A seeded, realistic office-PC data set for the engine benchmark, and a
realistic day of changes to it.

``generate(root, size, seed)`` writes, for a target logical size ``size``:

======================  ======  ===============================================
part                    share   what
======================  ======  ===============================================
text documents          14 %    thousands of small .txt/.md/.csv/.html/.json
                                files (lognormal sizes, median ~6 KiB) in a
                                project tree; compressible prose and numbers
Office documents        18 %    .docx/.xlsx/.pptx: real zip containers of
                                deflated XML, some with stored (JPEG-like)
                                media; identical boilerplate members in all
mailbox (PST-like)      24 %    one multi-hundred-MiB file (at 1.5 GiB) of
                                512-byte-aligned records: mail headers and
                                bodies under Outlook's byte-substitution
                                "compressible encryption", ~4 % of mails with
                                attachments, some attachments recurring
media                   24 %    photos and videos: incompressible bytes
duplicates               5 %    exact copies of documents and media elsewhere
shared blocks            5 %    an uncompressed .tar of some documents and
                                media (same content at unaligned offsets)
sparse file             10 %    apparent size; a few MiB of real extents
awkward names            -      unicode (NFC and NFD), newlines, tabs, non-UTF-8
                                bytes, 255-byte names, globs, leading dashes,
                                empty files, symlinks (dangling, loop), a
                                40-deep tree, a hard link
======================  ======  ===============================================

``apply_day_of_changes(root, seed)`` then edits, appends, adds, deletes,
renames and touches files the way a day of office work does (see its
docstring). Both are deterministic for a given seed and size.

Incompressible bytes come from AES-CTR keystream (several GB/s); text comes
from a seeded sentence pool, so generation is I/O-bound rather than Python-bound.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import random
import re
import tarfile
import time
import unicodedata
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

SHARES = {
    "text": 0.14,
    "office": 0.18,
    "mailbox": 0.24,
    "media": 0.24,
    "duplicates": 0.05,
    "tar": 0.05,
    "sparse": 0.10,
}

USER = "home/ana"


def parse_size(text: str) -> int:
    """'1.5G', '64M', '512MiB', '2g', '1000000' -> bytes (binary units)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?b)?\s*", text.lower())
    if not m:
        raise ValueError(f"not a size: {text!r}")
    scale = {"": 1, "k": KiB, "m": MiB, "g": GiB, "t": 1024 * GiB}[m.group(2)]
    return int(float(m.group(1)) * scale)


def human(n: float) -> str:
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{int(n)} B"


# --- byte sources ---------------------------------------------------------------------------
class Noise:
    """Deterministic incompressible bytes (AES-256-CTR keystream)."""

    def __init__(self, seed: int, label: str):
        key = hashlib.sha256(f"{seed}:{label}".encode()).digest()
        self._enc = Cipher(algorithms.AES(key), modes.CTR(b"\0" * 16)).encryptor()
        self._zeros = bytes(4 * MiB)

    def bytes(self, n: int) -> bytes:
        out = []
        while n > 0:
            take = min(n, len(self._zeros))
            out.append(self._enc.update(self._zeros[:take]))
            n -= take
        return b"".join(out)


SYLLABLES = [
    "ka",
    "to",
    "ri",
    "mu",
    "se",
    "na",
    "lo",
    "pe",
    "vi",
    "da",
    "ne",
    "sa",
    "mo",
    "ti",
    "ru",
    "be",
    "la",
    "go",
    "fi",
    "ze",
    "en",
    "an",
    "or",
    "ul",
    "ex",
    "ta",
    "co",
    "pro",
    "con",
    "ver",
    "sti",
    "tion",
    "ment",
    "al",
    "ing",
    "er",
    "ly",
    "est",
    "ness",
    "ter",
    "port",
    "dat",
    "rep",
]
COMMON = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "for",
    "that",
    "with",
    "on",
    "as",
    "by",
    "this",
    "be",
    "are",
    "from",
    "at",
    "it",
    "an",
    "was",
    "will",
    "have",
    "we",
    "our",
    "not",
    "or",
    "can",
    "all",
    "project",
    "report",
    "meeting",
    "budget",
    "customer",
    "please",
    "review",
    "attached",
    "draft",
    "final",
    "quarter",
    "sales",
    "team",
    "plan",
    "update",
    "thanks",
    "regards",
    "invoice",
    "contract",
    "schedule",
    "deadline",
    "approved",
    "revised",
    "figures",
]


class Text:
    """Prose from a seeded pool of sentences: compresses like real documents
    (zstd-3 around 3-4x), with little accidental cross-document dedup."""

    def __init__(self, rng: random.Random, sentences: int = 40_000):
        words = list(COMMON)
        for _ in range(6000):
            words.append("".join(rng.choices(SYLLABLES, k=rng.randint(1, 4))))
        self.words = words
        weights = [8.0] * len(COMMON) + [1.0] * (len(words) - len(COMMON))
        cum = list(itertools.accumulate(weights))
        pool = []
        for _ in range(sentences):
            ws = rng.choices(words, cum_weights=cum, k=rng.randint(4, 22))
            s = " ".join(ws)
            pool.append(s[0].upper() + s[1:] + rng.choice(".....?!:"))
        self.pool = pool
        self.rng = rng

    def prose(self, n: int) -> str:
        """About n characters of paragraphs."""
        rng = self.rng
        picks = rng.choices(self.pool, k=max(1, n // 70))
        out, para = [], []
        for s in picks:
            para.append(s)
            if rng.random() < 0.15:
                out.append(" ".join(para))
                para = []
        if para:
            out.append(" ".join(para))
        text = "\n\n".join(out)
        return text[:n] if len(text) > n else text

    def csv(self, n: int) -> str:
        rng = self.rng
        rows = ["date,account,description,amount,currency,approved"]
        size = len(rows[0])
        while size < n:
            row = (
                f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d},"
                f"{rng.randint(1000, 9999)},{rng.choice(self.pool)[:40].replace(',', ' ')},"
                f"{rng.uniform(-5000, 50000):.2f},{rng.choice(['EUR', 'USD', 'GBP'])},"
                f"{rng.choice(['yes', 'no'])}"
            )
            rows.append(row)
            size += len(row) + 1
        return "\n".join(rows)


# --- Office documents ---------------------------------------------------------------------------
CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Default Extension="jpeg" ContentType="image/jpeg"/>'
    '<Override PartName="/docProps/core.xml" ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>'
    '<Override PartName="/docProps/app.xml" ContentType="application/vnd.openxmlformats-officedocument.extended-properties+xml"/>'
    "</Types>"
)
RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="MAIN"/>'
    "</Relationships>"
)
# Boilerplate every document carries (real styles.xml / theme1.xml are 30-60 KiB).
STYLES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<w:styles xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
    + "".join(
        f'<w:style w:type="paragraph" w:styleId="Style{i}"><w:name w:val="Style {i}"/>'
        f'<w:basedOn w:val="Normal"/><w:pPr><w:spacing w:before="{i * 20}" w:after="{i * 10}"/></w:pPr>'
        f'<w:rPr><w:rFonts w:ascii="Calibri" w:hAnsi="Calibri"/><w:sz w:val="{18 + i % 12}"/></w:rPr></w:style>'
        for i in range(220)
    )
    + "</w:styles>"
)


def _docx_xml(text: Text, n: int) -> str:
    paras = text.prose(n).split("\n\n")
    body = "".join(
        f'<w:p><w:pPr><w:pStyle w:val="Style{len(p) % 40}"/></w:pPr><w:r><w:t xml:space="preserve">{p}</w:t></w:r></w:p>'
        for p in paras
    )
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        f"<w:body>{body}</w:body></w:document>"
    )


def _xlsx_xml(rng: random.Random, n: int) -> str:
    rows, size, r = [], 0, 1
    while size < n:
        cells = "".join(
            f'<c r="{chr(65 + c)}{r}" s="{c % 3}"><v>{rng.uniform(0, 100000):.4f}</v></c>'
            for c in range(12)
        )
        row = f'<row r="{r}">{cells}</row>'
        rows.append(row)
        size += len(row)
        r += 1
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        f"<sheetData>{''.join(rows)}</sheetData></worksheet>"
    )


class _FixedTimeZip:
    """zipfile stamps members written by name with the current time; real
    documents carry their own, and the data set must be reproducible."""

    def __init__(self, zf: zipfile.ZipFile, when: tuple):
        self.zf, self.when = zf, when

    def writestr(self, name: str, data, compress_type=zipfile.ZIP_DEFLATED) -> None:
        info = zipfile.ZipInfo(name, self.when)
        info.compress_type = compress_type
        info.external_attr = 0o644 << 16
        self.zf.writestr(info, data)


def office_file(kind: str, text: Text, noise: Noise, rng: random.Random, size: int) -> bytes:
    """A real OOXML-shaped zip of about ``size`` bytes."""
    buf = io.BytesIO()
    media = int(size * rng.uniform(0.4, 0.8)) if rng.random() < 0.6 and size > 60 * KiB else 0
    xml_target = max(2 * KiB, size - media) * (5 if kind != "xlsx" else 4)  # deflate ~5x
    main = {
        "docx": "word/document.xml",
        "xlsx": "xl/worksheets/sheet1.xml",
        "pptx": "ppt/slides/slide1.xml",
    }[kind]
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        z = _FixedTimeZip(zf, (2026, rng.randint(1, 11), rng.randint(1, 28), 9, 30, 0))
        z.writestr("[Content_Types].xml", CONTENT_TYPES)
        z.writestr("_rels/.rels", RELS.replace("MAIN", main))
        z.writestr(
            "docProps/core.xml",
            f'<?xml version="1.0"?><cp:coreProperties xmlns:cp="x"><dc:creator>ana</dc:creator>'
            f"<cp:revision>{rng.randint(1, 40)}</cp:revision></cp:coreProperties>",
        )
        z.writestr(
            "docProps/app.xml",
            '<?xml version="1.0"?><Properties><Application>Microsoft Office</Application></Properties>',
        )
        z.writestr(main.rsplit("/", 1)[0] + "/styles.xml", STYLES)
        if kind == "xlsx":
            z.writestr(main, _xlsx_xml(rng, xml_target))
        else:
            z.writestr(main, _docx_xml(text, xml_target))
        if media:
            folder = {"docx": "word", "xlsx": "xl", "pptx": "ppt"}[kind]
            n_media = rng.randint(1, 4)
            for i in range(n_media):
                z.writestr(
                    f"{folder}/media/image{i + 1}.jpeg",
                    b"\xff\xd8\xff\xe0" + noise.bytes(media // n_media),
                    compress_type=zipfile.ZIP_STORED,
                )
    return buf.getvalue()


# --- the mailbox ------------------------------------------------------------------------------------
_PST_TABLE = bytes(random.Random(0x5057).sample(range(256), 256))  # "compressible encryption"


def _pst_record(kind: int, payload: bytes) -> bytes:
    header = b"PSTR" + kind.to_bytes(2, "little") + len(payload).to_bytes(4, "little")
    header += hashlib.blake2b(payload, digest_size=6).digest()
    record = header + payload.translate(_PST_TABLE)
    return record + b"\0" * (-len(record) % 512)


def mail_messages(
    text: Text, noise: Noise, attach_pool: list[bytes], rng: random.Random, n_bytes: int
):
    """Yield PST-like records (bytes) totalling about n_bytes."""
    made = 0
    mid = 0
    while made < n_bytes:
        mid += 1
        sender = rng.choice(["bob", "carol", "dave", "erin", "frank", "it-support", "noreply"])
        subject = rng.choice(text.pool)[:60]
        body = text.prose(int(rng.lognormvariate(8.3, 0.9)))  # median ~4 KiB
        msg = (
            f"From: {sender}@example.com\r\nTo: ana@example.com\r\nSubject: {subject}\r\n"
            f"Date: Mon, {rng.randint(1, 28)} Sep 2026 {rng.randint(7, 19)}:{rng.randint(0, 59):02d}:00 +0200\r\n"
            f"Message-ID: <{mid}.{rng.getrandbits(48):x}@example.com>\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body
        ).encode()
        rec = _pst_record(1, msg)
        if rng.random() < 0.04:
            # Attachments: most are new content; a third recur (forwards, replies).
            if rng.random() < 0.33:
                att = rng.choice(attach_pool)
            else:
                att = noise.bytes(int(rng.lognormvariate(10.8, 1.0)))
            rec += _pst_record(2, att[: 8 * MiB])
        made += len(rec)
        yield rec


# --- awkward names -------------------------------------------------------------------------------
def awkward(root: Path, rng: random.Random) -> int:
    """Names and shapes that trip tools up; returns bytes written."""
    base = root / USER / "Desktop" / "Weird names"
    base.mkdir(parents=True, exist_ok=True)
    names = [
        "spaces  and   more spaces.txt",
        " leading and trailing space .txt",
        "tab\there.txt",
        "new\nline.txt",
        "-rf --help.txt",
        ".hidden",
        "*?[glob] {braces}.txt",
        "back\\slash.txt",
        'quote\'s "double".txt',
        "emoji 📄 report 2026.txt",
        "中文文件名.txt",
        "Ελληνικά.txt",
        unicodedata.normalize("NFC", "Café résumé NFC.txt"),
        unicodedata.normalize("NFD", "Café résumé NFD.txt"),
        "x" * 251 + ".txt",
        "percent %20 %s %n.txt",
        "colon: and semicolon;.txt",
    ]
    total = 0
    for name in names:
        data = f"{name!r}\n".encode() * rng.randint(1, 50)
        (base / name).write_bytes(data)
        total += len(data)
    # A name that is not valid UTF-8 (Latin-1 bytes).
    bad = os.fsencode(str(base)) + b"/latin1-\xe9t\xe9-\xff.txt"
    with open(bad, "wb") as f:
        f.write(b"not utf-8 name\n")
    total += 15
    (base / "empty.txt").write_bytes(b"")
    (base / "empty dir").mkdir(exist_ok=True)
    os.symlink("spaces  and   more spaces.txt", base / "link to file")
    os.symlink("does/not/exist", base / "dangling link")
    os.symlink("loop-b", base / "loop-a")
    os.symlink("loop-a", base / "loop-b")
    os.symlink("..", base / "link to parent")
    os.link(base / "Ελληνικά.txt", base / "hard link to Ελληνικά.txt")
    deep = base / "deep"
    for i in range(40):
        deep = deep / f"level{i:02d}"
    deep.mkdir(parents=True)
    (deep / "bottom.txt").write_bytes(b"the bottom\n")
    return total + 11


# --- generation ----------------------------------------------------------------------------------
@dataclass
class DataSet:
    root: Path
    size: int
    seed: int
    files: int = 0
    logical: int = 0
    allocated: int = 0
    seconds: float = 0.0
    parts: dict = field(default_factory=dict)


def _write(path: Path, data: bytes) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return len(data)


def _text_doc(text: Text, rng: random.Random, n: int) -> tuple[str, bytes]:
    kind = rng.choices(["txt", "md", "csv", "html", "json"], weights=[4, 2, 2, 1, 1])[0]
    if kind == "csv":
        return kind, text.csv(n).encode()
    if kind == "html":
        return (
            kind,
            f"<html><body><h1>{text.pool[n % len(text.pool)]}</h1><p>{text.prose(n)}</p></body></html>".encode(),
        )
    if kind == "json":
        items = ",\n".join(
            f'  {{"id": {i}, "name": "{w}", "value": {rng.uniform(0, 1e6):.3f}}}'
            for i, w in enumerate(rng.choices(text.words, k=max(1, n // 60)))
        )
        return kind, f"[\n{items}\n]\n".encode()
    return kind, text.prose(n).encode()


PROJECTS = [
    "Acme rollout",
    "Budget 2027",
    "Customer X",
    "HR",
    "Internal tools",
    "Legal",
    "Marketing",
    "Research",
]


def generate(root: Path, size: int, seed: int = 42, log=print) -> DataSet:
    """Write the data set under ``root`` (which must not exist or be empty)."""
    t0 = time.monotonic()
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    text = Text(random.Random(seed + 1))
    noise = Noise(seed, "media")
    ds = DataSet(root, size, seed)
    home = root / USER
    budget = {k: int(size * v) for k, v in SHARES.items()}

    # Text documents.
    made, n = 0, 0
    while made < budget["text"]:
        project = rng.choice(PROJECTS)
        sub = rng.choice(["", "drafts", "notes", "archive/2025", "archive/2024", "data", "minutes"])
        length = int(min(1 * MiB, max(200, rng.lognormvariate(8.7, 1.1))))
        kind, data = _text_doc(text, rng, length)
        name = f"{rng.choice(text.words)}-{n:05d}.{kind}"
        made += _write(home / "Documents" / project / sub / name, data)
        n += 1
    ds.parts["text"] = (n, made)

    # Office documents.
    made, n = 0, 0
    while made < budget["office"]:
        kind = rng.choices(["docx", "xlsx", "pptx"], weights=[5, 3, 2])[0]
        length = int(min(12 * MiB, max(12 * KiB, rng.lognormvariate(11.8, 1.2))))
        data = office_file(kind, text, noise, rng, length)
        project = rng.choice(PROJECTS)
        made += _write(
            home / "Documents" / project / f"{rng.choice(text.words)} {n:04d}.{kind}", data
        )
        n += 1
    ds.parts["office"] = (n, made)

    # The mailbox.
    attach_pool = [noise.bytes(int(rng.lognormvariate(12.5, 1.0))) for _ in range(24)]
    pst = home / "AppData/Local/Microsoft/Outlook/ana@example.com.pst"
    pst.parent.mkdir(parents=True, exist_ok=True)
    made = 0
    with open(pst, "wb") as f:
        f.write(_pst_record(0, b"!BDN PST header " + bytes(4000)))
        for rec in mail_messages(text, Noise(seed, "mail"), attach_pool, rng, budget["mailbox"]):
            f.write(rec)
            made += len(rec)
    ds.parts["mailbox"] = (1, pst.stat().st_size)

    # Media.
    made, n = 0, 0
    media_files = []
    while made < budget["media"]:
        if rng.random() < 0.8:
            path = home / "Pictures" / f"IMG_{20260000 + n}.jpg"
            data = b"\xff\xd8\xff\xe1" + noise.bytes(int(rng.uniform(1.5, 7) * MiB))
        else:
            path = home / "Videos" / f"VID_{n:04d}.mp4"
            data = b"\0\0\0\x20ftypisom" + noise.bytes(int(rng.uniform(15, 90) * MiB))
        data = data[: max(64 * KiB, budget["media"] - made)]
        made += _write(path, data)
        media_files.append(path)
        n += 1
    ds.parts["media"] = (n, made)

    # Exact duplicates (old backup copies) and a tar of shared content.
    docs = sorted(p for p in (home / "Documents").rglob("*") if p.is_file())
    made, n = 0, 0
    candidates = docs + media_files
    rng.shuffle(candidates)
    for src in candidates:
        if made >= budget["duplicates"]:
            break
        data = src.read_bytes()
        if made + len(data) > budget["duplicates"] * 1.2:
            continue
        made += _write(home / "Documents/Old backups/2025-06-30" / src.relative_to(home), data)
        n += 1
    ds.parts["duplicates"] = (n, made)
    tar_path = home / "Documents/Archive/project-2024.tar"
    tar_path.parent.mkdir(parents=True, exist_ok=True)
    made, n = 0, 0
    rng.shuffle(candidates)
    with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:
        for src in candidates:
            if made >= budget["tar"]:
                break
            st = src.stat()
            if made + st.st_size > budget["tar"] * 1.2:
                continue
            info = tarfile.TarInfo(str(src.relative_to(home)))
            info.size, info.mtime, info.mode = st.st_size, 1_767_225_600 + n * 60, 0o644
            info.uname = info.gname = "ana"
            with open(src, "rb") as f:
                tar.addfile(info, f)
            made += st.st_size
            n += 1
    ds.parts["tar"] = (n, tar_path.stat().st_size)

    # A sparse disk image: a few real extents in a big hole.
    sparse = home / "VMs/win11-dev.vhdx"
    sparse.parent.mkdir(parents=True, exist_ok=True)
    with open(sparse, "wb") as f:
        f.truncate(budget["sparse"])
        for i in range(6):
            f.seek(int(budget["sparse"] * i / 6) // 4096 * 4096)
            f.write(noise.bytes(min(MiB, budget["sparse"] // 12)))
    ds.parts["sparse"] = (1, budget["sparse"])

    ds.parts["awkward"] = (None, awkward(root, rng))
    _measure(ds)
    ds.seconds = time.monotonic() - t0
    log(
        f"data set: {ds.files} files, {human(ds.logical)} logical, {human(ds.allocated)} allocated,"
        f" generated in {ds.seconds:.0f} s"
    )
    return ds


def _measure(ds: DataSet) -> None:
    files = logical = allocated = 0
    for dirpath, _dirs, names in os.walk(ds.root):
        for name in names:
            st = os.lstat(os.path.join(dirpath, name))
            files += 1
            if not os.path.islink(os.path.join(dirpath, name)):
                logical += st.st_size
                allocated += st.st_blocks * 512
    ds.files, ds.logical, ds.allocated = files, logical, allocated


# --- a day of changes ---------------------------------------------------------------------------------
def apply_day_of_changes(ds: DataSet, log=print) -> dict:
    """A realistic working day, deterministic for the data set's seed:

    * 3 % of text documents edited in the middle, 1 % appended to, 1 % deleted,
      1 % touched (new mtime, same bytes), 1 % new documents in a new folder;
    * one project folder renamed (its files move, their content is unchanged);
    * 3 % of Office documents saved again (same zip, main XML part edited);
    * the mailbox: new mail appended (~1.5 % of its size) and 24 scattered
      4 KiB pages rewritten in place (PST B-tree and header updates);
    * two new photos, one video deleted; one new extent in the sparse image.
    """
    rng = random.Random(ds.seed + 1000)
    text = Text(random.Random(ds.seed + 1))
    noise = Noise(ds.seed, "day-1")
    home = ds.root / USER
    stats: dict[str, int] = {}
    docs_root = home / "Documents"
    texts = sorted(
        p
        for p in docs_root.rglob("*")
        if p.suffix in (".txt", ".md", ".csv", ".html", ".json") and "Old backups" not in p.parts
    )
    office = sorted(
        p
        for p in docs_root.rglob("*")
        if p.suffix in (".docx", ".xlsx", ".pptx") and "Old backups" not in p.parts
    )
    rng.shuffle(texts)
    k = max(1, len(texts) // 100)
    edited, appended, deleted, touched = (
        texts[: 3 * k],
        texts[3 * k : 4 * k],
        texts[4 * k : 5 * k],
        texts[5 * k : 6 * k],
    )
    for p in edited:
        data = p.read_bytes()
        cut = rng.randint(0, len(data))
        insert = text.prose(rng.randint(100, 3000)).encode()
        p.write_bytes(data[:cut] + insert + data[cut + rng.randint(0, 500) :])
    for p in appended:
        with open(p, "ab") as f:
            f.write(("\n" + text.prose(rng.randint(200, 2000))).encode())
    for p in deleted:
        p.unlink()
    now = time.time()
    for p in touched:
        os.utime(p, (now, now))
    for i in range(k):
        kind, data = _text_doc(text, rng, int(rng.lognormvariate(8.7, 1.0)))
        _write(docs_root / "Meetings/2026-11-28" / f"notes-{i:03d}.{kind}", data)
    stats.update(text_edited=len(edited), text_appended=len(appended), text_deleted=len(deleted))
    stats.update(text_touched=len(touched), text_new=k)

    # Rename one project folder.
    src = docs_root / "Marketing"
    if src.exists():
        src.rename(docs_root / "Marketing (2026 campaign)")
        stats["renamed_folder_files"] = sum(
            1 for p in (docs_root / "Marketing (2026 campaign)").rglob("*") if p.is_file()
        )

    # Office documents saved again: the main XML part changes, the rest is the same bytes.
    office = [p for p in office if p.exists()]
    rng.shuffle(office)
    saved = office[: max(1, len(office) * 3 // 100)]
    for p in saved:
        with zipfile.ZipFile(p) as z:
            members = [(info, z.read(info)) for info in z.infolist()]
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
            for info, data in members:
                if info.filename.endswith(("document.xml", "sheet1.xml", "slide1.xml")):
                    cut = rng.randint(0, len(data))
                    data = data[:cut] + text.prose(rng.randint(200, 4000)).encode() + data[cut:]
                z.writestr(info, data, compress_type=info.compress_type)
        p.write_bytes(out.getvalue())
    stats["office_saved"] = len(saved)

    # The mailbox: pages rewritten in place, new mail appended.
    pst = home / "AppData/Local/Microsoft/Outlook/ana@example.com.pst"
    size = pst.stat().st_size
    appended_bytes = 0
    with open(pst, "r+b") as f:
        for _ in range(24):
            f.seek(rng.randrange(0, size // 4096) * 4096)
            f.write(noise.bytes(4096))
        f.seek(0)
        f.write(_pst_record(0, b"!BDN PST header " + noise.bytes(64)))
        f.seek(0, os.SEEK_END)
        attach_pool = [noise.bytes(200 * KiB)]
        for rec in mail_messages(
            text, Noise(ds.seed, "day-1-mail"), attach_pool, rng, int(size * 0.015)
        ):
            f.write(rec)
            appended_bytes += len(rec)
    stats["mailbox_appended"] = appended_bytes

    # Media: two new photos, one video gone.
    for i in range(2):
        _write(
            home / "Pictures" / f"IMG_20261128_{i:02d}.jpg",
            b"\xff\xd8\xff\xe1" + noise.bytes(int(rng.uniform(2, 6) * MiB)),
        )
    videos = sorted((home / "Videos").glob("*.mp4"))
    if videos:
        rng.choice(videos).unlink()
        stats["video_deleted"] = 1
    sparse = home / "VMs/win11-dev.vhdx"
    with open(sparse, "r+b") as f:
        vsize = sparse.stat().st_size
        f.seek(max(0, (vsize // 2 + vsize // 20 - MiB)) // 4096 * 4096)
        f.write(noise.bytes(min(MiB, vsize // 12)))
    _measure(ds)
    log("day of changes: " + ", ".join(f"{k}={v}" for k, v in stats.items()))
    return stats
