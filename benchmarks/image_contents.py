"""What a folder of an image is made of, by kind of file: the bytes one COPY layer hides.

Read from `docker cp CONTAINER:PATH -` (a tar stream), so nothing runs inside the image. ELF
files (shared libraries, squawk) are also asked how many of their bytes are debug sections and
symbol tables, the part that `strip` removes and no run reads.
"""

from __future__ import annotations

import re
import struct
import subprocess
import tarfile
from collections import Counter
from dataclasses import dataclass

# The first kind whose pattern matches a member's path is its kind.
KINDS = (
    ("tests shipped inside packages", re.compile(r"/site-packages/[^/]+/(tests|testing)/")),
    ("squawk (static binary)", re.compile(r"/bin/squawk$")),
    ("shared libraries (.so)", re.compile(r"\.so(\.[\d.]+)?$")),
    ("bytecode (.pyc)", re.compile(r"\.pyc$")),
    ("Python source (.py)", re.compile(r"\.py$")),
    ("C and Cython sources, stubs (.c .h .pyx .pxd .pyi)", re.compile(r"\.(c|h|cpp|pyx|pxd|pyi)$")),
)
OTHER = "everything else (metadata, templates, scripts)"
_SHT_NOBITS = 8


@dataclass(frozen=True)
class Contents:
    """Bytes by kind of file, and how many of them `strip` would remove."""

    by_kind: dict[str, int]
    strippable: int
    # Bytes by top-level folder of site-packages (a package, its .libs, its .dist-info) or file
    # of bin/.
    by_folder: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())


def kind_of(path: str) -> str:
    """The kind a file counts under."""
    return next((kind for kind, pattern in KINDS if pattern.search(path)), OTHER)


def folder_of(path: str) -> str:
    """A member's top-level folder under site-packages, or its path under bin/."""
    found = re.search(r"/site-packages/([^/]+)|/(bin/[^/]+)$", f"/{path}")
    return next((g for g in found.groups() if g), "other") if found else "other"


def strippable_bytes(data: bytes) -> int:
    """Bytes of a 64-bit little-endian ELF file in .debug* sections, .symtab and .strtab."""
    if data[:4] != b"\x7fELF" or data[4:6] != b"\x02\x01":
        return 0
    (section_headers,) = struct.unpack_from("<Q", data, 0x28)
    entry_size, count, names_index = struct.unpack_from("<HHH", data, 0x3A)
    # (name offset, type, flags, address, file offset, size) of each section
    sections = [struct.unpack_from("<IIQQQQ", data, section_headers + n * entry_size)
                for n in range(count)]
    names_at = sections[names_index][4]

    def name(offset: int) -> bytes:
        start = names_at + offset
        return data[start:data.index(b"\0", start)]

    return sum(size for offset, kind, _, _, _, size in sections
               if kind != _SHT_NOBITS
               and (name(offset).startswith(b".debug") or name(offset) in (b".symtab", b".strtab")))


def contents(image: str, path: str) -> Contents:
    """What `path` in `image` is made of."""
    container = subprocess.run(["docker", "create", image], capture_output=True, text=True,
                               check=True).stdout.strip()
    by_kind: Counter[str] = Counter()
    by_folder: Counter[str] = Counter()
    strippable = 0
    try:
        with subprocess.Popen(["docker", "cp", f"{container}:{path}", "-"],
                              stdout=subprocess.PIPE) as copy:
            assert copy.stdout is not None
            with tarfile.open(fileobj=copy.stdout, mode="r|") as tar:
                for member in tar:
                    if not member.isfile():
                        continue
                    kind = kind_of(f"/{member.name}")
                    by_kind[kind] += member.size
                    by_folder[folder_of(member.name)] += member.size
                    if kind.startswith(("squawk", "shared")):
                        file = tar.extractfile(member)
                        strippable += strippable_bytes(file.read()) if file else 0
    finally:
        subprocess.run(["docker", "rm", container], capture_output=True, check=False)
    return Contents({kind: by_kind[kind] for kind, _ in (*KINDS, (OTHER, None))}, strippable,
                    dict(by_folder.most_common()))
