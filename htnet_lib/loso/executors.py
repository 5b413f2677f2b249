"""Executors: where the chunks of folds of one or several runs train. The unit of work is one chunk of folds of one
run (`folds.make_chunks`); sweeps and seed lists hand all their runs' chunks over at once (`runs.run_many`).

- `in-process` (the default): every chunk in this process, one after another; progress advances epoch by epoch.
- `ray`: every chunk is a Ray task (https://docs.ray.io). A local Ray is started for the run (`workers` tasks at a
  time, `worker_threads` torch threads each) unless `ray_address` names a running cluster. On CUDA a task asks for
  `gpu_fraction` of a GPU, so several chunks can share one. Ray is an optional extra: `pip install -e .[cluster]`.

Whatever the placement, a fold's predictions depend only on its params and its seed (`folds.fold_seed`) and, as for
any float computation, on the engine and the thread count a chunk runs with; a test checks that a sweep gives the same
predictions on Ray as in this process. Workers only compute: the driver, which holds every run's lock, writes the
fold files as tasks finish.

An executor has one method, `run(tasks, done, on_epoch)`: each task is (job, X, y, plans); for each finished task it
calls `done(task, records, seconds, worker)` in this process; `on_epoch(n)` advances the progress bar by n
fold-epochs.

A Ray task whose worker dies (a crash, the out-of-memory killer, a lost node) is retried once by Ray; when it dies
again the run stops with `WorkersLost`, one message that names the run and says that rerunning resumes it: the chunks
finished before are already saved.
"""
from __future__ import annotations

import hashlib
import os
import socket
import time
from typing import Any, Callable, Sequence

import torch

from .._io import HTNetInputError
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


class WorkersLost(HTNetInputError):
    """A Ray task's worker died on every try: the run stops; the chunks finished before are saved, so a rerun resumes."""

    def __init__(self, task: tuple, error: Exception):
        job, plans = task[0], task[3]
        subjects = ", ".join(p.subject for p in plans)
        super().__init__(job.run.dir, "executor", f"the Ray worker training folds {subjects} was lost on each of its "
                                                  f"tries ({type(error).__name__}: it crashed, or was killed, e.g. "
                                                  f"for memory); the folds finished so far are saved: rerun the same "
                                                  f"command to resume the run from them (or use executor: "
                                                  f"in-process)")


def _lost_worker_errors(ray) -> tuple[type[BaseException], ...]:
    """Ray's errors for a task whose worker (or node) died, rather than an error raised by the task's own code."""
    names = ("WorkerCrashedError", "OutOfMemoryError", "NodeDiedError", "ObjectLostError")
    return tuple(c for c in (getattr(ray.exceptions, n, None) for n in names) if isinstance(c, type))


def _ray_task(X, y, plans, params, engine: str, threads: int, device: str):
    """A Ray task: one chunk on `threads` torch threads; returns (records, seconds, worker)."""
    torch.set_num_threads(threads)
    records, seconds = train_chunk(X.to(device), y.to(device), plans, params, engine)
    return records, seconds, worker_name()


def worker_name() -> str:
    """Which process trained a chunk, for run.json: the node as a short hash of its name (tells a cluster's nodes
    apart without writing a machine's name into a committed file) and the process id."""
    return f"node {hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]}, pid {os.getpid()}"


def import_ray():
    try:
        import ray
    except ImportError:
        raise HTNetInputError(None, "executor", "executor: ray needs Ray, an optional extra: pip install -e '.[cluster]' "
                                                "(or pip install ray)") from None
    return ray


class RayExecutor:
    """Each chunk a Ray task, on a local Ray started for the run or on the cluster at `ray_address`."""

    name = "ray"

    def __init__(self, run: RunConfig):
        self.cfg = run

    def run(self, tasks: Sequence[tuple], done: Callable[..., None], on_epoch: Callable[[int], None]) -> None:
        ray = import_ray()
        started = not ray.is_initialized()
        if started:
            if self.cfg.ray_address:
                ray.init(address=self.cfg.ray_address, log_to_driver=False)
            else:
                cpus = (self.cfg.workers or os.cpu_count() or 1) * self.cfg.worker_threads
                ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
        try:
            self._run(ray, tasks, done, on_epoch)
        finally:
            if started:
                ray.shutdown()

    def _run(self, ray, tasks, done, on_epoch) -> None:
        shared: dict[int, Any] = {}  # one object-store copy of each distinct input tensor
        pending = {}
        for task in tasks:
            job, X, y, plans = task
            for t in (X, y):
                if id(t) not in shared:
                    shared[id(t)] = ray.put(t.cpu())
            gpu = self.cfg.gpu_fraction if job.device.type == "cuda" else 0
            remote = ray.remote(num_cpus=self.cfg.worker_threads, num_gpus=gpu, max_retries=1)(_ray_task)
            ref = remote.remote(shared[id(X)], shared[id(y)], plans, job.params, job.engine, self.cfg.worker_threads,
                                str(job.device))
            pending[ref] = task
        lost = _lost_worker_errors(ray)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                task = pending.pop(ref)
                try:
                    records, seconds, worker = ray.get(ref)
                except lost as e:  # Ray's retry (max_retries=1) died too
                    raise WorkersLost(task, e) from None
                done(task, records, seconds, worker)
                on_epoch(len(task[3]) * task[0].params.train.epochs)


def resolve_executor(run: RunConfig, executor: Any = None) -> Any:
    """The executor a run config asks for (an explicit `executor` object wins)."""
    if executor is not None:
        return executor
    if run.executor == "ray":
        import_ray()  # a clear message before anything trains
        return RayExecutor(run)
    return InProcess()
