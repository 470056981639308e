"""Parallel text: read plain/.gz files or Hugging Face `datasets`, check it, filter it.

Everything dropped is counted by reason so the trainer can report it; nothing is dropped
silently.
"""

from __future__ import annotations

import gzip
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nmt.config import CorpusConfig, DataConfig
from nmt.errors import DataError

if TYPE_CHECKING:  # no torch import here: nmt-eval reads text files through this module
    from nmt.tokenizer import Tokenizer


@dataclass
class ReadReport:
    """What reading a file had to repair, for the log."""

    crlf_lines: int = 0


def read_lines(path: str | Path, report: ReadReport | None = None) -> list[str]:
    """Lines of a UTF-8 text file (gzip if it ends in .gz), without line ends.

    CRLF line ends are repaired (and counted in `report`); invalid UTF-8 is an error naming the
    line, since guessing an encoding would silently corrupt the corpus.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    lines = []
    crlf = 0
    try:
        with opener(path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise DataError(
                        f"{path}:{number}: invalid UTF-8 (byte {err.start}); convert the file to UTF-8 "
                        "(e.g. iconv -f LATIN1 -t UTF-8)"
                    ) from None
                if number == 1:
                    line = line.removeprefix("\ufeff")
                if line.endswith("\r\n"):
                    crlf += 1
                lines.append(line.rstrip("\r\n"))
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; check the data paths in the config (or run `make data`)") from None
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise DataError(f"{path}: cannot read ({err}); is it a complete text or .gz file?") from None
    if report is not None:
        report.crlf_lines += crlf
    return lines


def read_corpus(corpus: CorpusConfig, name: str, log=print) -> tuple[list[str], list[str]]:
    """Source and target sentences of one corpus, line i of one translating line i of the other."""
    if corpus.dataset is not None:
        return _read_hf(corpus, name)
    report = ReadReport()
    src = read_lines(corpus.src, report)
    tgt = read_lines(corpus.tgt, report)
    if report.crlf_lines:
        log(f"warning: {name}: {report.crlf_lines} lines had Windows (CRLF) line ends; removed the CR")
    if len(src) != len(tgt):
        raise DataError(
            f"{name}: {corpus.src} has {len(src)} lines but {corpus.tgt} has {len(tgt)}; "
            "a parallel corpus needs one target line per source line"
        )
    if not src:
        raise DataError(f"{name}: {corpus.src} and {corpus.tgt} are empty; give files with at least one sentence pair")
    return src, tgt


def _read_hf(corpus: CorpusConfig, name: str) -> tuple[list[str], list[str]]:
    """Read a corpus through Hugging Face `datasets` (hub name or a local json/csv builder)."""
    try:
        import datasets
    except ImportError:
        raise DataError(f"{name}: the 'datasets' package is needed for data.{name}.dataset; pip install datasets") from None
    what = f"{corpus.dataset}" + (f" ({corpus.dataset_config})" if corpus.dataset_config else "")
    kwargs: dict[str, Any] = {"split": corpus.split}
    if corpus.data_files is not None:
        kwargs["data_files"] = corpus.data_files
    try:
        ds = datasets.load_dataset(corpus.dataset, corpus.dataset_config, **kwargs)
    except Exception as err:  # datasets raises many unrelated types (connection, file, value errors)
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(
            f"{name}: cannot load Hugging Face dataset {what} split '{corpus.split}': {first}; "
            "offline, use local files (src/tgt or dataset: json + data_files) or a cached copy with HF_DATASETS_OFFLINE=1"
        ) from None
    src = [_field(row, corpus.src_field, name, i) for i, row in enumerate(ds)]
    tgt = [_field(row, corpus.tgt_field, name, i) for i, row in enumerate(ds)]
    if not src:
        raise DataError(f"{name}: dataset {what} split '{corpus.split}' has no rows")
    return src, tgt


def _field(row: dict[str, Any], dotted: str, name: str, index: int) -> str:
    value: Any = row
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            keys = ", ".join(value) if isinstance(value, dict) else type(value).__name__
            raise DataError(
                f"{name}: row {index} has no field '{dotted}' (missing '{part}'; found: {keys}); fix data.{name}.*_field"
            )
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
    src_ids: list[list[int]], tgt_ids: list[list[int]], max_len: int, max_len_ratio: float
) -> tuple[list[int], FilterReport]:
    """Indices of the pairs to train on, and why the others were dropped.

    Empty pairs are never trainable; `max_len` (pieces per side) and `max_len_ratio` (longer /
    shorter side; 0 disables) drop misaligned or runaway pairs.
    """
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


def encode_corpus(
    text: tuple[list[str], list[str]], tokenizer: Tokenizer, data: DataConfig, training: bool
) -> tuple[Corpus, FilterReport]:
    """Tokenize source and target lines and filter the pairs.

    Training pairs obey `max_len` / `max_len_ratio`; validation keeps every non-empty pair (its
    BLEU must be comparable with nmt-eval's), up to `max_valid_sentences`.
    """
    src_text, tgt_text = text
    src_ids = tokenizer.src.encode(src_text)
    tgt_ids = tokenizer.tgt.encode(tgt_text)
    if training:
        keep, report = filter_pairs(src_ids, tgt_ids, data.max_len, data.max_len_ratio)
    else:
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
