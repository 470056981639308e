"""DDP through torchrun on CPU (gloo): same result as one process, rank 0 writes, restarts recover."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nmt.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _train_args(toy: Path, run_dir: Path, *extra: str) -> list[str]:
    corpus = [f"data.{split}.{side}={toy}/{split}.{side}" for split in ("train", "valid") for side in ("src", "tgt")]
    return ["--config", str(ROOT / "configs" / "tiny.yaml"), f"run_dir={run_dir}", *corpus, *extra]


def _torchrun(ranks: int, *args: str, restarts: int = 0) -> list[str]:
    return [
        str(BIN / "torchrun"),
        "--standalone",
        f"--nproc_per_node={ranks}",
        f"--max-restarts={restarts}",
        str(BIN / "nmt-train"),
        *args,
    ]


def _single(*args: str) -> list[str]:
    return [str(BIN / "nmt-train"), *args]


def _run(command: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def two_vs_one(toy, tmp_path_factory) -> dict:
    """The same 12 updates: 2 ranks x 1 batch, and 1 process accumulating 2 batches."""
    tmp = tmp_path_factory.mktemp("ddp")
    common = ("train.max_steps=12", "train.eval_every_steps=6", "train.log_every_steps=3")
    _run(_single(*_train_args(toy, tmp / "one", "train.accumulate_steps=2", *common)))
    spm = f"tokenizer.model_file={tmp / 'one' / 'spm.model'}"  # both runs must share one tokenizer
    _run(_torchrun(2, *_train_args(toy, tmp / "two", spm, *common)))
    return {"one": tmp / "one", "two": tmp / "two"}


def test_two_ranks_match_one_process_with_the_same_global_batch(two_vs_one):
    one = load_checkpoint(two_vs_one["one"] / "checkpoints" / "last.pt")
    two = load_checkpoint(two_vs_one["two"] / "checkpoints" / "last.pt")
    assert one["state"]["step"] == two["state"]["step"] == 12
    assert two["state"]["batch_in_epoch"] == one["state"]["batch_in_epoch"] == 24  # 2 batches per update
    for name, weight in one["model"].items():
        assert torch.allclose(weight, two["model"][name], atol=1e-5, rtol=1e-4), name
    assert len(two["rng"]) == 2 and len(one["rng"]) == 1  # every rank's RNG streams are saved


def test_rank_zero_alone_writes(two_vs_one):
    run_dir = two_vs_one["two"]
    assert len(list((run_dir / "tensorboard").glob("events.out.tfevents.*"))) == 1
    log = (run_dir / "train.log").read_text()
    assert log.count("validation at step 6:") == 1 and log.count("saved ") == 2
    assert "2 ranks (DDP)" in log and "on rank 0)" in log
    assert len(list((run_dir / "store").iterdir())) == 1, "rank 0 encodes the corpus once; rank 1 maps its store"


@pytest.mark.parametrize("weights", [None, (3, 1)])
def test_over_an_epoch_the_ranks_train_on_every_pair_of_the_epoch_once(toy, tmp_path, weights):
    """Every pair once, or with corpora mixed by weight, exactly the epoch's draw (repeats included)."""
    from nmt.config import DataConfig, TokenizerConfig, TrainCorpusConfig
    from nmt.data import iter_side
    from nmt.store import CorpusStore, TrainingCorpus, ensure_store
    from nmt.tokenizer import build_tokenizer
    from nmt.trainer import rank_share

    halves = _split_in_two(toy / "train", tmp_path) if weights else [toy / "train"]
    corpora = [TrainCorpusConfig(src=f"{half}.src", tgt=f"{half}.tgt", weight=w) for half, w in zip(halves, weights or [None])]
    sides = [iter_side(corpora[0], "data.train", side) for side in ("src", "tgt")]
    tokenizer = build_tokenizer(TokenizerConfig(vocab_size=40), *sides, print)
    stores = [CorpusStore.open(ensure_store(c, f"data.train.{i}", tokenizer, tmp_path, print)) for i, c in enumerate(corpora)]
    data, _ = TrainingCorpus.filtered(stores, DataConfig(train=tuple(corpora), max_len=8))
    assert 0 < data.size < sum(store.size for store in stores)  # some pairs are filtered out
    for ranks, per_rank in ((2, 1), (2, 3), (3, 2)):
        batches = data.epoch_batches(7, 1, 200, 0)
        trained = []
        for start in range(0, len(batches), ranks * per_rank):
            group = batches[start : start + ranks * per_rank]
            for rank in range(ranks):
                mine, weight = rank_share(group, rank, per_rank)
                if weight:
                    trained += [int(i) for batch in mine for i in batch]
        assert sorted(trained) == sorted(batches.order.tolist()), (ranks, per_rank)
        if weights:
            assert len(set(trained)) < len(trained) and len(trained) == data.size  # the small half repeats
        else:
            assert sorted(trained) == list(range(data.size))


def _split_in_two(prefix: Path, out: Path) -> list[Path]:
    """The corpus at prefix.src/.tgt as two corpora: its first quarter and the rest."""
    parts = [out / "a", out / "b"]
    for side in ("src", "tgt"):
        lines = Path(f"{prefix}.{side}").read_text().splitlines(keepends=True)
        cut = len(lines) // 4
        Path(f"{parts[0]}.{side}").write_text("".join(lines[:cut]))
        Path(f"{parts[1]}.{side}").write_text("".join(lines[cut:]))
    return parts


def test_resume_on_a_different_number_of_ranks(two_vs_one, tmp_path):
    """A 2-rank run continues on 1 process: same data position, reseeded dropout streams."""
    import shutil

    run_dir = tmp_path / "copy"
    shutil.copytree(two_vs_one["two"], run_dir)
    stored = load_checkpoint(run_dir / "checkpoints" / "last.pt")["config"]
    (data,) = stored["data"]["train"]  # a list of corpora, here one
    args = [
        "--config",
        str(ROOT / "configs" / "tiny.yaml"),
        f"run_dir={run_dir}",
        f"data.train.src={data['src']}",
        f"data.train.tgt={data['tgt']}",
        f"data.valid.src={stored['data']['valid']['src']}",
        f"data.valid.tgt={stored['data']['valid']['tgt']}",
        f"tokenizer.model_file={stored['tokenizer']['model_file']}",
        "train.max_steps=16",
        "train.eval_every_steps=6",
        "train.log_every_steps=3",
    ]
    _run(_single(*args))
    log = (run_dir / "train.log").read_text()
    assert "checkpoint has RNG streams of 2 ranks, this run has 1: reseeded" in log
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["state"]["step"] == 16


def _worker_pids(launcher: int) -> dict[tuple[int, int], int]:
    """(restart count, rank) -> pid of torchrun's worker processes, read from /proc."""
    found: dict[tuple[int, int], int] = {}
    todo = [launcher]
    while todo:
        pid = todo.pop()
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        env = dict(item.decode(errors="replace").partition("=")[::2] for item in environ if b"=" in item)
        if "RANK" in env and pid != launcher:
            found[(int(env.get("TORCHELASTIC_RESTART_COUNT", "0")), int(env["RANK"]))] = pid
        todo.extend(int(child) for child in children)
    return found


def test_torchrun_restarts_a_killed_rank_from_the_last_checkpoint(toy, tmp_path):
    """SIGKILL rank 1 mid-run: torchrun (--max-restarts=1) restarts both ranks, they resume, the run ends."""
    import signal
    import time

    run_dir = tmp_path / "elastic"
    args = _train_args(toy, run_dir, "train.max_steps=200", "train.eval_every_steps=200", "train.save_every_steps=10")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(tmp_path / "torchrun.log", "w") as out:
        launcher = subprocess.Popen(_torchrun(2, *args, restarts=1), stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + 120
            while not (run_dir / "checkpoints" / "last.pt").exists():
                assert launcher.poll() is None and time.monotonic() < deadline, "no checkpoint before the kill"
                time.sleep(0.2)
            victim = _worker_pids(launcher.pid)[(0, 1)]
            os.kill(victim, signal.SIGKILL)
            assert launcher.wait(timeout=300) == 0, (tmp_path / "torchrun.log").read_text()[-3000:]
        finally:
            launcher.kill()
    log = (run_dir / "train.log").read_text()
    assert "resuming from step" in log, log[-2000:]
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["state"]["step"] == 200


def test_two_nodes_build_the_store_on_each_node_and_share_one_directory(toy, tmp_path):
    """Two torchrun launchers as two nodes of one rank each: both are their node's first rank, so
    both make the store; on one shared data.store_dir they race, and one complete store remains."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    run_dir, store_dir = tmp_path / "run", tmp_path / "shared_store"
    args = _train_args(toy, run_dir, "train.max_steps=4", "train.eval_every_steps=4", f"data.store_dir={store_dir}")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    nodes = []
    for node in (0, 1):
        command = [
            str(BIN / "torchrun"),
            "--nnodes=2",
            "--nproc_per_node=1",
            f"--node_rank={node}",
            "--master_addr=127.0.0.1",
            f"--master_port={port}",
            str(BIN / "nmt-train"),
            *args,
        ]
        nodes.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env))
    outputs = [node.communicate(timeout=300)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], "\n".join(output[-2000:] for output in outputs)
    assert [p.name.startswith("data.train-") for p in store_dir.iterdir()] == [True], "one store, no build left over"
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["state"]["step"] == 4
