"""The CSV reader of the command line (numpy.loadtxt, with precise error messages)."""

import numpy as np
import pytest

from skdeepcluster.cli._common import CLIError
from skdeepcluster.cli._readers import _load_csv


def load(tmp_path, text, label_column=None, *, raw=None):
    path = tmp_path / "d.csv"
    if raw is not None:
        path.write_bytes(raw)
    else:
        path.write_text(text, newline="")
    return _load_csv(path, label_column)


def test_plain_numbers(tmp_path):
    data = load(tmp_path, "1,2,3\n4,5,6\n")
    np.testing.assert_array_equal(data.X, [[1, 2, 3], [4, 5, 6]])
    assert data.X.dtype == np.float64 and data.y is None


def test_blank_rows_spaces_quotes_crlf_and_bom(tmp_path):
    text = '\ufeff\r\n a , b ,c\r\n\r\n  \r\n1, 2 ,"3"\r\n,,\r\n4,5.5,-6e1\r\n'
    data = load(tmp_path, text)
    np.testing.assert_array_equal(data.X, [[1, 2, 3], [4, 5.5, -60]])


@pytest.mark.parametrize(
    "label_column, expected",
    [("species", ["x y", "z", "x y"]), ("-1", ["x y", "z", "x y"]), ("2", ["x y", "z", "x y"])],
)
def test_string_labels(tmp_path, label_column, expected):
    data = load(tmp_path, 'a,b,species\n1,2,"x y"\n3,4, z\n5,6,x y\n', label_column)
    np.testing.assert_array_equal(data.X, [[1, 2], [3, 4], [5, 6]])
    assert data.y.dtype == object and data.y.tolist() == expected


def test_label_column_in_the_middle(tmp_path):
    data = load(tmp_path, "0,7,2\n3,8,4\n", "1")  # "1" is no cell of the first row
    np.testing.assert_array_equal(data.X, [[0, 2], [3, 4]])
    assert data.y.dtype == np.int64 and data.y.tolist() == [7, 8]


@pytest.mark.parametrize(
    "values, dtype, expected",
    [
        (["1", "2", "1"], np.int64, [1, 2, 1]),
        (["1.0", "2.0", "1e0"], np.int64, [1, 2, 1]),
        (["0.5", "2", "0.5"], np.float64, [0.5, 2.0, 0.5]),
    ],
)
def test_numeric_labels(tmp_path, values, dtype, expected):
    rows = "".join(f"{i},{v}\n" for i, v in enumerate(values))
    data = load(tmp_path, "f,label\n" + rows, "label")
    assert data.y.dtype == dtype and data.y.tolist() == expected


@pytest.mark.parametrize(
    "text, label_column, fragments",
    [
        ("", None, ["is empty"]),
        ("\n  \n,,\n", None, ["is empty"]),
        ("a,b\n\n", None, ["has a header but no data rows"]),
        ("\n\n1,2\n3,x\n", None, ["line 4, column 2", "'x'", "--label-column"]),
        ("1,2\n3,\n", None, ["line 2, column 2", "''"]),
        ("a,b,c\n1,2\n3,4\n", None, ["line 2: 2 fields, expected 3"]),
        ("1,2\n3,4,5\n", None, ["line 2: 3 fields, expected 2"]),
        ("5,a\n6,b\n", "1", None),
        # A --label-column that is a cell of the first row names a header column.
        ("1,a\n2,b\n", "1", ["line 2, column 2", "'b'"]),
        ("y\n1\n2\n", "y", ["no feature columns"]),
        ("a,b\n1,2\n", "c", ["'c' is not a column", "first row: a, b"]),
        ("a,b\n1,2\n", "-3", ["out of range", "2 columns"]),
    ],
)
def test_errors(tmp_path, text, label_column, fragments):
    if fragments is None:  # no error
        assert load(tmp_path, text, label_column).y.tolist() == ["a", "b"]
        return
    with pytest.raises(CLIError) as info:
        load(tmp_path, text, label_column)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_not_utf8(tmp_path):
    with pytest.raises(CLIError, match="cannot read .* as CSV"):
        load(tmp_path, None, raw=b"1,2\n\xff\xfe,3\n")


def test_wide_file_is_read_in_one_go(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 40))
    np.savetxt(tmp_path / "d.csv", X, delimiter=",", fmt="%.17g")
    np.testing.assert_array_equal(_load_csv(tmp_path / "d.csv", None).X, X)
