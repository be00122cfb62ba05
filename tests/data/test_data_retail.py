"""UCI Online Retail: the real per-day files, tiny CSV / xlsx files written to tmp, cleaning, features,
the category proxy and the retail-temporal split."""

from __future__ import annotations

import gzip
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from tastemaker.data.download import data_dir
from tastemaker.data.retail import (
    CLEAN_ROWS,
    RULES,
    derive_category,
    load_online_retail,
    read_online_retail,
    retail_temporal_split,
)
from tastemaker.errors import DataError

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
# one row per rule (in order), and kept rows; comments name what each row tests
ROWS = [
    "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom",  # kept
    "536365,71053,WHITE METAL LANTERN,6,2010-12-01 08:26:00,3.39,17850.0,United Kingdom",  # kept
    "536366,22633,HAND WARMER UNION JACK,6,2010-12-01 08:28:00,1.85,,United Kingdom",  # missing customer
    "C536379,22633,HAND WARMER UNION JACK,-2,2010-12-01 09:41:00,1.85,17850.0,United Kingdom",  # cancellation
    "536380,22634,BROKEN,-1,2010-12-01 09:45:00,1.00,12583.0,France",  # quantity <= 0
    "536381,22635,FREE GIFT,1,2010-12-01 09:50:00,0.0,12583.0,France",  # price <= 0
    "536382,POST,POSTAGE,1,2010-12-01 09:55:00,18.0,12583.0,France",  # non-product (letters)
    "536382,23444,CARRIAGE,1,2010-12-01 09:55:00,50.0,12583.0,France",  # non-product (listed code)
    '536383,22636,"CHILDS BREAKFAST SET, SPACEBOY",2,2010-12-02 10:00:00,9.95,12583.0,France',  # kept, quoted comma
    "536384,71053,WHITE METAL LANTERN ,1,2010-12-03 11:00:00,3.75,12583.0,France",  # kept, trailing space
]


def write_csv(path: Path, rows: list[str], *, gz: bool = False, header: str = HEADER) -> Path:
    text = header + "".join(r + "\n" for r in rows)
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


@pytest.fixture(scope="module")
def real():
    return load_online_retail(data_dir() / "online-retail")


# --- the real data --------------------------------------------------------------------------------
def test_real_data_cleans_to_the_published_count(real):
    assert len(real) == CLEAN_ROWS == 396_241
    rep = real.report
    assert rep.rows_read == 541_909
    assert [(s.rule, s.dropped) for s in rep.steps] == [
        ("missing_customer", 135_080), ("cancellation", 8_905), ("nonpositive_quantity", 0),
        ("nonpositive_price", 40), ("non_product", 1_643)]
    assert [s.matched_alone for s in rep.steps] == [135_080, 9_288, 10_624, 2_517, 3_097]
    x = real.interactions
    assert (x.n_users, x.n_items) == (4_334, 3_656)
    assert (x.values > 0).all() and (real.unit_price > 0).all()
    np.testing.assert_allclose(real.revenue, x.values * real.unit_price)
    codes = x.item_vocab.ids
    assert all(c[0].isdigit() for c in codes) and not {"23444", "23574", "23702"} & set(codes.tolist())
    assert "| 2 | cancellation | 8,905 | 9,288 |" in rep.markdown()


def test_real_split_is_the_retail_temporal_protocol(real):
    split = retail_temporal_split(real)
    assert str(np.datetime64(split.cut, "s")) == "2011-11-10T00:00:00"
    assert str(np.datetime64(split.end, "s")) == "2011-12-10T00:00:00"
    assert len(split.train) + len(split.test) == len(real)
    d = split.describe()
    assert (d["users"], d["relevant_pairs"], d["relevant_unseen_in_training"]) == (1_375, 45_626, 457)
    val = split.validation()
    assert str(np.datetime64(val.cut, "s")) == "2011-10-11T00:00:00" and val.end == split.cut
    feats = split.train.item_features.frame
    assert feats["last_seen"].max() < split.cut  # training features see no test row
    shares = (real.item_features.frame["category"] != "other/other").mean()
    assert shares > 0.9  # the keyword proxy names a category for most products


# --- tiny files -------------------------------------------------------------------------------
def test_cleaning_drops_one_rule_at_a_time(tmp_path):
    data = load_online_retail(write_csv(tmp_path / "t.csv", ROWS))
    assert [s.dropped for s in data.report.steps] == [1, 1, 1, 1, 2]
    assert data.report.steps[2].matched_alone == 2  # the cancellation line (-2) and the return (-1)
    assert data.report.rows_read == 10 and data.report.rows_kept == len(data) == 4


def test_tiny_file_rows_values_and_features(tmp_path):
    data = load_online_retail(write_csv(tmp_path / "t.csv.gz", ROWS, gz=True))
    x = data.interactions
    assert len(data) == 4 and x.user_vocab.ids.tolist() == [12583, 17850]
    assert x.item_vocab.ids.tolist() == ["22636", "71053", "85123A"]
    assert data.invoice.tolist() == ["536365", "536365", "536383", "536384"]
    assert data.baskets()[0] == data.baskets()[1] != data.baskets()[2]
    np.testing.assert_allclose(data.revenue, [15.3, 20.34, 19.9, 3.75])
    lantern = data.item_features.frame.loc["71053"]
    assert lantern["description"] == "WHITE METAL LANTERN" and lantern["price_median"] == pytest.approx(3.57)
    assert lantern["customers"] == 2 and lantern["category"] == "lighting/lantern"
    assert data.item_features.frame.loc["22636", "description"] == "CHILDS BREAKFAST SET, SPACEBOY"
    assert data.user_features.frame.loc[12583, "country"] == "France"
    cat = data.catalog()
    assert cat.ids.tolist() == x.item_vocab.ids.tolist() and cat.texts([1]) == ["WHITE METAL LANTERN"]
    assert cat.category_paths([2]).tolist() == ["lighting/t-light"]
    one = load_online_retail(tmp_path / "t.csv.gz", value="one")
    assert (one.interactions.values == 1).all()


def test_unclean_load_keeps_flagged_rows(tmp_path):
    data = load_online_retail(write_csv(tmp_path / "t.csv", ROWS), clean=False)
    x = data.interactions
    assert len(data) == len(ROWS) - 1  # only the row without a customer goes
    names = np.asarray(x.event_names)[x.event_types].tolist()
    assert names == ["purchase", "purchase", "cancellation", "nonpositive_quantity", "nonpositive_price",
                     "non_product", "non_product", "purchase", "purchase"]
    assert data.report.clean is False and data.report.steps[1].dropped == 0


def test_folder_of_daily_files_and_the_fast_path_agree(tmp_path):
    folder = tmp_path / "online-retail" / "by-day"
    folder.mkdir(parents=True)
    write_csv(folder / "2010-12-01.csv.gz", ROWS[:8], gz=True)
    write_csv(folder / "2010-12-02.csv", ROWS[8:])
    frame, files = read_online_retail(tmp_path / "online-retail")
    assert [n for _, n in files] == [8, 2] and len(frame) == 10
    data = load_online_retail(tmp_path / "online-retail")
    assert len(data) == 4 and data.report.rows_read == 10


def test_online_retail_ii_column_names(tmp_path):
    header = "Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country\n"
    data = load_online_retail(write_csv(tmp_path / "ii.csv", ROWS, header=header))
    assert len(data) == 4


@pytest.mark.parametrize(("row", "line", "column", "text"), [
    ("536390,22633,X,two,2010-12-01 08:28:00,1.85,12583.0,France", 3, "Quantity", "not an integer"),
    ("536390,22633,X,2,yesterday,1.85,12583.0,France", 3, "InvoiceDate", "not a date"),
    ("536390,22633,X,2,2010-12-01 08:28:00,cheap,12583.0,France", 3, "UnitPrice", "not a number"),
    ("536390,22633,X,2,2010-12-01 08:28:00,1.85,12583.5,France", 3, "CustomerID", "not a customer number"),
    ("536390,22633,X,2", 3, "InvoiceDate", "cut short"),
])
def test_bad_rows_name_file_line_and_column(tmp_path, row, line, column, text):
    path = write_csv(tmp_path / "bad.csv", [ROWS[0], row, ROWS[1]])
    with pytest.raises(DataError, match=text) as err:
        load_online_retail(path)
    assert (err.value.path, err.value.line, err.value.column) == (str(path), line, column)


def test_bad_header_and_missing_path(tmp_path):
    path = write_csv(tmp_path / "h.csv", ROWS, header="Invoice,Code,Quantity\n")
    with pytest.raises(DataError, match="lacks column") as err:
        load_online_retail(path)
    assert err.value.line == 1
    with pytest.raises(DataError, match="no such file"):
        load_online_retail(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no \.csv"):
        load_online_retail(tmp_path / "empty")


# --- the publisher's workbook -------------------------------------------------------------------
def write_xlsx(path: Path, rows: list[list]) -> Path:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "Online Retail"
    ws.append(HEADER.strip().split(","))
    for r in rows:
        ws.append(r)
    wb.save(path)
    return path


XLSX_ROWS = [  # as the workbook holds them: numbers as numbers, dates as date-times
    [536365, "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 6, datetime(2010, 12, 1, 8, 26), 2.55, 17850,
     "United Kingdom"],
    [536365, 71053, "WHITE METAL LANTERN", 6, datetime(2010, 12, 1, 8, 26), 3.39, 17850, "United Kingdom"],
    [536366, 22633, "HAND WARMER UNION JACK", 6, datetime(2010, 12, 1, 8, 28), 1.85, None, "United Kingdom"],
    ["C536379", 22633, "HAND WARMER UNION JACK", -2, datetime(2010, 12, 1, 9, 41), 1.85, 17850, "United Kingdom"],
    [536382, "POST", "POSTAGE", 1, datetime(2010, 12, 1, 9, 55), 18.0, 12583, "France"],
    [536383, 22636, "CHILDS BREAKFAST SET, SPACEBOY", 2, datetime(2010, 12, 2, 10, 0), 9.95, 12583, "France"],
]


def test_xlsx_reads_like_the_csv(tmp_path):
    (tmp_path / "book").mkdir()
    data = load_online_retail(write_xlsx(tmp_path / "book" / "Online Retail.xlsx", XLSX_ROWS))
    x = data.interactions
    assert len(data) == 3 and x.item_vocab.ids.tolist() == ["22636", "71053", "85123A"]
    assert x.user_vocab.ids.tolist() == [12583, 17850]
    assert [s.dropped for s in data.report.steps] == [1, 1, 0, 0, 1]
    csv = load_online_retail(write_csv(tmp_path / "same.csv", [ROWS[0], ROWS[1], ROWS[2], ROWS[3], ROWS[6], ROWS[8]]))
    np.testing.assert_array_equal(x.timestamps, csv.interactions.timestamps)
    np.testing.assert_allclose(data.revenue, csv.revenue)
    assert len(load_online_retail(tmp_path / "book")) == 3  # a folder holding only the workbook


def test_xlsx_bad_cell_names_the_row(tmp_path):
    rows = [XLSX_ROWS[0], [536390, 22633, "X", "lots", datetime(2010, 12, 1), 1.0, 12583, "France"]]
    with pytest.raises(DataError, match="not a whole number") as err:
        load_online_retail(write_xlsx(tmp_path / "bad.xlsx", rows))
    assert (err.value.line, err.value.column) == (3, "Quantity")


# --- category proxy and split ---------------------------------------------------------------------
def test_category_proxy():
    got = derive_category(["WHITE HANGING HEART T-LIGHT HOLDER", "JUMBO BAG RED RETROSPOT",
                           "PAPER CHAIN KIT 50'S CHRISTMAS", "SET OF 3 CAKE TINS PANTRY DESIGN",
                           "INFLATABLE POLITICAL GLOBE", "ASSORTED COLOUR BIRD ORNAMENT", "", None,
                           "RED RETROSPOT CUSHION COVER", "STORAGE BOX"])
    assert got.tolist() == ["lighting/t-light", "bags/bag", "seasonal/christmas", "kitchen/pantry", "other/other",
                            "decor/ornament", "other/other", "other/other", "textiles/cushion", "decor/box"]


def test_split_window_users_and_relevance(tmp_path):
    rows = [  # user 1: before and in the window; user 2: only before; user 3: only in the window
        "1,10001,A,1,2011-01-01 10:00:00,1.0,1,UK",
        "2,10002,B,1,2011-01-20 10:00:00,2.0,2,UK",
        "3,10001,A,2,2011-01-25 10:00:00,1.0,1,UK",
        "4,10003,C,1,2011-01-26 10:00:00,5.0,1,UK",  # a product never seen before the window
        "5,10001,A,3,2011-01-27 23:59:59,1.0,3,UK",
    ]
    data = load_online_retail(write_csv(tmp_path / "s.csv", rows))
    split = retail_temporal_split(data, window_days=7)
    assert str(np.datetime64(split.cut, "s")) == "2011-01-21T00:00:00"  # last day 01-27, 7 days back
    uid = data.interactions.user_vocab
    assert split.users.tolist() == [uid.index(1)]
    rel = split.relevant()
    items = data.interactions.item_vocab
    assert sorted(items.lookup(rel[uid.index(1)].indices).tolist()) == ["10001", "10003"]
    assert rel[uid.index(3)].nnz == 0  # not an evaluation user
    assert split.candidate_items.tolist() == [True, True, False]
    assert split.spend()[uid.index(1)].toarray().ravel().tolist() == [2.0, 0.0, 5.0]
    assert split.train.item_features.frame.loc["10001", "quantity"] == 1  # training rows only
    with pytest.raises(DataError, match="empty"):
        retail_temporal_split(data, cut="2012-01-01")


def test_rules_are_documented_in_order():
    assert [r for r, _ in RULES] == ["missing_customer", "cancellation", "nonpositive_quantity", "nonpositive_price",
                                     "non_product"]
