"""Reading and checking .cube 3D LUT files before one reaches ffmpeg's lut3d filter.

ffmpeg reports a malformed LUT as a bare "Invalid data" from deep inside the filter graph, and
silently accepts some broken files. Checking here gives the user a line number and a reason; the
normalised copy we hand to ffmpeg (``write_cube``) is one its parser certainly reads.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backend.errors import LutError

log = logging.getLogger(__name__)

MIN_SIZE = 2
MAX_SIZE = 128  # 65 is the largest size in common use; 128**3 rows is already ~50 MB of text
MAX_FILE_BYTES = 64 * 1024 * 1024
# Output values may overshoot the domain by rounding noise; more than this is a broken file.
DOMAIN_TOLERANCE = 1e-3

_KEYWORD = re.compile(r"^[A-Z][A-Z0-9_]*$")


@dataclass(frozen=True)
class CubeLut:
    size: int
    table: np.ndarray  # (size**3, 3) float64, red index changing fastest (the .cube order)
    title: str = ""
    domain_min: tuple[float, float, float] = (0.0, 0.0, 0.0)
    domain_max: tuple[float, float, float] = (1.0, 1.0, 1.0)


def load_cube(path: Path | str) -> CubeLut:
    """Read and validate a .cube file; LutError with a readable reason if it is malformed."""
    path = Path(path)
    name = path.name
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise LutError(f"LUT file {name}: cannot be read ({exc.strerror or exc}).") from exc
    if size == 0:
        raise LutError(f"LUT file {name} is empty.")
    if size > MAX_FILE_BYTES:
        raise LutError(f"LUT file {name} is {size / 2**20:.0f} MB; the limit is {MAX_FILE_BYTES // 2**20} MB.")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LutError(f"LUT file {name} is not a text .cube file.") from exc
    return parse_cube(text, name=name)


def parse_cube(text: str, *, name: str = "LUT") -> CubeLut:
    """Parse .cube text (Adobe/Resolve 3D LUT format)."""
    if "\x00" in text:
        raise LutError(f"LUT file {name} is not a text .cube file.")
    header = _Header(name)
    rows: list[tuple[float, float, float]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line.startswith("TITLE"):  # a title may contain '#'; elsewhere it starts a comment
            line = line.split("#", 1)[0].strip()
        if not line:
            continue
        first = line.split(None, 1)[0]
        if _KEYWORD.match(first):
            if rows:
                raise LutError(f"LUT file {name}, line {number}: {first} must come before the table rows.")
            header.read(first, line, number)
            continue
        rows.append(_data_row(line, number, name))
    return header.build(rows)


def write_cube(lut: CubeLut, path: Path) -> None:
    """Write ``lut`` in the plain form ffmpeg's lut3d parser reads."""
    title = lut.title.replace('"', "'")
    lines = [f'TITLE "{title}"'] if title else []
    lines.append(f"LUT_3D_SIZE {lut.size}")
    if lut.domain_min != (0.0, 0.0, 0.0) or lut.domain_max != (1.0, 1.0, 1.0):
        lines.append("DOMAIN_MIN " + " ".join(f"{v:.6f}" for v in lut.domain_min))
        lines.append("DOMAIN_MAX " + " ".join(f"{v:.6f}" for v in lut.domain_max))
    body = "\n".join(f"{r:.6f} {g:.6f} {b:.6f}" for r, g, b in lut.table.tolist())
    Path(path).write_text("\n".join(lines) + "\n" + body + "\n", encoding="ascii")


def identity_cube(size: int) -> CubeLut:
    """The LUT that changes nothing (tests, and a base to build looks from)."""
    axis = np.linspace(0.0, 1.0, size)
    b, g, r = np.meshgrid(axis, axis, axis, indexing="ij")  # red fastest in C order
    return CubeLut(size=size, table=np.stack([r.ravel(), g.ravel(), b.ravel()], axis=1))


class _Header:
    """The keyword lines before the table."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.size: int | None = None
        self.title = ""
        self.domain_min = (0.0, 0.0, 0.0)
        self.domain_max = (1.0, 1.0, 1.0)

    def read(self, keyword: str, line: str, number: int) -> None:
        where = f"LUT file {self.name}, line {number}"
        values = line.split()[1:]
        if keyword == "TITLE":
            self.title = line[len("TITLE"):].strip().strip('"')
        elif keyword == "LUT_3D_SIZE":
            self.size = self._size(values, where)
        elif keyword == "LUT_1D_SIZE":
            raise LutError(f"{where}: this is a 1D LUT; only 3D LUTs (LUT_3D_SIZE) are supported.")
        elif keyword == "DOMAIN_MIN":
            self.domain_min = _triple(values, where, keyword)
        elif keyword == "DOMAIN_MAX":
            self.domain_max = _triple(values, where, keyword)
        elif keyword == "LUT_3D_INPUT_RANGE":  # Resolve's spelling of one domain for all channels
            low, high = _numbers(values, 2, where, keyword)
            self.domain_min, self.domain_max = (low,) * 3, (high,) * 3
        else:
            log.warning("%s: ignoring unknown keyword %s", where, keyword)

    def _size(self, values: list[str], where: str) -> int:
        if self.size is not None:
            raise LutError(f"{where}: LUT_3D_SIZE appears twice.")
        if len(values) != 1 or not (values[0].isascii() and values[0].isdigit()):
            raise LutError(f"{where}: bad size line; expected 'LUT_3D_SIZE <whole number>'.")
        size = int(values[0])
        if not MIN_SIZE <= size <= MAX_SIZE:
            raise LutError(f"{where}: LUT_3D_SIZE {size} is out of range ({MIN_SIZE}..{MAX_SIZE}).")
        return size

    def build(self, rows: list[tuple[float, float, float]]) -> CubeLut:
        if self.size is None:
            raise LutError(f"LUT file {self.name}: no LUT_3D_SIZE line, so this is not a 3D .cube LUT.")
        expected = self.size**3
        if len(rows) != expected:
            raise LutError(
                f"LUT file {self.name}: LUT_3D_SIZE {self.size} needs {expected:,} rows "
                f"({self.size}³); found {len(rows):,}."
            )
        low, high = np.array(self.domain_min), np.array(self.domain_max)
        if np.any(high <= low):
            raise LutError(f"LUT file {self.name}: DOMAIN_MAX must be above DOMAIN_MIN for every channel.")
        table = np.asarray(rows, dtype=np.float64)
        slack = DOMAIN_TOLERANCE * (high - low)
        outside = np.any((table < low - slack) | (table > high + slack), axis=1)
        if outside.any():
            index = int(np.argmax(outside))
            raise LutError(
                f"LUT file {self.name}: table row {index + 1} {tuple(rows[index])} lies outside the domain "
                f"{self.domain_min}..{self.domain_max}."
            )
        return CubeLut(self.size, table, self.title, self.domain_min, self.domain_max)


def _data_row(line: str, number: int, name: str) -> tuple[float, float, float]:
    where = f"LUT file {name}, line {number}"
    values = line.split()
    r, g, b = _numbers(values, 3, where, "a table row")
    return r, g, b


def _triple(values: list[str], where: str, what: str) -> tuple[float, float, float]:
    r, g, b = _numbers(values, 3, where, what)
    return r, g, b


def _numbers(values: list[str], count: int, where: str, what: str) -> list[float]:
    if len(values) != count:
        raise LutError(f"{where}: {what} needs {count} numbers; found {len(values)}.")
    numbers = []
    for value in values:
        try:
            number = float(value)
        except ValueError:
            raise LutError(f"{where}: {value!r} is not a number.") from None
        if not math.isfinite(number):
            raise LutError(f"{where}: {value!r} is not a finite number.")
        numbers.append(number)
    return numbers
