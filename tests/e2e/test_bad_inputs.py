"""Bad-input catalogue: every user mistake ends in one clear line on stderr, never a traceback.

One table, one parametrized test. Each case prepares files in its own tmp dir (the subprocess runs
there, so messages show short relative names) and returns the command line. The contract for an
error case: exit code 2; stderr is exactly one line, `PROG: error: MESSAGE`, and MESSAGE holds the
case's substrings (the file, line number or dotted config key, and what to do or what is valid);
no 'Traceback'; nothing on stdout; no file that existed before the run (sha256, size, mtime) was
changed or removed, including an existing --output. Where recovering is right (CRLF corpus, a
1 MB corpus line, an over-long or empty translation input, a FIFO as --output) the case asserts
exit 0, the output and the warning instead.

The translate/eval/average cases share one tiny model trained once per module (60 steps on the
toy corpus; quality does not matter). The nmt-train error cases fail while loading the config or
the data, on 20-line corpora, before any training; the two corpus recoveries train one step.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import random
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TINY = ROOT / "configs" / "tiny.yaml"
TIMEOUT = 180  # seconds per command; a hang is a failure, not a stuck test run


class ExtraStderrLines(AssertionError):
    """stderr held more than the one error line."""


class PreExistingFileModified(AssertionError):
    """A file that existed before the command was changed or removed by it."""


@dataclass
class Ctx:
    """What a case's prepare function gets: its own dir and the shared trained model."""

    tmp: Path  # the command's working directory; every relative path in a case lives here
    model: Path  # run directory of the module's tiny model (outside tmp; also checked for changes)
    data: Path  # the toy corpus that model was trained on
    stdin: bytes | None = None
    keep: dict = field(default_factory=dict)  # state a prepare function hands to its check


@dataclass(frozen=True)
class Case:
    id: str
    prepare: Callable[[Ctx], list[str]]  # writes files into ctx.tmp, returns [console script, args...]
    code: int = 2
    expect: tuple[str, ...] = ()  # substrings of the error line (code 2) or of stderr (recovery)
    check: Callable[[Ctx, subprocess.CompletedProcess], None] | None = None  # a recovery's extra checks


# ---------------------------------------------------------------------------------------------
# helpers for the prepare functions


def write(ctx: Ctx, name: str, content: str | bytes) -> str:
    path = ctx.tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return name


def toy_lines(ctx: Ctx, split: str, side: str, count: int = 20) -> list[str]:
    return (ctx.data / f"{split}.{side}").read_text(encoding="utf-8").splitlines()[:count]


def text(lines: list[str], end: str = "\n") -> str:
    return "".join(line + end for line in lines)


def small_corpus(ctx: Ctx, src_name: str = "train.src", tgt_name: str = "train.tgt", count: int = 20) -> None:
    write(ctx, src_name, text(toy_lines(ctx, "train", "src", count)))
    write(ctx, tgt_name, text(toy_lines(ctx, "train", "tgt", count)))


def train(
    *overrides: str, src: str = "train.src", tgt: str = "train.tgt", config: str = str(TINY), run_dir: str = "run"
) -> list[str]:
    """nmt-train on the tiny config, a fresh run dir in tmp and the given training files, no valid set."""
    return [
        "nmt-train",
        "--config",
        config,
        f"run_dir={run_dir}",
        "data.valid=null",
        f"data.train.src={src}",
        f"data.train.tgt={tgt}",
        *overrides,
    ]


def train_on_corpus(*overrides: str) -> Callable[[Ctx], list[str]]:
    def prepare(ctx: Ctx) -> list[str]:
        small_corpus(ctx)
        return train(*overrides)

    return prepare


def tiny_yaml_with(old: str, new: str) -> str:
    source = TINY.read_text(encoding="utf-8")
    assert source.count(old) == 1, old
    return source.replace(old, new)


def huge_line(size: int = 1_000_000) -> str:
    """About `size` bytes of toy-vocabulary words: hundreds of thousands of pieces, no unknowns."""
    words = "apple river stone cloud tiger lamp "
    return (words * (size // len(words) + 1))[:size].strip()


def translate(ctx: Ctx, *args: str) -> list[str]:
    return ["nmt-translate", "--model", str(ctx.model), *args]


def existing_output(ctx: Ctx, name: str = "out.txt") -> str:
    """An output file from an earlier run: a failing command must leave it alone."""
    return write(ctx, name, "an earlier translation\n")


def sentencepiece_model(lines: list[str], model_type: str = "bpe", vocab_size: int = 30) -> bytes:
    """A serialized sentencepiece model trained on `lines` with nmt's special ids."""
    import sentencepiece as spm

    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=out,
        model_type=model_type,
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        pad_id=0,
        unk_id=1,
        bos_id=2,
        eos_id=3,
        minloglevel=2,
    )
    return out.getvalue()


def other_sentencepiece_model() -> bytes:
    return sentencepiece_model(["a different corpus with different pieces"] * 50)


# ---------------------------------------------------------------------------------------------
# prepare functions and recovery checks that need more than one line


def config_unknown_key(ctx: Ctx) -> list[str]:
    small_corpus(ctx)
    write(ctx, "typo.yaml", tiny_yaml_with("  max_steps: 800", "  max_stepz: 800"))
    return train(config="typo.yaml")


def config_bad_choice(ctx: Ctx) -> list[str]:
    small_corpus(ctx)
    write(ctx, "choice.yaml", tiny_yaml_with("    type: bahdanau", "    type: luongg"))
    return train(config="choice.yaml")


def config_invalid_yaml(ctx: Ctx) -> list[str]:
    write(ctx, "broken.yaml", "seed: 1\ntrain:\n  lr: 0.1\n   max_steps: 3\n")  # line 4 is indented too far
    return ["nmt-train", "--config", "broken.yaml"]


def config_top_level_list(ctx: Ctx) -> list[str]:
    write(ctx, "list.yaml", "- train\n- decode\n")
    return ["nmt-train", "--config", "list.yaml"]


def tiny_line(start: str) -> int:
    """The line number of the one line of configs/tiny.yaml that starts with `start`."""
    (number,) = [n for n, line in enumerate(TINY.read_text(encoding="utf-8").splitlines(), start=1) if line.startswith(start)]
    return number


def sampling_on_a_word_model(ctx: Ctx) -> list[str]:
    small_corpus(ctx)
    lines = toy_lines(ctx, "train", "src") + toy_lines(ctx, "train", "tgt")
    write(ctx, "word.model", sentencepiece_model(lines, model_type="word", vocab_size=20))
    return train("tokenizer.model_file=word.model", "tokenizer.sampling=true")


def second_corpus_all_too_long(ctx: Ctx) -> list[str]:
    small_corpus(ctx)
    write(ctx, "long.src", text([huge_line(2000)]))
    write(ctx, "long.tgt", text(["apple river"]))
    return train("data.train.1.src=long.src", "data.train.1.tgt=long.tgt")


def config_duplicate_key(ctx: Ctx) -> list[str]:
    small_corpus(ctx)
    first = "  max_steps: 800                        # optimizer updates\n"
    write(ctx, "dup.yaml", tiny_yaml_with(first, first + "  max_steps: 100\n"))  # the line after it
    return train(config="dup.yaml")


def config_duplicate_section(ctx: Ctx) -> list[str]:
    small_corpus(ctx)
    write(ctx, "dup.yaml", TINY.read_text(encoding="utf-8") + "model:\n  init: xavier\n")  # a second model: section
    return train(config="dup.yaml")


def config_nan_in_file(ctx: Ctx) -> list[str]:
    small_corpus(ctx)
    write(ctx, "nan.yaml", tiny_yaml_with("  lr: 0.005 ", "  lr: .nan  "))
    return train(config="nan.yaml")


def search_option(*options: str) -> Callable[[Ctx], list[str]]:
    """nmt-translate with these search options (they fail before the model loads)."""

    def prepare(ctx: Ctx) -> list[str]:
        write(ctx, "in.txt", "apple river\n")
        return translate(ctx, "--input", "in.txt", "--output", existing_output(ctx), *options)

    return prepare


def eval_beam(beam: str) -> Callable[[Ctx], list[str]]:
    def prepare(ctx: Ctx) -> list[str]:
        write(ctx, "src.txt", text(toy_lines(ctx, "test", "src", 3)))
        write(ctx, "ref.txt", text(toy_lines(ctx, "test", "tgt", 3)))
        return ["nmt-eval", "--model", str(ctx.model), "--src", "src.txt", "--ref", "ref.txt", "--beam", beam]

    return prepare


def corpus_line_mismatch(ctx: Ctx) -> list[str]:
    small_corpus(ctx, tgt_name="short.tgt")
    write(ctx, "short.tgt", text(toy_lines(ctx, "train", "tgt", 19)))
    return train(tgt="short.tgt")


def corpus_empty(ctx: Ctx) -> list[str]:
    write(ctx, "empty.src", b"")
    write(ctx, "empty.tgt", b"")
    return train(src="empty.src", tgt="empty.tgt")


def corpus_invalid_utf8(ctx: Ctx) -> list[str]:
    small_corpus(ctx)
    lines = [line.encode("utf-8") for line in toy_lines(ctx, "train", "src")]
    lines[6] = "caf\u00e9 au lait".encode("latin-1")  # line 7: Latin-1, not UTF-8
    write(ctx, "latin1.src", b"".join(line + b"\n" for line in lines))
    return train(src="latin1.src")


def corpus_not_gzip(ctx: Ctx) -> list[str]:
    small_corpus(ctx)
    write(ctx, "train.src.gz", random.Random(0).randbytes(4096))  # fixed bytes: never the gzip magic by chance
    return train(src="train.src.gz")


def corpus_random_bytes(ctx: Ctx) -> list[str]:
    small_corpus(ctx)
    junk = bytes(range(128, 256)) * 32  # never valid UTF-8: a lone continuation byte comes first
    write(ctx, "junk.src", b"apple river\n" + junk)
    return train(src="junk.src")


def corpus_missing_file(ctx: Ctx) -> list[str]:
    small_corpus(ctx)
    return train(src="missing.src")


def corpus_huge_line(ctx: Ctx) -> list[str]:
    small_corpus(ctx)
    lines = toy_lines(ctx, "train", "src")
    lines[5] = huge_line()
    write(ctx, "train.src", text(lines))
    return train("train.max_steps=1", "train.eval_every_steps=1")


def check_huge_line_dropped(ctx: Ctx, result: subprocess.CompletedProcess) -> None:
    log = (ctx.tmp / "run" / "train.log").read_text(encoding="utf-8")
    assert "data.train: kept 19 of 20 pairs; dropped 1 longer than 60 pieces" in log
    assert (ctx.tmp / "run" / "checkpoints" / "last.pt").is_file()


def corpus_crlf(ctx: Ctx) -> list[str]:
    write(ctx, "crlf.src", text(toy_lines(ctx, "train", "src"), end="\r\n"))
    write(ctx, "crlf.tgt", text(toy_lines(ctx, "train", "tgt"), end="\r\n"))
    return train("train.max_steps=1", "train.eval_every_steps=1", src="crlf.src", tgt="crlf.tgt")


def check_crlf_trained(ctx: Ctx, result: subprocess.CompletedProcess) -> None:
    log = (ctx.tmp / "run" / "train.log").read_text(encoding="utf-8")
    assert "data.train: 40 lines had Windows (CRLF) line ends; removed the CR" in log
    assert "data.train: 20 pairs, none dropped" in log
    assert "training stopped at step 1" in log
    assert (ctx.tmp / "run" / "checkpoints" / "last.pt").is_file()


def corpus_hf_offline(ctx: Ctx) -> list[str]:
    return train(
        "data.train.dataset=nmt-tests/no-such-dataset",
        "data.train.src_field=translation.src",
        "data.train.tgt_field=translation.tgt",
        src="null",
        tgt="null",
    )


def tokenizer_missing(ctx: Ctx) -> list[str]:
    small_corpus(ctx)
    return train("tokenizer.model_file=missing.model")


def tokenizer_corrupt(ctx: Ctx) -> list[str]:
    small_corpus(ctx)
    good = (ctx.model / "spm.model").read_bytes()
    write(ctx, "cut.model", good[: len(good) // 2])  # a sentencepiece model cut off mid-copy
    return train("tokenizer.model_file=cut.model")


def checkpoint_truncated(ctx: Ctx) -> list[str]:
    good = (ctx.model / "checkpoints" / "best.pt").read_bytes()
    write(ctx, "truncated.pt", good[: len(good) // 2])
    write(ctx, "in.txt", "apple river\n")
    return ["nmt-translate", "--model", "truncated.pt", "--input", "in.txt", "--output", existing_output(ctx)]


def checkpoint_text_file(ctx: Ctx) -> list[str]:
    write(ctx, "config.yaml", (ctx.model / "config.resolved.yaml").read_bytes())  # --model config.yaml: a common slip
    write(ctx, "in.txt", "apple river\n")
    return ["nmt-translate", "--model", "config.yaml", "--input", "in.txt", "--output", existing_output(ctx)]


def checkpoint_empty_run_dir(ctx: Ctx) -> list[str]:
    (ctx.tmp / "empty_run").mkdir()
    write(ctx, "in.txt", "apple river\n")
    return ["nmt-translate", "--model", "empty_run", "--input", "in.txt", "--output", existing_output(ctx)]


def resume_with_replaced_spm(ctx: Ctx) -> list[str]:
    shutil.copytree(ctx.model, ctx.tmp / "run")
    write(ctx, "run/spm.model", other_sentencepiece_model())
    return ["nmt-train", "--config", "run/config.resolved.yaml", "run_dir=run"]


def run_dir_is_a_file(ctx: Ctx) -> list[str]:
    small_corpus(ctx)
    write(ctx, "run", "notes, not a run directory\n")
    return train()


def resume_copy(ctx: Ctx, rewrite: Callable[[Path], None]) -> list[str]:
    """A copy of the trained run whose every checkpoint file is passed to `rewrite`, then re-run."""
    shutil.copytree(ctx.model, ctx.tmp / "run")
    for path in sorted((ctx.tmp / "run" / "checkpoints").glob("*.pt")):
        rewrite(path)
    return ["nmt-train", "--config", "run/config.resolved.yaml", "run_dir=run"]


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.unlink()  # last/best are hard links: give each name its own torn copy
    path.write_bytes(data[: len(data) // 2])


def rewrite_checkpoint(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def rewrite(path: Path) -> None:
        import torch

        state = torch.load(path, weights_only=True)
        change(state)
        path.unlink()
        torch.save(state, path)

    return rewrite


def other_toolkits_checkpoint(path: Path) -> None:
    import torch

    path.unlink()
    torch.save({"model": {"w": torch.zeros(2)}, "epoch": 3}, path)


def resume_only_averaged(ctx: Ctx) -> list[str]:
    shutil.copytree(ctx.model, ctx.tmp / "run")
    checkpoints = ctx.tmp / "run" / "checkpoints"
    subprocess.run(
        [str(BIN / "nmt-average"), "--model", str(ctx.model), "--last", "1", "--output", str(ctx.tmp / "avg.pt")],
        check=True,
        capture_output=True,
    )
    for path in checkpoints.iterdir():
        path.unlink()
    (ctx.tmp / "avg.pt").rename(checkpoints / "step_99999999.pt")  # e.g. nmt-average --output run/checkpoints/...
    return ["nmt-train", "--config", "run/config.resolved.yaml", "run_dir=run"]


def checkpoint_without(*fields: str) -> Callable[[Ctx], list[str]]:
    def prepare(ctx: Ctx) -> list[str]:
        import torch

        state = torch.load(ctx.model / "checkpoints" / "best.pt", weights_only=True)
        for name in fields:
            del state[name]
        torch.save(state, ctx.tmp / "partial.pt")
        write(ctx, "in.txt", "apple river\n")
        return ["nmt-translate", "--model", "partial.pt", "--input", "in.txt", "--output", existing_output(ctx)]

    return prepare


def eval_with_newer_checkpoint(ctx: Ctx) -> list[str]:
    import torch

    state = torch.load(ctx.model / "checkpoints" / "best.pt", weights_only=True)
    torch.save({**state, "format": "nmt-checkpoint-v7"}, ctx.tmp / "newer.pt")
    write(ctx, "src.txt", text(toy_lines(ctx, "test", "src", 3)))
    write(ctx, "ref.txt", text(toy_lines(ctx, "test", "tgt", 3)))
    return ["nmt-eval", "--model", "newer.pt", "--src", "src.txt", "--ref", "ref.txt"]


def ensemble_with_other_vocabulary(side: str, prog: str) -> Callable[[Ctx], list[str]]:
    """The module's model and a copy of it whose `side` ('src' or 'tgt') sentencepiece model is another."""

    def prepare(ctx: Ctx) -> list[str]:
        import torch

        state = torch.load(ctx.model / "checkpoints" / "best.pt", weights_only=True)
        joint = state["tokenizer"]["joint"]
        torch.save({**state, "tokenizer": {"src": joint, "tgt": joint, side: other_sentencepiece_model()}}, ctx.tmp / "other.pt")
        write(ctx, "src.txt", text(toy_lines(ctx, "test", "src", 3)))
        if prog == "nmt-eval":
            write(ctx, "ref.txt", text(toy_lines(ctx, "test", "tgt", 3)))
            return ["nmt-eval", "--model", str(ctx.model), "other.pt", "--src", "src.txt", "--ref", "ref.txt"]
        return ["nmt-translate", "--model", str(ctx.model), "other.pt", "--input", "src.txt", "--output", existing_output(ctx)]

    return prepare


def ensemble_of_a_model_with_itself(ctx: Ctx) -> list[str]:
    write(ctx, "in.txt", text(toy_lines(ctx, "test", "src", 3)))
    return ["nmt-translate", "--model", str(ctx.model), str(ctx.model), "--input", "in.txt", "--output", "out.txt"]


def check_translated_as_the_model(ctx: Ctx, result: subprocess.CompletedProcess) -> None:
    from nmt import Translator

    alone = Translator.from_run_dir(ctx.model, device="cpu").translate(toy_lines(ctx, "test", "src", 3))
    assert (ctx.tmp / "out.txt").read_text(encoding="utf-8").splitlines() == alone


def average_incomplete_checkpoints(ctx: Ctx) -> list[str]:
    import torch

    shutil.copytree(ctx.model, ctx.tmp / "run")
    for path in (ctx.tmp / "run" / "checkpoints").glob("step_*.pt"):
        state = torch.load(path, weights_only=True)
        del state["model"]
        path.unlink()
        torch.save(state, path)
    return ["nmt-average", "--model", "run", "--last", "1", "--output", "avg.pt"]


def checkpoints_dir_is_a_file(ctx: Ctx) -> list[str]:
    small_corpus(ctx)
    write(ctx, "run/checkpoints", "my notes about checkpoints\n")
    return train()


def run_dir_holds_user_config(ctx: Ctx) -> list[str]:
    # The config kept inside the directory it names: nmt writes config.resolved.yaml beside it.
    small_corpus(ctx)
    write(ctx, "exp/config.yaml", "# my commented config\n" + TINY.read_text(encoding="utf-8"))
    return train("train.max_steps=1", "train.eval_every_steps=1", config="exp/config.yaml", run_dir="exp")


def check_user_config_kept(ctx: Ctx, result: subprocess.CompletedProcess) -> None:
    assert (ctx.tmp / "exp" / "config.yaml").read_text(encoding="utf-8").startswith("# my commented config")
    resolved = (ctx.tmp / "exp" / "config.resolved.yaml").read_text(encoding="utf-8")
    assert "run_dir: exp" in resolved and "max_steps: 1" in resolved
    assert (ctx.tmp / "exp" / "checkpoints" / "last.pt").is_file()


def run_dir_holds_user_file(name: str, content: bytes) -> Callable[[Ctx], list[str]]:
    def prepare(ctx: Ctx) -> list[str]:
        small_corpus(ctx)
        write(ctx, f"exp/{name}", content)
        return train(run_dir="exp")

    return prepare


def run_dir_holds_the_configured_spm_model(ctx: Ctx) -> list[str]:
    small_corpus(ctx)
    write(ctx, "exp/spm.model", (ctx.model / "spm.model").read_bytes())
    return train("tokenizer.model_file=exp/spm.model", "train.max_steps=1", "train.eval_every_steps=1", run_dir="exp")


def check_trained_one_step(ctx: Ctx, result: subprocess.CompletedProcess) -> None:
    assert "training stopped at step 1" in (ctx.tmp / "exp" / "train.log").read_text(encoding="utf-8")


def translate_invalid_utf8_stdin(ctx: Ctx) -> list[str]:
    ctx.stdin = b"apple river\n\xff\xfe lamp\nstone\n"
    return translate(ctx, "--output", existing_output(ctx))


def translate_invalid_utf8_file(ctx: Ctx) -> list[str]:
    write(ctx, "in.txt", b"apple river\n" + "caf\u00e9\n".encode("latin-1") + b"stone\n")
    return translate(ctx, "--input", "in.txt", "--output", existing_output(ctx))


def translate_empty_input(ctx: Ctx) -> list[str]:
    write(ctx, "empty.txt", b"")
    return translate(ctx, "--input", "empty.txt", "--output", "out.txt")


def check_empty_output(ctx: Ctx, result: subprocess.CompletedProcess) -> None:
    assert (ctx.tmp / "out.txt").read_bytes() == b""


def translate_enormous_line(ctx: Ctx) -> list[str]:
    write(ctx, "in.txt", text(["apple river", huge_line(), "lamp green"]))
    return translate(ctx, "--input", "in.txt", "--output", "out.txt", "--min-len", "2")


def check_enormous_line_translated(ctx: Ctx, result: subprocess.CompletedProcess) -> None:
    out = (ctx.tmp / "out.txt").read_text(encoding="utf-8")
    assert out.endswith("\n") and len(out.split("\n")) - 1 == 3, out[:500]
    assert out.split("\n")[1].strip(), "the truncated line got no translation"
    assert len(out) < 10_000, "the over-long line was not truncated"


def translate_output_missing_dir(ctx: Ctx) -> list[str]:
    write(ctx, "in.txt", "apple river\n")
    return translate(ctx, "--input", "in.txt", "--output", "missing_dir/out.txt")


def translate_output_fifo(ctx: Ctx) -> list[str]:
    # Like --output /dev/null: an existing special file is written through, not replaced by a rename.
    os.mkfifo(ctx.tmp / "pipe")
    ctx.keep["reader"] = os.open(ctx.tmp / "pipe", os.O_RDONLY | os.O_NONBLOCK)  # lets the writer open it
    write(ctx, "in.txt", "apple river\nlamp green\n")
    return translate(ctx, "--input", "in.txt", "--output", "pipe")


def check_fifo_written_through(ctx: Ctx, result: subprocess.CompletedProcess) -> None:
    reader = ctx.keep["reader"]
    try:
        data = os.read(reader, 1 << 16)
    except BlockingIOError:
        data = b""
    finally:
        os.close(reader)
    assert stat.S_ISFIFO((ctx.tmp / "pipe").lstat().st_mode), "the FIFO was replaced by a regular file"
    assert data.count(b"\n") == 2, data


def translate_nbest_above_beam(ctx: Ctx) -> list[str]:
    write(ctx, "in.txt", "apple river\n")
    return translate(ctx, "--input", "in.txt", "--output", existing_output(ctx), "--beam", "2", "--nbest", "3")


def translate_missing_input(ctx: Ctx) -> list[str]:
    return translate(ctx, "--input", "missing.txt", "--output", existing_output(ctx))


def translate_fp16_on_cpu(ctx: Ctx) -> list[str]:
    write(ctx, "in.txt", "apple river\n")
    return translate(ctx, "--input", "in.txt", "--output", existing_output(ctx), "--device", "cpu", "--amp", "fp16")


def translate_missing_gpu(ctx: Ctx) -> list[str]:
    write(ctx, "in.txt", "apple river\n")
    return translate(ctx, "--input", "in.txt", "--output", existing_output(ctx), "--device", "cuda:99")


def eval_line_mismatch(ctx: Ctx) -> list[str]:
    write(ctx, "hyp.txt", text(toy_lines(ctx, "test", "tgt", 3)))
    write(ctx, "ref.txt", text(toy_lines(ctx, "test", "tgt", 5)))
    write(ctx, "scores.json", '{"from": "an earlier run"}\n')
    return ["nmt-eval", "--hyp", "hyp.txt", "--ref", "ref.txt", "--json", "scores.json"]


def eval_missing_ref(ctx: Ctx) -> list[str]:
    write(ctx, "hyp.txt", text(toy_lines(ctx, "test", "tgt", 3)))
    return ["nmt-eval", "--hyp", "hyp.txt", "--ref", "missing.ref"]


def eval_empty_files(ctx: Ctx) -> list[str]:
    write(ctx, "hyp.txt", b"")
    write(ctx, "ref.txt", b"")
    return ["nmt-eval", "--hyp", "hyp.txt", "--ref", "ref.txt"]


def translate_over(output: str, link: str = "") -> Callable[[Ctx], list[str]]:
    """--output naming --input in.txt: as given (in.txt, ./in.txt) or through a symlink or hard link."""

    def prepare(ctx: Ctx) -> list[str]:
        write(ctx, "in.txt", "apple river\nlamp green\n")
        if link == "symlink":
            os.symlink("in.txt", ctx.tmp / output)
        elif link == "hardlink":
            os.link(ctx.tmp / "in.txt", ctx.tmp / output)
        return translate(ctx, "--input", "in.txt", "--output", output)

    return prepare


def translate_with(*args: str) -> Callable[[Ctx], list[str]]:
    """nmt-translate of in.txt into an earlier out.txt, plus `args`; a directory d exists."""

    def prepare(ctx: Ctx) -> list[str]:
        write(ctx, "in.txt", "apple river\nlamp green\n")
        existing_output(ctx)
        write(ctx, "notes.txt", "a file, not a directory\n")
        (ctx.tmp / "d").mkdir()
        return translate(ctx, *args)

    return prepare


def translate_over_checkpoint(ctx: Ctx) -> list[str]:
    write(ctx, "in.txt", "apple river\n")
    return translate(ctx, "--input", "in.txt", "--output", str(ctx.model / "checkpoints" / "best.pt"))


def translate_over_second_models_checkpoint(ctx: Ctx) -> list[str]:
    shutil.copytree(ctx.model, ctx.tmp / "run2")
    write(ctx, "in.txt", "apple river\n")
    return translate(ctx, "run2", "--input", "in.txt", "--output", "run2/checkpoints/last.pt")  # --model RUN run2


def translate_old_mac_file(ctx: Ctx) -> list[str]:
    write(ctx, "mac.txt", "apple river\rlamp green\rstone\r")  # CR-only line ends: one line
    return translate(ctx, "--input", "mac.txt", "--output", "out.txt")


def check_one_output_line(ctx: Ctx, result: subprocess.CompletedProcess) -> None:
    out = (ctx.tmp / "out.txt").read_text(encoding="utf-8")
    assert out.count("\n") == 1 and out.endswith("\n"), out


def translate_old_mac_stdin(ctx: Ctx) -> list[str]:
    ctx.stdin = b"apple river\rlamp green\rstone\r"
    return translate(ctx)


def check_one_stdout_line(ctx: Ctx, result: subprocess.CompletedProcess) -> None:
    assert result.stdout.count(b"\n") == 1 and result.stdout.endswith(b"\n"), result.stdout


def translate_nul_input(ctx: Ctx) -> list[str]:
    write(ctx, "nul.txt", b"apple river\nlamp\0green\nstone\n")
    return translate(ctx, "--input", "nul.txt", "--output", "out.txt")


def check_three_output_lines(ctx: Ctx, result: subprocess.CompletedProcess) -> None:
    assert (ctx.tmp / "out.txt").read_bytes().count(b"\n") == 3


def translate_through_symlink(ctx: Ctx) -> list[str]:
    (ctx.tmp / "real").mkdir()
    os.symlink("real/out.txt", ctx.tmp / "link.txt")  # the target is written; the link stays a link
    write(ctx, "in.txt", "apple river\nlamp green\n")
    return translate(ctx, "--input", "in.txt", "--output", "link.txt")


def check_symlink_kept(ctx: Ctx, result: subprocess.CompletedProcess) -> None:
    assert (ctx.tmp / "link.txt").is_symlink(), "the symlink was replaced by a file"
    assert (ctx.tmp / "real" / "out.txt").read_bytes().count(b"\n") == 2


def translate_truncated_gz(ctx: Ctx) -> list[str]:
    packed = gzip.compress(text(["apple river lamp green"] * 2000).encode())
    write(ctx, "cut.gz", packed[: len(packed) // 2])
    return translate(ctx, "--input", "cut.gz", "--output", existing_output(ctx))


def corpus_with_nul(ctx: Ctx) -> list[str]:
    small_corpus(ctx)
    lines = toy_lines(ctx, "train", "src")
    lines[6] = lines[6].replace(" ", "\0", 1)  # line 7
    write(ctx, "nul.src", text(lines))
    return train("train.max_steps=1", "train.eval_every_steps=1", src="nul.src")


def check_nul_logged(ctx: Ctx, result: subprocess.CompletedProcess) -> None:
    log = (ctx.tmp / "run" / "train.log").read_text(encoding="utf-8")
    assert "warning: nul.src (data.train.src): 1 line holds NUL bytes (first at line 7)" in log
    assert (ctx.tmp / "run" / "checkpoints" / "last.pt").is_file()


def corpus_old_mac_line_ends(ctx: Ctx) -> list[str]:
    small_corpus(ctx)
    write(ctx, "mac.src", text(toy_lines(ctx, "train", "src"), end="\r"))
    return train(src="mac.src")


def corpus_hf_missing_field(ctx: Ctx) -> list[str]:
    write(ctx, "pairs.jsonl", '{"translation": {"de": "apple river", "en": "river apple"}}\n')
    return train(
        "data.train.dataset=json",
        "data.train.data_files=pairs.jsonl",
        "data.train.src_field=translation.de",
        "data.train.tgt_field=translation.fr",
        src="null",
        tgt="null",
    )


def eval_with(*args: str) -> Callable[[Ctx], list[str]]:
    """nmt-eval with `args`; hyp.txt, ref.txt, src.txt, other.txt, an earlier r.json and a directory d exist."""

    def prepare(ctx: Ctx) -> list[str]:
        write(ctx, "hyp.txt", text(toy_lines(ctx, "test", "tgt", 3)))
        write(ctx, "other.txt", text(toy_lines(ctx, "test", "tgt", 3)))
        write(ctx, "ref.txt", text(toy_lines(ctx, "test", "tgt", 3)))
        write(ctx, "src.txt", text(toy_lines(ctx, "test", "src", 3)))
        write(ctx, "r.json", '{"from": "an earlier run"}\n')
        (ctx.tmp / "d").mkdir()
        return ["nmt-eval", *args]

    return prepare


def eval_json_symlink_to_ref(ctx: Ctx) -> list[str]:
    argv = eval_with("--hyp", "hyp.txt", "--ref", "ref.txt", "--json", "scores.json")(ctx)
    os.symlink("ref.txt", ctx.tmp / "scores.json")
    return argv


def eval_json_over_checkpoint(ctx: Ctx) -> list[str]:
    eval_with()(ctx)
    last = str(ctx.model / "checkpoints" / "last.pt")
    return ["nmt-eval", "--model", str(ctx.model), "--src", "src.txt", "--ref", "ref.txt", "--json", last]


def eval_old_mac_hyp(ctx: Ctx) -> list[str]:
    eval_with()(ctx)
    write(ctx, "mac.txt", text(toy_lines(ctx, "test", "tgt", 3), end="\r"))
    return ["nmt-eval", "--hyp", "mac.txt", "--ref", "ref.txt"]


def eval_old_mac_both(ctx: Ctx) -> list[str]:
    write(ctx, "hyp.txt", text(toy_lines(ctx, "test", "tgt", 3), end="\r"))
    write(ctx, "ref.txt", text(toy_lines(ctx, "test", "tgt", 3), end="\r"))
    return ["nmt-eval", "--hyp", "hyp.txt", "--ref", "ref.txt"]


def translate_gzip_without_gz_name(ctx: Ctx) -> list[str]:
    write(ctx, "in.GZ", gzip.compress(b"apple river\n"))
    return translate(ctx, "--input", "in.GZ", "--output", existing_output(ctx))


def eval_utf16_ref(ctx: Ctx) -> list[str]:
    argv = eval_with("--hyp", "hyp.txt", "--ref", "ref.txt", "--json", "r.json")(ctx)
    write(ctx, "ref.txt", text(toy_lines(ctx, "test", "tgt", 3)).encode("utf-16"))
    return argv


def check_scored(ctx: Ctx, result: subprocess.CompletedProcess) -> None:
    assert result.stdout.startswith(b"BLEU = "), result.stdout


def average(*args: str) -> Callable[[Ctx], list[str]]:
    def prepare(ctx: Ctx) -> list[str]:
        return ["nmt-average", "--model", str(ctx.model), *args]

    return prepare


def average_output_exists(ctx: Ctx) -> list[str]:
    write(ctx, "avg.pt", b"an earlier average")
    return ["nmt-average", "--model", str(ctx.model), "--last", "1", "--output", "avg.pt"]


def average_missing_run_dir(ctx: Ctx) -> list[str]:
    return ["nmt-average", "--model", "no_such_run", "--last", "1", "--output", "avg.pt"]


def report(*args: str) -> Callable[[Ctx], list[str]]:
    def prepare(ctx: Ctx) -> list[str]:
        return ["nmt-report", str(ctx.model), *args]

    return prepare


def report_without_logs(ctx: Ctx) -> list[str]:
    write(ctx, "empty_run/notes.txt", "a directory, but no run's logs\n")
    return ["nmt-report", "empty_run"]


def report_on_a_file(ctx: Ctx) -> list[str]:
    write(ctx, "run.txt", "not a directory\n")
    return ["nmt-report", "run.txt"]


def report_under_a_file(ctx: Ctx) -> list[str]:
    write(ctx, "notes.txt", "a file, not a directory\n")
    return ["nmt-report", str(ctx.model), "--output", "notes.txt/report.html"]


def report_over_directory(ctx: Ctx) -> list[str]:
    (ctx.tmp / "out.html").mkdir()
    return ["nmt-report", str(ctx.model), "--output", "out.html"]


def report_images_folder_is_a_file(ctx: Ctx) -> list[str]:
    write(ctx, "report_files", "where the Markdown twin's images would go\n")
    return ["nmt-report", str(ctx.model), "--output", "report.html"]


# ---------------------------------------------------------------------------------------------
# the catalogue

CASES = [
    # configs: fail before torch is imported
    Case("args-missing-config", lambda ctx: ["nmt-train"], expect=("--config", "see nmt-train --help")),
    Case(
        "args-not-an-int",
        lambda ctx: translate(ctx, "--beam", "five"),
        expect=("--beam", "invalid int value: 'five'", "see nmt-translate --help"),
    ),
    Case("config-unknown-key", config_unknown_key, expect=("typo.yaml", "'train.max_stepz'", "did you mean 'max_steps'?")),
    Case(
        "config-misspelled-choice",
        config_bad_choice,
        expect=("choice.yaml", "'model.attention.type'", "'luongg'", "did you mean 'luong'?", "choices: bahdanau, luong"),
    ),
    Case("config-wrong-type", train_on_corpus("train.lr=fast"), expect=("'train.lr'", "must be float", "'fast'")),
    Case(
        "config-missing-file",
        lambda ctx: ["nmt-train", "--config", "missing.yaml"],
        expect=("missing.yaml", "not found", "--config"),
    ),
    Case("config-invalid-yaml", config_invalid_yaml, expect=("broken.yaml", "line 4", "invalid YAML")),
    Case("config-top-level-list", config_top_level_list, expect=("list.yaml", "must be a mapping of sections")),
    Case(
        "config-nbest-above-beam",
        train_on_corpus("decode.nbest=5"),
        expect=("'decode.nbest'", "5 is more than decode.beam_size 3", "raise the beam or lower nbest"),
    ),
    Case(
        "config-luong-dot-sizes",
        train_on_corpus("model.attention.type=luong", "model.attention.score=dot", "model.decoder.hidden_size=48"),
        expect=("'model.attention.score'", "decoder.hidden_size (48)", "2 * encoder.hidden_size (64)", "'general' or 'concat'"),
    ),
    Case(
        "config-luong-scaled-dot-sizes",
        train_on_corpus("model.attention.type=luong", "model.attention.score=scaled_dot", "model.decoder.hidden_size=48"),
        expect=("'model.attention.score'", "luong 'scaled_dot' needs decoder.hidden_size (48)", "'general' or 'concat'"),
    ),
    Case(
        "config-multihead-heads-not-dividing-the-size",
        train_on_corpus("model.attention.type=multihead", "model.attention.heads=3"),
        expect=("'model.attention.heads'", "3 heads do not divide attention.hidden_size 32", "use a divisor of it"),
    ),
    Case(
        "config-multihead-zero-heads",
        train_on_corpus("model.attention.type=multihead", "model.attention.heads=0"),
        expect=("'model.attention.heads'", "must be an integer from 1 to", "got 0"),
    ),
    Case(
        "config-multihead-head-score-typo",
        train_on_corpus("model.attention.type=multihead", "model.attention.head_score=scaled"),
        expect=("'model.attention.head_score'", "did you mean 'scaled_dot'?", "choices: additive, scaled_dot"),
    ),
    Case(
        "config-max-tokens-below-max-len",
        train_on_corpus("train.max_tokens=10"),
        expect=("'train.max_tokens'", "at least data.max_len + 2 = 62"),
    ),
    Case(
        "config-max-time-not-a-duration",
        train_on_corpus("train.max_time=8 hours"),
        expect=("'train.max_time'", "'8 hours' is not a duration", "s/m/h/d, e.g. 90m"),
    ),
    Case(
        "config-linear-schedule-without-budget",
        train_on_corpus("train.schedule=linear", "train.max_steps=0", "train.early_stopping_patience=2"),
        expect=("'train.schedule'", "set train.max_steps, train.max_epochs or train.max_time"),
    ),
    Case(
        "config-fp16-search-on-cpu",  # found at start-up, not at the first validation
        train_on_corpus("decode.amp=fp16", "train.device=cpu", "data.valid.src=train.src", "data.valid.tgt=train.tgt"),
        expect=("decode.amp", "fp16 needs a CUDA device, this is cpu", "use bf16, int8 or off"),
    ),
    Case(
        "override-unknown-key",
        train_on_corpus("train.max_stepz=3"),
        expect=("override 'train.max_stepz=3'", "'train.max_stepz'", "did you mean 'max_steps'?"),
    ),
    Case(
        "override-without-equals",
        train_on_corpus("train.max_steps"),
        expect=("override 'train.max_steps'", "expected dotted.key=value"),
    ),
    # numbers out of range: one rule per config key, the search options obey the same rules
    Case(
        "config-lr-nan",
        train_on_corpus("train.lr=.nan"),
        expect=("tiny.yaml", "key 'train.lr': must be a finite number > 0, got nan"),
    ),
    Case("config-lr-inf", train_on_corpus("train.lr=.inf"), expect=("key 'train.lr': must be a finite number > 0, got inf",)),
    Case("config-lr-nan-in-file", config_nan_in_file, expect=("nan.yaml", "key 'train.lr'", "finite number > 0, got nan")),
    Case(
        "config-betas-out-of-range",
        train_on_corpus("train.betas=[0.9,1.5]"),
        expect=("key 'train.betas'", "must be between 0 and 1 (exclusive of 1), got 1.5 (train.betas[1])"),
    ),
    Case(
        "config-beta-nan",
        train_on_corpus("train.betas=[.nan,0.999]"),
        expect=("key 'train.betas'", "got nan (train.betas[0])"),
    ),
    Case(
        "config-negative-weight-decay",
        train_on_corpus("train.weight_decay=-0.1"),
        expect=("key 'train.weight_decay': must be a finite number >= 0, got -0.1",),
    ),
    Case(
        "config-clip-grad-norm-inf",
        train_on_corpus("train.clip_grad_norm=.inf"),
        expect=("key 'train.clip_grad_norm': must be a finite number >= 0, got inf",),
    ),
    Case(
        "config-huge-seed",
        train_on_corpus("seed=99999999999999999999"),
        expect=("key 'seed': must be an integer from 0 to 4294967295", "got 99999999999999999999"),
    ),
    Case(
        "config-huge-vocab-size",
        train_on_corpus("tokenizer.vocab_size=1000000000000"),
        expect=("key 'tokenizer.vocab_size': must be an integer from 5 to 1048576", "got 1000000000000"),
    ),
    Case(
        "config-character-coverage-below-sentencepiece",
        train_on_corpus("tokenizer.character_coverage=0.5"),
        expect=("key 'tokenizer.character_coverage': must be between 0.98 and 1, got 0.5",),
    ),
    Case(
        "config-negative-max-train-sentences",
        train_on_corpus("tokenizer.max_train_sentences=-1"),
        expect=("key 'tokenizer.max_train_sentences'", "must be 0 (all) or an integer from 101 to", "got -1"),
    ),
    Case(
        "config-huge-hidden-size",
        train_on_corpus("model.encoder.hidden_size=10000000"),
        expect=("key 'model.encoder.hidden_size'", "about 8e+14 parameters", "GB of fp32 weights", "1,000,000,000 allowed"),
    ),
    Case(
        "config-huge-decoder-layers",
        train_on_corpus("model.decoder.num_layers=100000"),
        expect=("key 'model.decoder.num_layers'", "parameters", "lower model.decoder.num_layers"),
    ),
    Case(
        "config-negative-init-scale",
        train_on_corpus("model.init_scale=-1"),
        expect=("key 'model.init_scale': must be a finite number > 0, got -1",),
    ),
    Case(
        "config-huge-num-threads",
        train_on_corpus("train.num_threads=100000000000"),
        expect=("key 'train.num_threads': must be an integer from 0 to 4096",),
    ),
    Case(
        "config-max-len-ratio-below-one",
        train_on_corpus("data.max_len_ratio=0.5"),
        expect=("key 'data.max_len_ratio': must be 0 (off) or a finite number >= 1, got 0.5",),
    ),
    Case(
        "config-min-lr-above-lr",
        train_on_corpus("train.schedule=linear", "train.min_lr=0.1"),
        expect=("key 'train.min_lr': 0.1 is above train.lr 0.005", "use min_lr <= lr"),
    ),
    Case(
        "config-output-cap-zero",
        train_on_corpus("decode.max_len_a=0", "decode.max_len_b=0"),
        expect=("key 'decode.max_len_b'", "leaves a one-piece source no output piece", "raise max_len_b"),
    ),
    Case(
        "config-negative-max-len-b",
        train_on_corpus("decode.max_len_b=-5"),
        expect=("key 'decode.max_len_b': must be an integer from 0 to", "got -5"),
    ),
    Case(
        "config-max-time-infinite",
        train_on_corpus("train.max_time=1" + "0" * 400),
        expect=("key 'train.max_time': must be a finite duration, got inf seconds; use 0 for no limit",),
    ),
    # several training corpora (data.train as a list, weights)
    Case(
        "train-weight-on-some-corpora",
        train_on_corpus("data.train.1.src=train.src", "data.train.1.tgt=train.tgt", "data.train.1.weight=2"),
        expect=("'data.train.0.weight'", "give every training corpus a weight", "or none"),
    ),
    Case(
        "train-weight-zero", train_on_corpus("data.train.weight=0"), expect=("'data.train.weight'", "must be a finite number > 0")
    ),
    Case(
        "train-corpus-index-past-the-end",
        train_on_corpus("data.train.3.src=train.src"),
        expect=("override 'data.train.3.src=train.src'", "'data.train' has 1 item", "index 3 is past the end"),
    ),
    Case(
        "train-second-corpus-missing",
        train_on_corpus("data.train.1.src=other.src", "data.train.1.tgt=train.tgt"),
        expect=("other.src", "file not found", "data paths"),
    ),
    Case(
        "train-second-corpus-all-filtered",
        second_corpus_all_too_long,
        expect=("'data.train.1'", "no usable sentence pairs left after filtering", "data.max_len"),
    ),
    # subword regularization (tokenizer.sampling)
    Case(
        "sampling-nbest-on-bpe",
        train_on_corpus("tokenizer.sampling=true", "tokenizer.sampling_nbest=8"),
        expect=("'tokenizer.sampling_nbest'", "a bpe model samples by BPE-dropout", "remove it"),
    ),
    Case(
        "sampling-nbest-one",
        train_on_corpus("tokenizer.type=unigram", "tokenizer.sampling=true", "tokenizer.sampling_nbest=1"),
        expect=("'tokenizer.sampling_nbest'", "must be 0 (all segmentations) or an integer from 2"),
    ),
    Case(
        "sampling-on-a-word-model",
        sampling_on_a_word_model,
        expect=("'tokenizer.sampling'", "word.model", "samples unigram and bpe models only, not a word model"),
    ),
    # duplicate keys: a second one would silently replace the first
    Case(
        "config-duplicate-key",
        config_duplicate_key,
        expect=(
            f"dup.yaml: line {tiny_line('  max_steps: 800') + 1}: duplicate key 'train.max_steps'",
            f"(first at line {tiny_line('  max_steps: 800')}); keep one",
        ),
    ),
    Case(
        "config-duplicate-section",
        config_duplicate_section,
        expect=(
            f"dup.yaml: line {len(TINY.read_text().splitlines()) + 1}: duplicate key 'model'",
            f"first at line {tiny_line('model:')}",
        ),
    ),
    Case(
        "override-given-twice",
        train_on_corpus("train.max_steps=3", "train.max_steps=4"),
        expect=("override 'train.max_steps=4'", "already set by override 'train.max_steps=3'", "give each key once"),
    ),
    Case(
        "search-length-penalty-nan",
        search_option("--length-penalty", "nan"),
        expect=("--length-penalty nan: decode.length_penalty must be between 0 and 10",),
    ),
    Case(
        "search-length-penalty-inf",
        search_option("--length-penalty", "inf"),
        expect=("--length-penalty inf: decode.length_penalty must be between 0 and 10",),
    ),
    Case(
        "search-max-len-a-nan",
        search_option("--max-len-a", "nan"),
        expect=("--max-len-a nan: decode.max_len_a must be between 0 and 1000",),
    ),
    Case(
        "search-max-len-a-negative",
        search_option("--max-len-a", "-1"),
        expect=("--max-len-a -1: decode.max_len_a must be between 0 and 1000",),
    ),
    Case(
        "search-max-len-b-negative",
        search_option("--max-len-b", "-100"),
        expect=("--max-len-b -100: decode.max_len_b must be an integer from 0 to",),
    ),
    Case(
        "search-beam-zero", search_option("--beam", "0"), expect=("--beam 0: decode.beam_size must be an integer from 1 to 1000",)
    ),
    Case(
        "search-beam-huge",
        search_option("--beam", "100000000000"),
        expect=("--beam 100000000000: decode.beam_size must be an integer from 1 to 1000",),
    ),
    Case("search-nbest-zero", search_option("--nbest", "0"), expect=("--nbest 0: decode.nbest must be an integer from 1",)),
    Case("search-min-len-negative", search_option("--min-len", "-1"), expect=("--min-len -1: decode.min_len must be",)),
    Case("search-max-tokens-zero", search_option("--max-tokens", "0"), expect=("--max-tokens 0: decode.max_tokens must be",)),
    Case(
        "search-plot-first-negative",
        search_option("--attention-plots", "plots", "--plot-first", "-1"),
        expect=("--plot-first -1: must be an integer >= 0",),
    ),
    Case(
        "search-output-cap-zero",  # each option in range; together (checked with the model's config) they cap every output at eos
        search_option("--max-len-a", "0", "--max-len-b", "1"),
        expect=("key 'decode.max_len_b'", "leaves a one-piece source no output piece"),
    ),
    Case("eval-beam-zero", eval_beam("0"), expect=("--beam 0: decode.beam_size must be an integer from 1 to 1000",)),
    # corpora
    Case(
        "corpus-line-count-mismatch",
        corpus_line_mismatch,
        expect=("data.train", "train.src has 20 lines", "short.tgt has 19", "one target line per source line"),
    ),
    Case(
        "corpus-empty",
        corpus_empty,
        expect=("data.train", "empty.src is empty", "at least one sentence pair"),
    ),
    Case(
        "corpus-invalid-utf8",
        corpus_invalid_utf8,
        expect=("latin1.src:7:", "invalid UTF-8", "convert the file to UTF-8"),
    ),
    Case(
        "corpus-gz-name-not-gzip",
        corpus_not_gzip,
        expect=("train.src.gz", "cannot read", "Not a gzipped file", "complete text or .gz file"),
    ),
    Case(
        "corpus-binary-junk",
        corpus_random_bytes,
        expect=("junk.src:2:", "invalid UTF-8", "convert the file to UTF-8"),
    ),
    Case(
        "corpus-missing-file",
        corpus_missing_file,
        expect=("missing.src", "file not found", "check the data paths"),
    ),
    Case(
        "corpus-hf-dataset-offline",
        corpus_hf_offline,
        expect=("data.train", "nmt-tests/no-such-dataset", "cannot load Hugging Face dataset", "use local files"),
    ),
    Case(
        "corpus-1mb-line-dropped",
        corpus_huge_line,
        code=0,
        expect=("dropped 1 longer than 60 pieces",),
        check=check_huge_line_dropped,
    ),
    Case(
        "corpus-crlf-recovered",
        corpus_crlf,
        code=0,
        expect=("warning: data.train: 40 lines had Windows (CRLF) line ends",),
        check=check_crlf_trained,
    ),
    # tokenizer
    Case(
        "tokenizer-model-file-missing",
        tokenizer_missing,
        expect=("missing.model", "cannot read sentencepiece model", "tokenizer.*model_file"),
    ),
    Case(
        "tokenizer-model-file-corrupt",
        tokenizer_corrupt,
        expect=("cut.model", "not a valid sentencepiece model", "tokenizer.*model_file"),
    ),
    # checkpoints and run directories
    Case(
        "checkpoint-truncated",
        checkpoint_truncated,
        expect=("truncated.pt", "truncated checkpoint", "written by nmt-train"),
    ),
    Case(
        "checkpoint-text-file",
        checkpoint_text_file,
        expect=("config.yaml", "checkpoint", "written by nmt-train"),
    ),
    Case(
        "checkpoint-empty-run-dir",
        checkpoint_empty_run_dir,
        expect=("empty_run", "no checkpoint found", "run directory with checkpoints/"),
    ),
    Case(
        "resume-with-replaced-spm-model",
        resume_with_replaced_spm,
        expect=("run", "spm.model differs from the tokenizer stored in the checkpoint", "restore"),
    ),
    Case(
        "run-dir-is-a-file",
        run_dir_is_a_file,
        expect=("run: run_dir is an existing file", "set run_dir to a directory"),
    ),
    Case(
        "resume-every-checkpoint-truncated",
        lambda ctx: resume_copy(ctx, truncate),
        expect=(
            "run/checkpoints: no checkpoint there can be resumed",
            "last.pt, step_00000060.pt, best.pt: unreadable or truncated checkpoint",
            "nothing was changed",
            "set a new run_dir, or move run/checkpoints away",
        ),
    ),
    Case(
        "resume-checkpoints-of-a-newer-format",
        lambda ctx: resume_copy(ctx, rewrite_checkpoint(lambda state: state.update(format="nmt-checkpoint-v2"))),
        expect=(
            "run/checkpoints: no checkpoint there can be resumed",
            "checkpoint format 'nmt-checkpoint-v2'",
            "move run/checkpoints away",
        ),
    ),
    Case(
        "resume-checkpoints-of-another-toolkit",
        lambda ctx: resume_copy(ctx, other_toolkits_checkpoint),
        expect=("run/checkpoints: no checkpoint there can be resumed", "not an nmt checkpoint", "set a new run_dir"),
    ),
    Case(
        "resume-checkpoints-without-config",
        lambda ctx: resume_copy(ctx, rewrite_checkpoint(lambda state: state.pop("config"))),
        expect=("run/checkpoints: no checkpoint there can be resumed", "incomplete nmt checkpoint", "set a new run_dir"),
    ),
    Case(
        "resume-checkpoints-without-optimizer",
        lambda ctx: resume_copy(ctx, rewrite_checkpoint(lambda state: state.pop("optimizer"))),
        expect=("run/checkpoints: no checkpoint there can be resumed", "not a training checkpoint", "set a new run_dir"),
    ),
    Case(
        "resume-from-an-averaged-checkpoint",
        resume_only_averaged,
        expect=("step_99999999.pt: an averaged checkpoint", "nothing was changed", "set a new run_dir"),
    ),
    Case(
        "resume-checkpoints-is-a-file",
        checkpoints_dir_is_a_file,
        expect=("run/checkpoints: is a file, where nmt keeps a run's checkpoints", "move it away"),
    ),
    Case(
        "translate-checkpoint-without-config",
        checkpoint_without("config"),
        expect=("partial.pt: incomplete nmt checkpoint (no 'config')", "pass a complete checkpoint"),
    ),
    Case(
        "translate-checkpoint-without-weights-and-tokenizer",
        checkpoint_without("model", "tokenizer"),
        expect=("partial.pt: incomplete nmt checkpoint (no 'tokenizer', 'model')",),
    ),
    Case(
        "eval-model-checkpoint-of-a-newer-format",
        eval_with_newer_checkpoint,
        expect=("newer.pt: checkpoint format 'nmt-checkpoint-v7'", "this one reads 'nmt-checkpoint-v1'", "use the nmt version"),
    ),
    Case(
        "ensemble-target-vocabularies-differ",
        ensemble_with_other_vocabulary("tgt", "nmt-translate"),
        expect=("other.pt: its target sentencepiece model differs from that of ", "checkpoints/best.pt", "must share"),
    ),
    Case(
        "eval-ensemble-source-vocabularies-differ",
        ensemble_with_other_vocabulary("src", "nmt-eval"),
        expect=("other.pt: its source sentencepiece model differs from that of ", "checkpoints/best.pt", "tokenizer.model_file"),
    ),
    Case(
        "ensemble-missing-second-model",
        translate_with("no_such_run", "--input", "in.txt", "--output", "out.txt"),  # --model RUN no_such_run
        expect=("no_such_run: no checkpoint found", "a .pt file or a run directory"),
    ),
    Case(
        "ensemble-of-a-model-with-itself",
        ensemble_of_a_model_with_itself,
        code=0,
        expect=("nmt-translate: 3 sentences",),
        check=check_translated_as_the_model,
    ),
    Case(
        "average-incomplete-checkpoints",
        average_incomplete_checkpoints,
        expect=("step_00000060.pt: incomplete nmt checkpoint (no 'model')", "pass a complete checkpoint"),
    ),
    Case(
        "run-dir-holds-the-users-config",
        run_dir_holds_user_config,
        code=0,
        expect=("training stopped at step 1",),
        check=check_user_config_kept,
    ),
    Case(
        "run-dir-holds-a-users-spm-model",
        run_dir_holds_user_file("spm.model", other_sentencepiece_model()),
        expect=("exp: spm.model is not nmt-train's", "nothing was changed", "move it out of the run directory"),
    ),
    Case(
        "run-dir-holds-a-users-train-log",
        run_dir_holds_user_file("train.log", b"my own notes\n"),
        expect=("exp: train.log is not nmt-train's", "or set another run_dir"),
    ),
    Case(
        "run-dir-holds-a-users-resolved-config",
        run_dir_holds_user_file("config.resolved.yaml", b"seed: 3\n"),
        expect=("exp: config.resolved.yaml is not nmt-train's",),
    ),
    Case(
        "run-dir-spm-model-is-the-configured-tokenizer",
        run_dir_holds_the_configured_spm_model,
        code=0,
        expect=("training stopped at step 1",),
        check=check_trained_one_step,
    ),
    # translation input and output
    Case(
        "translate-invalid-utf8-stdin",
        translate_invalid_utf8_stdin,
        expect=("<stdin>:2:", "invalid UTF-8", "send UTF-8 text"),
    ),
    Case(
        "translate-invalid-utf8-file",
        translate_invalid_utf8_file,
        expect=("in.txt:2:", "invalid UTF-8", "convert the file to UTF-8"),
    ),
    Case(
        "translate-missing-input",
        translate_missing_input,
        expect=("missing.txt", "file not found", "--input"),
    ),
    Case(
        "translate-empty-input",
        translate_empty_input,
        code=0,
        expect=("nmt-translate: 0 sentences",),
        check=check_empty_output,
    ),
    Case(
        "translate-enormous-line-truncated",
        translate_enormous_line,
        code=0,
        expect=("warning: in.txt:2: ", "pieces, more than the model's data.max_len; translating its first 60"),
        check=check_enormous_line_translated,
    ),
    Case(
        "translate-output-missing-dir",
        translate_output_missing_dir,
        expect=("missing_dir/out.txt", "cannot write", "check the directory exists"),
    ),
    Case(
        "translate-output-fifo-written-through",
        translate_output_fifo,
        code=0,
        expect=("nmt-translate: 2 sentences",),
        check=check_fifo_written_through,
    ),
    Case(
        "translate-nbest-above-beam",
        translate_nbest_above_beam,
        expect=("decode.nbest", "3 is more than decode.beam_size 2", "raise the beam or lower nbest"),
    ),
    Case(
        "translate-fp16-on-cpu",
        translate_fp16_on_cpu,
        expect=("decode.amp (--amp) fp16 needs a CUDA device, this is cpu", "use bf16, int8 or off"),
    ),
    Case(
        "translate-missing-gpu",
        translate_missing_gpu,
        expect=("--device cuda:99", "no such CUDA GPU", "use cpu"),
    ),
    Case(
        "translate-output-is-input",
        translate_over("in.txt"),
        expect=("--output in.txt is the same file as --input in.txt; write to another file",),
    ),
    Case(
        "translate-output-is-input-via-dot-slash",
        translate_over("./in.txt"),
        expect=("--output ./in.txt is the same file as --input in.txt",),
    ),
    Case(
        "translate-output-is-input-via-symlink",
        translate_over("link.txt", link="symlink"),
        expect=("--output link.txt is the same file as --input in.txt",),
    ),
    Case(
        "translate-output-is-input-via-hard-link",
        translate_over("hard.txt", link="hardlink"),
        expect=("--output hard.txt is the same file as --input in.txt",),
    ),
    Case(
        "translate-alignments-is-input",
        translate_with("--input", "in.txt", "--output", "out.txt", "--alignments", "in.txt"),
        expect=("--alignments in.txt is the same file as --input in.txt",),
    ),
    Case(
        "translate-alignments-is-output",
        translate_with("--input", "in.txt", "--output", "out.txt", "--alignments", "./out.txt"),
        expect=("--alignments ./out.txt is the same file as --output out.txt", "give each output its own file"),
    ),
    Case(
        "translate-output-is-checkpoint",
        translate_over_checkpoint,
        expect=("checkpoints/best.pt is the same file as --model ", "write to another file"),
    ),
    Case(
        "translate-ensemble-output-is-the-second-models-checkpoint",
        translate_over_second_models_checkpoint,
        expect=("--output run2/checkpoints/last.pt is the same file as --model run2/checkpoints/last.pt",),
    ),
    Case(
        "translate-input-is-directory",
        translate_with("--input", "d", "--output", "out.txt"),
        expect=("d: is a directory", "give a text file as --input"),
    ),
    Case(
        "translate-output-is-directory",
        translate_with("--input", "in.txt", "--output", "d"),
        expect=("--output d is a directory", "give the path of a file"),
    ),
    Case(
        "translate-alignments-missing-dir-before-output",  # refused before out.txt is replaced
        translate_with("--input", "in.txt", "--output", "out.txt", "--alignments", "missing_dir/al.txt"),
        expect=("--alignments missing_dir/al.txt: cannot write", "directory missing_dir does not exist"),
    ),
    Case(
        "translate-attention-plots-is-a-file",
        translate_with("--input", "in.txt", "--output", "out.txt", "--attention-plots", "notes.txt"),
        expect=("--attention-plots notes.txt is a file, not a directory",),
    ),
    Case(
        "translate-truncated-gz-input",
        translate_truncated_gz,
        expect=("cut.gz", "cannot read", "complete text or .gz file"),
    ),
    Case(
        "translate-alignments-and-output-both-stdout",
        translate_with("--input", "in.txt", "--alignments", "-"),
        expect=("--alignments - and --output - both write to standard output", "give one of them a file"),
    ),
    Case(
        "translate-gzip-without-gz-name",
        translate_gzip_without_gz_name,
        expect=("in.GZ:1: invalid UTF-8", "it is gzip-compressed: name it .gz, or gunzip it"),
    ),
    Case(
        "translate-old-mac-file-warned",
        translate_old_mac_file,
        code=0,
        expect=(
            "warning: mac.txt: 1 line holds a carriage return (\\r) that does not end the line (first at line 1)",
            "tr '\\r' '\\n'",
            "nmt-translate: 1 sentences",
        ),
        check=check_one_output_line,
    ),
    Case(
        "translate-old-mac-stdin-warned",
        translate_old_mac_stdin,
        code=0,
        expect=("warning: <stdin>: 1 line holds a carriage return (\\r) that does not end the line (first at line 1)",),
        check=check_one_stdout_line,
    ),
    Case(
        "translate-nul-input-warned",
        translate_nul_input,
        code=0,
        expect=("warning: nul.txt: 1 line holds NUL bytes (first at line 2)", "usually corruption"),
        check=check_three_output_lines,
    ),
    Case(
        "translate-output-symlink-kept",
        translate_through_symlink,
        code=0,
        expect=("nmt-translate: 2 sentences",),
        check=check_symlink_kept,
    ),
    Case(
        "corpus-nul-warned",
        corpus_with_nul,
        code=0,
        expect=("warning: nul.src (data.train.src): 1 line holds NUL bytes (first at line 7)",),
        check=check_nul_logged,
    ),
    Case(
        "corpus-old-mac-line-ends",
        corpus_old_mac_line_ends,
        expect=("mac.src has 1 lines but train.tgt has 20", "mac.src has carriage returns inside lines", "tr '\\r' '\\n'"),
    ),
    Case(
        "corpus-hf-missing-field-names-key-once",
        corpus_hf_missing_field,
        expect=("data.train: row 0 has no field 'translation.fr'", "fix data.train.*_field"),
    ),
    # nmt-eval
    Case(
        "eval-line-count-mismatch",
        eval_line_mismatch,
        expect=("hyp.txt has 3 lines", "ref.txt has 5", "must match line by line"),
    ),
    Case(
        "eval-missing-ref",
        eval_missing_ref,
        expect=("missing.ref", "file not found", "--ref"),
    ),
    Case(
        "eval-empty-files",
        eval_empty_files,
        expect=("hyp.txt and ref.txt are empty", "nothing to score"),
    ),
    Case(
        "eval-json-is-hyp",
        eval_with("--hyp", "hyp.txt", "--ref", "ref.txt", "--json", "hyp.txt"),
        expect=("--json hyp.txt is the same file as --hyp hyp.txt; write to another file",),
    ),
    Case(
        "eval-markdown-is-ref",
        eval_with("--hyp", "hyp.txt", "--ref", "ref.txt", "--markdown", "ref.txt"),
        expect=("--markdown ref.txt is the same file as --ref ref.txt",),
    ),
    Case(
        "eval-markdown-is-json",
        eval_with("--hyp", "hyp.txt", "--ref", "ref.txt", "--json", "r.json", "--markdown", "./r.json"),
        expect=("--markdown ./r.json is the same file as --json r.json", "give each output its own file"),
    ),
    Case(
        "eval-json-symlink-to-ref",
        eval_json_symlink_to_ref,
        expect=("--json scores.json is the same file as --ref ref.txt",),
    ),
    Case(
        "eval-markdown-is-compare",
        eval_with("--hyp", "hyp.txt", "--ref", "ref.txt", "--compare", "other.txt", "--markdown", "other.txt"),
        expect=("--markdown other.txt is the same file as --compare other.txt",),
    ),
    Case(
        "eval-json-is-src",
        eval_with("--hyp", "hyp.txt", "--ref", "ref.txt", "--src", "src.txt", "--json", "src.txt"),
        expect=("--json src.txt is the same file as --src src.txt",),
    ),
    Case(
        "eval-json-is-checkpoint",
        eval_json_over_checkpoint,
        expect=("checkpoints/last.pt is the same file as --model ",),
    ),
    Case(
        "eval-unknown-tokenize",
        eval_with("--hyp", "hyp.txt", "--ref", "ref.txt", "--tokenize", "13b", "--json", "r.json"),
        expect=("--tokenize '13b' is not a sacrebleu BLEU tokenizer", "did you mean '13a'?", "choices: none, zh, 13a, intl"),
    ),
    Case(
        "eval-hyp-is-directory",
        eval_with("--hyp", "d", "--ref", "ref.txt"),
        expect=("d: is a directory", "give a text file as --hyp"),
    ),
    Case(
        "eval-json-is-directory",
        eval_with("--hyp", "hyp.txt", "--ref", "ref.txt", "--json", "d"),
        expect=("--json d is a directory",),
    ),
    Case(
        "eval-markdown-missing-dir-before-json",  # refused before r.json is replaced
        eval_with("--hyp", "hyp.txt", "--ref", "ref.txt", "--json", "r.json", "--markdown", "missing_dir/r.md"),
        expect=("--markdown missing_dir/r.md: cannot write", "directory missing_dir does not exist"),
    ),
    Case(
        "eval-utf16-ref",
        eval_utf16_ref,
        expect=("ref.txt:1: invalid UTF-8 (byte 0)", "it is UTF-16: convert it with iconv -f UTF-16 -t UTF-8"),
    ),
    Case(
        "eval-old-mac-hyp",
        eval_old_mac_hyp,
        expect=("mac.txt has 1 lines but ref.txt has 3", "mac.txt has carriage returns inside lines", "tr '\\r' '\\n'"),
    ),
    Case(
        "eval-old-mac-files-warned",
        eval_old_mac_both,
        code=0,
        expect=(
            "warning: hyp.txt: 1 line holds a carriage return (\\r) that does not end the line",
            "warning: ref.txt: 1 line holds a carriage return",
        ),
        check=check_scored,
    ),
    # nmt-average
    Case(
        "average-neither-last-nor-best",
        average("--output", "avg.pt"),
        expect=("give exactly one of --last N or --best N",),
    ),
    Case(
        "average-last-zero",
        average("--last", "0", "--output", "avg.pt"),
        expect=("give exactly one of --last N or --best N", "N >= 1"),
    ),
    Case(
        "average-output-exists",
        average_output_exists,
        expect=("avg.pt: already exists", "choose another --output"),
    ),
    Case(
        "average-output-missing-dir",
        average("--last", "1", "--output", "missing_dir/avg.pt"),
        expect=("missing_dir/avg.pt", "cannot write", "check the directory exists"),
    ),
    Case(
        "average-missing-run-dir",
        average_missing_run_dir,
        expect=("no_such_run", "no checkpoints/ folder", "run directory of an nmt-train run"),
    ),
    # nmt-report
    Case(
        "report-missing-run-dir",
        lambda ctx: ["nmt-report", "no_such_run"],
        expect=("no_such_run: no such run directory", "give the run_dir an nmt-train run wrote"),
    ),
    Case(
        "report-run-dir-without-logs",
        report_without_logs,
        expect=("empty_run: no train.log or tensorboard/ event files", "nothing to report", "nmt-train --config"),
    ),
    Case("report-run-dir-is-a-file", report_on_a_file, expect=("run.txt: is a file, not a run directory",)),
    Case(
        "report-output-missing-dir",
        report("--output", "missing_dir/report.html"),
        expect=("--output missing_dir/report.html", "cannot write (directory missing_dir does not exist)"),
    ),
    Case(
        "report-output-under-a-file",
        report_under_a_file,
        expect=("--output notes.txt/report.html", "cannot write (directory notes.txt is not a directory)"),
    ),
    Case(
        "report-output-is-a-directory",
        report_over_directory,
        expect=("--output out.html is a directory", "give the path of a file"),
    ),
    Case(
        "report-output-over-train-log",  # the run's own log, which the report reads
        lambda ctx: ["nmt-report", str(ctx.model), "--output", str(ctx.model / "train.log")],
        expect=("train.log is the same file as RUN_DIR", "write to another file"),
    ),
    Case(
        "report-markdown-over-config",
        lambda ctx: ["nmt-report", str(ctx.model), "--output", "r.html", "--markdown", str(ctx.model / "config.resolved.yaml")],
        expect=("--markdown", "config.resolved.yaml is the same file as RUN_DIR", "write to another file"),
    ),
    Case(
        "report-markdown-over-output",
        report("--output", "report.md"),  # the twin's default name: --output with .md
        expect=("--markdown report.md is the same file as --output report.md", "give each output its own file"),
    ),
    Case(
        "report-images-folder-is-a-file",
        report_images_folder_is_a_file,
        expect=("report_files: is a file", "where the Markdown report keeps its images"),
    ),
    Case("report-output-stdout", report("--output", "-"), expect=("the report is files, not a stream", "--output FILE.html")),
    Case("report-negative-sentences", report("--sentences", "-1"), expect=("--sentences -1: must be an integer >= 0",)),
    Case("report-beam-zero", report("--beam", "0"), expect=("--beam 0: decode.beam_size",)),
]


def _params():
    for case in CASES:
        yield pytest.param(case, id=case.id)


# ---------------------------------------------------------------------------------------------
# the model, the runner, the contract


@dataclass(frozen=True)
class Trained:
    root: Path
    data: Path
    run_dir: Path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, scripts, tiny_train) -> Trained:
    """One tiny model for every case that needs a checkpoint (60 steps: quality does not matter)."""
    root = tmp_path_factory.mktemp("bad_inputs_model")
    data = root / "toy"
    scripts("make_toy_corpus").write_corpus(data, seed=0)
    run_dir = root / "run"
    command = tiny_train(run_dir, data, "train.max_steps=60", "train.eval_every_steps=60")
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return Trained(root=root, data=data, run_dir=run_dir)


def snapshot(*roots: Path) -> dict[Path, tuple]:
    """Every file under `roots`: sha256, size and mtime of regular files; the type of special ones."""
    found = {}
    for root in roots:
        for path in root.rglob("*"):
            info = path.lstat()
            if stat.S_ISREG(info.st_mode):
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                found[path] = ("file", digest, info.st_size, info.st_mtime_ns)
            elif not stat.S_ISDIR(info.st_mode):
                found[path] = (stat.S_IFMT(info.st_mode),)  # never read a FIFO: it would block
    return found


def run(argv: list[str], ctx: Ctx) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    # No network, no shared cache: a Hugging Face name must fail fast and the same way everywhere.
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(ctx.tmp / "hf_home"))
    return subprocess.run(
        [str(BIN / argv[0]), *argv[1:]],
        input=ctx.stdin if ctx.stdin is not None else b"",
        capture_output=True,
        cwd=ctx.tmp,
        env=env,
        timeout=TIMEOUT,
    )


@pytest.mark.parametrize("case", list(_params()))
def test_bad_input(case: Case, trained: Trained, tmp_path: Path) -> None:
    ctx = Ctx(tmp=tmp_path, model=trained.run_dir, data=trained.data)
    argv = case.prepare(ctx)
    before = snapshot(tmp_path, trained.root)
    result = run(argv, ctx)
    after = snapshot(tmp_path, trained.root)
    stderr = result.stderr.decode("utf-8", errors="replace")
    shown = f"$ {' '.join(argv)}\n--- stderr:\n{stderr[-3000:]}"

    assert "Traceback" not in stderr, shown
    assert result.returncode == case.code, shown
    if case.code == 2:
        assert result.stdout == b"", shown
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert lines, "no error message on stderr"
        error = lines[-1]
        assert error.startswith(f"{argv[0]}: error: "), shown
        for expected in case.expect:
            assert expected in error, f"{expected!r} not in the error line: {error}"
    else:
        for expected in case.expect:
            assert expected in stderr, f"{expected!r} not on stderr:\n{shown}"
        if case.check is not None:
            case.check(ctx, result)

    changed = sorted(str(path) for path, state in before.items() if after.get(path) != state)
    if changed:
        raise PreExistingFileModified(f"{', '.join(changed)} changed or removed\n{shown}")
    if case.code == 2 and stderr.splitlines() != [error]:
        raise ExtraStderrLines(f"stderr must be the one error line\n{shown}")
