"""Parallel text: read plain/.gz files or Hugging Face `datasets`, check it, filter it.

Everything dropped is counted by reason so the trainer can report it; nothing is dropped
silently.
"""

from __future__ import annotations

import gzip
import itertools
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nmt.config import CorpusConfig, DataConfig
from nmt.errors import DataError, brief

if TYPE_CHECKING:  # no torch import here: nmt-eval reads text files through this module
    from nmt.tokenizer import Tokenizer


BOM = b"\xef\xbb\xbf"  # U+FEFF in UTF-8: dropped at the start of a file, suspicious anywhere else
BLOCK = 1 << 20  # bytes read at a time
CHUNK = 1 << 16  # pairs per chunk when a corpus is streamed


@dataclass
class ReadReport:
    """What reading text had to repair (CRLF line ends) or found suspicious, for the log.

    A line ends at LF ("\\n") only, as for `wc -l`, `paste` and sacrebleu's own file reading; the
    CR of a CRLF line end is removed and counted. Any other CR stays in its line (old Mac files,
    which end lines with CR alone, read as one long line) and is counted, like NUL bytes
    (almost always corruption) and byte order marks after the start of the file (files
    concatenated with their BOMs). Counts add up over the files read with one report; `first_*`
    is the number of the first such line (None: none).
    """

    crlf_lines: int = 0
    cr_lines: int = 0
    first_cr: int | None = None
    nul_lines: int = 0
    first_nul: int | None = None
    bom_lines: int = 0
    first_bom: int | None = None

    def take(self, raw: bytes, number: int, ended: bool) -> bytes:
        """Line `number` without its LF (`ended`: one followed it) and the CR of a CRLF; notes what it holds."""
        if ended and raw.endswith(b"\r"):
            raw = raw[:-1]
            self.crlf_lines += 1
        if b"\r" in raw:
            self.cr_lines += 1
            self.first_cr = number if self.first_cr is None else self.first_cr
        if b"\0" in raw:
            self.nul_lines += 1
            self.first_nul = number if self.first_nul is None else self.first_nul
        if BOM in raw:
            self.bom_lines += 1
            self.first_bom = number if self.first_bom is None else self.first_bom
        return raw

    def warnings(self, where: str, unit: str = "line") -> list[str]:
        """One `warning: ...` line per kind of suspicious content, naming `where` (a file, <stdin>)."""
        found = []
        if self.cr_lines:
            found.append(
                f"warning: {where}: {_lines(self.cr_lines, unit)} a carriage return (\\r) that does not end the line "
                f"(first at {unit} {self.first_cr}); a line ends at LF (\\n) only: if the file has old Mac line ends, "
                "convert it with tr '\\r' '\\n'"
            )
        if self.nul_lines:
            found.append(
                f"warning: {where}: {_lines(self.nul_lines, unit)} NUL bytes (first at {unit} {self.first_nul}); "
                "a NUL in text is usually corruption: check the file"
            )
        if self.bom_lines:
            found.append(
                f"warning: {where}: {_lines(self.bom_lines, unit)} a byte order mark (U+FEFF) after the start of the file "
                f"(first at {unit} {self.first_bom}); files concatenated with their BOMs? remove them with "
                "sed 's/\\xEF\\xBB\\xBF//g'"
            )
        return found


def line_count_hint(*files: tuple[str | Path, ReadReport]) -> str:
    """For a line-count mismatch: '; FILE holds bare CRs ...' for each file whose CRs may be line ends."""
    return "".join(
        f"; {path} has carriage returns inside lines (old Mac line ends? convert it with tr '\\r' '\\n')"
        for path, report in files
        if report.cr_lines
    )


def _lines(count: int, unit: str = "line") -> str:
    return f"{count} {unit} holds" if count == 1 else f"{count} {unit}s hold"


class InvalidUtf8(ValueError):
    """Line `number` is not UTF-8 from byte `start` of the line on (callers word the error);
    `head`: the line's first bytes, which can tell what the data is instead."""

    def __init__(self, number: int, start: int, head: bytes = b""):
        super().__init__(number, start)
        self.number, self.start, self.head = number, start, head

    def kind(self) -> str | None:
        """'gzip' or 'UTF-16' when the start of the input says so, else None."""
        if self.number == 1 and self.head.startswith(b"\x1f\x8b"):
            return "gzip"
        if self.number == 1 and self.head[:2] in (b"\xff\xfe", b"\xfe\xff"):
            return "UTF-16"
        return None


def decode_lines(data: bytes, first: int, report: ReadReport) -> list[str]:
    """The lines of `data`, which holds whole lines (each ending in LF, but the input's last line
    may lack it), line `first` first; a BOM is dropped from the start of line 1.

    One pass of C-speed scans: a block without CR, NUL or inner BOM (the common case) is decoded
    and split at once; only other blocks go line by line through `report.take`.
    """
    if first == 1 and data.startswith(BOM):
        data = data[len(BOM) :]
    if not data:
        return []
    ended = data.endswith(b"\n")
    if b"\r" not in data and b"\0" not in data and BOM not in data:
        try:
            lines = data.decode("utf-8").split("\n")
        except UnicodeDecodeError:
            pass  # found again below, with its line number
        else:
            if ended:
                lines.pop()
            return lines
    raws = data.split(b"\n")
    if ended:
        raws.pop()
    last = len(raws) - 1
    lines = []
    for index, raw in enumerate(raws):
        raw = report.take(raw, first + index, ended or index < last)
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as err:
            raise InvalidUtf8(first + index, err.start, raw[:4]) from None
    return lines


def read_lines(path: str | Path, report: ReadReport | None = None) -> list[str]:
    """Lines of a UTF-8 text file (gzip if it ends in .gz), without line ends.

    A line ends at LF; CRLF line ends are repaired, and they, bare CRs, NUL bytes and inner byte
    order marks are counted in `report` (see ReadReport), all in one pass over the data. Invalid
    UTF-8 is an error naming the line, since guessing an encoding would silently corrupt the
    corpus; so is a directory or an unreadable, truncated or non-gzip .gz file.
    """
    lines: list[str] = []
    for block in iter_line_blocks(path, report):
        lines += block
    return lines


def iter_line_blocks(path: str | Path, report: ReadReport | None = None) -> Iterator[list[str]]:
    """`read_lines` a block at a time (about a MiB of text per list), for files too large to hold."""
    path = Path(path)
    report = report if report is not None else ReadReport()
    opener = gzip.open if path.suffix == ".gz" else open
    done = 0
    try:
        with opener(path, "rb") as handle:
            pending: list[bytes] = []  # an unfinished line, in pieces (a long line spans blocks)
            while block := handle.read(BLOCK):
                cut = block.rfind(b"\n") + 1
                if not cut:
                    pending.append(block)
                    continue
                lines = decode_lines(b"".join([*pending, block[:cut]]), done + 1, report)
                pending = [block[cut:]]
                done += len(lines)
                yield lines
            lines = decode_lines(b"".join(pending), done + 1, report)
            if lines:
                yield lines
    except InvalidUtf8 as err:
        fix = {
            "gzip": "it is gzip-compressed: name it .gz, or gunzip it",
            "UTF-16": "it is UTF-16: convert it with iconv -f UTF-16 -t UTF-8",
        }.get(err.kind(), "convert the file to UTF-8 (e.g. iconv -f LATIN1 -t UTF-8)")
        raise DataError(f"{path}:{err.number}: invalid UTF-8 (byte {err.start}); {fix}") from None
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; check the data paths in the config (or run `make data`)") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not a text file; give the path of a file") from None
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise DataError(f"{path}: cannot read ({err}); is it a complete text or .gz file?") from None


def read_corpus(corpus: CorpusConfig, name: str, log=print) -> tuple[list[str], list[str]]:
    """Source and target sentences of one corpus, line i of one translating line i of the other."""
    src: list[str] = []
    tgt: list[str] = []
    for src_part, tgt_part in iter_corpus(corpus, name, log):
        src += src_part
        tgt += tgt_part
    return src, tgt


def iter_corpus(corpus: CorpusConfig, name: str, log=print, chunk: int = CHUNK) -> Iterator[tuple[list[str], list[str]]]:
    """`read_corpus` in aligned chunks of about `chunk` pairs, streamed: nothing O(corpus) is held.

    The checks run as the data streams past: a line-count mismatch is found at the end of the
    shorter file (and reported with both files' full counts), warnings once per file at the end.
    """
    if corpus.dataset is not None:
        yield from _iter_hf(corpus, name, log, chunk)
        return
    reports = ReadReport(), ReadReport()
    sides = [_chunks_of(iter_line_blocks(path, report), chunk) for path, report in zip((corpus.src, corpus.tgt), reports)]
    counts = [0, 0]
    for src_part, tgt_part in itertools.zip_longest(*sides, fillvalue=None):
        if src_part is None or tgt_part is None or len(src_part) != len(tgt_part):
            counts = [counts[i] + len(part or []) + sum(map(len, sides[i])) for i, part in enumerate((src_part, tgt_part))]
            raise DataError(
                f"{name}: {corpus.src} has {counts[0]} lines but {corpus.tgt} has {counts[1]}; "
                "a parallel corpus needs one target line per source line"
                + line_count_hint((corpus.src, reports[0]), (corpus.tgt, reports[1]))
            )
        counts = [counts[0] + len(src_part), counts[1] + len(tgt_part)]
        yield src_part, tgt_part
    if not counts[0]:
        raise DataError(f"{name}: {corpus.src} and {corpus.tgt} are empty; give files with at least one sentence pair")
    crlf = reports[0].crlf_lines + reports[1].crlf_lines
    if crlf:
        log(f"warning: {name}: {crlf} lines had Windows (CRLF) line ends; removed the CR")
    for side, path, report in (("src", corpus.src, reports[0]), ("tgt", corpus.tgt, reports[1])):
        for warning in report.warnings(f"{path} ({name}.{side})"):
            log(warning)


def iter_side(corpus: CorpusConfig, name: str, side: str) -> Iterator[str]:
    """One side's sentences ('src' or 'tgt'), streamed (for sentencepiece training; unchecked:
    the checks run when the corpus is encoded)."""
    if corpus.dataset is not None:
        dotted = corpus.src_field if side == "src" else corpus.tgt_field
        for index, row in enumerate(load_hf(corpus, name)):
            yield _field(row, dotted, name, index)
        return
    path = corpus.src if side == "src" else corpus.tgt
    empty = True
    for block in iter_line_blocks(path):
        empty = False
        yield from block
    if empty:
        raise DataError(f"{name}: {path} is empty; give files with at least one sentence pair")


def _chunks_of(blocks: Iterator[list[str]], size: int) -> Iterator[list[str]]:
    """Regroup line blocks into lists of exactly `size` lines (the last one shorter)."""
    pending: list[str] = []
    for block in blocks:
        pending += block
        while len(pending) >= size:
            yield pending[:size]
            pending = pending[size:]
    if pending:
        yield pending


def _text_report(texts: list[str], first: int, report: ReadReport) -> None:
    """Count bare CRs, NULs and BOMs in already decoded texts (dataset rows; `texts[0]` is row `first`)."""
    for index, text in enumerate(texts, start=first):
        if "\r" in text or "\0" in text or "\ufeff" in text:
            report.take(text.encode("utf-8"), index, ended=False)


def load_hf(corpus: CorpusConfig, name: str):
    """A Hugging Face `datasets` split (hub name or a local json/csv builder), memory-mapped by Arrow."""
    try:
        import datasets
    except ImportError:
        raise DataError(f"{name}: the 'datasets' package is needed for {name}.dataset; pip install datasets") from None
    kwargs: dict[str, Any] = {"split": corpus.split}
    if corpus.data_files is not None:
        kwargs["data_files"] = corpus.data_files
    # Local files (data_files) load in seconds: no progress bar on stderr, which would come before
    # a one-line error about their fields; a hub download keeps its bars.
    quiet = corpus.data_files is not None and datasets.is_progress_bar_enabled()
    if quiet:
        datasets.disable_progress_bars()
    try:
        return datasets.load_dataset(corpus.dataset, corpus.dataset_config, **kwargs)
    except Exception as err:  # datasets raises many unrelated types (connection, file, value errors)
        raise DataError(
            f"{name}: cannot load Hugging Face dataset {_hf_name(corpus)} split '{corpus.split}': {brief(err)}; "
            "offline, use local files (src/tgt or dataset: json + data_files) or a cached copy with HF_DATASETS_OFFLINE=1"
        ) from None
    finally:
        if quiet:
            datasets.enable_progress_bars()


def _hf_name(corpus: CorpusConfig) -> str:
    return f"{corpus.dataset}" + (f" ({corpus.dataset_config})" if corpus.dataset_config else "")


def _iter_hf(corpus: CorpusConfig, name: str, log, chunk: int) -> Iterator[tuple[list[str], list[str]]]:
    """A dataset's (source, target) field pairs in chunks of `chunk` rows."""
    ds = load_hf(corpus, name)
    if not len(ds):
        raise DataError(f"{name}: dataset {_hf_name(corpus)} split '{corpus.split}' has no rows")
    reports = ReadReport(), ReadReport()
    for start in range(0, len(ds), chunk):
        rows = list(itertools.islice(ds.select(range(start, min(start + chunk, len(ds)))), chunk))
        pair = tuple(
            [_field(row, dotted, name, i) for i, row in enumerate(rows, start=start)]
            for dotted in (corpus.src_field, corpus.tgt_field)
        )
        for texts, report in zip(pair, reports):
            _text_report(texts, start, report)
        yield pair
    for dotted, report in zip((corpus.src_field, corpus.tgt_field), reports):
        for warning in report.warnings(f"{name} field {dotted}", unit="row"):
            log(warning)


def _field(row: dict[str, Any], dotted: str, name: str, index: int) -> str:
    value: Any = row
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            keys = ", ".join(value) if isinstance(value, dict) else type(value).__name__
            raise DataError(f"{name}: row {index} has no field '{dotted}' (missing '{part}'; found: {keys}); fix {name}.*_field")
        value = value[part]
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DataError(f"{name}: row {index} field '{dotted}' is {type(value).__name__}, not text")
    return value


@dataclass
class FilterReport:
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)

    def summary(self, name: str) -> str:
        total = self.kept + sum(self.dropped.values())
        if not self.dropped:
            return f"{name}: {self.kept} pairs, none dropped"
        reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(self.dropped.items()))
        return f"{name}: kept {self.kept} of {total} pairs; dropped {reasons}"


def filter_pairs(
    src_lens: Sequence[int] | Sequence[Sequence[int]] | np.ndarray,
    tgt_lens: Sequence[int] | Sequence[Sequence[int]] | np.ndarray,
    max_len: int,
    max_len_ratio: float,
) -> tuple[np.ndarray, FilterReport]:
    """Indices of the pairs to train on (an ascending int64 array), and why the others were dropped.

    `src_lens` / `tgt_lens` are the pairs' lengths in pieces (numpy integer arrays or lists of
    ints), or the pieces themselves (lists of id sequences; their lengths are taken). Empty pairs
    are never trainable; `max_len` (pieces per side) and `max_len_ratio` (longer / shorter side;
    0 disables) drop misaligned or runaway pairs. Each dropped pair counts under its first reason
    of `_drop_reason`'s order: empty, too long, length ratio.
    """
    src, tgt = _lengths(src_lens), _lengths(tgt_lens)
    n = min(len(src), len(tgt))  # zip's rule: pairs up to the shorter side
    src, tgt = src[:n], tgt[:n]
    reasons = ["empty", f"longer than {max_len} pieces"] + ([f"length ratio above {max_len_ratio:g}"] if max_len_ratio else [])
    reason = np.empty(n, dtype=np.int8)  # 0 kept, else 1 + the index in `reasons`
    for lo in range(0, n, _FILTER_CHUNK):  # in chunks: the temporaries stay small at any corpus size
        s, t = src[lo : lo + _FILTER_CHUNK], tgt[lo : lo + _FILTER_CHUNK]
        code = reason[lo : lo + _FILTER_CHUNK]
        code[:] = 0
        code[(s > max_len) | (t > max_len)] = 2
        code[(s == 0) | (t == 0)] = 1  # the first reason wins: set last
        if max_len_ratio:
            ok = np.flatnonzero(code == 0)
            longer = np.maximum(s[ok], t[ok]).astype(np.float64)
            shorter = np.minimum(s[ok], t[ok]).astype(np.float64)
            code[ok[longer / shorter > max_len_ratio]] = 3  # float64 division, as Python's int / int
    keep = np.flatnonzero(reason == 0)
    report = FilterReport(kept=len(keep))
    found = []
    for code, text in enumerate(reasons, start=1):
        hits = reason == code
        count = int(np.count_nonzero(hits))
        if count:
            found.append((int(np.argmax(hits)), text, count))
    for _, text, count in sorted(found):  # the Counter's order, as the pair-by-pair loop built it
        report.dropped[text] = count
    return keep, report


_FILTER_CHUNK = 1 << 20


def _lengths(values: Sequence[int] | Sequence[Sequence[int]] | np.ndarray) -> np.ndarray:
    """Lengths as an integer array: an integer array as it is, a list of ints, or id sequences' lengths."""
    if isinstance(values, np.ndarray) and values.ndim == 1 and values.dtype.kind in "iu":
        return values  # any integer dtype (uint16 rows of a store): compared as it is
    if len(values) and isinstance(values[0], (int, np.integer)):
        return np.asarray(values, dtype=np.int64)
    return np.fromiter(map(len, values), dtype=np.int64, count=len(values))


def _drop_reason(src_len: int, tgt_len: int, max_len: int, max_len_ratio: float) -> str | None:
    if src_len == 0 or tgt_len == 0:
        return "empty"
    if src_len > max_len or tgt_len > max_len:
        return f"longer than {max_len} pieces"
    if max_len_ratio and max(src_len, tgt_len) / min(src_len, tgt_len) > max_len_ratio:
        return f"length ratio above {max_len_ratio:g}"
    return None


@dataclass
class Corpus:
    """A corpus as the trainer uses it: pair i's piece ids (no bos/eos) beside its raw text."""

    src_ids: list[list[int]]
    tgt_ids: list[list[int]]
    src_text: list[str]
    tgt_text: list[str]

    def costs(self) -> list[int]:
        """Padded batch cost of each pair: its longer side plus eos (bos)."""
        return [max(len(s), len(t)) + 1 for s, t in zip(self.src_ids, self.tgt_ids)]


def encode_validation(text: tuple[list[str], list[str]], tokenizer: Tokenizer, data: DataConfig) -> tuple[Corpus, FilterReport]:
    """Tokenize validation lines, keeping every non-empty pair (its BLEU must be comparable with
    nmt-eval's), up to `data.max_valid_sentences`. (Training pairs come from the store: nmt.store.)"""
    src_text, tgt_text = text
    src_ids = tokenizer.src.encode(src_text)
    tgt_ids = tokenizer.tgt.encode(tgt_text)
    keep, report = filter_pairs(src_ids, tgt_ids, 10**9, 0.0)
    if data.max_valid_sentences:
        keep = keep[: data.max_valid_sentences]
    corpus = Corpus(
        src_ids=[src_ids[i] for i in keep],
        tgt_ids=[tgt_ids[i] for i in keep],
        src_text=[src_text[i] for i in keep],
        tgt_text=[tgt_text[i] for i in keep],
    )
    return corpus, report
