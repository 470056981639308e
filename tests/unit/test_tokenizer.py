"""Tests for nmt.tokenizer: training, special ids, round trips, persistence and bad model files."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
import sentencepiece as spm

from nmt.config import TokenizerConfig
from nmt.errors import DataError
from nmt.tokenizer import JOINT_FILE, SRC_FILE, TGT_FILE, SideTokenizer, Tokenizer, build_tokenizer, train_sentencepiece

SRC_WORDS = "der die das hund katze läuft über straße schnell groß klein mann frau kind spielt".split()
TGT_WORDS = "the a dog cat runs over street quickly big small man woman child plays happily".split()


def sentences(words: list[str], count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(words) for _ in range(rng.randint(2, 9))) for _ in range(count)]


SRC_LINES = sentences(SRC_WORDS, 200, 1)
TGT_LINES = sentences(TGT_WORDS, 200, 2)
CFG = TokenizerConfig(vocab_size=60, joint=True, max_train_sentences=1000)


def no_log(message: str) -> None:
    pass


@pytest.fixture(scope="module")
def joint(tmp_path_factory) -> Tokenizer:
    return build_tokenizer(CFG, SRC_LINES, TGT_LINES, no_log)


@pytest.fixture(scope="module")
def separate(tmp_path_factory) -> Tokenizer:
    cfg = TokenizerConfig(vocab_size=60, joint=False, max_train_sentences=1000)
    return build_tokenizer(cfg, SRC_LINES, TGT_LINES, no_log)


def test_joint_tokenizer_shares_one_model(joint):
    assert joint.joint
    assert joint.src is joint.tgt
    assert set(joint.protos()) == {"joint"}


def test_separate_tokenizer_has_two_models(separate):
    assert not separate.joint
    assert set(separate.protos()) == {"src", "tgt"}
    assert separate.src.proto != separate.tgt.proto


@pytest.mark.parametrize("which", ["joint", "separate"])
def test_special_ids(request, which):
    tokenizer = request.getfixturevalue(which)
    for side in (tokenizer.src, tokenizer.tgt):
        vocab = side.vocab
        assert (vocab.pad, vocab.unk, vocab.bos, vocab.eos) == (0, 1, 2, 3)
        assert vocab.size == side.sp.get_piece_size()
        assert 4 < vocab.size <= 60


def test_round_trip_joint(joint):
    lines = SRC_LINES[:20] + TGT_LINES[:20] + ["der hund läuft über die straße", "the big dog plays"]
    assert joint.src.decode(joint.src.encode(lines)) == lines


def test_round_trip_separate(separate):
    assert separate.src.decode(separate.src.encode(SRC_LINES[:30])) == SRC_LINES[:30]
    assert separate.tgt.decode(separate.tgt.encode(TGT_LINES[:30])) == TGT_LINES[:30]


def test_encode_adds_no_specials(joint):
    vocab = joint.src.vocab
    for ids in joint.src.encode(SRC_LINES[:20]):
        assert ids
        assert not {vocab.pad, vocab.bos, vocab.eos} & set(ids)
        assert all(0 <= i < vocab.size for i in ids)


def test_decode_drops_pad_bos_eos(joint):
    vocab = joint.tgt.vocab
    ids = joint.tgt.encode(["the dog runs"])[0]
    assert joint.tgt.decode([[vocab.bos, *ids, vocab.eos, vocab.pad, vocab.pad]]) == ["the dog runs"]


def test_decode_empty(joint):
    assert joint.tgt.decode([[], [joint.tgt.vocab.eos]]) == ["", ""]


def test_pieces_match_ids(joint):
    ids = joint.src.encode(["der hund"])[0]
    pieces = joint.src.pieces(ids)
    assert len(pieces) == len(ids)
    assert "".join(pieces).replace("\u2581", " ").strip() == "der hund"


def test_protos_round_trip(joint, separate):
    for tokenizer in (joint, separate):
        rebuilt = Tokenizer.from_protos(tokenizer.protos(), "test")
        assert rebuilt.joint == tokenizer.joint
        assert rebuilt.protos() == tokenizer.protos()
        assert rebuilt.src.encode(SRC_LINES[:10]) == tokenizer.src.encode(SRC_LINES[:10])
        assert rebuilt.tgt.encode(TGT_LINES[:10]) == tokenizer.tgt.encode(TGT_LINES[:10])
        assert rebuilt.tgt.vocab == tokenizer.tgt.vocab


def test_save_and_from_run_dir_joint(joint, tmp_path):
    joint.save(tmp_path)
    assert (tmp_path / JOINT_FILE).is_file()
    assert not (tmp_path / SRC_FILE).exists()
    loaded = Tokenizer.from_run_dir(tmp_path)
    assert loaded is not None and loaded.joint
    assert loaded.protos() == joint.protos()
    assert [p.name for p in tmp_path.iterdir()] == [JOINT_FILE], "no temporary files left"


def test_save_and_from_run_dir_separate(separate, tmp_path):
    separate.save(tmp_path)
    assert (tmp_path / SRC_FILE).is_file() and (tmp_path / TGT_FILE).is_file()
    loaded = Tokenizer.from_run_dir(tmp_path)
    assert loaded is not None and not loaded.joint
    assert loaded.protos() == separate.protos()


def test_from_run_dir_empty(tmp_path):
    assert Tokenizer.from_run_dir(tmp_path) is None


def test_from_run_dir_needs_both_sides(separate, tmp_path):
    separate.save(tmp_path)
    (tmp_path / TGT_FILE).unlink()
    assert Tokenizer.from_run_dir(tmp_path) is None


def test_build_writes_nothing_until_saved(tmp_path):
    tokenizer = build_tokenizer(CFG, SRC_LINES[:100], TGT_LINES[:100], no_log)
    assert not list(tmp_path.iterdir())
    tokenizer.save(tmp_path)
    assert (tmp_path / JOINT_FILE).read_bytes() == tokenizer.src.proto


def test_build_ignores_a_stale_model_in_the_run_dir(joint, tmp_path):
    """Files left by an earlier failed start may come from another tokenizer config: retrain."""
    joint.save(tmp_path)
    messages = []
    cfg = TokenizerConfig(vocab_size=40, joint=True)
    built = build_tokenizer(cfg, ["x y z"] * 50, ["u v w"] * 50, messages.append)
    assert built.protos() != joint.protos()
    assert messages and "training joint sentencepiece" in messages[0]


def test_build_from_model_file(joint, tmp_path):
    model = tmp_path / "given.model"
    model.write_bytes(joint.src.proto)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    cfg = TokenizerConfig(model_file=str(model))
    built = build_tokenizer(cfg, [], [], no_log)
    assert built.protos() == joint.protos()


def test_build_from_side_model_files(separate, tmp_path):
    (tmp_path / "s.model").write_bytes(separate.src.proto)
    (tmp_path / "t.model").write_bytes(separate.tgt.proto)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    cfg = TokenizerConfig(joint=False, src_model_file=str(tmp_path / "s.model"), tgt_model_file=str(tmp_path / "t.model"))
    built = build_tokenizer(cfg, [], [], no_log)
    assert built.protos() == separate.protos()


@pytest.mark.parametrize("content", [b"", b"this is not a sentencepiece model", b"\x00\xff" * 50])
def test_corrupt_model_file_names_the_file(tmp_path, content):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / JOINT_FILE).write_bytes(content)
    with pytest.raises(DataError) as info:
        Tokenizer.from_run_dir(run_dir)
    assert str(run_dir / JOINT_FILE) in str(info.value)


def test_truncated_model_file_names_the_file(joint, tmp_path):
    path = tmp_path / "cut.model"
    path.write_bytes(joint.src.proto[: len(joint.src.proto) // 2])
    with pytest.raises(DataError) as info:
        build_tokenizer(TokenizerConfig(model_file=str(path)), [], [], no_log)
    assert str(path) in str(info.value)


def test_missing_model_file_names_the_file(tmp_path):
    path = tmp_path / "missing.model"
    with pytest.raises(DataError) as info:
        build_tokenizer(TokenizerConfig(model_file=str(path)), [], [], no_log)
    assert str(path) in str(info.value)


def test_corrupt_proto_in_checkpoint_names_origin():
    with pytest.raises(DataError, match="ckpt.pt"):
        Tokenizer.from_protos({"joint": b"garbage"}, "ckpt.pt")


def _train_raw(**specials) -> bytes:
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(SRC_LINES),
        model_writer=out,
        vocab_size=40,
        hard_vocab_limit=False,
        minloglevel=2,
        **specials,
    )
    return out.getvalue()


def test_model_without_pad_gets_extra_pad_id():
    side = SideTokenizer(_train_raw(unk_id=0, bos_id=1, eos_id=2, pad_id=-1), "external.model")
    pieces = side.sp.get_piece_size()
    assert side.vocab.pad == pieces
    assert side.vocab.size == pieces + 1
    assert side.pieces([side.vocab.pad]) == ["<pad>"]
    ids = side.encode(["der hund"])[0]
    assert side.decode([[*ids, side.vocab.pad]]) == ["der hund"]


def test_model_without_bos_is_rejected():
    with pytest.raises(DataError, match="bos"):
        SideTokenizer(_train_raw(unk_id=0, bos_id=-1, eos_id=1), "nobos.model")


def test_train_sentencepiece_returns_loadable_proto():
    proto = train_sentencepiece(TokenizerConfig(vocab_size=50, type="unigram"), SRC_LINES)
    side = SideTokenizer(proto, "unigram")
    assert side.decode(side.encode(SRC_LINES[:5])) == SRC_LINES[:5]


def test_train_sentencepiece_on_no_data_is_data_error():
    with pytest.raises(DataError, match="sentencepiece"):
        train_sentencepiece(CFG, [])


def test_from_run_dir_missing_dir(tmp_path):
    assert Tokenizer.from_run_dir(Path(tmp_path) / "nonexistent") is None
