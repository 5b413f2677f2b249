"""A minimal reader and writer for the first sheet of an .xlsx workbook, with the standard library only.

The databases' coding sheets are Excel workbooks (CASME II: `CASME2-coding-20140508.xlsx`; SAMM:
`SAMM_Micro_FACS_Codes_v2.xlsx`). pandas reads them only through openpyxl, which this project does not depend on; an
.xlsx is a zip of XML parts, and a coding sheet needs nothing beyond cell values (shared strings, inline strings,
numbers, booleans), so this reads them directly. When openpyxl is installed, `read_table` in `adapters` still uses this
reader, so results do not depend on what is installed. Formulas are read as their cached values; dates come back as
Excel serial numbers (coding sheets hold none). The writer makes the small workbooks of the synthetic databases.
"""
from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path
from typing import Any, Sequence
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape

_NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
       "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
       "rel": "http://schemas.openxmlformats.org/package/2006/relationships"}
_REF = re.compile(r"([A-Z]+)(\d+)")


def _col_index(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + (ord(ch) - 64)
    return n - 1


def _text(el: ET.Element | None) -> str:
    """All text of an element's <t> descendants (rich text is split into runs)."""
    if el is None:
        return ""
    return "".join(t.text or "" for t in el.iter(f"{{{_NS['m']}}}t"))


def _first_sheet_path(z: zipfile.ZipFile) -> str:
    try:
        wb = ET.fromstring(z.read("xl/workbook.xml"))
        sheet = wb.find("m:sheets/m:sheet", _NS)
        rid = sheet.get(f"{{{_NS['r']}}}id")
        rels = ET.fromstring(z.read("xl/_rels/workbook.xml.rels"))
        for rel in rels.findall("rel:Relationship", _NS):
            if rel.get("Id") == rid:
                target = rel.get("Target").lstrip("/")
                return target if target.startswith("xl/") else "xl/" + target
    except (KeyError, AttributeError):
        pass
    return "xl/worksheets/sheet1.xml"


def read_xlsx(path: str | os.PathLike) -> list[list[Any]]:
    """The first sheet as rows of values (str, int, float, bool or None), padded to the widest row.

    Raises ValueError if the file is not an .xlsx workbook.
    """
    try:
        z = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise ValueError("not an .xlsx workbook (not a zip archive)") from None
    with z:
        shared: list[str] = []
        if "xl/sharedStrings.xml" in z.namelist():
            sst = ET.fromstring(z.read("xl/sharedStrings.xml"))
            shared = [_text(si) for si in sst.findall("m:si", _NS)]
        try:
            sheet = ET.fromstring(z.read(_first_sheet_path(z)))
        except KeyError:
            raise ValueError("no worksheet found in the workbook") from None
    rows: dict[int, dict[int, Any]] = {}
    for row in sheet.iter(f"{{{_NS['m']}}}row"):
        r_idx = int(row.get("r")) - 1 if row.get("r") else len(rows)
        cells: dict[int, Any] = {}
        for k, c in enumerate(row.findall("m:c", _NS)):
            m = _REF.match(c.get("r") or "")
            col = _col_index(m.group(1)) if m else k
            kind = c.get("t")
            v = c.find("m:v", _NS)
            if kind == "s":
                value: Any = shared[int(v.text)] if v is not None else None
            elif kind == "inlineStr":
                value = _text(c.find("m:is", _NS))
            elif kind == "b":
                value = bool(int(v.text)) if v is not None else None
            elif kind in ("str", "e"):
                value = v.text if v is not None else None
            else:
                if v is None or v.text is None:
                    value = None
                else:
                    f = float(v.text)
                    value = int(f) if f.is_integer() else f
            cells[col] = value
        rows[r_idx] = cells
    if not rows:
        return []
    width = max((max(c) + 1 for c in rows.values() if c), default=0)
    return [[rows.get(r, {}).get(c) for c in range(width)] for r in range(max(rows) + 1)]


def _cell_ref(row: int, col: int) -> str:
    letters = ""
    col += 1
    while col:
        col, rem = divmod(col - 1, 26)
        letters = chr(65 + rem) + letters
    return f"{letters}{row + 1}"


def write_xlsx(path: str | os.PathLike, rows: Sequence[Sequence[Any]]) -> Path:
    """Write rows (str, int, float or None) as the only sheet of a workbook; strings go to the shared-strings table,
    as Excel itself stores them."""
    strings: dict[str, int] = {}
    xml_rows = []
    for r, row in enumerate(rows):
        cells = []
        for c, value in enumerate(row):
            if value is None or value == "":
                continue
            ref = _cell_ref(r, c)
            if isinstance(value, bool):
                cells.append(f'<c r="{ref}" t="b"><v>{int(value)}</v></c>')
            elif isinstance(value, (int, float)):
                cells.append(f'<c r="{ref}"><v>{value}</v></c>')
            else:
                idx = strings.setdefault(str(value), len(strings))
                cells.append(f'<c r="{ref}" t="s"><v>{idx}</v></c>')
        xml_rows.append(f'<row r="{r + 1}">{"".join(cells)}</row>')
    main = _NS["m"]
    sheet = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet xmlns="{main}">'
             f'<sheetData>{"".join(xml_rows)}</sheetData></worksheet>')
    sst = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<sst xmlns="{main}" count="{len(strings)}" '
           f'uniqueCount="{len(strings)}">' + "".join(f"<si><t>{escape(s)}</t></si>" for s in strings) + "</sst>")
    workbook = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<workbook xmlns="{main}" '
                f'xmlns:r="{_NS["r"]}"><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>')
    wb_rels = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
               f'<Relationships xmlns="{_NS["rel"]}">'
               '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
               'worksheet" Target="worksheets/sheet1.xml"/>'
               '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
               'sharedStrings" Target="sharedStrings.xml"/></Relationships>')
    rels = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            f'<Relationships xmlns="{_NS["rel"]}">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
            'officeDocument" Target="xl/workbook.xml"/></Relationships>')
    ctypes = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
              '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
              '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
              '<Default Extension="xml" ContentType="application/xml"/>'
              '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.'
              'spreadsheetml.sheet.main+xml"/>'
              '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-'
              'officedocument.spreadsheetml.worksheet+xml"/>'
              '<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-'
              'officedocument.spreadsheetml.sharedStrings+xml"/></Types>')
    from .._io import atomic_path

    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("[Content_Types].xml", ctypes)
            z.writestr("_rels/.rels", rels)
            z.writestr("xl/workbook.xml", workbook)
            z.writestr("xl/_rels/workbook.xml.rels", wb_rels)
            z.writestr("xl/worksheets/sheet1.xml", sheet)
            z.writestr("xl/sharedStrings.xml", sst)
    return Path(path)
