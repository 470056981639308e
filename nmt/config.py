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
import math
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
class TrainCorpusConfig(CorpusConfig):
    """A training corpus; `data.train` lists one or several."""

    # its share of each epoch when data.train mixes corpora (OpenNMT-py's corpus weight): an epoch
    # holds as many pairs as all corpora together, corpus i about total * weight_i / sum(weights).
    # None on every corpus: each pair once per epoch
    weight: float | None = None


@dataclass(frozen=True)
class DataConfig:
    src_lang: str = "src"
    tgt_lang: str = "tgt"
    train: tuple[TrainCorpusConfig, ...] = (TrainCorpusConfig(),)  # one corpus (a mapping) or a list of them
    valid: CorpusConfig | None = None
    test: CorpusConfig | None = None
    max_len: int = 100  # sentencepiece pieces per side, training pairs only
    max_len_ratio: float = 0.0  # drop pairs whose longer/shorter length exceeds this; 0 = off
    max_valid_sentences: int = 0  # validate on the first N pairs only; 0 = all
    # where the training corpus is kept encoded (nmt.store); None = RUN_DIR/store. Runs that name
    # one directory share the store of the same corpus and tokenizer
    store_dir: str | None = None

    def train_names(self) -> list[str]:
        """How errors and logs name the training corpora: data.train alone, data.train.0, data.train.1, ... in a list."""
        return ["data.train"] if len(self.train) == 1 else [f"data.train.{i}" for i in range(len(self.train))]


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
    # subword regularization of the training pairs (never validation or translation): each batch
    # is encoded again with sentencepiece's sampling. unigram: Kudo 2018, `sampling_alpha` the
    # smoothing, `sampling_nbest` the candidates (0: all); bpe: BPE-dropout (Provilkov et al.
    # 2020), `sampling_alpha` the probability of dropping a merge, sampling_nbest unused
    sampling: bool = False
    sampling_alpha: float = 0.1
    sampling_nbest: int = 0


@dataclass(frozen=True)
class EncoderConfig:
    rnn_type: Literal["lstm", "gru"] = "lstm"
    hidden_size: int = 256  # per direction: states are 2 * hidden_size wide
    num_layers: int = 2
    dropout: float = 0.3


@dataclass(frozen=True)
class AttentionConfig:
    type: Literal["bahdanau", "luong", "multihead"] = "bahdanau"
    score: Literal["dot", "general", "concat", "scaled_dot"] = "general"  # luong only
    hidden_size: int = 512  # width of the additive score's tanh layer (bahdanau, concat); multihead: of all heads together
    heads: int = 4  # multihead only; each head is hidden_size / heads wide
    head_score: Literal["additive", "scaled_dot"] = "additive"  # multihead only: RNMT+'s additive heads or scaled dot

    def context_size(self, key_size: int) -> int:
        """Width of the context the decoder reads: the encoder states' K, or multihead's A (its heads' side by side)."""
        return self.hidden_size if self.type == "multihead" else key_size


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
    # sacrebleu's BLEU tokenizers (a test keeps the list equal to the installed sacrebleu's); the
    # mecab ones need extra packages, the spm ones a one-time download: checked when training starts
    bleu_tokenize: Literal[
        "13a", "intl", "zh", "ja-mecab", "ko-mecab", "char", "none", "flores101", "flores200", "spm", "spBLEU-1K"
    ] = "13a"
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
        raw = yaml.load(text, Loader=StrictLoader)  # a SafeLoader: plain data only
    except DuplicateKeyError as err:
        raise ConfigError(
            f"{source}: line {err.line}: duplicate key '{err.dotted}' (first at line {err.first_line}); keep one"
        ) from None
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


class DuplicateKeyError(yaml.YAMLError):
    """A mapping of the YAML file names one key twice."""

    def __init__(self, dotted: str, line: int, first_line: int) -> None:
        super().__init__(f"line {line}: duplicate key '{dotted}' (first at line {first_line})")
        self.dotted, self.line, self.first_line = dotted, line, first_line


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last one silently,
    so a second `max_steps:` in a section, or a second `model:` section, would replace the first).

    Merge keys (``<<: *defaults``) still work: a key merged in may be overridden by the mapping.
    """

    def compose_document(self) -> yaml.Node:
        node = super().compose_document()
        _check_duplicate_keys(node, "", set())
        return node


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _check_duplicate_keys(node: yaml.Node, prefix: str, seen: set[int]) -> None:
    if id(node) in seen:  # an alias of a node already checked (or a recursive structure)
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[tuple[str, str], yaml.Node] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                _check_duplicate_keys(value_node, prefix, seen)
                continue
            dotted = f"{prefix}{key_node.value}"
            earlier = first.setdefault((key_node.tag, key_node.value), key_node)
            if earlier is not key_node:
                raise DuplicateKeyError(dotted, key_node.start_mark.line + 1, earlier.start_mark.line + 1)
            _check_duplicate_keys(value_node, f"{dotted}.", seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _check_duplicate_keys(item, f"{prefix}{index}.", seen)  # data.train.1.src, as overrides name it


def config_from_dict(raw: dict[str, Any], source: str = "<config>", overrides=()) -> Config:
    """Build a validated `Config` from nested dicts (YAML, or the copy stored in a checkpoint)."""
    raw = _copy_nested(raw)
    given: dict[str, str] = {}  # dotted key -> the override that set it
    for item in overrides:
        key = _apply_override(raw, item, source)
        if key in given:
            raise ConfigError(
                f"{source}: override {item!r}: '{key}' is already set by override {given[key]!r}; give each key once"
            )
        given[key] = item
    config = _build(Config, raw, "", source)
    validate(config, source)
    return config


def _copy_nested(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy_nested(v) for k, v in value.items()}
    return value


def _apply_override(raw: dict[str, Any], item: str, source: str) -> str:
    """Set one ``dotted.key=value`` in `raw`; returns the dotted key."""
    key, sep, text = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {item!r}: expected dotted.key=value, e.g. train.max_steps=200")
    _check_path(key, f"{source}: override {item!r}")  # the key is on the command line, not in the file
    try:
        value = yaml.safe_load(text) if text else ""
    except yaml.YAMLError:
        value = text
    where = f"{source}: override {item!r}"
    parts = key.split(".")
    node: Any = raw
    for depth, part in enumerate(parts[:-1]):
        if part.isdigit():  # `node` is the list the step before made sure of
            node = node[int(part)]
            continue
        child = node.get(part)
        if parts[depth + 1].isdigit():  # data.train.1.src: an item of a list (data.train.N appends one)
            child = _listed(child, int(parts[depth + 1]), ".".join(parts[: depth + 1]), where)
        elif isinstance(child, list):
            listed = ".".join(parts[: depth + 1])
            raise ConfigError(
                f"{where}: '{listed}' is a list here; name its item by index, e.g. {listed}.0.{'.'.join(parts[depth + 1 :])}=..."
            )
        elif not isinstance(child, dict):
            child = {}
        node[part] = child
        node = child
    node[int(parts[-1]) if isinstance(node, list) else parts[-1]] = value
    return key


def _listed(child: Any, index: int, dotted: str, where: str) -> list:
    """The list an indexed override writes into (a single mapping becomes item 0), grown by one at `index` == len."""
    items = [] if child is None else child if isinstance(child, list) else [child]
    if index > len(items):
        count = f"{len(items)} item{'s' if len(items) != 1 else ''}"
        raise ConfigError(f"{where}: '{dotted}' has {count}; index {index} is past the end (use 0 to {len(items)})")
    if index == len(items):
        items.append({})
    if not isinstance(items[index], dict):
        raise ConfigError(f"{where}: '{dotted}.{index}' is {_describe(items[index])}, not a mapping of keys")
    return items


def _check_path(key: str, source: str) -> None:
    """Fail early on an override that names no config key (with a suggestion)."""
    cls: Any = Config
    hint: Any = None
    done = []
    for part in key.split("."):
        if part.isdigit() and typing.get_origin(hint) is tuple:  # an item of a list of sections (data.train.1)
            done.append(part)
            continue
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            raise ConfigError(f"{source}: '{'.'.join(done)}' has no sub-keys")
        names = [f.name for f in dataclasses.fields(cls)]
        if part not in names:
            raise _unknown_key(source, ".".join([*done, part]), part, names)
        hint = typing.get_type_hints(cls)[part]
        cls = _dataclass_in(hint)
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
            value = (value,) if args[-1] is Ellipsis else value  # one item: its own key, no index
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: key '{key}' must be a list, got {_describe(value)}")
        if args[-1] is Ellipsis:
            listed = isinstance(value, list) and dataclasses.is_dataclass(args[0])
            return tuple(_convert(args[0], v, f"{key}.{i}" if listed else key, source) for i, v in enumerate(value))
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
# Numeric ranges: one rule per int/float key (the command-line decode options use the same rules)

INT_CAP = 2**31 - 1  # every count and size: torch and sentencepiece take 32-bit ints
SEED_CAP = 2**32 - 1  # NumPy takes 32-bit seeds; the trainer's seed * 1000 + rank and seed * 1_000_003 + epoch stay < 2**63
VOCAB_CAP = 1 << 20  # sentencepiece takes an int32; a million pieces is already far past any NMT vocabulary
THREADS_CAP = 4096  # torch.set_num_threads takes a C int (1e11 overflowed); more threads than any machine has cores
BEAM_CAP = 1000  # a beam this wide costs beam x vocabulary scores per step and sentence
MAX_PARAMETERS = 1_000_000_000  # size sanity check (see estimate_parameters): 4 GB of fp32 weights, 16 GB with Adam


@dataclass(frozen=True)
class Rule:
    """The valid values of a numeric key: finite, from `low` to `high` (either end open), or 0 with `off`."""

    low: float
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    off: str = ""  # if set, 0 is valid too although it is below `low`: what 0 means (off, all)

    def allows(self, value: float) -> bool:
        if self.off and value == 0:
            return True
        if not math.isfinite(value):  # nan compares False with everything: test it first
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def describe(self, integer: bool) -> str:
        """'must be ...' without the value, e.g. 'must be a finite number > 0'."""
        if integer:
            text = f"an integer from {self.low:g} to {self.high}" if self.high < math.inf else f"an integer >= {self.low:g}"
        elif self.high == math.inf:
            text = f"a finite number {'>' if self.low_open else '>='} {self.low:g}"
        else:
            opened = [f"{end:g}" for end, is_open in ((self.low, self.low_open), (self.high, self.high_open)) if is_open]
            note = " (exclusive)" if len(opened) == 2 else f" (exclusive of {opened[0]})" if opened else ""
            text = f"between {self.low:g} and {self.high:g}{note}"
        return f"must be {f'0 ({self.off}) or ' if self.off else ''}{text}"


_SIZE = Rule(1, INT_CAP)  # a size, count or interval of at least 1
_COUNT = Rule(0, INT_CAP)  # a count or limit where 0 means off, no limit or all
_DROPOUT = Rule(0, 1)
_POSITIVE = Rule(0, low_open=True)
_NON_NEGATIVE = Rule(0)
_BEAM = Rule(1, BEAM_CAP)

# Every int and float key of `Config` (a unit test walks the dataclasses to keep this complete);
# a tuple's rule applies to each of its values. Cross-key rules are in `validate`.
RANGES: dict[str, Rule] = {
    "seed": Rule(0, SEED_CAP),
    "data.train.weight": _POSITIVE,  # a ratio between corpora
    "data.max_len": _SIZE,
    "data.max_len_ratio": Rule(1, off="off"),  # between 0 and 1 it would drop every pair
    "data.max_valid_sentences": _COUNT,
    "tokenizer.vocab_size": Rule(5, VOCAB_CAP),  # sentencepiece: the 4 special pieces and more
    "tokenizer.character_coverage": Rule(0.98, 1),  # what sentencepiece's trainer accepts
    "tokenizer.max_train_sentences": Rule(101, INT_CAP, off="all"),  # sentencepiece: 0 = all, else > 100
    "tokenizer.sampling_alpha": Rule(0, 1, low_open=True),  # a dropout probability (bpe) or a smoothing exponent (unigram)
    "tokenizer.sampling_nbest": Rule(2, INT_CAP, off="all segmentations"),  # 1 would sample nothing
    "model.embedding_dim": _SIZE,
    "model.embedding_dropout": _DROPOUT,
    "model.init_scale": _POSITIVE,
    "model.encoder.hidden_size": _SIZE,
    "model.encoder.num_layers": _SIZE,
    "model.encoder.dropout": _DROPOUT,
    "model.attention.hidden_size": _SIZE,
    "model.attention.heads": _SIZE,  # must also divide hidden_size (validate)
    "model.decoder.hidden_size": _SIZE,
    "model.decoder.num_layers": _SIZE,
    "model.decoder.dropout": _DROPOUT,
    "model.decoder.hidden_dropout": _DROPOUT,
    "train.max_tokens": _SIZE,
    "train.max_sentences": _COUNT,
    "train.max_steps": _COUNT,
    "train.max_epochs": _COUNT,
    "train.accumulate_steps": _SIZE,
    "train.lr": _POSITIVE,
    "train.betas": Rule(0, 1, high_open=True),  # what torch's Adam accepts
    "train.weight_decay": _NON_NEGATIVE,
    "train.clip_grad_norm": _NON_NEGATIVE,
    "train.label_smoothing": Rule(0, 1, high_open=True),
    "train.teacher_forcing_ratio": Rule(0, 1),
    "train.decay_fraction": Rule(0, 1, low_open=True),
    "train.warmup_steps": _COUNT,
    "train.plateau_factor": Rule(0, 1, low_open=True, high_open=True),
    "train.plateau_patience": _COUNT,
    "train.min_lr": _NON_NEGATIVE,
    "train.eval_every_steps": _SIZE,
    "train.log_every_steps": _SIZE,
    "train.early_stopping_patience": _COUNT,
    "train.keep_checkpoints": _COUNT,
    "train.save_every_steps": _COUNT,
    "train.max_bad_steps": _COUNT,
    "train.num_threads": Rule(0, THREADS_CAP),
    "decode.beam_size": _BEAM,
    "decode.nbest": _BEAM,
    "decode.valid_beam_size": _BEAM,
    "decode.length_penalty": Rule(0, 10),  # GNMT alpha (about 0.6-1); ((5 + len) / 6) ** alpha overflows soon above 10
    "decode.max_len_a": Rule(0, 1000),  # output pieces per source piece
    "decode.max_len_b": _COUNT,
    "decode.min_len": _COUNT,
    "decode.max_tokens": _SIZE,
}


def numeric_keys(cls: type = Config, prefix: str = "") -> dict[str, bool]:
    """Every int/float (or tuple of them) key under dataclass `cls`: dotted key -> is it an int."""
    found = {}
    for name, hint in typing.get_type_hints(cls).items():
        inner = _dataclass_in(hint)
        if isinstance(inner, type) and dataclasses.is_dataclass(inner):
            found.update(numeric_keys(inner, f"{prefix}{name}."))
            continue
        if typing.get_origin(hint) in (typing.Union, types.UnionType):  # `float | None`: the number when given
            hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
        args = typing.get_args(hint) if typing.get_origin(hint) is tuple else (hint,)
        if args and args[0] in (int, float):
            found[f"{prefix}{name}"] = args[0] is int
    return found


@functools.cache
def _integer_keys() -> dict[str, bool]:
    return numeric_keys()


def range_error(key: str, value: Any, show_value: bool = True) -> str | None:
    """Why `value` (a number, or a tuple of them) is out of range for config key `key`, or None."""
    rule, integer = RANGES[key], _integer_keys()[key]
    values = value if isinstance(value, tuple) else (value,)
    for index, item in enumerate(values):
        if not rule.allows(item):
            if not show_value:
                return rule.describe(integer)
            where = f" ({key}[{index}])" if isinstance(value, tuple) else ""
            return f"{rule.describe(integer)}, got {item!r}{where}"
    return None


def check_option(flag: str, key: str, value: Any) -> None:
    """Raise ConfigError if a command-line option's value breaks the rule of the config key it sets."""
    if value is None:
        return
    message = range_error(key, value, show_value=False)
    if message is not None:
        text = f"{value:g}" if isinstance(value, float) else str(value)
        raise ConfigError(f"{flag} {text}: {key} {message}")


def estimate_parameters(model: ModelConfig, src_vocab: int, tgt_vocab: int) -> int:
    """The parameter count of `Seq2Seq(model, ...)` with these vocabulary sizes (pad included), without torch.

    Mirrors nmt.model, nmt.encoder, nmt.decoder and nmt.attention; a unit test holds it equal to
    `Seq2Seq.num_parameters()` for every combination of the options.
    """
    enc, dec, attn, emb = model.encoder, model.decoder, model.attention, model.embedding_dim

    def rnn(kind: str, input_size: int, hidden: int, layers: int, directions: int) -> int:
        gates = 4 if kind == "lstm" else 3  # torch: weight_ih, weight_hh, bias_ih, bias_hh per layer and direction
        per_direction = [gates * hidden * (size + hidden + 2) for size in [input_size] + [directions * hidden] * (layers - 1)]
        return directions * sum(per_direction)

    key_size = 2 * enc.hidden_size
    count = src_vocab * emb + rnn(enc.rnn_type, emb, enc.hidden_size, enc.num_layers, 2)
    if dec.bridge == "linear":
        states = (2 if dec.rnn_type == "lstm" else 1) * dec.num_layers * dec.hidden_size
        count += key_size * states + states
    if not model.tie_source_target_embeddings:
        count += tgt_vocab * emb
    rnn_input = emb + (dec.hidden_size if dec.input_feeding else 0)
    count += rnn(dec.rnn_type, rnn_input, dec.hidden_size, dec.num_layers, 1)
    if attn.type == "multihead":  # W_q with bias, W_k, W_v, v of the additive heads
        count += dec.hidden_size * attn.hidden_size + attn.hidden_size + 2 * key_size * attn.hidden_size
        count += attn.hidden_size if attn.head_score == "additive" else 0
    elif attn.type == "bahdanau" or attn.score == "concat":  # W_k, W_q with bias, v
        count += key_size * attn.hidden_size + dec.hidden_size * attn.hidden_size + attn.hidden_size + attn.hidden_size
    elif attn.score == "general":
        count += key_size * dec.hidden_size
    context = attn.context_size(key_size)
    count += (dec.hidden_size + context) * dec.hidden_size + (dec.hidden_size if dec.combine == "linear" else 0)
    count += (0 if model.tie_target_embeddings else dec.hidden_size * tgt_vocab) + tgt_vocab  # output layer
    return count


# the keys that set a model's size: the one whose default would shrink an absurd model most is named
_SIZE_KEYS = (
    "tokenizer.vocab_size",
    "model.embedding_dim",
    "model.encoder.hidden_size",
    "model.encoder.num_layers",
    "model.attention.hidden_size",
    "model.decoder.hidden_size",
    "model.decoder.num_layers",
)


def _config_parameters(config: Config) -> int:
    # tokenizer.vocab_size is the size asked of sentencepiece (pad included); with tokenizer.model_file
    # (or a small corpus, which sentencepiece cannot fill) the real vocabulary may differ
    vocab = config.tokenizer.vocab_size
    return estimate_parameters(config.model, vocab, vocab)


def _check_model_size(config: Config, fail) -> None:
    """Refuse a model too large to allocate before torch tries (its sizes are each in range)."""
    count = _config_parameters(config)
    if count <= MAX_PARAMETERS:
        return
    defaults = Config()

    def with_default(key: str) -> int:
        return _config_parameters(_replaced(config, key.split("."), _value(defaults, key)))

    key = min(_SIZE_KEYS, key=with_default)
    fail(
        key,
        f"{_value(config, key)} makes a model of about {count:.3g} parameters ({count * 4 / 1e9:.3g} GB of fp32 weights), "
        f"more than the {MAX_PARAMETERS:,} allowed; lower {key}",
    )


def _replaced(node: Any, parts: list[str], value: Any) -> Any:
    """Frozen dataclass `node` with the key at path `parts` set to `value`."""
    if not parts:
        return value
    head, *rest = parts
    return dataclasses.replace(node, **{head: _replaced(getattr(node, head), rest, value)})


def _value(config: Config, key: str) -> Any:
    node: Any = config
    for part in key.split("."):
        node = getattr(node, part)
    return node


def _named_values(config: Config, key: str) -> list[tuple[str, Any]]:
    """`key`'s value in `config` with its name; one per item where the key is inside a list of sections
    (data.train.weight -> data.train.0.weight, data.train.1.weight, ...: `DataConfig.train_names`)."""
    found: list[tuple[str, Any]] = [("", config)]
    for part in key.split("."):
        step = []
        for prefix, node in found:
            value = getattr(node, part)
            if isinstance(value, tuple) and (not value or dataclasses.is_dataclass(value[0])):  # a list of sections
                names = [f"{prefix}{part}"] if len(value) == 1 else [f"{prefix}{part}.{i}" for i in range(len(value))]
                step += zip(names, value)
            else:
                step.append((f"{prefix}{part}", value))
        found = [(f"{name}.", value) for name, value in step]
    return [(name[:-1], value) for name, value in found]


def sampling_problem(model_type: str, nbest: int) -> tuple[str, str] | None:
    """(key, message) when tokenizer.sampling cannot run on a sentencepiece model of this type, else None."""
    if model_type not in ("unigram", "bpe"):
        return "tokenizer.sampling", f"sentencepiece samples unigram and bpe models only, not a {model_type} model"
    if model_type == "bpe" and nbest:
        return "tokenizer.sampling_nbest", "a bpe model samples by BPE-dropout (tokenizer.sampling_alpha alone); remove it"
    return None


# ---------------------------------------------------------------------------------------------
# Cross-field rules


def validate(config: Config, source: str = "<config>") -> None:
    """Reject values that are each valid but impossible together, or out of range."""

    def fail(key: str, message: str) -> None:
        raise ConfigError(f"{source}: key '{key}': {message}")

    _check_ranges(config, fail)
    _check_training_corpora(config.data, fail)
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
    trained = not (tok.model_file or tok.src_model_file)
    if trained and tok.sampling and (problem := sampling_problem(tok.type, tok.sampling_nbest)):
        fail(*problem)
    attn = model.attention
    if (
        attn.type == "luong"
        and attn.score in ("dot", "scaled_dot")
        and 2 * model.encoder.hidden_size != model.decoder.hidden_size
    ):
        fail(
            "model.attention.score",
            f"luong '{attn.score}' needs decoder.hidden_size ({model.decoder.hidden_size}) == 2 * encoder.hidden_size "
            f"({2 * model.encoder.hidden_size}); use score 'general' or 'concat'",
        )
    if attn.type == "multihead" and attn.hidden_size % attn.heads:
        fail(
            "model.attention.heads",
            f"{attn.heads} heads do not divide attention.hidden_size {attn.hidden_size} (each head is hidden_size / heads "
            "wide); use a divisor of it",
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
    for key in RANGES:
        for name, value in _named_values(config, key):
            message = None if value is None else range_error(key, value)  # None: an optional number not given
            if message is not None:
                fail(name, message)
    train, decode = config.train, config.decode
    if train.schedule != "constant" and train.min_lr > train.lr:
        fail(
            "train.min_lr",
            f"{train.min_lr:g} is above train.lr {train.lr:g}: the {train.schedule} schedule would raise the rate "
            "to it instead of lowering it; use min_lr <= lr",
        )
    if int(decode.max_len_a + decode.max_len_b) < 2:  # the search's cap for a one-piece source, eos included
        fail(
            "decode.max_len_b",
            f"with decode.max_len_a {decode.max_len_a:g} and max_len_b {decode.max_len_b} the output cap "
            "(a * source pieces + b, eos included) leaves a one-piece source no output piece; "
            "raise max_len_b (e.g. 10) or max_len_a",
        )
    _check_model_size(config, fail)
    try:
        seconds = parse_duration(config.train.max_time)
    except ValueError:
        fail("train.max_time", f"{config.train.max_time!r} is not a duration; use seconds or a number with s/m/h/d, e.g. 90m")
    if not math.isfinite(seconds):
        fail("train.max_time", f"must be a finite duration, got {seconds} seconds; use 0 for no limit")
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


def _check_training_corpora(data: DataConfig, fail) -> None:
    if not data.train:
        fail("data.train", "lists no corpus; give src and tgt files (or a dataset), or a list of such corpora")
    names = data.train_names()
    for corpus, name in zip(data.train, names):
        _check_corpus(corpus, name, fail)
    weighted = [corpus.weight is not None for corpus in data.train]
    if any(weighted) and not all(weighted):
        missing = names[weighted.index(False)]
        fail(f"{missing}.weight", "give every training corpus a weight (their ratio in each epoch), or none")


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
