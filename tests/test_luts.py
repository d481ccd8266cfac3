"""The .cube LUT reader: good files load, each kind of malformed file gets a clear error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backend.errors import LutError
from backend.media.luts import CubeLut, identity_cube, load_cube, parse_cube, write_cube


def cube_text(size: int = 2, rows: list[str] | None = None, header: str = "") -> str:
    if rows is None:
        rows = [f"{r} {g} {b}" for b in (0, 1) for g in (0, 1) for r in (0, 1)][: size**3]
    return f"{header}LUT_3D_SIZE {size}\n" + "\n".join(rows) + "\n"


def test_identity_round_trip(tmp_path: Path) -> None:
    lut = identity_cube(5)
    path = tmp_path / "id.cube"
    write_cube(lut, path)
    loaded = load_cube(path)
    assert loaded.size == 5
    np.testing.assert_allclose(loaded.table, lut.table, atol=1e-6)
    assert loaded.table[1].tolist() == pytest.approx([0.25, 0.0, 0.0])  # red changes fastest


def test_comments_title_bom_crlf_and_inline_comments(tmp_path: Path) -> None:
    text = "\ufeff# made by hand\r\nTITLE \"My # look\"\r\n\r\n" + cube_text().replace("\n", "  # size\r\n", 1)
    text = text.replace("1 1 1\n", "1 1 1 # white\r\n")
    path = tmp_path / "look.cube"
    path.write_bytes(text.encode("utf-8"))
    lut = load_cube(path)
    assert lut.title == "My # look"
    assert lut.size == 2 and lut.table.shape == (8, 3)


def test_domain_lines_change_the_allowed_range() -> None:
    rows = [f"{2 * r} {2 * g} {2 * b}" for b in (0, 1) for g in (0, 1) for r in (0, 1)]
    lut = parse_cube(cube_text(rows=rows, header="DOMAIN_MIN 0 0 0\nDOMAIN_MAX 2 2 2\n"))
    assert lut.domain_max == (2.0, 2.0, 2.0)
    lut = parse_cube(cube_text(rows=rows, header="LUT_3D_INPUT_RANGE 0 2\n"))
    assert lut.domain_min == (0.0, 0.0, 0.0) and lut.domain_max == (2.0, 2.0, 2.0)


def test_tiny_overshoot_is_rounding_noise() -> None:
    rows = ["-0.0002 0 0"] + ["0.5 0.5 1.0004"] * 7
    assert parse_cube(cube_text(rows=rows)).size == 2


@pytest.mark.parametrize("size_line, reason", [
    ("LUT_3D_SIZE abc", "bad size line"),
    ("LUT_3D_SIZE 2.5", "bad size line"),
    ("LUT_3D_SIZE", "bad size line"),
    ("LUT_3D_SIZE 2 2", "bad size line"),
    ("LUT_3D_SIZE 1", "out of range"),
    ("LUT_3D_SIZE 999", "out of range"),
])
def test_bad_size_line(size_line: str, reason: str) -> None:
    text = cube_text().replace("LUT_3D_SIZE 2", size_line)
    with pytest.raises(LutError, match=reason) as info:
        parse_cube(text, name="bad.cube")
    assert "bad.cube, line 1" in str(info.value)


def test_size_twice() -> None:
    with pytest.raises(LutError, match="twice"):
        parse_cube("LUT_3D_SIZE 2\n" + cube_text())


def test_missing_size_line() -> None:
    with pytest.raises(LutError, match="no LUT_3D_SIZE"):
        parse_cube("0 0 0\n1 1 1\n")


@pytest.mark.parametrize("rows, found", [(["0 0 0"] * 7, "found 7"), (["0 0 0"] * 9, "found 9")])
def test_wrong_number_of_rows(rows: list[str], found: str) -> None:
    with pytest.raises(LutError, match=f"needs 8 rows.*{found}"):
        parse_cube(cube_text(rows=rows))


@pytest.mark.parametrize("row, reason", [
    ("0 zero 0", "'zero' is not a number"),
    ("0 0", "needs 3 numbers; found 2"),
    ("0 0 0 0", "needs 3 numbers; found 4"),
    ("0 nan 0", "not a finite number"),
    ("inf 0 0", "not a finite number"),
])
def test_bad_table_row_names_the_line(row: str, reason: str) -> None:
    rows = ["0 0 0"] * 3 + [row] + ["0 0 0"] * 4
    with pytest.raises(LutError, match=reason) as info:
        parse_cube(cube_text(rows=rows), name="x.cube")
    assert "line 5" in str(info.value)


@pytest.mark.parametrize("row", ["1.5 0 0", "0 -0.2 0", "0 0 7"])
def test_value_out_of_domain(row: str) -> None:
    with pytest.raises(LutError, match="outside the domain"):
        parse_cube(cube_text(rows=["0 0 0"] * 7 + [row]))


def test_inverted_domain() -> None:
    with pytest.raises(LutError, match="DOMAIN_MAX must be above"):
        parse_cube(cube_text(header="DOMAIN_MIN 1 1 1\nDOMAIN_MAX 0 0 0\n"))


def test_one_dimensional_lut_is_refused() -> None:
    with pytest.raises(LutError, match="1D LUT"):
        parse_cube("LUT_1D_SIZE 2\n0 0 0\n1 1 1\n")


def test_keyword_after_table_is_an_error() -> None:
    with pytest.raises(LutError, match="line 10: DOMAIN_MIN must come before the table"):
        parse_cube(cube_text() + "DOMAIN_MIN 0 0 0\n")


@pytest.mark.parametrize("content, reason", [
    (b"", "empty"),
    (b"\x89PNG\r\n\x1a\n\xff\xfe\x00", "not a text"),
    (b"LUT_3D_SIZE 2\n\x00", "not a text"),
])
def test_unreadable_files(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "x.cube"
    path.write_bytes(content)
    with pytest.raises(LutError, match=reason):
        load_cube(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LutError, match="cannot be read"):
        load_cube(tmp_path / "nope.cube")


def test_written_file_is_plain_cube(tmp_path: Path) -> None:
    lut = CubeLut(2, identity_cube(2).table, title='say "hi"', domain_max=(2.0, 2.0, 2.0))
    path = tmp_path / "out.cube"
    write_cube(lut, path)
    text = path.read_text()
    assert text.startswith("TITLE \"say 'hi'\"\nLUT_3D_SIZE 2\nDOMAIN_MIN")
    assert load_cube(path).domain_max == (2.0, 2.0, 2.0)
