"""Tests for nmt.config: loading, overrides, type and choice checks, cross-field rules, CLI fail-fast."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nmt.config import Config, config_from_dict, load_config
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
    assert config.data.train.src == "train.src"
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
        (minimal(model={"attention": {"type": "luongg"}}), "model.attention.type", ["bahdanau", "luong"], "luong"),
        (minimal(model={"attention": {"score": "dott"}}), "model.attention.score", ["dot", "general", "concat"], "dot"),
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
    assert load_config(path, ["train.amp=bf16", "train.amp=off"]).train.amp == "off"
    with pytest.raises(ConfigError, match="train.amp"):
        load_config(path, ["train.amp=true"])


def test_override_creates_missing_section(tmp_path):
    path = write_yaml(tmp_path, minimal())
    config = load_config(path, ["data.valid.src=v.src", "data.valid.tgt=v.tgt"])
    assert config.data.valid is not None
    assert (config.data.valid.src, config.data.valid.tgt) == ("v.src", "v.tgt")


def test_later_override_wins(tmp_path):
    path = write_yaml(tmp_path, minimal())
    assert load_config(path, ["train.max_steps=3", "train.max_steps=4"]).train.max_steps == 4


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
