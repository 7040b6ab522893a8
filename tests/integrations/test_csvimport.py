"""Reading Clay CSV exports: BOM, quoting, Excel quirks, bad lines by number, files that are not CSV."""

import tracemalloc

import pytest

from integrations.clay.csvimport import CsvFileError, check, inspect, read_rows
from integrations.mapping.columnmap import Entry


def write(tmp_path, data: bytes | str, name="export.csv"):
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def test_it_reads_a_clay_export_with_a_bom_and_crlf(tmp_path):
    path = write(
        tmp_path, "\ufeffEmail,First Name,Score\r\nada@x.example,Ada,42\r\nalan@x.example,Alan,\r\n"
    )
    preview = inspect(path)
    assert preview.columns == ["Email", "First Name", "Score"]
    assert preview.rows == [
        {"Email": "ada@x.example", "First Name": "Ada", "Score": "42"},
        {"Email": "alan@x.example", "First Name": "Alan", "Score": ""},
    ]
    assert preview.row_count == 2 and preview.bad_line_count == 0


def test_quoted_fields_keep_commas_quotes_and_line_breaks_and_lines_count_from_the_start(tmp_path):
    path = write(
        tmp_path,
        'Company,Note,Email\n"Acme, Inc.","He said ""hi""\nthen left",a@x.example\nBeta,plain,b@x.example\n',
    )
    lines = list(read_rows(path))
    assert lines[0].values == {
        "Company": "Acme, Inc.",
        "Note": 'He said "hi"\nthen left',
        "Email": "a@x.example",
    }
    assert [line.number for line in lines] == [2, 4]


def test_excel_sep_line_and_semicolons(tmp_path):
    path = write(tmp_path, "sep=;\r\nEmail;Revenue\r\na@x.example;1,5\r\n")
    preview = inspect(path)
    assert preview.delimiter == ";"
    assert preview.rows == [{"Email": "a@x.example", "Revenue": "1,5"}]
    assert list(read_rows(path))[0].number == 3


def test_the_separator_is_guessed_from_the_header(tmp_path):
    assert inspect(write(tmp_path, "Email\tName\na@x.example\tA\n")).delimiter == "\t"
    assert inspect(write(tmp_path, 'Email;"Name, full"\na;b\n', "b.csv")).delimiter == ";"


def test_blank_lines_and_trailing_empty_cells_are_not_errors(tmp_path):
    path = write(tmp_path, "Email,Name\n\na@x.example,A,,\n,,\nb@x.example\n")
    lines = list(read_rows(path))
    assert [(line.number, line.values) for line in lines] == [
        (3, {"Email": "a@x.example", "Name": "A"}),
        (5, {"Email": "b@x.example", "Name": ""}),
    ]


def test_a_bad_line_is_reported_by_number_and_the_others_are_read(tmp_path):
    data = (
        b'Email,Name\na@x.example,A\nb@x.example,B,extra\nc@x.example,\xe9t\xe9\nd@x.example,"broken"x\ne@x.example,E\n'
        + b"".join(b"f%d@x.example,F\n" % n for n in range(20))
    )
    lines = list(read_rows(write(tmp_path, data)))
    good = [line.values["Email"] for line in lines if not line.error]
    bad = {line.number: line.error for line in lines if line.error}
    assert good[:2] == ["a@x.example", "e@x.example"] and len(good) == 22
    assert "3 values but the header has 2 columns" in bad[3]
    assert "not valid UTF-8" in bad[4]
    assert "quoting is broken" in bad[5]
    preview = inspect(write(tmp_path, data, "again.csv"))
    assert preview.row_count == 22 and preview.bad_line_count == 3
    assert [n for n, _ in preview.bad_lines] == [3, 4, 5]


def test_repeated_and_blank_column_names_get_unique_names(tmp_path):
    preview = inspect(write(tmp_path, "Email,,Email\na,b,c\n"))
    assert preview.columns == ["Email", "Column 2", "Email (2)"]
    assert preview.warnings


@pytest.mark.parametrize(
    "data, words",
    [
        (b"", "empty"),
        (b"PK\x03\x04\x14\x00rest-of-a-zip", "Excel workbook"),
        (b"%PDF-1.7 ...", "PDF"),
        ("Email,Name\nä,ö\n".encode("utf-16"), "UTF-16"),
        ("Email,Name\nJosé,Müller\n".encode("latin-1"), "not UTF-8"),
        (b'[{"email": "a@x.example"}]', "JSON"),
        (b"<html><body>Sign in</body></html>", "HTML"),
    ],
)
def test_a_file_that_is_not_utf8_csv_gets_a_clear_message(tmp_path, data, words):
    with pytest.raises(CsvFileError) as caught:
        inspect(write(tmp_path, data))
    assert words in str(caught.value)


def test_reading_resumes_after_a_line(tmp_path):
    path = write(tmp_path, "Email\n" + "".join(f"r{n}@x.example\n" for n in range(10)))
    assert [line.number for line in read_rows(path, after_line=8)] == [9, 10, 11]


def test_a_large_file_is_streamed_not_loaded(tmp_path):
    path = tmp_path / "big.csv"
    with open(path, "w", encoding="utf-8") as f:
        f.write("Email,Name,Note\n")
        for n in range(100_000):
            f.write(f'r{n}@x.example,Name {n},"a note, with a comma"\n')
    tracemalloc.start()
    count = sum(1 for _ in read_rows(path))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 100_000
    assert path.stat().st_size > 4_000_000
    assert peak < 1_000_000


# -- check(): the mapping run over every row before anything is written -------------------------

MAPPING = [Entry("Email", "email", ("trim", "lower")), Entry("Score", "score", ("integer",))]


def test_the_check_counts_what_will_be_written_and_refused_with_line_numbers(tmp_path):
    path = write(
        tmp_path,
        "Email,Score\n"
        "a@x.example,1\n"  # 2
        ",2\n"  # 3: blank match value
        "   ,2\n"  # 4: blank once trimmed
        "b@x.example,n/a\n"  # 5: not an integer
        "A@X.example ,3\n"  # 6: the same as line 2 once cast
        "c@x.example,4,extra\n"  # 7: a bad line
        "b@x.example,\n",  # 8: empty score leaves the field alone
    )
    result = check(path, MAPPING, "email")
    assert (result.rows, result.bad_lines, result.ready, result.refused) == (6, 1, 3, 3)
    assert result.blank_key.count == 2
    assert [line for line, _ in result.blank_key.examples] == [3, 4]
    assert result.bad_value.count == 1
    assert result.bad_value.examples[0][0] == 5
    assert result.bad_value.examples[0][1].startswith('Line 5: Column "Score": "n/a"')
    assert result.duplicates.count == 1
    assert result.duplicates.examples == [[6, 'Line 6 repeats "a@x.example" of line 2.']]
    assert result.distinct_keys == 2 and result.keys == ["a@x.example", "b@x.example"]


def test_without_a_key_field_every_mapped_row_is_ready_and_nothing_is_a_duplicate(tmp_path):
    path = write(tmp_path, "Email,Score\na@x.example,1\na@x.example,1\n,2\n")
    result = check(path, MAPPING, "")
    assert (result.ready, result.refused, result.duplicates.count) == (3, 0, 0)


def test_updates_find_rows_with_no_key_through_their_kiln_row_id(tmp_path):
    path = write(tmp_path, "id,Score,kiln_row_id\n7,1,\n,2,kr_1\n,3,\n")
    mapping = [Entry("id", "id", ("integer",)), Entry("Score", "score", ("integer",))]
    result = check(path, mapping, "id", row_id_column="kiln_row_id")
    assert result.ready == 2 and [line for line, _ in result.blank_key.examples] == [4]


def test_case_folded_matching_counts_ann_and_ANN_as_one_value(tmp_path):
    path = write(tmp_path, "Email\nAnn@x.example\nann@X.example\n")
    mapping = [Entry("Email", "email")]
    assert check(path, mapping, "email").duplicates.count == 0
    assert check(path, mapping, "email", fold_case=True).duplicates.count == 1


def test_the_check_keeps_counts_and_a_few_examples_not_the_rows(tmp_path):
    path = tmp_path / "big.csv"
    with open(path, "w", encoding="utf-8") as f:
        f.write("Email,Score\n")
        for n in range(50_000):
            score = "n/a" if n % 2 else str(n)
            f.write(f"{'' if n % 5 == 0 else f'r{n % 20_000}@x.example'},{score}\n")
    tracemalloc.start()
    result = check(path, MAPPING, "email", keep=20, max_keys=100)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert result.rows == 50_000 and result.bad_value.count == 25_000
    assert result.blank_key.count == 5_000  # even rows that are multiples of 5
    assert len(result.bad_value.examples) == 20 and len(result.blank_key.examples) == 20
    assert result.ready == 20_000 and result.duplicates.count == 20_000 - result.distinct_keys
    assert result.keys is None  # more distinct values than max_keys: none kept for a lookup
    assert peak < 3_000_000
