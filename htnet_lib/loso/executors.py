"""Executors: where the chunks of folds of one or several runs train (the unit of work is one chunk of one run).

`in-process` (the default) trains them one after another in this process. `ray` (issue 11) hands each chunk to a
Ray task. Whatever the placement, a fold's predictions depend only on its params and its seed (`folds.fold_seed`).

An executor has one method, `run(tasks, done, on_epoch)`: each task is (job, X, y, plans); for each finished task it
calls `done(task, records, seconds, worker)` in this process, which writes the fold files; `on_epoch(n)` advances the
progress bar by n fold-epochs.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Sequence

from ..config import RunConfig
from .engines import ENGINES


def train_chunk(X, y, plans, params, engine: str, on_epoch: Callable[[int], None] | None = None):
    """Train one chunk of folds with `engine`: (records, seconds)."""
    t0 = time.perf_counter()
    records = ENGINES[engine](X, y, plans, params, on_epoch=on_epoch)
    return records, time.perf_counter() - t0


class InProcess:
    """Every chunk in this process, in order; progress advances epoch by epoch."""

    name = "in-process"

    def run(self, tasks: Sequence[tuple], done: Callable[..., None], on_epoch: Callable[[int], None]) -> None:
        for task in tasks:
            job, X, y, plans = task
            records, seconds = train_chunk(X, y, plans, job.params, job.engine, on_epoch)
            done(task, records, seconds)


def resolve_executor(run: RunConfig, executor: Any = None) -> Any:
    """The executor a run config asks for (an explicit `executor` object wins)."""
    return executor if executor is not None else InProcess()
