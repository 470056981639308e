"""Tests for nmt.data: reading plain/.gz/Hugging Face corpora, their errors, and pair filtering."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import numpy as np
import pytest

from nmt.config import CorpusConfig
from nmt.data import FilterReport, ReadReport, _drop_reason, decode_lines, filter_pairs, read_corpus, read_lines
from nmt.errors import DataError


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def one_line_error(info: pytest.ExceptionInfo) -> str:
    message = str(info.value)
    assert "\n" not in message
    assert "Traceback" not in message
    return message


# ---------------------------------------------------------------------------------------------
# read_lines


def test_read_plain(tmp_path):
    path = write(tmp_path / "a.txt", "ein Hund\nüber die Straße\n\nletzte".encode())
    assert read_lines(path) == ["ein Hund", "über die Straße", "", "letzte"]


def test_read_gz(tmp_path):
    path = tmp_path / "a.txt.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(b"eins\nzwei\ndrei\n")
    assert read_lines(path) == ["eins", "zwei", "drei"]


def test_gz_and_plain_agree(tmp_path):
    text = "α β\nγ\n".encode()
    plain = write(tmp_path / "x.txt", text)
    packed = tmp_path / "x.gz"
    packed.write_bytes(gzip.compress(text))
    assert read_lines(plain) == read_lines(packed)


def test_crlf_repaired_and_counted(tmp_path):
    path = write(tmp_path / "win.txt", b"one\r\ntwo\nthree\r\nfour")
    report = ReadReport()
    assert read_lines(path, report) == ["one", "two", "three", "four"]
    assert report.crlf_lines == 2


def test_crlf_counts_accumulate_across_files(tmp_path):
    report = ReadReport()
    read_lines(write(tmp_path / "a", b"x\r\ny\r\n"), report)
    read_lines(write(tmp_path / "b", b"z\r\n"), report)
    assert report.crlf_lines == 3


def test_inner_carriage_return_is_kept(tmp_path):
    assert read_lines(write(tmp_path / "a", b"a\rb\n")) == ["a\rb"]


def test_crlf_file_reads_without_warnings(tmp_path):
    report = ReadReport()
    assert read_lines(write(tmp_path / "win.txt", b"one\r\ntwo\r\n"), report) == ["one", "two"]
    assert (report.crlf_lines, report.cr_lines, report.nul_lines, report.bom_lines) == (2, 0, 0, 0)
    assert report.warnings("win.txt") == []


def test_old_mac_line_ends_are_one_line_and_counted(tmp_path):
    # A line ends at LF only (as for wc -l, paste and sacrebleu): CR-only "lines" are one line.
    report = ReadReport()
    assert read_lines(write(tmp_path / "mac.txt", b"one\rtwo\rthree\r"), report) == ["one\rtwo\rthree\r"]
    assert (report.cr_lines, report.first_cr, report.crlf_lines) == (1, 1, 0)
    (warning,) = report.warnings("mac.txt")
    assert warning.startswith("warning: mac.txt: 1 line holds a carriage return")
    assert "first at line 1" in warning and "tr '\\r' '\\n'" in warning


def test_bare_cr_counts_and_first_line(tmp_path):
    report = ReadReport()
    data = b"ok\nx\ry\nok\r\nlast\r\r\nz\r"  # lines 2, 4 (one CR is the CRLF's) and 5 (no LF after it)
    assert read_lines(write(tmp_path / "a", data), report) == ["ok", "x\ry", "ok", "last\r", "z\r"]
    assert (report.cr_lines, report.first_cr, report.crlf_lines) == (3, 2, 2)
    assert "3 lines hold a carriage return" in report.warnings("a")[0]


def test_nul_bytes_counted_with_first_line(tmp_path):
    report = ReadReport()
    data = b"a\n" * 6 + b"b\0c\n" + b"d\n" + b"\0\0\n"
    lines = read_lines(write(tmp_path / "train.de", data), report)
    assert lines[6] == "b\0c" and len(lines) == 9, "a NUL is kept: it is warned about, not repaired"
    assert (report.nul_lines, report.first_nul) == (2, 7)
    assert report.warnings("train.de") == [
        "warning: train.de: 2 lines hold NUL bytes (first at line 7); a NUL in text is usually corruption: check the file"
    ]


def test_bom_after_the_start_is_counted_not_dropped(tmp_path):
    report = ReadReport()
    data = "\ufeffa\nb\n\ufeffc\n".encode()  # two files concatenated with their BOMs
    assert read_lines(write(tmp_path / "cat.txt", data), report) == ["a", "b", "\ufeffc"]
    assert (report.bom_lines, report.first_bom) == (1, 3)
    assert "byte order mark" in report.warnings("cat.txt")[0]


def test_suspicious_content_in_gz_is_counted(tmp_path):
    path = tmp_path / "a.gz"
    path.write_bytes(gzip.compress(b"a\rb\nc\0\n"))
    report = ReadReport()
    assert read_lines(path, report) == ["a\rb", "c\0"]
    assert (report.first_cr, report.first_nul) == (1, 2)


def test_lines_across_read_blocks(tmp_path, monkeypatch):
    import nmt.data

    monkeypatch.setattr(nmt.data, "BLOCK", 7)  # lines longer than a block, ends at block edges
    lines = ["x" * n for n in range(20)] + ["caf\u00e9 \u00fcber", "", "a\rb"]
    data = "".join(line + ("\r\n" if i % 3 == 0 else "\n") for i, line in enumerate(lines)).encode()
    report = ReadReport()
    assert read_lines(write(tmp_path / "a", b"\xef\xbb\xbf" + data + b"tail"), report) == [*lines, "tail"]
    assert (report.crlf_lines, report.cr_lines, report.first_cr) == (8, 1, 23)


def test_invalid_utf8_line_number_across_blocks(tmp_path, monkeypatch):
    import nmt.data

    monkeypatch.setattr(nmt.data, "BLOCK", 5)
    with pytest.raises(DataError) as info:
        read_lines(write(tmp_path / "a", b"one\ntwo\nthree\nfo\xffur\n"))
    assert f"{tmp_path / 'a'}:4: invalid UTF-8 (byte 2)" in one_line_error(info)


def test_directory_is_a_data_error(tmp_path):
    with pytest.raises(DataError) as info:
        read_lines(tmp_path)
    assert "is a directory" in one_line_error(info)


def test_decode_lines_keeps_an_unended_last_line():
    report = ReadReport()
    assert decode_lines(b"a\r\nb", 1, report) == ["a", "b"]
    assert decode_lines(b"\xef\xbb\xbfx\n", 1, report) == ["x"], "a BOM starts line 1 only"
    assert decode_lines(b"\xef\xbb\xbfx\n", 2, report) == ["\ufeffx"]
    assert (report.crlf_lines, report.bom_lines, report.first_bom) == (1, 1, 2)


def test_utf8_bom_is_dropped(tmp_path):
    path = write(tmp_path / "bom.txt", "\ufeffHallo\nWelt\n".encode())
    assert read_lines(path) == ["Hallo", "Welt"]


def test_invalid_utf8_names_file_and_line(tmp_path):
    path = write(tmp_path / "latin1.txt", "gut\nauch gut\nStra\xdfe\n".encode("latin-1"))
    with pytest.raises(DataError) as info:
        read_lines(path)
    assert f"{path}:3:" in one_line_error(info)


def test_invalid_utf8_in_gz_names_line(tmp_path):
    path = tmp_path / "bad.gz"
    path.write_bytes(gzip.compress(b"ok\n\xff\xfe\n"))
    with pytest.raises(DataError) as info:
        read_lines(path)
    assert f"{path}:2:" in one_line_error(info)


def test_gzip_without_gz_name_is_recognised(tmp_path):
    with pytest.raises(DataError) as info:
        read_lines(write(tmp_path / "train.GZ", gzip.compress(b"eins\nzwei\n")))
    assert "it is gzip-compressed: name it .gz, or gunzip it" in one_line_error(info)


def test_utf16_is_recognised(tmp_path):
    with pytest.raises(DataError) as info:
        read_lines(write(tmp_path / "win.txt", "eins\nzwei\n".encode("utf-16")))
    assert "win.txt:1: invalid UTF-8 (byte 0); it is UTF-16: convert it with iconv -f UTF-16 -t UTF-8" in one_line_error(info)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.txt"
    with pytest.raises(DataError) as info:
        read_lines(path)
    message = one_line_error(info)
    assert str(path) in message
    assert "not found" in message


@pytest.mark.parametrize("content", [b"not gzip at all", gzip.compress(b"line one\nline two\n" * 50)[:30]])
def test_broken_gz_is_data_error(tmp_path, content):
    path = write(tmp_path / "broken.gz", content)
    with pytest.raises(DataError) as info:
        read_lines(path)
    assert str(path) in one_line_error(info)


def test_empty_file_reads_as_no_lines(tmp_path):
    assert read_lines(write(tmp_path / "e", b"")) == []


# ---------------------------------------------------------------------------------------------
# read_corpus (files)


def test_read_corpus_pairs_lines(tmp_path):
    src = write(tmp_path / "s", b"a\nb\n")
    tgt = write(tmp_path / "t", b"x\ny\n")
    assert read_corpus(CorpusConfig(src=str(src), tgt=str(tgt)), "data.train") == (["a", "b"], ["x", "y"])


def test_read_corpus_logs_crlf(tmp_path):
    src = write(tmp_path / "s", b"a\r\nb\r\n")
    tgt = write(tmp_path / "t", b"x\ny\r\n")
    messages = []
    src_lines, tgt_lines = read_corpus(CorpusConfig(src=str(src), tgt=str(tgt)), "data.train", messages.append)
    assert (src_lines, tgt_lines) == (["a", "b"], ["x", "y"])
    assert len(messages) == 1
    assert "3" in messages[0] and "CRLF" in messages[0] and "data.train" in messages[0]


def test_read_corpus_warns_per_file(tmp_path):
    src = write(tmp_path / "s", b"a\rb\n" + b"c\n" * 5 + b"x\0y\n")
    tgt = write(tmp_path / "t", b"x\n" * 7)
    messages = []
    read_corpus(CorpusConfig(src=str(src), tgt=str(tgt)), "data.train", messages.append)
    assert len(messages) == 2
    assert messages[0].startswith(f"warning: {src} (data.train.src): 1 line holds a carriage return")
    assert messages[1].startswith(f"warning: {src} (data.train.src): 1 line holds NUL bytes (first at line 7)")


def test_read_corpus_no_log_without_crlf(tmp_path):
    messages = []
    read_corpus(
        CorpusConfig(src=str(write(tmp_path / "s", b"a\n")), tgt=str(write(tmp_path / "t", b"b\n"))), "x", messages.append
    )
    assert messages == []


def test_mismatched_line_counts(tmp_path):
    src = write(tmp_path / "train.de", b"a\nb\nc\n")
    tgt = write(tmp_path / "train.en", b"x\ny\n")
    with pytest.raises(DataError) as info:
        read_corpus(CorpusConfig(src=str(src), tgt=str(tgt)), "data.train")
    message = one_line_error(info)
    assert str(src) in message and str(tgt) in message
    assert "3" in message and "2" in message
    assert "data.train" in message


def test_empty_corpus(tmp_path):
    src = write(tmp_path / "s", b"")
    tgt = write(tmp_path / "t", b"")
    with pytest.raises(DataError) as info:
        read_corpus(CorpusConfig(src=str(src), tgt=str(tgt)), "data.valid")
    message = one_line_error(info)
    assert "empty" in message and str(src) in message


def test_corpus_with_one_missing_file(tmp_path):
    src = write(tmp_path / "s", b"a\n")
    with pytest.raises(DataError, match="t.missing"):
        read_corpus(CorpusConfig(src=str(src), tgt=str(tmp_path / "t.missing")), "data.train")


# ---------------------------------------------------------------------------------------------
# read_corpus (Hugging Face datasets, local builder only)


@pytest.fixture
def hf_offline(tmp_path, monkeypatch):
    """No network, and the datasets cache inside tmp_path."""
    import datasets
    import huggingface_hub.constants

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    # datasets and huggingface_hub read the environment at import time: patch their copies too.
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_cache")
    return tmp_path


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


RECORDS = [
    {"translation": {"de": "ein Hund läuft", "en": "a dog runs"}},
    {"translation": {"de": "zwei Katzen", "en": "two cats"}},
    {"translation": {"de": "Straße", "en": "street"}},
]


def hf_corpus(path: Path, src_field: str = "translation.de", tgt_field: str = "translation.en") -> CorpusConfig:
    return CorpusConfig(dataset="json", data_files=str(path), split="train", src_field=src_field, tgt_field=tgt_field)


def test_hf_json_builder(hf_offline):
    path = write_jsonl(hf_offline / "pairs.jsonl", RECORDS)
    src, tgt = read_corpus(hf_corpus(path), "data.train")
    assert src == ["ein Hund läuft", "zwei Katzen", "Straße"]
    assert tgt == ["a dog runs", "two cats", "street"]


def test_hf_top_level_fields(hf_offline):
    path = write_jsonl(hf_offline / "flat.jsonl", [{"de": "eins", "en": "one"}, {"de": "zwei", "en": "two"}])
    assert read_corpus(hf_corpus(path, "de", "en"), "data.train") == (["eins", "zwei"], ["one", "two"])


def test_hf_missing_field_names_it(hf_offline):
    path = write_jsonl(hf_offline / "pairs.jsonl", RECORDS)
    with pytest.raises(DataError) as info:
        read_corpus(hf_corpus(path, tgt_field="translation.fr"), "data.train")
    message = one_line_error(info)
    assert "translation.fr" in message
    assert "fix data.train.*_field" in message and "data.data" not in message
    assert "de" in message and "en" in message, "the error lists the fields that exist"


def test_hf_rows_with_nul_are_warned(hf_offline):
    records = [{"de": "eins", "en": "one"}, {"de": "zw\0ei", "en": "two"}]
    messages = []
    read_corpus(hf_corpus(write_jsonl(hf_offline / "nul.jsonl", records), "de", "en"), "data.train", messages.append)
    assert messages == [
        "warning: data.train field de: 1 row holds NUL bytes (first at row 1); a NUL in text is usually corruption: check the file"
    ]


def test_hf_non_text_field(hf_offline):
    path = write_jsonl(hf_offline / "nums.jsonl", [{"de": 1, "en": "one"}, {"de": 2, "en": "two"}])
    with pytest.raises(DataError, match="'de'"):
        read_corpus(hf_corpus(path, "de", "en"), "data.train")


def test_hf_missing_data_file(hf_offline):
    path = hf_offline / "missing.jsonl"
    with pytest.raises(DataError) as info:
        read_corpus(hf_corpus(path), "data.train")
    assert "missing.jsonl" in one_line_error(info)


def test_hf_unreachable_hub_dataset(hf_offline):
    corpus = CorpusConfig(dataset="nmt-tests-nobody/no-such-dataset", src_field="a", tgt_field="b")
    with pytest.raises(DataError) as info:
        read_corpus(corpus, "data.train")
    message = one_line_error(info)
    assert "nmt-tests-nobody/no-such-dataset" in message
    assert "data.train" in message


# ---------------------------------------------------------------------------------------------
# filter_pairs


def ids(n: int) -> list[int]:
    return list(range(4, 4 + n))


def test_filter_keeps_good_pairs():
    keep, report = filter_pairs([ids(3), ids(5)], [ids(4), ids(5)], max_len=10, max_len_ratio=0.0)
    assert keep.tolist() == [0, 1]
    assert report.kept == 2
    assert not report.dropped
    assert report.summary("data.train") == "data.train: 2 pairs, none dropped"


def test_filter_drops_with_counts():
    src = [ids(3), [], ids(2), ids(11), ids(5), ids(1), ids(2), ids(10)]
    tgt = [ids(3), ids(2), [], ids(2), ids(12), ids(5), ids(4), ids(10)]
    keep, report = filter_pairs(src, tgt, max_len=10, max_len_ratio=3.0)
    assert keep.tolist() == [0, 6, 7]  # 2 vs 4 is ratio 2; 10 == max_len is allowed
    assert report.kept == 3
    assert report.dropped == {"empty": 2, "longer than 10 pieces": 2, "length ratio above 3": 1}
    summary = report.summary("data.train")
    assert "kept 3 of 8" in summary
    assert "2 empty" in summary and "2 longer than 10 pieces" in summary and "1 length ratio above 3" in summary


def test_ratio_filter_off_at_zero():
    keep, report = filter_pairs([ids(1)], [ids(9)], max_len=10, max_len_ratio=0.0)
    assert keep.tolist() == [0] and not report.dropped


def test_ratio_boundary_is_kept():
    keep, _ = filter_pairs([ids(2), ids(2)], [ids(5), ids(6)], max_len=10, max_len_ratio=2.5)
    assert keep.tolist() == [0]


def test_ratio_is_symmetric():
    keep, _ = filter_pairs([ids(8), ids(2)], [ids(2), ids(8)], max_len=10, max_len_ratio=3.0)
    assert keep.tolist() == []


def test_filter_report_total_matches_input():
    src = [ids(n % 7) for n in range(50)]
    tgt = [ids((3 * n) % 13) for n in range(50)]
    keep, report = filter_pairs(src, tgt, max_len=10, max_len_ratio=2.0)
    assert report.kept == len(keep)
    assert report.kept + sum(report.dropped.values()) == 50
    assert keep.tolist() == sorted(set(keep.tolist()))


def test_empty_report_summary():
    assert FilterReport().summary("x") == "x: 0 pairs, none dropped"


def _reference_filter_pairs(src_ids, tgt_ids, max_len, max_len_ratio):
    """The pair-by-pair filter as it was before the numpy version."""
    report = FilterReport()
    keep = []
    for i, (src, tgt) in enumerate(zip(src_ids, tgt_ids)):
        reason = _drop_reason(len(src), len(tgt), max_len, max_len_ratio)
        if reason:
            report.dropped[reason] += 1
        else:
            keep.append(i)
    report.kept = len(keep)
    return keep, report


def assert_same_filter(src_lens, tgt_lens, max_len, max_len_ratio):
    src = [ids(n) for n in src_lens]
    tgt = [ids(n) for n in tgt_lens]
    want_keep, want = _reference_filter_pairs(src, tgt, max_len, max_len_ratio)
    for args in (
        (src, tgt),  # id lists, as encode_validation passes them
        (list(src_lens), list(tgt_lens)),  # lengths as lists
        (np.asarray(src_lens, dtype=np.int64), np.asarray(tgt_lens, dtype=np.int64)),
        (np.asarray(src_lens, dtype=np.uint16), np.asarray(tgt_lens, dtype=np.uint32)),
    ):
        keep, report = filter_pairs(*args, max_len, max_len_ratio)
        assert isinstance(keep, np.ndarray) and keep.dtype == np.int64
        assert keep.tolist() == want_keep
        assert report.kept == want.kept and type(report.kept) is int
        assert report.dropped == want.dropped
        assert list(report.dropped.items()) == list(want.dropped.items())  # same order, same ints
        assert report.summary("data.train") == want.summary("data.train")


@pytest.mark.parametrize("seed", range(30))
def test_filter_matches_pair_by_pair_reference(seed):
    rng = random.Random(seed)
    n = rng.choice([0, 1, 2, 5, 40, 300])
    top = rng.choice([3, 12, 80])
    src = [rng.choice([0, rng.randint(0, top)]) if rng.random() < 0.1 else rng.randint(1, top) for _ in range(n)]
    tgt = [max(0, s + rng.randint(-top // 3, top // 3)) if rng.random() < 0.8 else rng.randint(0, top) for s in src]
    for max_len in (1, 5, top // 2 + 1, 10**9):
        for ratio in (0.0, 1.0, 1.5, 2.5, 3.0, 9.0):
            assert_same_filter(src, tgt, max_len, ratio)


def test_filter_report_strings_unchanged():
    src = [5] * 19 + [61]
    keep, report = filter_pairs(np.array(src), np.array([5] * 20), max_len=60, max_len_ratio=0.0)
    assert report.summary("data.train") == "data.train: kept 19 of 20 pairs; dropped 1 longer than 60 pieces"
    assert keep.tolist() == list(range(19))
    _, report = filter_pairs([0, 4, 70, 2, 3], [3, 4, 3, 7, 1], max_len=60, max_len_ratio=2.5)
    assert report.summary("x") == "x: kept 1 of 5 pairs; dropped 1 empty, 2 length ratio above 2.5, 1 longer than 60 pieces"


def test_filter_ratio_boundaries_as_python_divides():
    # Ratios that are not exact in binary: the comparison must be Python's float division.
    src = [3, 7, 10, 49, 100, 1000, 3]
    tgt = [10, 23, 33, 161, 333, 3333, 9]
    for ratio in (3.3, 3.2857142857142856, 10 / 3, 3.333, 3.0):
        assert_same_filter(src, tgt, 10**9, ratio)


def test_filter_lengths_at_scale():
    rng = np.random.default_rng(3)
    src = rng.integers(0, 120, size=200_000).astype(np.uint16)
    tgt = rng.integers(0, 120, size=200_000).astype(np.uint16)
    keep, report = filter_pairs(src, tgt, 100, 2.0)
    s, t = src.astype(int), tgt.astype(int)
    ok = (s > 0) & (t > 0) & (s <= 100) & (t <= 100) & (np.maximum(s, t) <= 2.0 * np.minimum(s, t))
    assert np.array_equal(keep, np.flatnonzero(ok))
    assert report.kept + sum(report.dropped.values()) == 200_000


def test_filter_in_chunks_matches_reference(monkeypatch):
    import nmt.data

    monkeypatch.setattr(nmt.data, "_FILTER_CHUNK", 7)  # many chunks, a short last one
    rng = random.Random(9)
    src = [rng.randint(0, 20) for _ in range(100)]
    tgt = [rng.randint(0, 20) for _ in range(100)]
    assert_same_filter(src, tgt, 15, 2.0)


def test_filter_pairs_up_to_the_shorter_side():
    keep, report = filter_pairs(np.array([3, 4, 5]), np.array([3, 4]), max_len=10, max_len_ratio=0.0)
    assert keep.tolist() == [0, 1] and report.kept == 2 and not report.dropped
