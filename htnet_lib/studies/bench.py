"""Benchmark (a script that prints figures, never a test): the engines' speed on this machine, against the machine's
own fp32 matrix-multiply rate measured in the same run, and Ray against the best in-process engine end to end.

The bench file (`params/<level>/bench.yaml`) is a study file (`studies.spec`): its `configs` sweep lists the
configurations to time (the level's model, the paper's), and its options say how long to time them. Printed:

1. the GEMM rate: an n x n fp32 matrix product on the run's threads (and on one thread), median of `repeats`;
2. per configuration and engine (the loop; the batched engine at each chunk size): training samples per second
   (median of `repeats` timings of `epochs` epochs, the first excluded as warm-up), the time of a full LOSO
   extrapolated from it, FLOP/s (`models.flops_per_sample` x samples/s) and that as a fraction of the GEMM rate. On a
   CPU a model above 50 MFLOP per sample (the paper's) is timed once, on one fold (loop) and two (batched). With
   `compile`, the fastest chunk through torch.compile too, and what compiling costs a fresh process with an empty
   and with a warm on-disk inductor cache (what a run would pay first on a machine, then every later time);
   where each configuration's time goes (torch.profiler: the top operations and their costliest input shapes, the
   matrix products' share of the time and their rate at the model's own shapes, the time in short calls);
3. end to end, side by side in one run (`ray_workers` > 0 and Ray installed): the level's LOSO (seed 0, all folds) and
   one of its sweeps (`ray_sweep`, seed 0) trained in-process with the best engine found in 2, then on a local Ray
   with `ray_workers` one-thread workers running the same engine, and running the loop (a fold per task); wall
   seconds and their ratios, from empty run folders.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import torch
from pydantic import Field, StrictInt

from .. import data as data_mod
from .. import regions
from .._io import atomic_write_json, atomic_write_text, git_revision, hardware, torch_threads
from ..config import Ints, Params, Section, params_from_dict
from ..loso import engines, plan_folds, run_many
from ..models import flops_per_sample, geometry
from .spec import Study, load_study

if TYPE_CHECKING:
    import pandas as pd

Positive = Annotated[StrictInt, Field(gt=0)]
HEAVY_FLOPS = 50e6  # per training sample: above it (the paper's model) a CPU times one repeat of one or two folds


class BenchOptions(Section):
    """The bench file's own keys."""

    epochs: Positive = 3  # epochs per timing; the first is warm-up
    repeats: Positive = 3  # timings per measurement; medians are printed
    loop_folds: Positive = 2  # folds the loop trains per timing
    chunks: Ints = (4, 16)  # batched chunk sizes, timed smallest first until one is slower than the one before
    compile: bool = False  # also the fastest chunk through torch.compile, and compiling in fresh processes
    gemm_size: Positive = 1024
    profile_ops: Annotated[StrictInt, Field(ge=0)] = 6  # per configuration, the operations that take the most time
    ray_workers: Annotated[StrictInt, Field(ge=0)] = 2  # one-thread Ray workers for the end-to-end comparison; 0: skip
    ray_study: str = ""  # a study file (beside this one) whose sweep `ray_sweep` is trained end to end
    ray_sweep: str = ""


def gemm_rate(n: int = 1024, threads: int | None = None, seconds: float = 1.0, device: str = "cpu") -> float:
    """FLOP/s of an n x n fp32 matrix product (2 n^3 FLOPs) on `device` (on a CPU: `threads` torch threads)."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        dev = torch.device(device)
        a, b = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
        for _ in range(3):
            a @ b
        engines._sync(dev)
        t0, k = time.perf_counter(), 0
        while time.perf_counter() - t0 < seconds:
            a @ b
            k += 1
        engines._sync(dev)
        return 2 * n ** 3 * k / (time.perf_counter() - t0)
    finally:
        torch.set_num_threads(before)


def _timing_inputs(params: Params, samples) -> tuple[list, torch.Tensor, torch.Tensor]:
    """The folds of `params` and the model inputs and labels on its device."""
    device = engines.resolve_device(params.run.device)
    X = regions.model_inputs(samples, data_mod.load_flow_maps(samples), params.train, geometry(params.model),
                             progress=False).to(device)
    return plan_folds(samples, params.train), X, torch.tensor(samples["label"].to_numpy(), device=device)


def engine_timings(params: Params, opts: BenchOptions, samples=None) -> dict[str, Any]:
    """Samples/s of the loop and of the batched engine at each chunk size for one configuration (medians). Chunks are
    timed smallest first, and none larger than one that was slower than the chunk before it (stacking more has
    stopped paying). With `compile`, the fastest batched chunk is timed through torch.compile too, with what compiling
    costs a fresh process: once with an empty on-disk inductor cache and once with the cache the first one left."""
    device = engines.resolve_device(params.run.device)
    samples = data_mod.load_samples(params.run.data_dir or None) if samples is None else samples
    plans, X, y = _timing_inputs(params, samples)
    probe = engines.probe_params(params, opts.epochs)
    same = engines.same_batch_count(plans, probe)
    flops = flops_per_sample(params.model, train=True)
    heavy = device.type == "cpu" and flops > HEAVY_FLOPS  # the paper's model on a CPU: timed once, on few folds
    repeats, loop_folds, chunks = (1, 1, (2,)) if heavy else (opts.repeats, opts.loop_folds, opts.chunks)
    n_train = float(np.mean([len(p.train_idx) for p in plans]))
    kinds: dict[str, tuple[str, list]] = {}
    out: dict[str, dict[str, Any]] = {}

    def timed(name: str, engine: str, chunk: list, **options: Any) -> float:
        kinds[name] = (engine, chunk)
        t0 = time.perf_counter()
        secs = [engines.seconds_per_fold_epoch(engine, X, y, chunk, probe, **options) for _ in range(repeats)]
        wall = time.perf_counter() - t0
        s = statistics.median(secs)
        out[name] = {"samples_per_s": n_train / s, "fold_epochs_per_s": 1 / s,
                     "samples_per_s_all": [round(n_train / v) for v in secs],
                     "full_loso_s": s * len(plans) * params.train.epochs, "flop_per_s": n_train / s * flops}
        if options:  # what the timed epochs leave out: mostly compilation, paid once per shape and process
            out[name]["overhead_s"] = wall - sum(secs) * len(chunk) * (probe.train.epochs - 1)
        return out[name]["samples_per_s"]

    timed("loop", "loop", same[:loop_folds])
    stacked: list[str] = []
    if engines.batchable(params.model):
        before = 0.0
        for c in sorted(c for c in chunks if c <= len(same)):
            stacked.append(f"batched@{c}")
            rate = timed(stacked[-1], "batched", same[:c])
            if rate < before:
                break
            before = rate
    if opts.compile and not heavy and stacked:
        fastest = max(stacked, key=lambda k: out[k]["samples_per_s"])
        timed(fastest + "+compile", "batched", kinds[fastest][1], compile=True)
        with tempfile.TemporaryDirectory(prefix="htnet-inductor-") as cache:
            for when in ("cold", "warm"):
                seconds = compile_overhead(probe, len(kinds[fastest][1]), cache)
                out[fastest + "+compile"][f"compile_{when}_s"] = seconds
    result = {"flops_per_sample": flops, "engines": out, "folds": len(plans), "epochs": params.train.epochs}
    if opts.profile_ops:
        plain = [k for k in out if not k.endswith("+compile")]
        best = max(plain, key=lambda k: out[k]["samples_per_s"])
        result["profile"] = {"engine": best, **time_shares(X, y, kinds[best][1], probe, kinds[best][0],
                                                            opts.profile_ops)}
        if best == "loop" and stacked:  # where the batched engine's time goes when it loses to the loop
            fastest = max(stacked, key=lambda k: out[k]["samples_per_s"])
            result["profile_batched"] = {"engine": fastest, **time_shares(X, y, kinds[fastest][1], probe,
                                                                           "batched", opts.profile_ops)}
    return result


def compile_overhead(params: Params, chunk: int, cache: str | os.PathLike) -> float:
    """Seconds a fresh Python process spends outside the timed epochs when it trains the first `chunk` batchable
    folds of `params` with the batched engine through torch.compile, with inductor's on-disk cache in `cache`
    (`TORCHINDUCTOR_CACHE_DIR`): compiling from nothing when the folder is empty, mostly loading what an earlier
    process compiled when it is not. On this process's thread count."""
    spec = {"params": params.to_flat(), "extra": list(params.extra), "chunk": chunk,
            "threads": torch.get_num_threads()}
    done = subprocess.run([sys.executable, "-m", "htnet_lib.studies.bench", json.dumps(spec)],
                          env={**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(cache)}, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"the compile timing process failed:\n{done.stderr[-3000:]}")
    return float(done.stdout.split()[-1])


def _compile_overhead_here(spec: dict[str, Any]) -> float:
    """`compile_overhead` inside the fresh process."""
    torch.set_num_threads(spec["threads"])
    p = params_from_dict(spec["params"], source="<bench>", extra_keys=tuple(spec["extra"]))
    plans, X, y = _timing_inputs(p, data_mod.load_samples(p.run.data_dir or None))
    chunk = engines.same_batch_count(plans, p)[:spec["chunk"]]
    t0 = time.perf_counter()
    s = engines.seconds_per_fold_epoch("batched", X, y, chunk, p, compile=True)
    return time.perf_counter() - t0 - s * len(chunk) * (p.train.epochs - 1)


GEMM_OPS = ("aten::mm", "aten::bmm", "aten::addmm", "aten::baddbmm")  # the matrix products
SMALL_CALL_US = 20  # a call shorter than this on average mostly pays dispatch overhead


def time_shares(X: torch.Tensor, y: torch.Tensor, plans, params: Params, engine: str, top: int) -> dict[str, Any]:
    """Where one training of `plans` with `engine` spends its time (torch.profiler, own time per operation): `ops`, the
    `top` operations, each as [name, share of all operations' own time, its costliest input shapes, their share];
    `gemm_share` and `gemm_flop_per_s`, the matrix products' (`GEMM_OPS`) share of the time and their FLOP/s at the
    model's own shapes (against the bench's large-GEMM rate: how near the machine's peak these shapes can get); and
    `small_call_share`, the time in calls of under `SMALL_CALL_US` microseconds on average (what fewer, larger
    operations could save). Own time on the GPU where the inputs are there. The profiler's own overhead is in every
    figure: rates are lower than unprofiled ones."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if X.is_cuda else []),
                 record_shapes=True, with_flops=True) as prof:
        engines.train(X, y, plans, params, engine)
    own = (lambda e: e.self_device_time_total) if X.is_cuda else (lambda e: e.self_cpu_time_total)
    groups: dict[str, list] = {}  # operation -> its events, one per distinct set of input shapes
    for e in prof.key_averages(group_by_input_shape=True):
        if not e.key.startswith(("Optimizer.", "autograd::", "ProfilerStep")):
            groups.setdefault(e.key, []).append(e)
    events = [e for g in groups.values() for e in g]
    total = sum(own(e) for e in events) or 1.0
    ranked = sorted(groups.items(), key=lambda kv: sum(own(e) for e in kv[1]), reverse=True)[:top]
    ops = []
    for name, group in ranked:
        costliest = max(group, key=own)
        shapes = ", ".join(str(list(s)) for s in costliest.input_shapes if s)
        ops.append([name, round(sum(own(e) for e in group) / total, 3), shapes,
                    round(own(costliest) / total, 3)])
    gemm = [e for e in events if e.key in GEMM_OPS]
    gemm_us = sum(own(e) for e in gemm)
    small_us = sum(own(e) for e in events if e.count and own(e) / e.count < SMALL_CALL_US)
    return {"ops": ops, "gemm_share": round(gemm_us / total, 3),
            "gemm_flop_per_s": sum(e.flops for e in gemm) / (gemm_us * 1e-6) if gemm_us else 0.0,
            "small_call_share": round(small_us / total, 3)}


def op_text(op: list, shapes: bool = True, mark: str = "`") -> str:
    """One profiled operation as text: its name and share and, with `shapes` (where the profile has them), the share
    spent on its costliest input shapes."""
    text = f"{mark}{op[0]}{mark} {op[1]:.0%}"
    return text + (f" ({op[3]:.0%} on {op[2]})" if shapes and len(op) > 2 and op[2] else "")


def end_to_end(params_list: list[Params], workers: int, engine: str, chunk: int) -> dict[str, float]:
    """Wall seconds to train `params_list` from empty run folders: in-process (its engine and chunk), and on a local
    Ray with `workers` one-thread workers, once with the same engine and chunk ('ray') and once with the loop, a fold
    per task ('ray-loop'; skipped when the in-process engine is the loop)."""
    variants = {"in-process": dict(engine=engine, fold_chunk=chunk),
                "ray": dict(executor="ray", workers=workers, worker_threads=1, engine=engine, fold_chunk=chunk)}
    if engine != "loop":
        variants["ray-loop"] = dict(executor="ray", workers=workers, worker_threads=1, engine="loop", fold_chunk=1)
    out = {}
    with tempfile.TemporaryDirectory(prefix="htnet-bench-") as tmp:
        for name, change in variants.items():
            runs = [p.replace(runs_dir=os.path.join(tmp, name), progress=False, **change) for p in params_list]
            t0 = time.perf_counter()
            run_many(runs, progress=False)
            out[name] = time.perf_counter() - t0
    return out


def benchmark(study: Study | str | os.PathLike) -> dict[str, Any]:
    """Every figure of the module docstring, as a dict (`format_report` prints it)."""
    study = study if isinstance(study, Study) else load_study(study, BenchOptions)
    with torch_threads(study.base.run.threads):  # the caller's count comes back after
        return _benchmark(study)


def _benchmark(study: Study) -> dict[str, Any]:
    opts: BenchOptions = study.options
    threads = torch.get_num_threads()
    device = str(engines.resolve_device(study.base.run.device))
    result: dict[str, Any] = {"hardware": hardware(device), "threads": threads, "ray_workers": opts.ray_workers,
                              "gemm_flop_per_s": statistics.median(gemm_rate(opts.gemm_size, device=device)
                                                                   for _ in range(opts.repeats)),
                              "gemm_flop_per_s_1_thread": gemm_rate(opts.gemm_size, threads=1, device=device),
                              "configs": {}}
    samples = data_mod.load_samples(study.base.run.data_dir or None)
    points = study.sweeps["configs"].points if "configs" in study.sweeps else []
    for point in points or [None]:
        p = point.params if point else study.base
        result["configs"][point.label if point else "base"] = engine_timings(p, opts, samples)
    if opts.ray_workers:
        try:
            from ..loso.executors import import_ray
            import_ray()
        except Exception as e:  # noqa: BLE001 - the bench reports what it could not measure
            result["ray"] = f"not measured: {e}"
            return result
        first = result["configs"][next(iter(result["configs"]))]["engines"]
        plain = [k for k in first if not k.endswith("+compile")]  # runs do not compile (see engines.train_batched)
        best = max(plain, key=lambda k: first[k]["samples_per_s"])
        engine, chunk = ("loop", 1) if best == "loop" else ("batched", int(best.split("@")[1]))
        base = study.base.replace(seeds=[])
        result["ray"] = {"best_in_process": best, "loso": end_to_end([base], opts.ray_workers, engine, chunk)}
        if opts.ray_study and opts.ray_sweep:
            sweep = load_study(study.path.parent / opts.ray_study).sweeps[opts.ray_sweep]
            plist = [pt.params.replace(seeds=[]) for pt in sweep.points]
            result["ray"]["sweep"] = end_to_end(plist, opts.ray_workers, engine, chunk)
            result["ray"]["sweep_name"] = f"{opts.ray_study}: {opts.ray_sweep} ({len(plist)} points, seed 0)"
    return result


def save(result: dict[str, Any], path: str | os.PathLike, study: str | os.PathLike) -> None:
    """`benchmark`'s figures as JSON at `path` (written whole or not at all), with the bench file's name, the git
    revision, torch's version and the date: what the speed pages are rendered from."""
    provenance = {"study": Path(study).as_posix().split("params/")[-1], "git revision": git_revision(),
                  "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")}
    atomic_write_json(path, {**result, "provenance": provenance})
    atomic_write_text(Path(path).with_suffix(".md"), markdown_report({**result, "provenance": provenance}))


def profiles(config: dict[str, Any]) -> list[dict[str, Any]]:
    """A saved configuration's profiles: the fastest uncompiled engine's, then the fastest batched engine's where the
    loop was faster."""
    return [config[k] for k in ("profile", "profile_batched") if k in config]


def gemm_text(profile: dict[str, Any]) -> str:
    """A profile's matrix products as text: their share of the time and their GFLOP/s at the model's own shapes."""
    if "gemm_share" not in profile:
        return ""
    return f"{profile['gemm_share']:.0%} at {profile['gemm_flop_per_s'] / 1e9:.1f} GFLOP/s"


def compile_saving(config: dict[str, Any], compiled: str) -> float:
    """Seconds the compiled engine `compiled` saves on a whole LOSO of a saved configuration's epochs, against the same
    chunk uncompiled (compiling not counted)."""
    e = config["engines"]
    return e[compiled.removesuffix("+compile")]["full_loso_s"] - e[compiled]["full_loso_s"]


def markdown_report(r: dict[str, Any]) -> str:
    """The engine timings and profiles of a saved bench as markdown tables (what docs/speed.md shows)."""
    gemm = r["gemm_flop_per_s"]
    p = r.get("provenance", {})
    out = [f"{r['hardware']}: fp32 GEMM {gemm / 1e9:.1f} GFLOP/s "
           f"({r['gemm_flop_per_s_1_thread'] / 1e9:.1f} on one thread); `{p.get('study', '')}`, "
           f"{p.get('date', '')}, revision {p.get('git revision', '')[:7]}, torch {p.get('torch', '')}.", "",
           "| configuration | engine | fold-epochs/s | samples/s | GFLOP/s | share of GEMM | / loop |",
           "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, c in r["configs"].items():
        loop = c["engines"]["loop"]["samples_per_s"]
        for eng, e in c["engines"].items():
            out.append(f"| {name} | {eng} | {e['fold_epochs_per_s']:.2f} | {e['samples_per_s']:.0f} | "
                       f"{e['flop_per_s'] / 1e9:.1f} | {e['flop_per_s'] / gemm:.1%} | {e['samples_per_s'] / loop:.2f}x |")
    compiled = [(name, eng, e) for name, c in r["configs"].items() for eng, e in c["engines"].items()
                if "compile_cold_s" in e]
    if compiled:
        out += ["", "What compiling costs a fresh process (outside the timed epochs), with an empty inductor cache and "
                "with the one an earlier process left, against the time the compiled rate saves on a whole LOSO of "
                "the configuration's epochs (a LOSO compiles once per chunk shape):", "",
                "| configuration | engine | empty cache, s | warm cache, s | LOSO time saved, s |",
                "| --- | --- | ---: | ---: | ---: |"]
        for name, eng, e in compiled:
            out.append(f"| {name} | {eng} | {e['compile_cold_s']:.0f} | {e['compile_warm_s']:.0f} | "
                       f"{compile_saving(r['configs'][name], eng):.0f} |")
    out += ["", "Where each configuration's fastest engine spends its time, and the fastest batched engine's where the "
            "loop was faster (torch.profiler, own time per operation, and in brackets the share spent on the "
            "operation's costliest input shapes):",
            "", "| configuration | engine | operations | matrix products: time, GFLOP/s | calls under "
            f"{SMALL_CALL_US} µs |", "| --- | --- | --- | ---: | ---: |"]
    for name, c in r["configs"].items():
        for prof in profiles(c):
            ops = ", ".join(op_text(op) for op in prof["ops"])
            small = f"{prof['small_call_share']:.0%}" if "small_call_share" in prof else ""
            out.append(f"| {name} | {prof['engine']} | {ops} | {gemm_text(prof)} | {small} |")
    return "\n".join(out) + "\n"


def format_report(r: dict[str, Any]) -> str:
    gemm = r["gemm_flop_per_s"]
    lines = [f"hardware: {r['hardware']}",
             f"fp32 GEMM rate: {gemm / 1e9:.1f} GFLOP/s on {r['threads']} thread(s) "
             f"({r['gemm_flop_per_s_1_thread'] / 1e9:.1f} on one)"]
    for name, c in r["configs"].items():
        lines.append(f"\n{name}: {c['flops_per_sample'] / 1e6:.2f} MFLOP per training sample, "
                     f"{c['folds']} folds x {c['epochs']} epochs")
        for eng, e in c["engines"].items():
            label = "loop (authors' style)" if eng == "loop" else f"batched, {eng.split('@')[1]} folds at once"
            label = label.replace("+compile", "") + (", compiled" if eng.endswith("+compile") else "")
            lines.append(f"  {label:36s} {e['fold_epochs_per_s']:7.2f} fold-epochs/s {e['samples_per_s']:7.0f} samples/s  "
                         f"full LOSO {e['full_loso_s']:8.0f} s  "
                         f"{e['flop_per_s'] / 1e9:6.1f} GFLOP/s = {e['flop_per_s'] / gemm:5.1%} of GEMM  "
                         f"(timings: {e['samples_per_s_all']})")
            if "overhead_s" in e:
                lines.append(f"  {'':36s} + {e['overhead_s']:.0f} s outside the timed epochs (compilation) in "
                             f"{len(e['samples_per_s_all'])} calls in one process")
            if "compile_cold_s" in e:
                lines.append(f"  {'':36s} compiling in a fresh process: {e['compile_cold_s']:.0f} s with an empty "
                             f"inductor cache, {e['compile_warm_s']:.0f} s with a warm one; the compiled rate saves "
                             f"{compile_saving(c, eng):.0f} s on a whole LOSO")
        best = max(c["engines"], key=lambda k: c["engines"][k]["samples_per_s"])
        if best != "loop":
            lines.append(f"  best ({best}) / loop: {c['engines'][best]['samples_per_s'] / c['engines']['loop']['samples_per_s']:.2f}x")
        for prof in profiles(c):
            ops = ", ".join(op_text(op, mark="") for op in prof["ops"])
            lines.append(f"  where {prof['engine']}'s time goes (own time per operation): {ops}")
            if "gemm_share" in prof:
                lines.append(f"  {'':2s}matrix products {gemm_text(prof)} (GEMM {gemm / 1e9:.1f}); calls under "
                             f"{SMALL_CALL_US} µs {prof['small_call_share']:.0%} of the time")
    ray = r.get("ray")
    if isinstance(ray, str):
        lines.append(f"\nRay: {ray}")
    elif ray:
        for key, what in (("loso", "the LOSO (seed 0)"), ("sweep", ray.get("sweep_name", ""))):
            if key in ray:
                t = ray[key]
                lines.append(f"\nend to end, {what}: in-process ({ray['best_in_process']}) {t['in-process']:.0f} s")
                for variant, engine in (("ray", ray["best_in_process"]), ("ray-loop", "loop")):
                    if variant in t:
                        lines.append(f"  Ray ({r['ray_workers']} one-thread workers, {engine}) {t[variant]:.0f} s: "
                                     f"Ray / in-process speed {t['in-process'] / t[variant]:.2f}x")
    return "\n".join(lines)


def estimate_level(params_dir: str | os.PathLike, rates: tuple[float, ...] = (20e12, 100e12)) -> pd.DataFrame:
    """What a params level costs, notebook by notebook, from counted FLOPs (`models.flops_per_sample`): training
    (forward + backward on every fold's training samples, every epoch) and scoring (forward on the held-out and inner
    samples at every evaluated epoch), summed over the distinct runs each notebook trains (a run another notebook
    already trained counts once, where it is first trained). Hours at the assumed sustained `rates` (FLOP/s)."""
    import pandas as pd

    from .. import data as data_mod
    from ..config import load_params
    from ..loso.folds import run_flops
    from .audit import AuditOptions

    d = Path(params_dir)
    samples = data_mod.load_samples(load_params(d / "loso.yaml").run.data_dir or None)
    seen: set[str] = set()
    folds_cache: dict[tuple, list] = {}
    rows = []

    def cost(params_list) -> tuple[int, float]:
        runs, flops = 0, 0.0
        for p in params_list:
            key = p.fingerprint()
            if key in seen:
                continue
            seen.add(key)
            runs += 1
            fk = (p.train.folds, p.train.datasets, p.train.inner_val_subjects, p.train.seed)
            flops += run_flops(p, folds_cache.setdefault(fk, plan_folds(samples, p.train)))
        return runs, flops

    loso_p = load_params(d / "loso.yaml")
    items = [("03 LOSO (Table 2)", [loso_p.replace(seed=s) for s in (loso_p.run.seeds or (loso_p.train.seed,))])]
    if (d / "ablations.yaml").is_file():
        items.append(("04 ablations (Tables 4-5, Figs. 5-6)", load_study(d / "ablations.yaml").all_params()))
    if (d / "audit.yaml").is_file():
        a = load_study(d / "audit.yaml", AuditOptions)
        items.append(("05 protocol audit", a.seeded(a.base) + [a.base.replace(seed=s, label_shuffle=True)
                                                                for s in a.options.label_shuffle_seeds]))
    if (d / "honest.yaml").is_file():
        items.append(("07 honest study", load_study(d / "honest.yaml").all_params()))
    for name, plist in items:
        runs, flops = cost(plist)
        row = {"notebook": name, "new runs": runs, "PFLOP": float(f"{flops / 1e15:.3g}")}
        for r in rates:
            row[f"hours at {r / 1e12:.0f} TFLOP/s"] = float(f"{flops / r / 3600:.3g}")
        rows.append(row)
    return pd.DataFrame(rows)


if __name__ == "__main__":  # `compile_overhead`'s fresh process
    print(_compile_overhead_here(json.loads(sys.argv[1])))
