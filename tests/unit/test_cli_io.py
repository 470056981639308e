"""Tests for the command line's file handling: the path check (nmt.paths), writing outputs
(symlinks, special files), reading stdin, and nmt-eval's sacrebleu options."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import get_args, get_type_hints

import pytest

from nmt import cli
from nmt.atomic import write_bytes_atomic
from nmt.config import EvalConfig
from nmt.errors import NmtError
from nmt.metrics import bleu_tokenizers, check_bleu_tokenize
from nmt.paths import check_paths, checkpoint_files, is_descriptor_link, write_through


@pytest.fixture
def here(tmp_path, monkeypatch):
    """tmp_path as the working directory, with an input and an earlier output in it."""
    monkeypatch.chdir(tmp_path)
    Path("in.txt").write_text("a\nb\n")
    Path("out.txt").write_text("old\n")
    return tmp_path


def refused(inputs: dict, outputs: dict) -> str:
    with pytest.raises(NmtError) as info:
        check_paths(inputs, outputs)
    message = str(info.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------------------------------------
# check_paths: an output naming an input, or another output


@pytest.mark.parametrize("output", ["in.txt", "./in.txt", "sub/../in.txt", "ABS"])
def test_output_naming_the_input_is_refused(here, output):
    (here / "sub").mkdir()
    output = str(here / "in.txt") if output == "ABS" else output
    message = refused({"--input": "in.txt"}, {"--output": output})
    assert message == f"--output {output} is the same file as --input in.txt; write to another file"


def test_symlink_to_the_input_is_refused(here):
    os.symlink("in.txt", "link.txt")
    assert "--output link.txt is the same file as --input in.txt" in refused({"--input": "in.txt"}, {"--output": "link.txt"})


def test_hard_link_to_the_input_is_refused(here):
    os.link("in.txt", "hard.txt")
    assert "--output hard.txt is the same file as --input in.txt" in refused({"--input": "in.txt"}, {"--output": "hard.txt"})


def test_second_output_naming_the_first_is_refused(here):
    message = refused({"--input": "in.txt"}, {"--output": "out.txt", "--alignments": "./out.txt"})
    assert message == "--alignments ./out.txt is the same file as --output out.txt; give each output its own file"


def test_two_new_outputs_naming_one_file_are_refused(here):
    os.symlink("new.txt", "dangling.txt")  # both name new.txt, which is not there yet
    message = refused({}, {"--json": "new.txt", "--markdown": "dangling.txt"})
    assert "--markdown dangling.txt is the same file as --json new.txt" in message


def test_one_of_several_inputs(here):
    Path("ref2.txt").write_text("x\n")
    message = refused({"--hyp": "out.txt", "--ref": ["in.txt", "ref2.txt"]}, {"--json": "ref2.txt"})
    assert message.startswith("--json ref2.txt is the same file as --ref ref2.txt")


def test_distinct_files_pass(here):
    Path("copy.txt").write_bytes(Path("in.txt").read_bytes())  # same content, another file
    check_paths({"--input": "in.txt", "--ref": ["copy.txt"]}, {"--output": "out.txt", "--alignments": "new.txt", "--json": None})


def test_a_missing_input_is_left_to_its_reader(here):
    check_paths({"--input": "missing.txt"}, {"--output": "missing.txt"})  # "file not found" comes next


def test_special_files_and_stdio_are_skipped(here):
    check_paths({"--input": "-"}, {"--output": "-", "--alignments": os.devnull})
    check_paths({"--input": os.devnull}, {"--output": os.devnull, "--alignments": "/dev/stdout"})
    if hasattr(os, "mkfifo"):
        os.mkfifo("pipe")
        check_paths({"--input": "in.txt"}, {"--output": "pipe", "--alignments": "pipe"})


def test_stdin_redirected_from_the_output_is_refused(here, monkeypatch):
    with open("in.txt", "rb") as handle:
        monkeypatch.setattr(os, "fstat", lambda fd: os.stat(handle.fileno()) if fd == 0 else os.stat(fd))
        message = refused({"--input": "-"}, {"--output": "in.txt"})
    assert message == "--output in.txt is the same file as standard input (--input -); write to another file"


def test_checkpoint_files_of_a_run_directory(here):
    (here / "run" / "checkpoints").mkdir(parents=True)
    for name in ("step_00000010.pt", "best.pt"):
        (here / "run" / "checkpoints" / name).write_bytes(b"x")
    assert [p.name for p in checkpoint_files("run")] == ["best.pt", "step_00000010.pt"]
    assert checkpoint_files("run/checkpoints/best.pt") == [Path("run/checkpoints/best.pt")]
    assert checkpoint_files("missing") == []
    message = refused({"--model": checkpoint_files("run")}, {"--output": "run/checkpoints/best.pt"})
    assert message.startswith("--output run/checkpoints/best.pt is the same file as --model run/checkpoints/best.pt")


def test_a_hard_linked_checkpoint_is_named_as_given(here):
    (here / "run" / "checkpoints").mkdir(parents=True)
    Path("run/checkpoints/step_00000010.pt").write_bytes(b"x")
    for name in ("best.pt", "last.pt"):
        os.link("run/checkpoints/step_00000010.pt", f"run/checkpoints/{name}")
    message = refused({"--model": checkpoint_files("run")}, {"--output": "run/checkpoints/last.pt"})
    assert message.startswith("--output run/checkpoints/last.pt is the same file as --model run/checkpoints/last.pt;")


# ---------------------------------------------------------------------------------------------
# check_paths: outputs that could never be written


def test_output_that_is_a_directory(here):
    (here / "d").mkdir()
    assert refused({}, {"--output": "d"}) == "--output d is a directory; give the path of a file to write"


def test_output_in_a_missing_directory(here):
    message = refused({}, {"--alignments": "nodir/al.txt"})
    assert message == (
        "--alignments nodir/al.txt: cannot write (directory nodir does not exist); check the directory exists and is writable"
    )


def test_output_below_a_file(here):
    assert "(directory in.txt is not a directory)" in refused({}, {"--output": "in.txt/x"})


def test_dangling_symlink_names_its_target_directory(here):
    os.symlink("nodir/o.txt", "dl.txt")
    assert f"(directory {here / 'nodir'} does not exist)" in refused({}, {"--output": "dl.txt"})


def test_output_in_a_read_only_directory(here, monkeypatch):
    (here / "ro").mkdir(mode=0o555)
    if os.geteuid() == 0:  # root may write anywhere; the check asks os.access, as for another user
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda path, mode: Path(path).name != "ro" and real_access(path, mode))
    assert "(directory ro is not writable)" in refused({}, {"--output": "ro/o.txt"})


def test_two_outputs_on_stdout_are_refused(here):
    message = refused({"--input": "in.txt"}, {"--output": "-", "--alignments": "-"})
    assert message == "--alignments - and --output - both write to standard output; give one of them a file"


def test_empty_path_is_refused(here):
    assert refused({"--input": ""}, {}) == "--input is an empty path; give a file"


def test_output_ending_in_a_slash_is_refused(here):
    assert "--output new/ ends in '/', so it names a directory" in refused({}, {"--output": "new/"})


# ---------------------------------------------------------------------------------------------
# writing outputs


def test_descriptor_links():
    assert is_descriptor_link("/dev/stdout") and is_descriptor_link("/dev/fd/3") and is_descriptor_link("/proc/self/fd/1")
    assert not is_descriptor_link("/dev/shm/out.txt") and not is_descriptor_link("out.txt")
    assert write_through("/dev/stdout") and write_through(os.devnull)
    assert not write_through("no-such-file.txt")


def test_output_through_a_symlink_replaces_its_target_and_keeps_the_link(here):
    (here / "real").mkdir()
    Path("real/o.txt").write_text("old\n")
    os.symlink("real/o.txt", "lo.txt")
    cli._write_output("lo.txt", ["new"])
    assert os.path.islink("lo.txt") and os.readlink("lo.txt") == "real/o.txt"
    assert Path("real/o.txt").read_text() == "new\n"
    assert sorted(os.listdir("real")) == ["o.txt"], "no temporary file left behind"


def test_write_atomic_replaces_a_link_unless_asked_to_follow(here):
    os.symlink("out.txt", "link.txt")
    write_bytes_atomic(Path("link.txt"), b"run file\n")  # run-directory files: the link itself is replaced
    assert not os.path.islink("link.txt") and Path("out.txt").read_text() == "old\n"


def test_output_to_dev_stdout_appends_after_what_was_printed(here, capfd):
    print("report")
    cli._write_output("/dev/stdout", ["json"])
    assert capfd.readouterr().out == "report\njson\n"


def test_output_to_dev_null(here):
    cli._write_output(os.devnull, ["x"])
    assert Path(os.devnull).exists() and not Path(os.devnull).is_file()


# ---------------------------------------------------------------------------------------------
# reading input files and stdin


def test_read_file_warns_about_bare_cr(here, capsys):
    Path("mac.txt").write_bytes(b"one\rtwo\rthree\r")
    assert cli._read_file("mac.txt", "--input") == ["one\rtwo\rthree\r"]
    err = capsys.readouterr().err
    assert err.startswith("warning: mac.txt: 1 line holds a carriage return (\\r) that does not end the line (first at line 1)")


def test_read_file_refuses_a_directory(here):
    (here / "d").mkdir()
    with pytest.raises(NmtError, match=r"^d: is a directory; give a text file as --input$"):
        cli._read_file("d", "--input")


def stdin_lines(monkeypatch, data: bytes) -> list[str]:
    read, write = os.pipe()
    os.write(write, data)
    os.close(write)
    with os.fdopen(read, "rb") as handle:
        monkeypatch.setattr(sys, "stdin", handle)
        return [line for chunk in cli._stdin_chunks(settle=0.01) for line in chunk]


def test_stdin_lines_like_a_file(monkeypatch, capsys):
    data = b"\xef\xbb\xbfone\r\ntwo\rthree\nfour\0\nlast"
    assert stdin_lines(monkeypatch, data) == ["one", "two\rthree", "four\0", "last"]
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(
        "warning: <stdin>: 1 line holds a carriage return (\\r) that does not end the line (first at line 2)"
    )
    assert err[1].startswith("warning: <stdin>: 1 line holds NUL bytes (first at line 3)")


def test_stdin_gzip_is_recognised(monkeypatch):
    import gzip

    with pytest.raises(NmtError, match=r"^<stdin>:1: invalid UTF-8 .*; it is gzip-compressed: pipe it through zcat"):
        stdin_lines(monkeypatch, gzip.compress(b"apple river\n" * 20))


def test_stdin_invalid_utf8_names_the_line(monkeypatch):
    with pytest.raises(NmtError, match=r"^<stdin>:2: invalid UTF-8 \(byte 1 of the line\)"):
        stdin_lines(monkeypatch, b"ok\na\xffb\n")


# ---------------------------------------------------------------------------------------------
# nmt-eval: options passed to sacrebleu


def test_unknown_tokenizer_lists_sacrebleus_choices():
    with pytest.raises(NmtError) as info:
        check_bleu_tokenize("13b")
    message = str(info.value)
    assert message.startswith("--tokenize '13b' is not a sacrebleu BLEU tokenizer; did you mean '13a'? choices: ")
    assert all(name in message for name in bleu_tokenizers())


def test_known_tokenizers_start():
    for name in ("13a", "intl", "zh", "char", "none"):
        check_bleu_tokenize(name)


def test_config_offers_every_sacrebleu_tokenizer():
    configured = set(get_args(get_type_hints(EvalConfig)["bleu_tokenize"]))
    assert set(bleu_tokenizers()) == configured, set(bleu_tokenizers()) - configured
