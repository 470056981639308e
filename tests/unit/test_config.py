"""Tests for nmt.config: loading, overrides, type and choice checks, cross-field rules, CLI fail-fast."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nmt.config import (
    MAX_PARAMETERS,
    RANGES,
    Config,
    Rule,
    check_option,
    config_from_dict,
    estimate_parameters,
    load_config,
    numeric_keys,
)
from nmt.errors import ConfigError

CONFIG_DIR = Path(__file__).parents[2] / "configs"
MINIMAL = {"data": {"train": {"src": "train.src", "tgt": "train.tgt"}}, "train": {"max_steps": 10}}


def write_yaml(tmp_path: Path, data: dict | str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


def minimal(**sections) -> dict:
    """MINIMAL with extra keys merged into its sections."""
    raw = {"data": {"train": {"src": "train.src", "tgt": "train.tgt"}}, "train": {"max_steps": 10}}
    for section, values in sections.items():
        if isinstance(values, dict):
            raw.setdefault(section, {}).update(values)
        else:
            raw[section] = values
    return raw


def config_error(tmp_path: Path, data: dict | str, overrides: tuple[str, ...] = ()) -> str:
    path = write_yaml(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    message = str(info.value)
    assert "\n" not in message, "a config error is one line"
    assert str(path) in message, "a config error names the file"
    return message


# ---------------------------------------------------------------------------------------------
# defaults and round trips


def test_minimal_dict_gets_defaults():
    config = config_from_dict(MINIMAL)
    assert config.data.train[0].src == "train.src"
    assert config.train.max_steps == 10
    assert config.model == Config().model
    assert config.decode == Config().decode
    assert config.train.betas == (0.9, 0.999)
    assert config.eval.metrics == ("bleu", "chrf", "ter")


def test_config_from_dict_does_not_mutate_input():
    raw = minimal()
    before = yaml.safe_dump(raw)
    config_from_dict(raw, overrides=["train.max_steps=3", "model.encoder.hidden_size=8"])
    assert yaml.safe_dump(raw) == before


def test_to_dict_round_trips():
    raw = minimal(
        model={"attention": {"type": "luong", "score": "concat"}, "decoder": {"rnn_type": "gru"}},
        eval={"metrics": ["chrf"]},
        data={"valid": {"src": "v.src", "tgt": "v.tgt"}},
    )
    config = config_from_dict(raw)
    plain = config.to_dict()
    assert isinstance(plain["train"]["betas"], list)
    assert yaml.safe_load(yaml.safe_dump(plain)) == plain, "to_dict gives plain YAML-safe data"
    assert config_from_dict(plain) == config


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_load(path):
    config = load_config(path)
    assert config_from_dict(config.to_dict()) == config


def test_shipped_configs_exist():
    assert len(list(CONFIG_DIR.glob("*.yaml"))) >= 3


def test_empty_yaml_file_is_an_incomplete_config(tmp_path):
    message = config_error(tmp_path, "")
    assert "key '" in message


def test_empty_yaml_file_with_stop_overrides_still_needs_data(tmp_path):
    message = config_error(tmp_path, "", ("train.max_steps=5",))
    assert "'data.train'" in message


# ---------------------------------------------------------------------------------------------
# unknown keys


@pytest.mark.parametrize(
    ("data", "dotted", "suggestion"),
    [
        (minimal(sed=1), "sed", "seed"),
        (minimal(model={"atention": {}}), "model.atention", "attention"),
        (minimal(model={"attention": {"typ": "luong"}}), "model.attention.typ", "type"),
        (minimal(train={"max_step": 5}), "train.max_step", "max_steps"),
    ],
)
def test_unknown_key_in_yaml(tmp_path, data, dotted, suggestion):
    message = config_error(tmp_path, data)
    assert f"'{dotted}'" in message
    assert "did you mean" in message
    assert suggestion in message


@pytest.mark.parametrize(
    ("override", "dotted", "suggestion"),
    [
        ("sed=3", "sed", "seed"),
        ("trian.max_steps=3", "trian", "train"),
        ("model.encoder.hiden_size=3", "model.encoder.hiden_size", "hidden_size"),
        ("data.valid.scr=x", "data.valid.scr", "src"),
    ],
)
def test_unknown_key_in_override(tmp_path, override, dotted, suggestion):
    message = config_error(tmp_path, minimal(), (override,))
    assert f"'{dotted}'" in message
    assert "did you mean" in message
    assert suggestion in message


def test_override_into_a_scalar_key_is_rejected(tmp_path):
    message = config_error(tmp_path, minimal(), ("seed.value=3",))
    assert "seed" in message


def test_override_without_equals_sign_is_rejected(tmp_path):
    path = write_yaml(tmp_path, minimal())
    with pytest.raises(ConfigError, match="dotted.key=value"):
        load_config(path, ["train.max_steps"])


# ---------------------------------------------------------------------------------------------
# types and choices


@pytest.mark.parametrize(
    ("data", "key", "expected"),
    [
        (minimal(train={"max_steps": "ten"}), "train.max_steps", "int"),
        (minimal(train={"max_steps": 1.5}), "train.max_steps", "int"),
        (minimal(train={"lr": "fast"}), "train.lr", "float"),
        (minimal(train={"lr": True}), "train.lr", "float"),
        (minimal(model={"decoder": {"input_feeding": "yes"}}), "model.decoder.input_feeding", "bool"),
        (minimal(model={"encoder": 3}), "model.encoder", "mapping"),
        (minimal(train={"betas": [0.9]}), "train.betas", "2 values"),
    ],
)
def test_wrong_type(tmp_path, data, key, expected):
    message = config_error(tmp_path, data)
    assert f"'{key}'" in message
    assert expected in message


def test_integral_float_is_accepted_for_int():
    assert config_from_dict(minimal(train={"max_steps": 20.0})).train.max_steps == 20


def test_single_metric_becomes_tuple():
    assert config_from_dict(minimal(eval={"metrics": "chrf"})).eval.metrics == ("chrf",)


@pytest.mark.parametrize(
    ("data", "key", "choices", "suggestion"),
    [
        (minimal(model={"attention": {"type": "luongg"}}), "model.attention.type", ["bahdanau", "luong", "multihead"], "luong"),
        (
            minimal(model={"attention": {"score": "dott"}}),
            "model.attention.score",
            ["dot", "general", "concat", "scaled_dot"],
            "dot",
        ),
        (
            minimal(model={"attention": {"head_score": "additve"}}),
            "model.attention.head_score",
            ["additive", "scaled_dot"],
            "additive",
        ),
        (minimal(train={"schedule": "cosine"}), "train.schedule", ["constant", "inverse_sqrt", "plateau", "linear"], None),
        (minimal(eval={"metrics": ["bleu", "meteor"]}), "eval.metrics", ["bleu", "chrf", "ter"], None),
    ],
)
def test_bad_choice_lists_choices(tmp_path, data, key, choices, suggestion):
    message = config_error(tmp_path, data)
    assert f"'{key}'" in message
    for choice in choices:
        assert choice in message
    if suggestion:
        assert f"did you mean '{suggestion}'" in message


# ---------------------------------------------------------------------------------------------
# cross-field rules


@pytest.mark.parametrize(
    ("data", "key"),
    [
        (
            minimal(
                model={
                    "attention": {"type": "luong", "score": "dot"},
                    "encoder": {"hidden_size": 8},
                    "decoder": {"hidden_size": 32},
                }
            ),
            "model.attention.score",
        ),
        (
            minimal(model={"attention": {"type": "luong", "score": "scaled_dot"}, "encoder": {"hidden_size": 8}}),
            "model.attention.score",
        ),
        (minimal(model={"attention": {"type": "multihead", "heads": 3, "hidden_size": 32}}), "model.attention.heads"),
        (minimal(model={"attention": {"type": "multihead", "heads": 0}}), "model.attention.heads"),
        (minimal(model={"tie_source_target_embeddings": True}, tokenizer={"joint": False}), "model.tie_source_target_embeddings"),
        (
            minimal(model={"tie_target_embeddings": True, "embedding_dim": 16, "decoder": {"hidden_size": 32}}),
            "model.tie_target_embeddings",
        ),
        (minimal(train={"max_tokens": 101}, data={"max_len": 100}), "train.max_tokens"),
        (minimal(train={"max_steps": 0}), "train.max_steps"),
        (minimal(train={"lr": 0.0}), "train.lr"),
        (minimal(train={"label_smoothing": 1.0}), "train.label_smoothing"),
        (minimal(model={"encoder": {"dropout": 1.5}}), "model.encoder.dropout"),
        (minimal(train={"plateau_factor": 1.0}), "train.plateau_factor"),
        (minimal(train={"warmup_steps": -1}), "train.warmup_steps"),
        (minimal(decode={"max_tokens": 150}, data={"max_len": 100}), "decode.max_tokens"),
        (minimal(decode={"beam_size": 2, "nbest": 3}), "decode.nbest"),
        (minimal(data={"train": {"src": "a"}}), "data.train.tgt"),
        (minimal(data={"train": {"src": "a", "tgt": "b", "dataset": "wmt16"}}), "data.train.dataset"),
        (minimal(data={"train": {"dataset": "wmt16", "src_field": "translation.de"}}), "data.train.tgt_field"),
        (minimal(tokenizer={"joint": False, "src_model_file": "a.model"}), "tokenizer.tgt_model_file"),
        (minimal(tokenizer={"joint": False, "model_file": "a.model"}), "tokenizer.model_file"),
        (minimal(tokenizer={"joint": True, "src_model_file": "a.model"}), "tokenizer.src_model_file"),
        (minimal(train={"max_time": "8 hours"}), "train.max_time"),
        (minimal(train={"max_time": "-5m"}), "train.max_time"),
        (minimal(train={"max_steps": 0, "early_stopping_patience": 3, "schedule": "linear"}), "train.schedule"),
        (minimal(train={"decay_fraction": 0.0}), "train.decay_fraction"),
        (minimal(train={"decay_fraction": 1.5}), "train.decay_fraction"),
    ],
    ids=[
        "luong-dot-sizes",
        "luong-scaled-dot-sizes",
        "heads-not-dividing-the-size",
        "zero-heads",
        "tie-src-tgt-needs-joint",
        "tie-target-dims",
        "max-tokens-below-max-len",
        "no-stopping-criterion",
        "lr-zero",
        "smoothing-one",
        "dropout-above-one",
        "plateau-factor-one",
        "negative-warmup",
        "decode-max-tokens",
        "nbest-above-beam",
        "missing-tgt-file",
        "files-and-dataset",
        "dataset-without-tgt-field",
        "only-src-model-file",
        "model-file-not-joint",
        "side-model-file-joint",
        "max-time-not-a-duration",
        "max-time-negative",
        "linear-without-budget",
        "decay-fraction-zero",
        "decay-fraction-above-one",
    ],
)
def test_impossible_combination(tmp_path, data, key):
    message = config_error(tmp_path, data)
    assert f"'{key}'" in message


def test_luong_dot_with_matching_sizes_is_fine():
    config = config_from_dict(
        minimal(
            model={"attention": {"type": "luong", "score": "dot"}, "encoder": {"hidden_size": 16}, "decoder": {"hidden_size": 32}}
        )
    )
    assert config.model.attention.score == "dot"


def test_heads_not_dividing_the_size_is_one_line_naming_both_sizes(tmp_path):
    message = config_error(tmp_path, minimal(model={"attention": {"type": "multihead", "heads": 3, "hidden_size": 32}}))
    assert "key 'model.attention.heads': 3 heads do not divide attention.hidden_size 32" in message


def test_heads_are_read_by_multihead_only():
    # `heads` is multihead-only: bahdanau with a size the default 4 heads do not divide is valid.
    config_from_dict(minimal(model={"attention": {"type": "bahdanau", "hidden_size": 30}}))


def test_bahdanau_ignores_dot_score_sizes():
    # `score` is luong-only: bahdanau with any sizes is valid.
    config_from_dict(minimal(model={"attention": {"type": "bahdanau", "score": "dot"}, "encoder": {"hidden_size": 8}}))


def test_max_tokens_exactly_max_len_plus_two_is_fine():
    config_from_dict(minimal(train={"max_tokens": 102}, data={"max_len": 100}))


@pytest.mark.parametrize("stop", [{"max_epochs": 2}, {"max_steps": 5}, {"max_time": "90m"}])
def test_any_stopping_criterion_is_enough(stop):
    config_from_dict(minimal(train={"max_steps": 0, **stop}))


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(0, 0.0), (200, 200.0), (12.5, 12.5), ("200s", 200.0), ("90m", 5400.0), ("1.5h", 5400.0), ("2d", 172800.0)],
)
def test_max_time_units(value, seconds):
    assert config_from_dict(minimal(train={"max_time": value})).train.max_seconds == seconds


def test_max_time_error_says_how_to_write_it(tmp_path):
    message = config_error(tmp_path, minimal(train={"max_time": "8 hours"}))
    assert "'8 hours' is not a duration" in message and "90m" in message


def test_early_stopping_alone_is_a_stopping_criterion_with_valid_data():
    config_from_dict(minimal(train={"max_steps": 0, "early_stopping_patience": 3}, data={"valid": {"src": "v", "tgt": "w"}}))


def test_linear_schedule_without_budget_decays_once_validation_stalls():
    train = {"max_steps": 0, "early_stopping_patience": 3, "schedule": "linear", "decay_fraction": 0.2}
    config_from_dict(minimal(train=train, data={"valid": {"src": "v", "tgt": "w"}}))


@pytest.mark.parametrize("metric", ["bleu", "loss", "ppl"])
def test_early_stopping_without_valid_corpus_is_rejected(tmp_path, metric):
    # Without data.valid the trainer never validates, so early stopping on *any* metric can never
    # trigger; as the only stopping criterion the run would never end.
    data = minimal(train={"max_steps": 0, "early_stopping_patience": 3, "early_stopping_metric": metric})
    message = config_error(tmp_path, data)
    assert "train.early_stopping" in message


# ---------------------------------------------------------------------------------------------
# YAML and file errors


def test_invalid_yaml_names_the_line(tmp_path):
    text = "seed: 1\ntrain:\n  max_steps: 10\n  lr: [0.1\nmodel: {}\n"
    message = config_error(tmp_path, text)
    assert "invalid YAML" in message
    assert "line " in message
    line = int(message.split("line ")[1].split(":")[0])
    assert 4 <= line <= 5


def test_tab_indentation_names_the_line(tmp_path):
    message = config_error(tmp_path, "seed: 1\ntrain:\n\tmax_steps: 3\n")
    assert "line 3" in message


def test_top_level_list_is_rejected(tmp_path):
    message = config_error(tmp_path, "- a\n- b\n")
    assert "mapping" in message


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert "not found" in str(info.value)


# ---------------------------------------------------------------------------------------------
# overrides


def test_overrides_parse_yaml_values(tmp_path):
    path = write_yaml(tmp_path, minimal(data={"valid": {"src": "v", "tgt": "w"}}))
    config = load_config(
        path,
        [
            "train.max_steps=200",
            "train.lr=0.0005",
            "train.min_lr=1.0e-7",
            "train.betas=[0.8, 0.9]",
            "eval.metrics=[bleu, ter]",
            "data.valid=null",
            "model.decoder.input_feeding=false",
            "run_dir=/tmp/x y",
            "seed=7",
        ],
    )
    assert config.train.max_steps == 200
    assert config.train.lr == pytest.approx(5e-4)
    assert config.train.min_lr == pytest.approx(1e-7)
    assert isinstance(config.train.lr, float)
    assert config.train.betas == (0.8, 0.9)
    assert config.eval.metrics == ("bleu", "ter")
    assert config.data.valid is None
    assert config.model.decoder.input_feeding is False
    assert config.run_dir == "/tmp/x y"
    assert config.seed == 7


def test_exponent_without_dot_is_a_float_in_override(tmp_path):
    # `lr=5e-4` is how everybody writes a learning rate; PyYAML (YAML 1.1) reads it as a string.
    path = write_yaml(tmp_path, minimal())
    assert load_config(path, ["train.lr=5e-4"]).train.lr == pytest.approx(5e-4)


def test_exponent_without_dot_is_a_float_in_yaml(tmp_path):
    path = write_yaml(tmp_path, "data:\n  train: {src: a, tgt: b}\ntrain:\n  max_steps: 3\n  lr: 1e-3\n")
    assert load_config(path).train.lr == pytest.approx(1e-3)


def test_bare_off_is_the_off_choice_in_yaml_and_override(tmp_path):
    # YAML 1.1 reads `off` as false; `amp: off` must still mean "off".
    path = write_yaml(tmp_path, "data:\n  train: {src: a, tgt: b}\ntrain:\n  max_steps: 3\n  amp: off\n")
    assert load_config(path).train.amp == "off"
    assert load_config(path, ["train.amp=off"]).train.amp == "off"
    with pytest.raises(ConfigError, match="train.amp"):
        load_config(path, ["train.amp=true"])


def test_override_creates_missing_section(tmp_path):
    path = write_yaml(tmp_path, minimal())
    config = load_config(path, ["data.valid.src=v.src", "data.valid.tgt=v.tgt"])
    assert config.data.valid is not None
    assert (config.data.valid.src, config.data.valid.tgt) == ("v.src", "v.tgt")


def test_override_replaces_the_file_value(tmp_path):
    path = write_yaml(tmp_path, minimal())
    assert load_config(path, ["train.max_steps=4"]).train.max_steps == 4


def test_override_value_is_type_checked(tmp_path):
    message = config_error(tmp_path, minimal(), ("train.max_steps=lots",))
    assert "'train.max_steps'" in message


def test_override_can_fix_an_impossible_file(tmp_path):
    path = write_yaml(tmp_path, minimal(train={"max_steps": 0}))
    assert load_config(path, ["train.max_epochs=1"]).train.max_epochs == 1


# ---------------------------------------------------------------------------------------------
# the command line fails fast


def test_nmt_train_bad_choice_fails_fast(tmp_path):
    path = write_yaml(tmp_path, minimal(model={"attention": {"type": "luongg"}}, run_dir=str(tmp_path / "run")))
    script = Path(sys.executable).parent / "nmt-train"
    assert script.exists(), f"console script not installed at {script}"
    result = subprocess.run([str(script), "--config", str(path)], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "model.attention.type" in lines[0]
    assert "luong" in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists(), "nothing is created before the config is valid"


# ---------------------------------------------------------------------------------------------
# numeric ranges: one rule per int/float key


def test_every_numeric_key_has_a_range_rule():
    # a new int/float key must get a rule in nmt.config.RANGES (or this fails)
    assert set(numeric_keys()) == set(RANGES)


def _dotted(key: str, value) -> dict:
    """`minimal()` with `key` (dotted) set to `value`."""
    raw = minimal()
    node = raw
    *parents, last = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return raw


FLOAT_KEYS = sorted(key for key, integer in numeric_keys().items() if not integer)
INT_KEYS = sorted(key for key, integer in numeric_keys().items() if integer)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("key", FLOAT_KEYS)
def test_every_float_key_must_be_finite(tmp_path, key, bad):
    value = [bad, bad] if key == "train.betas" else bad
    message = config_error(tmp_path, _dotted(key, value))
    assert f"key '{key}': must be " in message
    assert repr(bad) in message


@pytest.mark.parametrize("key", INT_KEYS)
def test_every_int_key_has_an_upper_bound(tmp_path, key):
    message = config_error(tmp_path, _dotted(key, 10**20))
    assert f"key '{key}': must be " in message and "an integer from " in message
    assert "got 100000000000000000000" in message


@pytest.mark.parametrize("key", INT_KEYS)
def test_no_int_key_takes_a_negative_value(tmp_path, key):
    message = config_error(tmp_path, _dotted(key, -1))
    assert f"key '{key}': must be " in message and "got -1" in message


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("train.lr", "nan", "key 'train.lr': must be a finite number > 0, got nan"),
        ("train.lr", -0.001, "must be a finite number > 0, got -0.001"),
        ("train.betas", [0.9, 1.5], "key 'train.betas': must be between 0 and 1 (exclusive of 1), got 1.5 (train.betas[1])"),
        ("train.betas", [-0.1, 0.9], "got -0.1 (train.betas[0])"),
        ("train.betas", [0.9, 1.0], "got 1.0 (train.betas[1])"),
        ("train.weight_decay", -0.1, "key 'train.weight_decay': must be a finite number >= 0, got -0.1"),
        ("seed", 99999999999999999999, "key 'seed': must be an integer from 0 to 4294967295"),
        ("seed", -1, "key 'seed': must be an integer from 0 to 4294967295, got -1"),
        ("tokenizer.vocab_size", 10**12, "key 'tokenizer.vocab_size': must be an integer from 5 to 1048576"),
        ("tokenizer.vocab_size", 4, "from 5 to 1048576, got 4"),
        ("tokenizer.character_coverage", 0.5, "must be between 0.98 and 1, got 0.5"),
        ("tokenizer.max_train_sentences", 50, "must be 0 (all) or an integer from 101 to 2147483647, got 50"),
        ("data.max_len_ratio", 0.5, "key 'data.max_len_ratio': must be 0 (off) or a finite number >= 1, got 0.5"),
        ("model.init_scale", 0, "key 'model.init_scale': must be a finite number > 0, got 0.0"),
        ("model.init_scale", -0.1, "must be a finite number > 0, got -0.1"),
        ("train.plateau_patience", -1, "key 'train.plateau_patience': must be an integer from 0 to"),
        ("train.num_threads", 10**11, "key 'train.num_threads': must be an integer from 0 to 4096"),
        ("train.clip_grad_norm", "inf", "key 'train.clip_grad_norm': must be a finite number >= 0, got inf"),
        ("train.label_smoothing", 1.0, "must be between 0 and 1 (exclusive of 1), got 1.0"),
        ("train.plateau_factor", 0.0, "must be between 0 and 1 (exclusive), got 0.0"),
        ("train.decay_fraction", 0.0, "must be between 0 and 1 (exclusive of 0), got 0.0"),
        ("decode.max_len_b", -5, "key 'decode.max_len_b': must be an integer from 0 to 2147483647, got -5"),
        ("decode.max_len_a", -1, "key 'decode.max_len_a': must be between 0 and 1000, got -1.0"),
        ("decode.length_penalty", "nan", "key 'decode.length_penalty': must be between 0 and 10, got nan"),
        ("decode.beam_size", 0, "key 'decode.beam_size': must be an integer from 1 to 1000, got 0"),
        ("train.max_time", "1" + "0" * 400, "key 'train.max_time': must be a finite duration, got inf seconds"),
    ],
)
def test_range_rule_message(tmp_path, key, value, expected):
    assert expected in config_error(tmp_path, _dotted(key, value))


def test_nan_in_yaml_text_is_rejected(tmp_path):
    text = "data:\n  train: {src: a, tgt: b}\ntrain:\n  max_steps: 3\n  lr: .nan\n"
    assert "key 'train.lr': must be a finite number > 0, got nan" in config_error(tmp_path, text)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("seed", 0),
        ("seed", 2**32 - 1),
        ("tokenizer.vocab_size", 1 << 20),
        ("tokenizer.character_coverage", 0.98),
        ("tokenizer.max_train_sentences", 0),
        ("tokenizer.max_train_sentences", 101),
        ("data.max_len_ratio", 0.0),
        ("data.max_len_ratio", 1.0),
        ("train.betas", [0.0, 0.0]),
        ("train.clip_grad_norm", 0.0),
        ("decode.max_len_a", 0.0),  # with max_len_b 10: a fixed cap
        ("decode.length_penalty", 10.0),
        ("model.encoder.dropout", 1.0),
    ],
)
def test_range_edges_are_accepted(key, value):
    raw = _dotted(key, value)
    raw.setdefault("model", {})["embedding_dim"] = 64  # a million-piece vocabulary with a small model
    config_from_dict(raw)


def test_min_lr_above_lr_is_rejected_when_a_schedule_uses_it(tmp_path):
    message = config_error(tmp_path, minimal(train={"schedule": "plateau", "lr": 1e-4, "min_lr": 1e-3}))
    assert "key 'train.min_lr': 0.001 is above train.lr 0.0001" in message and "use min_lr <= lr" in message
    config_from_dict(minimal(train={"schedule": "constant", "lr": 1e-7}))  # constant never reads min_lr


@pytest.mark.parametrize(("a", "b"), [(0.0, 0), (0.0, 1), (1.5, 0), (0.5, 1)])
def test_output_cap_that_leaves_no_piece_is_rejected(tmp_path, a, b):
    message = config_error(tmp_path, minimal(decode={"max_len_a": a, "max_len_b": b}))
    assert "key 'decode.max_len_b'" in message and "leaves a one-piece source no output piece" in message


@pytest.mark.parametrize(("a", "b"), [(0.0, 2), (2.0, 0), (1.5, 1), (0.0, 200)])
def test_output_cap_of_one_piece_or_more_is_fine(a, b):
    config_from_dict(minimal(decode={"max_len_a": a, "max_len_b": b}))


def test_range_rule_describes_itself():
    assert Rule(0, low_open=True).describe(integer=False) == "must be a finite number > 0"
    assert Rule(1, 10).describe(integer=True) == "must be an integer from 1 to 10"
    assert Rule(0, 1, high_open=True).describe(integer=False) == "must be between 0 and 1 (exclusive of 1)"
    assert not Rule(0).allows(math.nan) and not Rule(1, off="off").allows(math.nan)


# ---------------------------------------------------------------------------------------------
# model size: estimated before torch allocates anything


SIZE_VARIANTS = [
    {},
    {"attention": {"type": "luong", "score": "general"}},
    {"attention": {"type": "luong", "score": "dot"}, "encoder": {"hidden_size": 16}, "decoder": {"hidden_size": 32}},
    {"attention": {"type": "luong", "score": "concat", "hidden_size": 24}},
    {"attention": {"type": "luong", "score": "scaled_dot"}, "encoder": {"hidden_size": 16}, "decoder": {"hidden_size": 32}},
    {"attention": {"type": "multihead", "heads": 3}},
    {"attention": {"type": "multihead", "head_score": "scaled_dot", "heads": 2, "hidden_size": 20}},
    {"attention": {"type": "multihead", "heads": 4, "hidden_size": 8}, "decoder": {"input_feeding": False, "combine": "linear"}},
    {"encoder": {"rnn_type": "gru", "num_layers": 3}, "decoder": {"rnn_type": "gru", "num_layers": 1}},
    {"encoder": {"rnn_type": "gru"}, "decoder": {"bridge": "zero", "combine": "linear"}},
    {"decoder": {"input_feeding": False, "num_layers": 3, "combine": "linear"}},
    {"embedding_dim": 32, "tie_target_embeddings": True, "decoder": {"hidden_size": 32}},
    {"embedding_dim": 32, "tie_source_target_embeddings": True},
    {"embedding_dim": 32, "tie_target_embeddings": True, "tie_source_target_embeddings": True, "decoder": {"hidden_size": 32}},
    {"decoder": {"rnn_type": "gru", "bridge": "zero", "input_feeding": False}, "attention": {"type": "luong"}},
]


@pytest.mark.parametrize("variant", SIZE_VARIANTS, ids=range(len(SIZE_VARIANTS)))
@pytest.mark.parametrize(("src_size", "tgt_size"), [(45, 45), (37, 52)])
def test_parameter_estimate_equals_the_model(variant, src_size, tgt_size):
    from nmt.model import Seq2Seq
    from nmt.tokenizer import Vocab

    small = {
        "embedding_dim": 24,
        "encoder": {"hidden_size": 16},
        "decoder": {"hidden_size": 40},
        "attention": {"hidden_size": 12},
    }
    model = {
        key: ({**value, **variant.get(key, {})} if isinstance(value, dict) else variant.get(key, value))
        for key, value in small.items()
    }
    model.update({key: value for key, value in variant.items() if key not in small})
    if model.get("tie_source_target_embeddings"):
        tgt_size = src_size  # a joint vocabulary
    cfg = config_from_dict(minimal(model=model)).model
    vocab = [Vocab(size=size, pad=0, unk=1, bos=2, eos=3) for size in (src_size, tgt_size)]
    assert estimate_parameters(cfg, src_size, tgt_size) == Seq2Seq(cfg, *vocab).num_parameters()


@pytest.mark.parametrize(
    ("sections", "key"),
    [
        ({"model": {"encoder": {"hidden_size": 10_000_000}}}, "model.encoder.hidden_size"),
        ({"model": {"embedding_dim": 1_000_000}}, "model.embedding_dim"),
        (
            {"tokenizer": {"vocab_size": 1 << 20}, "model": {"embedding_dim": 2048, "decoder": {"hidden_size": 2048}}},
            "tokenizer.vocab_size",
        ),
        ({"model": {"decoder": {"num_layers": 100_000}}}, "model.decoder.num_layers"),
        ({"model": {"attention": {"hidden_size": 100_000_000}}}, "model.attention.hidden_size"),
    ],
)
def test_absurd_model_is_refused_naming_the_dominant_key(tmp_path, sections, key):
    message = config_error(tmp_path, minimal(**sections))
    assert f"key '{key}'" in message
    assert "parameters" in message and "GB of fp32 weights" in message and "1,000,000,000 allowed" in message


def test_size_check_runs_without_torch(tmp_path):
    path = write_yaml(tmp_path, minimal(model={"encoder": {"hidden_size": 10_000_000}}))
    code = (
        "import sys\nfrom nmt.config import load_config\nfrom nmt.errors import ConfigError\n"
        f"try:\n    load_config({str(path)!r})\nexcept ConfigError as err:\n    print(err)\n"
        "assert 'torch' not in sys.modules, 'config checks imported torch'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "model.encoder.hidden_size" in result.stdout


def test_largest_shipped_model_is_far_below_the_limit():
    sizes = [estimate_parameters(load_config(path).model, 8000, 8000) for path in CONFIG_DIR.glob("*.yaml")]
    assert max(sizes) < MAX_PARAMETERS / 10


# ---------------------------------------------------------------------------------------------
# duplicate keys


@pytest.mark.parametrize(
    ("text", "line", "dotted", "first"),
    [
        ("data:\n  train: {src: a, tgt: b}\ntrain:\n  max_steps: 3\n  lr: 0.1\n  max_steps: 5\n", 6, "train.max_steps", 4),
        (
            "data:\n  train: {src: a, tgt: b}\nmodel:\n  embedding_dim: 8\ntrain:\n  max_steps: 3\nmodel:\n  init: xavier\n",
            7,
            "model",
            3,
        ),
        ("data:\n  train:\n    src: a\n    tgt: b\n    src: c\ntrain: {max_steps: 3}\n", 5, "data.train.src", 3),
        ("seed: 1\ndata:\n  train: {src: a, tgt: b, tgt: c}\ntrain: {max_steps: 3}\n", 3, "data.train.tgt", 3),
        ("seed: 1\nseed: 2\n", 2, "seed", 1),
        (
            "data:\n  train: {src: a, tgt: b}\ntrain: {max_steps: 3}\neval:\n  metrics: [bleu]\n  'metrics': [chrf]\n",
            6,
            "eval.metrics",
            5,
        ),
    ],
    ids=["in-a-section", "second-section", "nested", "flow-mapping", "top-level-key", "quoted-key"],
)
def test_duplicate_key_names_file_line_and_key(tmp_path, text, line, dotted, first):
    message = config_error(tmp_path, text)
    assert f": line {line}: duplicate key '{dotted}' (first at line {first}); keep one" in message


def test_merge_keys_still_work(tmp_path):
    text = (
        "data:\n  train: {src: a, tgt: b}\n"
        "enc: &layer {hidden_size: 8, num_layers: 1}\n"
        "model:\n  encoder:\n    <<: *layer\n    num_layers: 2\n  decoder:\n    <<: *layer\n    hidden_size: 16\n"
        "train: {max_steps: 3}\n"
    )
    path = write_yaml(tmp_path, text)
    # the anchor's own top-level key is unknown to the config: the merge itself loads
    with pytest.raises(ConfigError, match="unknown key 'enc'"):
        load_config(path)
    text = text.replace("enc: &layer {hidden_size: 8, num_layers: 1}\n", "").replace(
        "<<: *layer", "<<: {hidden_size: 8, num_layers: 1}"
    )
    config = load_config(write_yaml(tmp_path, text, "merged.yaml"))
    assert (config.model.encoder.hidden_size, config.model.encoder.num_layers) == (8, 2)
    assert (config.model.decoder.hidden_size, config.model.decoder.num_layers) == (16, 1)


def test_anchor_and_alias_reused_twice_is_not_a_duplicate(tmp_path):
    text = "data:\n  train: &files {src: a, tgt: b}\n  valid: *files\ntrain: {max_steps: 3}\n"
    config = load_config(write_yaml(tmp_path, text))
    (train,) = config.data.train
    assert (config.data.valid.src, config.data.valid.tgt) == (train.src, train.tgt) == ("a", "b")


def test_same_key_given_twice_as_override_names_both(tmp_path):
    message = config_error(tmp_path, minimal(), ("train.max_steps=3", "seed=2", "train.max_steps=4"))
    assert "override 'train.max_steps=4': 'train.max_steps' is already set by override 'train.max_steps=3'" in message
    assert "give each key once" in message


# ---------------------------------------------------------------------------------------------
# command-line search options: the rules of the decode.* keys they set


def test_search_option_is_checked_with_its_key_rule():
    with pytest.raises(ConfigError) as info:
        check_option("--length-penalty", "decode.length_penalty", math.nan)
    assert str(info.value) == "--length-penalty nan: decode.length_penalty must be between 0 and 10"
    with pytest.raises(ConfigError, match=r"^--max-len-a -1: decode.max_len_a must be between 0 and 1000$"):
        check_option("--max-len-a", "decode.max_len_a", -1.0)
    with pytest.raises(ConfigError, match=r"^--beam 0: decode.beam_size must be an integer from 1 to 1000$"):
        check_option("--beam", "decode.beam_size", 0)
    check_option("--beam", "decode.beam_size", None)  # not given: the model's config decides
    check_option("--beam", "decode.beam_size", 5)


def test_nmt_translate_checks_every_numeric_search_option():
    from nmt.cli import _SEARCH_OPTIONS

    decode_keys = {key for key in numeric_keys() if key.startswith("decode.")} - {"decode.valid_beam_size"}
    assert {key for _, key in _SEARCH_OPTIONS.values()} == decode_keys


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (["--alphas", "0.6", "nan"], "--alphas nan: decode.length_penalty must be between 0 and 10"),
        (["--beams", "5", "0"], "--beams 0: decode.beam_size must be an integer from 1 to 1000"),
    ],
)
def test_tune_decoding_checks_its_search_options_before_reading(tmp_path, option, expected):
    script = Path(__file__).parents[2] / "scripts" / "tune_decoding.py"
    command = [sys.executable, str(script), "--model", "no_run", "--src", "no.src", "--ref", "no.ref", *option]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert (result.returncode, result.stderr) == (2, f"tune_decoding: error: {expected}\n")


# ---------------------------------------------------------------------------------------------
# data.train: one corpus or a list of them, with weights


TWO = [{"src": "a.src", "tgt": "a.tgt", "weight": 3}, {"src": "b.src", "tgt": "b.tgt", "weight": 1}]


def test_one_corpus_or_a_list_of_them():
    one = config_from_dict(MINIMAL).data
    assert len(one.train) == 1 and one.train_names() == ["data.train"] and one.train[0].weight is None
    two = config_from_dict(minimal(data={"train": TWO})).data
    assert [c.src for c in two.train] == ["a.src", "b.src"] and [c.weight for c in two.train] == [3.0, 1.0]
    assert two.train_names() == ["data.train.0", "data.train.1"]
    again = config_from_dict(config_from_dict(minimal(data={"train": TWO})).to_dict())  # as a checkpoint stores it
    assert again.data == two


def test_overrides_name_a_corpus_by_index_and_one_past_the_end_adds_one(tmp_path):
    path = write_yaml(tmp_path, MINIMAL)
    config = load_config(
        path, ("data.train.1.src=bt.src", "data.train.1.tgt=bt.tgt", "data.train.0.weight=2", "data.train.1.weight=1")
    )
    assert [(c.src, c.weight) for c in config.data.train] == [("train.src", 2.0), ("bt.src", 1.0)]
    config = load_config(
        write_yaml(tmp_path, minimal(data={"train": TWO}), "two.yaml"), ("data.train.1={src: c, tgt: d, weight: 5}",)
    )
    assert [(c.src, c.weight) for c in config.data.train] == [("a.src", 3.0), ("c", 5.0)]


@pytest.mark.parametrize(
    "train, overrides, expected",
    [
        (TWO, ("data.train.src=x",), "'data.train' is a list here; name its item by index, e.g. data.train.0.src=..."),
        (TWO, ("data.train.5.src=x",), "'data.train' has 2 items; index 5 is past the end (use 0 to 2)"),
        (TWO, ("data.train.0.wieght=2",), "unknown key 'data.train.0.wieght' (did you mean 'weight'?)"),
        ([TWO[0], {"src": "b.src", "tgt": "b.tgt"}], (), "key 'data.train.1.weight': give every training corpus a weight"),
        ([TWO[0], {**TWO[1], "weight": -1}], (), "key 'data.train.1.weight': must be a finite number > 0, got -1.0"),
        ([TWO[0], {**TWO[1], "weight": float("nan")}], (), "key 'data.train.1.weight': must be a finite number > 0"),
        ([TWO[0], {"src": "b.src"}], (), "key 'data.train.1.tgt': both src and tgt files are needed"),
        ([TWO[0], "b.src"], (), "key 'data.train.1' must be a mapping"),
        ([], (), "key 'data.train': lists no corpus"),
    ],
)
def test_bad_corpus_lists_name_the_item(tmp_path, train, overrides, expected):
    assert expected in config_error(tmp_path, minimal(data={"train": train}), overrides)


def test_weights_are_for_training_corpora_only(tmp_path):
    message = config_error(tmp_path, minimal(data={"valid": {"src": "v.src", "tgt": "v.tgt", "weight": 2}}))
    assert "unknown key 'data.valid.weight'" in message


def test_a_duplicate_key_inside_a_corpus_list_is_named_as_overrides_name_it(tmp_path):
    text = "data:\n  train:\n    - {src: a, tgt: b}\n    - src: c\n      tgt: d\n      src: e\ntrain: {max_steps: 3}\n"
    assert "duplicate key 'data.train.1.src'" in config_error(tmp_path, text)
