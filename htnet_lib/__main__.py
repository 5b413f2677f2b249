"""Command line: `python -m htnet_lib <command>` (or `htnet <command>`).

  fetch      download and verify the authors' release
  verify     check a release folder against the recorded checksums
  loso       train a LOSO run from a params file and print UF1/UAR per dataset and protocol
  sweep      train (or find) every point of a study file's sweeps and print Full UF1/UAR over seeds
  bench      time the authors'-style loop against the batched engine (and the raw-frames pipeline)
  reproduce  run every notebook in order with papermill for one params level (smoke, quick, cpu, paper, honest)
  predict    class probabilities of one micro-expression, from its onset and apex frames or a prepared flow map
  train-weights  train a recipe on all 442 samples and write its weights and card (with its 5-seed honest LOSO score)
  weights    rebuild the shipped weights from their card (seconds) and check them against its sha256
  models     the registered networks with their keys and defaults, and the named presets
  docs       render README.md and docs/*.md from their templates and the files under figures/ (--check: compare)
"""
from __future__ import annotations

import argparse
import sys

from ._io import HTNetInputError


def cmd_fetch(args: argparse.Namespace) -> None:
    from . import data

    dest = data.fetch(args.dest or data.default_dir(), url=args.url)
    print(f"release verified at {dest}\nuse it with: export {data.ENV_VAR}={dest}")


def cmd_verify(args: argparse.Namespace) -> None:
    from . import data

    counts = data.verify_release(args.data_dir)
    print(f"{data.resolve_data_dir(args.data_dir)}: {counts['flow_maps']} flow maps and {counts['faces']} faces match "
          f"the recorded checksums; fingerprint {data.fingerprint(args.data_dir)}")


def cmd_loso(args: argparse.Namespace) -> None:
    import pandas as pd

    from . import loso
    from .config import load_params, parse_set

    sets = parse_set(args.set) | ({"data_dir": args.data_dir} if args.data_dir else {})
    params = load_params(args.params, sets)
    runs = loso.run_seeds(params, name=args.name)
    pd.set_option("display.width", 120)
    for run in runs:
        table = run.metrics().pivot_table(index="scope", columns="protocol", values=["UF1", "UAR"], sort=False)
        print(f"\n{run.dir}\n{table.round(4).to_string()}")
    if len(runs) > 1:
        print("\nover seeds:\n" + loso.seed_summary(runs).round(4).to_string(index=False))
    print("\n" + "\n".join(f"{name}: {loso.label(name)}" for name in runs[0].meta["protocols"]))


def session_set(pairs: list[str]) -> None:
    """`--set KEY=VALUE` of `reproduce` and `sweep`: run settings (how to run, never what) for everything this
    process trains, and every notebook it starts, through $HTNET_SET (joined with what it already holds); checked
    here, before anything trains."""
    if not pairs:
        return
    import json
    import os

    from .config import SESSION_ENV, parse_set, session_overrides

    before = json.loads(os.environ.get(SESSION_ENV) or "{}")
    os.environ[SESSION_ENV] = json.dumps({**before, **parse_set(pairs)})
    session_overrides()


def cmd_sweep(args: argparse.Namespace) -> None:
    import pandas as pd

    from .studies import sweeps

    session_set(args.set)
    pd.set_option("display.width", 120)
    if args.status:
        left = sweeps.remaining(args.study, only=tuple(args.only), seeds=args.seeds)
        print(left.to_string(index=False, formatters={"hours_left": "{:.2f}".format}))
        runs = left.drop_duplicates("run")  # a run two points share counts once
        hours = "" if runs["hours_left"].isna().any() else \
            f", {runs['hours_left'].sum():.1f} hours at the recorded pace (one piece after another)"
        print(f"\n{runs['fold_epochs_left'].sum():,} fold-epochs left in {(runs['folds_left'] > 0).sum()} of "
              f"{len(runs)} runs{hours}")
        return
    r = sweeps.run_sweep(args.study, only=tuple(args.only), seeds=args.seeds)
    full = r.table[r.table["scope"] == "Full"]
    print("Full UF1 / UAR, mean and sd over the study's seeds:\n" + full.groupby(
        ["sweep", "label", "protocol"], sort=False)[["UF1", "UAR"]].agg(["mean", "std"]).round(4).to_string())


def cmd_bench(args: argparse.Namespace) -> None:
    from .studies import bench

    result = bench.benchmark(args.study)
    print(bench.format_report(result), flush=True)
    if args.out:
        bench.save(result, args.out, args.study)
        print(f"written: {args.out}")
    if args.raw:
        from .raw import bench as raw_bench

        for method in ("farneback", "tvl1"):
            r = raw_bench.throughput(method, n_samples=args.raw_samples)
            print(f"raw frames -> release layout, {method:9s} at {r['size'][0]}x{r['size'][1]}, {r['workers']} workers: "
                  f"{r['samples_per_s']:.2f} samples/s ({r['written']} samples in {r['seconds']:.1f} s, "
                  f"face detection and worker start-up included)")


def cmd_estimate(args: argparse.Namespace) -> None:
    from .reproduce import params_dir
    from .studies.bench import estimate_level

    table = estimate_level(params_dir(args.params))
    print(f"{args.params}: training and scoring FLOPs per notebook (counted per sample by torch's FLOP counter), and "
          f"hours at assumed sustained rates\n" + table.to_string(index=False))


def cmd_reproduce(args: argparse.Namespace) -> None:
    import pandas as pd

    from .notebook import figures_dir
    from .reproduce import reproduce

    session_set(args.set)
    done = reproduce(args.params, only=args.only or None, out_dir=args.out)
    out = figures_dir(args.params.rstrip("/"))
    print(f"{len(done)} notebooks executed; tables and figures in {out}")
    t2 = out / "table2_wide.csv"
    if t2.is_file():  # the main result: UF1/UAR per dataset, ours beside the paper's and the authors'
        with pd.option_context("display.width", 250, "display.max_columns", 20, "display.max_colwidth", 40):
            table = pd.read_csv(t2).set_index("source")
            print("\nTable 2 (UF1 / UAR, leave-one-subject-out; ours: mean ± sd [95% interval over subjects]):")
            for scope in dict.fromkeys(c.rsplit(" ", 1)[0] for c in table.columns):  # the data's scopes
                cols = [c for c in table.columns if c.startswith(scope + " ")]
                print(f"\n{scope}\n" + table[cols].fillna("").to_string())


def cmd_predict(args: argparse.Namespace) -> None:
    import json

    from . import predict
    from ._io import atomic_write_json, check_writable

    if bool(args.flow_map) == bool(args.onset or args.apex):
        raise HTNetInputError("--flow-map", None, "give either --onset and --apex (frames) or --flow-map (and --face)")
    if not args.flow_map and not (args.onset and args.apex):
        raise HTNetInputError("--onset" if not args.onset else "--apex", None, "both --onset and --apex are needed")
    if args.json:
        check_writable(args.json, "--json")
    predictor = predict.load(args.weights)
    result = predict.predict_map(args.flow_map, args.face, predictor) if args.flow_map else \
        predict.predict_frames(args.onset, args.apex, predictor, method=args.method)
    for c, p in result["probabilities"].items():
        print(f"{c:9s} {p:.4f}")
    print(f"prediction: {result['prediction']} (weights {result['weights']})")
    if not predictor.info.get("tensors_sha256"):  # say it: nothing tells these weights from damaged ones
        print(f"note: weights {result['weights_check']}", file=sys.stderr)
    for w in result["warnings"]:
        print(f"warning: {w['detail']}", file=sys.stderr)
    if args.json:
        atomic_write_json(args.json, result)
    elif args.print_json:
        print(json.dumps(result, indent=2))


def cmd_weights(args: argparse.Namespace) -> None:
    import json

    from . import predict

    path, identical = predict.build_shipped(args.out)
    threads = predict.card_threads(json.loads(predict.CARD.read_text()))
    print(f"weights: {path} ({path.stat().st_size / 1e6:.2f} MB), trained on {threads} torch thread(s) as the card "
          f"records\n" + (
        f"tensors identical to the card's and to the shipped {predict.SHIPPED.name} "
        f"(sha256 {predict.tensors_sha256(path)[:16]}...)" if identical else
        "tensors NOT identical to the card's: float rounding differs on this machine's CPU or torch, or the release "
        "differs (its fingerprint must be the card's); the card's honest score describes the recipe, not these bytes "
        "(the card beside them names the tensors built here)"))


def cmd_train_weights(args: argparse.Namespace) -> None:
    import torch

    from . import data, loso, metrics, predict
    from ._io import atomic_write_json, check_writable, git_revision, hardware, torch_threads
    from .config import load_params, parse_set
    from .models import load_weights

    params = load_params(args.params, parse_set(args.set))
    try:  # checked before the training it would otherwise follow
        loso.run_names(params.replace(protocols=[args.protocol]))
    except HTNetInputError as e:
        raise HTNetInputError("--protocol", None, e.problem) from None
    out = predict.weights_path(args.out, "--out")  # the rule $HTNET_WEIGHTS follows
    for path in (out, out.with_suffix(".json")):
        check_writable(path, "--out")
    samples = data.load_samples(params.run.data_dir or None)
    runs = loso.run_seeds(params, samples=samples)  # the recipe's honest LOSO score (found when trained before)
    preds = [r.protocol_predictions([args.protocol], samples) for r in runs]
    score = metrics.bootstrap(preds, pred_col=args.protocol).loc["Full"]
    per_seed = [metrics.scores(p, pred_col=args.protocol).loc["Full"] for p in preds]
    # the thread count changes float rounding: trained on a recorded count, which `weights` sets to rebuild them
    threads = params.run.threads or torch.get_num_threads()
    with torch_threads(threads):
        model = predict.train_final(params.replace(seeds=[]), samples)
        made_on = hardware()
    card = {"recipe": str(args.params), "protocol_of_the_score": args.protocol, "params": params.to_flat(),
            "trained_on": f"all {len(samples)} samples of the release, {params.train.epochs} epochs (fixed in advance)",
            "data_fingerprint": data.fingerprint(samples.attrs.get("data_dir")), "git_revision": git_revision(),
            "seed": params.train.seed,
            "honest_loso_full": {"UF1": round(float(score["UF1"]), 4), "UF1_95": [round(float(score["UF1_lo"]), 4),
                                                                            round(float(score["UF1_hi"]), 4)],
                                 "UAR": round(float(score["UAR"]), 4), "UAR_95": [round(float(score["UAR_lo"]), 4),
                                                                            round(float(score["UAR_hi"]), 4)],
                                 "UF1_per_seed": [round(float(s["UF1"]), 4) for s in per_seed],
                                 "seeds": [r.seed for r in runs], "runs": [r.id for r in runs]}}
    if args.set:
        card["set"] = list(args.set)  # the params file's values these replaced
    path = predict.save(model, params.train, out, storage=args.storage)
    if args.storage != "float32":  # what storing them smaller changes: the classes and probabilities on every sample
        card["storage"] = args.storage
        card[f"{args.storage}_check"] = predict.storage_check(model, load_weights(path), params, samples)
    # the card names the exact bytes it describes, and what made them (`weights` rebuilds and checks them)
    atomic_write_json(path.with_suffix(".json"), {**card, "tensors_sha256": predict.tensors_sha256(path),
                                                  "hardware": made_on, "threads": threads, "torch": torch.__version__})
    print(f"weights: {path} ({path.stat().st_size / 1e6:.2f} MB); card: {path.with_suffix('.json')}\n"
          f"honest LOSO (the same recipe, {args.protocol}, {len(runs)} seeds): Full UF1 {score['UF1']:.4f} "
          f"[{score['UF1_lo']:.4f}, {score['UF1_hi']:.4f}], UAR {score['UAR']:.4f}")


def cmd_models(args: argparse.Namespace) -> None:
    from . import presets

    print(presets.report())


def cmd_docs(args: argparse.Namespace) -> None:
    from . import docs

    if args.check:
        differ = docs.stale()
        if differ:
            raise HTNetInputError(differ[0], None, f"{len(differ)} page(s) differ from their template rendered with "
                                  f"the files under figures/ ({', '.join(p.name for p in differ)}): run "
                                  f"`python -m htnet_lib docs`")
        print("every page equals its rendering")
        return
    written = docs.write()
    print("\n".join(f"wrote {p}" for p in written) or "every page was up to date")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="htnet", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    f = sub.add_parser("fetch", help="download and verify the authors' release")
    f.add_argument("--dest", help="target folder (default ./data/htnet-release)")
    from .data import UPSTREAM_ZIP

    f.add_argument("--url", default=UPSTREAM_ZIP, help="archive of the upstream repository at the pinned commit")
    f.set_defaults(fn=cmd_fetch)

    v = sub.add_parser("verify", help="check a release folder against the recorded checksums")
    v.add_argument("--data-dir")
    v.set_defaults(fn=cmd_verify)

    sw = sub.add_parser("sweep", help="train (or find) every point of a study file's sweeps, e.g. "
                                      "params/honest/fresh.yaml; resumes like every run")
    sw.add_argument("--study", required=True)
    sw.add_argument("--only", action="append", default=[], metavar="SWEEP", help="only this sweep (repeatable)")
    sw.add_argument("--seeds", nargs="+", type=int, default=[], metavar="SEED",
                    help="only these of the study's seeds: a piece of a long study (the rest resume later)")
    sw.add_argument("--status", action="store_true",
                    help="train nothing: list the folds, fold-epochs and hours (at the pace recorded so far) each "
                         "run still needs")
    sw.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a run setting (how to run, not what; they name no run folder): executor=ray, workers=2, "
                         "worker_threads=1, threads=1, device=cuda, ...")
    sw.set_defaults(fn=cmd_sweep)

    lo = sub.add_parser("loso", help="train a LOSO run from a params file")
    lo.add_argument("--params", required=True)
    lo.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a params key")
    lo.add_argument("--data-dir")
    lo.add_argument("--name", default="loso", help="prefix of the run folder")
    lo.set_defaults(fn=cmd_loso)

    b = sub.add_parser("bench", help="time the engines against this machine's GEMM rate, and Ray end to end")
    b.add_argument("--study", default="params/quick/bench.yaml", help="a bench file (params/<level>/bench.yaml)")
    b.add_argument("--out", default="", help="also write the figures as JSON here (with their provenance)")
    b.add_argument("--raw", action="store_true", help="also time the raw-frames pipeline at 640x480")
    b.add_argument("--raw-samples", type=int, default=48)
    b.set_defaults(fn=cmd_bench)

    e = sub.add_parser("estimate", help="FLOPs and hours of a params level's notebooks (e.g. paper, for a GPU)")
    e.add_argument("--params", default="paper", help="smoke, quick, paper, honest, or a params folder")
    e.set_defaults(fn=cmd_estimate)

    r = sub.add_parser("reproduce", help="run every notebook in order with papermill")
    r.add_argument("--params", default="quick", help="smoke, quick, paper, or a params folder")
    r.add_argument("--only", nargs="+", help="notebook number prefixes, e.g. 03 05")
    r.add_argument("--out", help="folder for the executed notebooks (default executed/<level>)")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a run setting for every notebook (executor=ray, device=cuda, workers=4, ...)")
    r.set_defaults(fn=cmd_reproduce)

    pr = sub.add_parser("predict", help="class probabilities of one micro-expression with trained weights")
    pr.add_argument("--onset", help="onset frame (any image file)")
    pr.add_argument("--apex", help="apex frame, the same size as the onset frame")
    pr.add_argument("--flow-map", help="a prepared 28x28x3 map in the release's format, instead of frames")
    pr.add_argument("--face", help="the 224x224 apex face of --flow-map (for the landmarks)")
    pr.add_argument("--weights", help="a .safetensors file written by htnet_lib.predict.save, or its folder (default: "
                                      "the shipped recipe)")
    pr.add_argument("--method", default="tvl1", choices=["tvl1", "farneback"], help="optical flow for frames")
    pr.add_argument("--json", help="write the result as JSON to this file")
    pr.add_argument("--print-json", action="store_true", help="also print the result as JSON")
    pr.set_defaults(fn=cmd_predict)

    tw = sub.add_parser("train-weights", help="train a recipe on all samples; write weights and card for predict")
    tw.add_argument("--params", default="params/honest/loso.yaml")
    tw.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    tw.add_argument("--protocol", default="last", help="the honest protocol the card's LOSO score uses")
    tw.add_argument("--out", required=True, help="the .safetensors file to write (a .json card beside it), or a folder "
                                                 "for it (an existing one, or end it with /), as $HTNET_WEIGHTS")
    tw.add_argument("--storage", default="float32", choices=["float32", "float16"],
                    help="the type the tensors are kept in (float16: half the bytes; the card says what it changes)")
    tw.set_defaults(fn=cmd_train_weights)

    w = sub.add_parser("weights", help="rebuild the shipped recipe's weights from its card and check their sha256")
    w.add_argument("--out", help="the .safetensors file to write, or a folder for it (default: $HTNET_WEIGHTS, a file "
                                 "or folder, or the user cache)")
    w.set_defaults(fn=cmd_weights)

    m = sub.add_parser("models", help="the registered networks with their keys and defaults, and the named presets")
    m.set_defaults(fn=cmd_models)

    d = sub.add_parser("docs", help="render README.md and docs/*.md from docs/templates/ and the files under figures/")
    d.add_argument("--check", action="store_true", help="write nothing; fail if a page differs from its rendering")
    d.set_defaults(fn=cmd_docs)

    from .raw import cli as raw_cli

    raw_cli.register(sub)
    return p


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised as an interrupt so that the work stops as after Ctrl-C: locks released, temporary files gone."""


def _terminate(signum, frame):
    raise _Terminated()


def main(argv: list[str] | None = None) -> int:
    """Run a command: 0 when it worked, 2 for bad input (one line naming the file or option), 130 after Ctrl-C and
    143 after SIGTERM (one line saying where the work stopped)."""
    import signal
    import threading

    args = build_parser().parse_args(argv)
    main_thread = threading.current_thread() is threading.main_thread()  # only it may set signal handlers
    before = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    try:
        if hasattr(args, "fn"):
            args.fn(args)
            return 0
        return int(args.func(args))  # sub-commands registered by htnet_lib.raw.cli
    except HTNetInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        terminated = isinstance(e, _Terminated) or isinstance(e.__context__, _Terminated)
        print(f"{'terminated' if terminated else 'interrupted'}" + (f": {e}" if str(e) else ""), file=sys.stderr)
        return 143 if terminated else 130
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, before)


if __name__ == "__main__":
    sys.exit(main())
