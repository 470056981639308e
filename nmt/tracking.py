"""Run I/O side effects in one place: the log file, stderr, TensorBoard and the tqdm bar."""

from __future__ import annotations

import logging
import platform
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm


def software_versions() -> str:
    """The versions that decide a run's numbers, for its train.log (nmt-report shows them)."""
    import sacrebleu
    import sentencepiece
    import torch

    import nmt

    packages = (("nmt", nmt), ("torch", torch), ("sentencepiece", sentencepiece), ("sacrebleu", sacrebleu))
    return ", ".join([f"python {platform.python_version()}"] + [f"{name} {module.__version__}" for name, module in packages])


class _TqdmHandler(logging.Handler):
    """Log lines on stderr that do not tear the progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        tqdm.write(self.format(record), file=sys.stderr)


class Tracker:
    """Writes `train.log`, TensorBoard scalars/images under `tensorboard/`, and shows progress."""

    def __init__(self, run_dir: Path, resume_step: int = 0, enabled: bool = True) -> None:
        self.enabled = enabled
        self.logger = logging.getLogger(f"nmt.run.{run_dir}")
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False
        self.logger.handlers.clear()
        self.writer = None
        self.bar: tqdm | None = None
        if not enabled:
            return
        file_handler = logging.FileHandler(run_dir / "train.log", encoding="utf-8")
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
        stream = _TqdmHandler()
        stream.setFormatter(logging.Formatter("%(message)s"))
        self.logger.addHandler(file_handler)
        self.logger.addHandler(stream)
        self.run_dir = run_dir
        self.resume_step = resume_step

    def log(self, message: str) -> None:
        self.logger.info(message)

    def _tb(self):
        if self.writer is None and self.enabled:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step drops events a killed run wrote after its last checkpoint, so curves
            # continue seamlessly after a resume. The checkpoint's own step stays: its events were
            # written before the checkpoint, and the resumed run does not write them again.
            self.writer = SummaryWriter(
                str(self.run_dir / "tensorboard"), purge_step=self.resume_step + 1 if self.resume_step else None
            )
        return self.writer

    def scalars(self, values: dict[str, float], step: int) -> None:
        writer = self._tb()
        if writer is None:
            return
        for tag, value in values.items():
            writer.add_scalar(tag, value, step)

    def figure(self, tag: str, figure: Any, step: int) -> None:
        writer = self._tb()
        if writer is not None:
            writer.add_figure(tag, figure, step)

    def start_progress(self, total: int | None, initial: int) -> None:
        if self.enabled:
            # disable=None: a bar on a terminal, none in redirected logs (the log lines carry the numbers)
            self.bar = tqdm(
                total=total, initial=initial, unit="step", dynamic_ncols=True, file=sys.stderr, mininterval=1.0, disable=None
            )

    def progress(self, steps: int = 1, **postfix: str) -> None:
        if self.bar is not None:
            if postfix:
                self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(steps)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
            self.writer = None
        for handler in list(self.logger.handlers):
            handler.close()
            self.logger.removeHandler(handler)
