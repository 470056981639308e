"""Errors a user can fix: the command line prints the message as one line and exits with code 2."""


class NmtError(Exception):
    """Base class: the message names the file, line or key and says what to do."""


class ConfigError(NmtError):
    """A config file or override is unreadable, unknown, mistyped or impossible."""


class DataError(NmtError):
    """A corpus, tokenizer model or input file cannot be used as given."""


class CheckpointError(NmtError):
    """A checkpoint or run directory cannot be read, written or does not match the config."""


class TrainingError(NmtError):
    """Training cannot go on (repeated non-finite losses, repeated out-of-memory); exit code 1."""


def brief(err: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its type name if empty), for a one-line error."""
    text = str(err).strip()
    return text.splitlines()[0][:limit] if text else type(err).__name__
