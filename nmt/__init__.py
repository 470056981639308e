"""nmt: config-driven RNN-attention neural machine translation.

Shape legend used in every docstring: B batch, S source length, T target length, E embedding,
H hidden, L layers, V vocabulary, K beam (or encoder state size 2H in attention code).
The public API is imported lazily so `import nmt` stays cheap (no torch until needed).
"""

from __future__ import annotations

__version__ = "0.1.0"

_API = {
    "load_config": "nmt.config",
    "Config": "nmt.config",
    "Seq2Seq": "nmt.model",
    "Trainer": "nmt.trainer",
    "Translator": "nmt.translator",
    "score_corpus": "nmt.metrics",
}

__all__ = list(_API)


def __getattr__(name: str):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'nmt' has no attribute {name!r}")
