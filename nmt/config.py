"""Typed configuration: one frozen dataclass per YAML section, validated once at load.

`load_config(path, overrides)` turns a YAML file plus ``dotted.key=value`` overrides into a
`Config`, or raises `ConfigError` whose one-line message names the file, the dotted key and
the valid choices. This module imports no torch so that a bad config fails in well under a
second.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from nmt.errors import ConfigError


@dataclass(frozen=True)
class CorpusConfig:
    """One parallel corpus: two local text files, or a Hugging Face `datasets` source."""

    src: str | None = None  # plain or .gz text, one sentence per line
    tgt: str | None = None
    dataset: str | None = None  # hub name, or a builder such as "json"/"csv" with data_files
    dataset_config: str | None = None
    split: str = "train"
    data_files: str | None = None
    src_field: str | None = None  # dotted path into a record, e.g. "translation.de"
    tgt_field: str | None = None


@dataclass(frozen=True)
class DataConfig:
    src_lang: str = "src"
    tgt_lang: str = "tgt"
    train: CorpusConfig = field(default_factory=CorpusConfig)
    valid: CorpusConfig | None = None
    test: CorpusConfig | None = None
    max_len: int = 100  # sentencepiece pieces per side, training pairs only
    max_len_ratio: float = 0.0  # drop pairs whose longer/shorter length exceeds this; 0 = off
    max_valid_sentences: int = 0  # validate on the first N pairs only; 0 = all


@dataclass(frozen=True)
class TokenizerConfig:
    type: Literal["bpe", "unigram"] = "bpe"
    vocab_size: int = 8000
    joint: bool = True  # one model for both sides (needed for tied source/target embeddings)
    character_coverage: float = 1.0
    byte_fallback: bool = False
    max_train_sentences: int = 1_000_000  # sentencepiece's input_sentence_size
    model_file: str | None = None  # existing joint .model instead of training one
    src_model_file: str | None = None  # existing per-side models (joint: false)
    tgt_model_file: str | None = None


@dataclass(frozen=True)
class EncoderConfig:
    rnn_type: Literal["lstm", "gru"] = "lstm"
    hidden_size: int = 256  # per direction: states are 2 * hidden_size wide
    num_layers: int = 2
    dropout: float = 0.3


@dataclass(frozen=True)
class AttentionConfig:
    type: Literal["bahdanau", "luong"] = "bahdanau"
    score: Literal["dot", "general", "concat"] = "general"  # luong only
    hidden_size: int = 512  # width of the additive score's tanh layer (bahdanau, concat)


@dataclass(frozen=True)
class DecoderConfig:
    rnn_type: Literal["lstm", "gru"] = "lstm"
    hidden_size: int = 512
    num_layers: int = 2
    dropout: float = 0.3
    input_feeding: bool = True
    bridge: Literal["linear", "zero"] = "linear"
    combine: Literal["tanh", "linear"] = "tanh"  # attentional vector: tanh(W [h; ctx]) | W [h; ctx] + b
    hidden_dropout: float = 0.3  # on the attentional vector before the output layer


@dataclass(frozen=True)
class ModelConfig:
    embedding_dim: int = 256
    embedding_dropout: float = 0.3
    tie_target_embeddings: bool = False  # output layer shares the target embedding matrix
    tie_source_target_embeddings: bool = False  # needs tokenizer.joint
    init: Literal["uniform", "xavier"] = "uniform"
    init_scale: float = 0.1  # uniform(-init_scale, init_scale)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)


@dataclass(frozen=True)
class TrainConfig:
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["off", "fp16", "bf16"] = "off"  # fp16: CUDA only (CPU falls back to fp32); bf16: CUDA or CPU
    max_tokens: int = 4096  # padded tokens per batch: batch size * longest side
    max_sentences: int = 0  # also cap sentences per batch; 0 = no cap
    max_steps: int = 0  # optimizer updates; 0 = no limit
    max_epochs: int = 0  # 0 = no limit
    # wall-clock training time (updates, validation, checkpoints; start-up not counted), summed
    # over resumed runs: seconds, or a number with s/m/h/d (e.g. 200, 90m, 8h); 0 = no limit
    max_time: str = "0"
    accumulate_steps: int = 1
    optimizer: Literal["adam", "adamw"] = "adam"
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    clip_grad_norm: float = 5.0  # 0 = off
    label_smoothing: float = 0.1
    # the summed loss of an update divided by its target tokens (eos included), or by its
    # sentences (OpenNMT-py normalization: sents, Joey NMT normalization: batch); per sentence the
    # gradients are about tokens-per-sentence times larger, so clip_grad_norm binds more often
    loss_normalization: Literal["tokens", "sentences"] = "tokens"
    teacher_forcing_ratio: float = 1.0
    # linear: decays to min_lr as training uses up its budget (max_steps, max_epochs or max_time),
    # over the last `decay_fraction` of it (1 = from the start; e.g. 0.2 = constant, then the last 20%);
    # with decay_fraction < 1, early stopping in the constant phase starts the decay (over
    # decay_fraction / (1 - decay_fraction) of the updates made) and stops the run after it
    schedule: Literal["constant", "inverse_sqrt", "plateau", "linear"] = "constant"
    decay_fraction: float = 1.0
    warmup_steps: int = 0  # linear warm-up, for every schedule
    plateau_factor: float = 0.5
    plateau_patience: int = 2  # validations without improvement before lowering lr
    min_lr: float = 1e-6
    eval_every_steps: int = 1000
    log_every_steps: int = 50
    early_stopping_metric: Literal["bleu", "loss", "ppl"] = "bleu"
    early_stopping_patience: int = 0  # validations without improvement; 0 = off
    keep_checkpoints: int = 3  # step_N checkpoints kept besides last and best
    save_every_steps: int = 0  # extra checkpoints between validations; 0 = only at validations
    max_bad_steps: int = 5  # consecutive skipped steps (non-finite loss, out of memory) before stopping; 0 = never
    deterministic: bool = False  # deterministic kernels (cuDNN too): reproducible on GPU, somewhat slower
    num_threads: int = 0  # torch CPU threads; 0 = torch's default

    @functools.cached_property  # read every update: parsed once
    def max_seconds(self) -> float:
        """`max_time` in seconds (0 = no limit); the config was validated, so it parses."""
        return parse_duration(self.max_time)


@dataclass(frozen=True)
class DecodeConfig:
    beam_size: int = 5  # 1 = greedy search
    nbest: int = 1  # hypotheses returned per sentence (<= beam_size)
    valid_beam_size: int = 1  # search used by validation BLEU during training; 1 = greedy
    length_penalty: float = 0.0  # GNMT alpha; 0 = off
    max_len_a: float = 1.5  # output length cap: a * src_len + b pieces
    max_len_b: int = 10
    min_len: int = 0  # output pieces before eos is allowed
    allow_unk: bool = True  # False forbids the unknown piece in outputs
    max_tokens: int = 8000  # padded source tokens per translation batch
    # search precision: bf16 (CPU or GPU), fp16 (GPU), int8 (CPU: int8 decoder products, the rest bf16); off = fp32
    amp: Literal["off", "fp16", "bf16", "int8"] = "off"


@dataclass(frozen=True)
class EvalConfig:
    metrics: tuple[Literal["bleu", "chrf", "ter"], ...] = ("bleu", "chrf", "ter")
    bleu_tokenize: Literal["13a", "intl", "zh", "ja-mecab", "char", "none", "flores101", "flores200"] = "13a"
    lowercase: bool = False


@dataclass(frozen=True)
class Config:
    run_dir: str = "runs/default"
    seed: int = 42
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples as lists), as written to config.yaml and checkpoints."""
        return _plain(dataclasses.asdict(self))


_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smhd]?)\s*")
_SECONDS_PER = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds in '200', '200s', '90m', '1.5h' or '2d'; ValueError for anything else."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(text)
    return float(match.group(1)) * _SECONDS_PER[match.group(2)]


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------
# Loading


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a YAML config, apply ``dotted.key=value`` overrides, build and validate a `Config`."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{source}: config file not found; check the --config path") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{source}: cannot read config file ({err})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise ConfigError(f"{source}:{where}: invalid YAML: {problem}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: top level must be a mapping of sections, got {type(raw).__name__}")
    return config_from_dict(raw, source, overrides)


def config_from_dict(raw: dict[str, Any], source: str = "<config>", overrides=()) -> Config:
    """Build a validated `Config` from nested dicts (YAML, or the copy stored in a checkpoint)."""
    raw = _copy_nested(raw)
    for item in overrides:
        _apply_override(raw, item, source)
    config = _build(Config, raw, "", source)
    validate(config, source)
    return config


def _copy_nested(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy_nested(v) for k, v in value.items()}
    return value


def _apply_override(raw: dict[str, Any], item: str, source: str) -> None:
    key, sep, text = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {item!r}: expected dotted.key=value, e.g. train.max_steps=200")
    _check_path(key, f"{source}: override {item!r}")  # the key is on the command line, not in the file
    try:
        value = yaml.safe_load(text) if text else ""
    except yaml.YAMLError:
        value = text
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def _check_path(key: str, source: str) -> None:
    """Fail early on an override that names no config key (with a suggestion)."""
    cls: Any = Config
    done = []
    for part in key.split("."):
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            raise ConfigError(f"{source}: '{'.'.join(done)}' has no sub-keys")
        names = [f.name for f in dataclasses.fields(cls)]
        if part not in names:
            raise _unknown_key(source, ".".join([*done, part]), part, names)
        cls = _dataclass_in(typing.get_type_hints(cls)[part])
        done.append(part)


def _dataclass_in(hint: Any) -> Any:
    """The dataclass inside `hint` (also inside `X | None`), else `hint` itself."""
    for arg in typing.get_args(hint) or (hint,):
        if isinstance(arg, type) and dataclasses.is_dataclass(arg):
            return arg
    return hint


def _unknown_key(source: str, dotted: str, name: str, names: list[str]) -> ConfigError:
    close = difflib.get_close_matches(name, names, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return ConfigError(f"{source}: unknown key '{dotted}'{hint}; valid keys here: {', '.join(names)}")


def _build(cls: type, raw: Any, prefix: str, source: str) -> Any:
    """Recursively convert a dict into dataclass `cls`, checking keys and types."""
    where = prefix.rstrip(".") or "top level"
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: key '{where}' must be a mapping, got {_describe(raw)}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in raw:
        if key not in names:
            raise _unknown_key(source, f"{prefix}{key}", str(key), names)
    values = {name: _convert(hints[name], raw[name], f"{prefix}{name}", source) for name in raw}
    return cls(**values)


def _convert(hint: Any, value: Any, key: str, source: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, key, source)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _build(hint, value, f"{key}.", source)
    if origin is Literal:
        if value is False and "off" in args:
            value = "off"  # YAML 1.1 reads a bare `off` as false
        if value not in args:
            close = difflib.get_close_matches(str(value), [str(a) for a in args], n=1)
            hint_text = f" (did you mean '{close[0]}'?)" if close else ""
            choices = ", ".join(str(a) for a in args)
            raise ConfigError(f"{source}: key '{key}': {value!r} is not a valid choice{hint_text}; choices: {choices}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            value = [value] if args[-1] is Ellipsis else value
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: key '{key}' must be a list, got {_describe(value)}")
        if args[-1] is Ellipsis:
            return tuple(_convert(args[0], v, key, source) for v in value)
        if len(value) != len(args):
            raise ConfigError(f"{source}: key '{key}' must be a list of {len(args)} values, got {len(value)}")
        return tuple(_convert(a, v, key, source) for a, v in zip(args, value))
    return _scalar(hint, value, key, source)


def _scalar(hint: type, value: Any, key: str, source: str) -> Any:
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    raise ConfigError(f"{source}: key '{key}' must be {hint.__name__}, got {_describe(value)}")


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}" if not isinstance(value, dict) else "a mapping"


# ---------------------------------------------------------------------------------------------
# Cross-field rules


def validate(config: Config, source: str = "<config>") -> None:
    """Reject values that are each valid but impossible together, or out of range."""

    def fail(key: str, message: str) -> None:
        raise ConfigError(f"{source}: key '{key}': {message}")

    _check_ranges(config, fail)
    _check_corpus(config.data.train, "data.train", fail)
    for name in ("valid", "test"):
        corpus = getattr(config.data, name)
        if corpus is not None:
            _check_corpus(corpus, f"data.{name}", fail)
    tok, model, train = config.tokenizer, config.model, config.train
    if model.tie_source_target_embeddings and not tok.joint:
        fail("model.tie_source_target_embeddings", "needs tokenizer.joint: true (one shared vocabulary)")
    if tok.joint and (tok.src_model_file or tok.tgt_model_file):
        fail("tokenizer.src_model_file", "per-side models need tokenizer.joint: false; use tokenizer.model_file")
    if not tok.joint and tok.model_file:
        fail("tokenizer.model_file", "a joint model needs tokenizer.joint: true; use src_model_file/tgt_model_file")
    if not tok.joint and bool(tok.src_model_file) != bool(tok.tgt_model_file):
        fail("tokenizer.tgt_model_file", "give both src_model_file and tgt_model_file, or neither")
    attn = model.attention
    if attn.type == "luong" and attn.score == "dot" and 2 * model.encoder.hidden_size != model.decoder.hidden_size:
        fail(
            "model.attention.score",
            f"luong 'dot' needs decoder.hidden_size ({model.decoder.hidden_size}) == 2 * encoder.hidden_size "
            f"({2 * model.encoder.hidden_size}); use score 'general' or 'concat'",
        )
    if model.tie_target_embeddings and model.embedding_dim != model.decoder.hidden_size:
        fail(
            "model.tie_target_embeddings",
            f"needs embedding_dim ({model.embedding_dim}) == decoder.hidden_size ({model.decoder.hidden_size})",
        )
    if train.max_tokens < config.data.max_len + 2:
        fail("train.max_tokens", f"must be at least data.max_len + 2 = {config.data.max_len + 2} so every pair fits")
    if config.data.valid is None and train.early_stopping_patience:
        fail("train.early_stopping_patience", "early stopping needs a data.valid corpus")
    if config.decode.nbest > config.decode.beam_size:
        fail(
            "decode.nbest",
            f"{config.decode.nbest} is more than decode.beam_size {config.decode.beam_size}; raise the beam or lower nbest",
        )
    if config.decode.max_tokens < 2 * config.data.max_len:
        fail("decode.max_tokens", f"must be at least 2 * data.max_len = {2 * config.data.max_len}")


def _check_ranges(config: Config, fail) -> None:
    positive = {
        "tokenizer.vocab_size": config.tokenizer.vocab_size,
        "model.embedding_dim": config.model.embedding_dim,
        "model.encoder.hidden_size": config.model.encoder.hidden_size,
        "model.encoder.num_layers": config.model.encoder.num_layers,
        "model.decoder.hidden_size": config.model.decoder.hidden_size,
        "model.decoder.num_layers": config.model.decoder.num_layers,
        "model.attention.hidden_size": config.model.attention.hidden_size,
        "train.max_tokens": config.train.max_tokens,
        "train.accumulate_steps": config.train.accumulate_steps,
        "train.eval_every_steps": config.train.eval_every_steps,
        "train.log_every_steps": config.train.log_every_steps,
        "train.lr": config.train.lr,
        "data.max_len": config.data.max_len,
        "decode.beam_size": config.decode.beam_size,
        "decode.nbest": config.decode.nbest,
        "decode.valid_beam_size": config.decode.valid_beam_size,
        "decode.max_tokens": config.decode.max_tokens,
    }
    for key, value in positive.items():
        if value <= 0:
            fail(key, f"must be > 0, got {value}")
    unit = {
        "model.embedding_dropout": config.model.embedding_dropout,
        "model.encoder.dropout": config.model.encoder.dropout,
        "model.decoder.dropout": config.model.decoder.dropout,
        "model.decoder.hidden_dropout": config.model.decoder.hidden_dropout,
        "train.label_smoothing": config.train.label_smoothing,
        "train.teacher_forcing_ratio": config.train.teacher_forcing_ratio,
        "train.decay_fraction": config.train.decay_fraction,
        "tokenizer.character_coverage": config.tokenizer.character_coverage,
    }
    for key, value in unit.items():
        if not 0.0 <= value <= 1.0:
            fail(key, f"must be between 0 and 1, got {value}")
    if config.train.label_smoothing >= 1.0:
        fail("train.label_smoothing", "must be below 1")
    if config.train.decay_fraction == 0.0:
        fail("train.decay_fraction", "must be above 0 (the share of the budget the linear decay takes)")
    if not 0.0 < config.train.plateau_factor < 1.0:
        fail("train.plateau_factor", f"must be between 0 and 1 (exclusive), got {config.train.plateau_factor}")
    non_negative = {
        "train.max_steps": config.train.max_steps,
        "train.max_epochs": config.train.max_epochs,
        "train.max_sentences": config.train.max_sentences,
        "train.warmup_steps": config.train.warmup_steps,
        "train.early_stopping_patience": config.train.early_stopping_patience,
        "train.keep_checkpoints": config.train.keep_checkpoints,
        "train.save_every_steps": config.train.save_every_steps,
        "train.max_bad_steps": config.train.max_bad_steps,
        "train.clip_grad_norm": config.train.clip_grad_norm,
        "train.num_threads": config.train.num_threads,
        "data.max_len_ratio": config.data.max_len_ratio,
        "data.max_valid_sentences": config.data.max_valid_sentences,
        "decode.length_penalty": config.decode.length_penalty,
        "decode.min_len": config.decode.min_len,
    }
    for key, value in non_negative.items():
        if value < 0:
            fail(key, f"must be >= 0, got {value}")
    try:
        seconds = parse_duration(config.train.max_time)
    except ValueError:
        fail("train.max_time", f"{config.train.max_time!r} is not a duration; use seconds or a number with s/m/h/d, e.g. 90m")
    budget = config.train.max_steps or config.train.max_epochs or seconds
    if not budget and config.train.early_stopping_patience == 0:
        fail(
            "train.max_steps",
            "set train.max_steps, train.max_epochs, train.max_time or train.early_stopping_patience, or it never stops",
        )
    until_stalled = config.train.early_stopping_patience and config.train.decay_fraction < 1.0
    if config.train.schedule == "linear" and not (budget or until_stalled):
        fail(
            "train.schedule",
            "linear decays over the training budget: set train.max_steps, train.max_epochs or train.max_time "
            "(or train.early_stopping_patience with train.decay_fraction < 1: decay once validation stalls)",
        )


def _check_corpus(corpus: CorpusConfig, key: str, fail) -> None:
    has_files = corpus.src is not None or corpus.tgt is not None
    if has_files and corpus.dataset is not None:
        fail(f"{key}.dataset", "give either src/tgt files or a dataset, not both")
    if not has_files and corpus.dataset is None:
        fail(key, "give src and tgt files, or a Hugging Face dataset with src_field/tgt_field")
    if has_files and (corpus.src is None or corpus.tgt is None):
        fail(f"{key}.{'tgt' if corpus.tgt is None else 'src'}", "both src and tgt files are needed")
    if corpus.dataset is not None and (corpus.src_field is None or corpus.tgt_field is None):
        fail(f"{key}.{'src_field' if corpus.src_field is None else 'tgt_field'}", "a dataset needs src_field and tgt_field")
