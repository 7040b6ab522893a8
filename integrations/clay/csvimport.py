"""Read a Clay table export (CSV) as a stream of rows, one bad line never stopping the others (pure).

What it copes with, each seen in real exports:
- a UTF-8 byte order mark (Excel's "CSV UTF-8") and CRLF line ends;
- quoted fields holding commas, doubled quotes and line breaks: `"Acme, Inc."`,
  doubled quotes inside quotes, a multi-line note — a row's line number is the line it starts on;
- Excel's `sep=;` first line, and `;` or tab as the separator (locales where `,` is the
  decimal mark), guessed from the header when there is no `sep=` line;
- empty cells (kept as ""), trailing empty cells past the header, and blank lines (skipped);
- blank or repeated column names: `Column 3`, `Email (2)`.

A whole file that is not CSV (an .xlsx workbook, a PDF, JSON, UTF-16 "Unicode text") or not
UTF-8 raises CsvFileError with what to do instead. Inside a good file, a line that is not valid
UTF-8, holds more values than the header has columns, or breaks CSV quoting comes back as a
`Line` with `error` set and the next lines are read as usual. The file is read line by line:
memory does not grow with its size.

check() runs a column mapping (columnmap.py, the one inbound rows use too) over every row
before anything is written: rows that will be written, rows refused and why, repeated match
values. It keeps counts and the first few examples of each problem, not the rows.
"""

import codecs
import csv
from collections.abc import Iterator
from dataclasses import dataclass, field

from integrations.mapping import columnmap
from integrations.mapping.casts import show

HEAD_BYTES = 64 * 1024
DELIMITERS = (",", ";", "\t", "|")
_MAGIC = [
    (b"PK\x03\x04", "an Excel workbook (.xlsx) or another zip file"),
    (b"\xd0\xcf\x11\xe0", "an old Excel workbook (.xls)"),
    (b"%PDF", "a PDF"),
    (b"\x1f\x8b", "a gzip archive"),
]
_HOW_TO = (
    'In Clay use "Export → Download CSV"; from Excel use "Save As → CSV UTF-8 (comma delimited)".'
)


class CsvFileError(Exception):
    """The file as a whole cannot be read as CSV; the message says why and what to do."""


@dataclass
class Line:
    number: int  # the line the row starts on, 1-based, counting the header line
    values: dict | None
    error: str = ""


@dataclass
class Preview:
    columns: list
    rows: list  # the first rows, as dicts
    delimiter: str
    row_count: int = 0
    bad_line_count: int = 0
    bad_lines: list = field(default_factory=list)  # the first few [line, message]
    warnings: list = field(default_factory=list)


def inspect(path, preview_rows: int = 10, keep_bad: int = 20) -> Preview:
    """Read the whole file once: columns, the first rows, the row count and the bad lines."""
    reader = CsvReader(path)
    preview = Preview(reader.columns, [], reader.delimiter, warnings=list(reader.warnings))
    for line in reader.rows():
        if line.error:
            preview.bad_line_count += 1
            if len(preview.bad_lines) < keep_bad:
                preview.bad_lines.append([line.number, line.error])
            continue
        preview.row_count += 1
        if len(preview.rows) < preview_rows:
            preview.rows.append(line.values)
    return preview


@dataclass
class Problem:
    count: int = 0
    examples: list = field(default_factory=list)  # the first [line, sentence]


@dataclass
class Check:
    """What a mapping makes of every row of a file (see check())."""

    key_field: str = ""
    rows: int = 0  # readable data rows; bad lines are counted apart
    bad_lines: int = 0
    ready: int = 0  # rows the mapping turns into a write
    bad_value: Problem = field(default_factory=Problem)  # a value that does not cast
    blank_key: Problem = field(default_factory=Problem)  # no match value (or primary key)
    duplicates: Problem = field(default_factory=Problem)  # rows repeating an earlier key
    distinct_keys: int = 0
    # The distinct key values as they will be written, for a lookup; None past max_keys.
    keys: list | None = field(default_factory=list)

    @property
    def refused(self) -> int:
        return self.bad_value.count + self.blank_key.count


def check(
    path,
    mapping: list,
    key_field: str = "",
    *,
    fold_case: bool = False,
    row_id_column: str = "",
    keep: int = 20,
    max_keys: int = 2000,
) -> Check:
    """Map and cast every row as the run will; count what will be written and what not.

    A row is refused for its first problem: a value that does not cast, then a blank
    `key_field` (the match field, or the primary key for updates; a row with a value in
    `row_id_column` is found through its round trip instead). Rows that repeat an earlier
    row's key are counted as duplicates: they are written too, after it, in file order.
    Memory holds a 64-bit hash and a line number per distinct key, and at most max_keys values.
    """
    result = Check(key_field=key_field)
    first_line = {}  # hash of the key text -> the line that had it first
    for line in read_rows(path):
        if line.error:
            result.bad_lines += 1
            continue
        result.rows += 1
        data, problems = columnmap.apply(mapping, line.values)
        if problems:
            _note(result.bad_value, line.number, f"Line {line.number}: {problems[0]}", keep)
            continue
        if not key_field:
            result.ready += 1
            continue
        value = data.get(key_field)
        if value in (None, "") or isinstance(value, dict | list):
            if row_id_column and str(line.values.get(row_id_column) or "").strip():
                result.ready += 1
                continue
            _note(
                result.blank_key,
                line.number,
                f'Line {line.number}: no value for "{key_field}".',
                keep,
            )
            continue
        result.ready += 1
        digest = hash(columnmap.key_text(value, fold_case))
        if digest in first_line:
            _note(
                result.duplicates,
                line.number,
                f"Line {line.number} repeats {show(value)} of line {first_line[digest]}.",
                keep,
            )
            continue
        first_line[digest] = line.number
        result.distinct_keys += 1
        if result.keys is not None:
            result.keys.append(value)
            if len(result.keys) > max_keys:
                result.keys = None
    return result


def _note(problem: Problem, number: int, sentence: str, keep: int):
    problem.count += 1
    if len(problem.examples) < keep:
        problem.examples.append([number, sentence])


def read_rows(path, after_line: int = 0) -> Iterator[Line]:
    """Every data row (and bad line) that starts after `after_line`."""
    return CsvReader(path).rows(after_line)


class CsvReader:
    def __init__(self, path):
        self.path = path
        self.warnings = []
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
        text = _check_head(head, complete=len(head) < HEAD_BYTES)
        first = text.lstrip("\ufeff").split("\n", 1)[0].strip("\r")
        self.skip_sep_line = first.lower().startswith("sep=") and len(first) == 5
        if self.skip_sep_line:
            self.delimiter = first[4]
        else:
            self.delimiter = _guess_delimiter(first)
        self.columns, self.header_line = self._header()

    def _records(self):
        """(start line, values or None, error) for each CSV record, header included."""
        bad_lines = set()
        reader = csv.reader(self._text_lines(bad_lines), delimiter=self.delimiter, strict=True)
        while True:
            start = reader.line_num + 1
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield start, None, f"Line {start}: the CSV quoting is broken ({exc})."
                continue
            broken = sorted(n for n in bad_lines if start <= n <= reader.line_num)
            if broken:
                bad_lines.difference_update(broken)
                yield (
                    start,
                    None,
                    f"Line {broken[0]} is not valid UTF-8: save the file as CSV UTF-8.",
                )
                continue
            if any("\x00" in value for value in values):
                yield start, None, f"Line {start} holds a NUL byte: it is binary data, not text."
                continue
            yield start, values, ""

    def _text_lines(self, bad_lines):
        with open(self.path, "rb") as f:
            for number, raw in enumerate(f, 1):
                if number == 1:
                    raw = raw.removeprefix(codecs.BOM_UTF8)
                    if self.skip_sep_line:
                        yield ""  # keeps the line count; csv reads an empty line as nothing
                        continue
                try:
                    yield raw.decode("utf-8")
                except UnicodeDecodeError:
                    bad_lines.add(number)
                    yield raw.decode("utf-8", errors="replace")

    def _header(self):
        for start, values, error in self._records():
            if error:
                raise CsvFileError(f"The header line cannot be read. {error} {_HOW_TO}")
            if values and any(v.strip() for v in values):
                return self._names(values), start
        raise CsvFileError("The file has no header line: it is empty or holds only blank lines.")

    def _names(self, values):
        names, seen = [], {}
        for index, value in enumerate(values, 1):
            name = value.strip() or f"Column {index}"
            if name in seen:
                seen[name] += 1
                self.warnings.append(
                    f'The column name "{name}" appears more than once; the later one is "{name} ({seen[name]})".'
                )
                name = f"{name} ({seen[name]})"
            else:
                seen[name] = 1
            names.append(name)
        if len(names) == 1 and not self.skip_sep_line:
            self.warnings.append(
                "Only one column was found: if the file uses another separator than , ; tab or |, "
                "export it again as CSV."
            )
        return names

    def rows(self, after_line: int = 0) -> Iterator[Line]:
        width = len(self.columns)
        for start, values, error in self._records():
            if start <= self.header_line:
                continue
            if start <= after_line:
                continue
            if error:
                yield Line(start, None, error)
                continue
            if not any(v.strip() for v in values):
                continue  # a blank line, or a row of empty cells (",,,")
            if len(values) > width:
                if any(v.strip() for v in values[width:]):
                    yield Line(
                        start,
                        None,
                        f"Line {start} has {len(values)} values but the header has {width} columns.",
                    )
                    continue
                values = values[:width]
            values = values + [""] * (width - len(values))
            yield Line(start, dict(zip(self.columns, values, strict=True)))


def _check_head(head: bytes, complete: bool) -> str:
    if not head.strip():
        raise CsvFileError("The file is empty.")
    for magic, what in _MAGIC:
        if head.startswith(magic):
            raise CsvFileError(f"This is {what}, not a CSV file. {_HOW_TO}")
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or head[:200].count(b"\x00") > 4:
        raise CsvFileError(
            'This file is UTF-16 (Excel\'s "Unicode Text") or binary, not UTF-8 CSV. ' + _HOW_TO
        )
    lines = head.split(b"\n")
    if not complete:
        lines = lines[:-1]  # the last one may be cut inside a character
    bad = [n for n, raw in enumerate(lines, 1) if not _is_utf8(raw)]
    # One stray byte is a bad line; a header or many lines that fail is the file's encoding.
    if bad and (bad[0] == 1 or len(bad) * 10 > len(lines)):
        raise CsvFileError(
            f"This file is not UTF-8 (the first problem is on line {bad[0]}); it is probably "
            f"Windows-1252 or Latin-1. {_HOW_TO}"
        )
    text = b"\n".join(lines).decode("utf-8", errors="replace")
    start = text.lstrip("\ufeff \r\n\t")[:1]
    if start in ("{", "["):
        raise CsvFileError("This looks like JSON, not CSV. " + _HOW_TO)
    if start == "<":
        raise CsvFileError("This looks like HTML or XML, not CSV. " + _HOW_TO)
    return text


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _guess_delimiter(header: str) -> str:
    """The candidate that splits the header (outside quotes) most often; "," on a tie."""
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for char in header:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    best = max(DELIMITERS, key=lambda d: (counts[d], d == ","))
    return best if counts[best] else ","
