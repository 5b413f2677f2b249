"""Protocols: how the held-out predictions of a LOSO fold are chosen from its training record (§4.2).

One training records every fold's held-out logits at every evaluated epoch (`engines.FoldRecord`); a protocol picks
from that record. They form a registry: adding one is one `register(Protocol(...))` entry, after which a params file
may name it (`protocols: [mine@3]`: runs score it in predictions.csv and metrics.csv, `run_names`), any finished run
can score it from its fold records (`Run.protocol_predictions`), and tables and figures label it (`label`).

A protocol's chooser gets one fold's `FoldView` and its argument, and returns the held-out samples' class
probabilities (n, classes) and the epoch they come from (NaN when they mix epochs); anything else is an error naming
the protocol. Only a protocol registered with `reads_test_labels=True` is given the held-out subject's labels
(`FoldView.test_labels`); an honest one cannot read them, by construction. Registering a key that exists is an error
unless `replace=True`.

    register(Protocol("mean", "mean probability of the last {arg} epochs", reads_test_labels=False,
                      note="...", choose=_mean_last, takes_arg=True))
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .. import metrics
from .._io import HTNetInputError
from ..config import PARAMS_CHECKS
from .engines import FoldRecord
from .folds import eval_epochs


@dataclass(frozen=True)
class FoldView:
    """What a protocol sees of one fold: evaluated epochs, held-out and inner logits ((E, n, classes)), the inner
    subjects' labels, and the held-out labels only for protocols that declare reading them (else None)."""

    epochs: np.ndarray
    test_logits: np.ndarray
    inner_logits: np.ndarray
    inner_labels: np.ndarray
    test_labels: np.ndarray | None


# (view, argument) -> (class probabilities of the held-out samples (n, classes), the epoch they come from or NaN)
Chooser = Callable[[FoldView, "int | None"], "tuple[np.ndarray, float]"]


@dataclass(frozen=True)
class Protocol:
    key: str
    label: str  # for tables and figures; "{arg}" is filled in for protocols that take one
    reads_test_labels: bool
    note: str
    choose: Chooser
    takes_arg: bool = False
    needs_inner: bool = False
    # the argument counts evaluated epochs (mean@k: the last k): a k beyond those a run evaluates is an error, not a
    # silent average over fewer epochs under a label that says k
    arg_counts_epochs: bool = False

    @property
    def honest(self) -> bool:
        return not self.reads_test_labels


PROTOCOLS: dict[str, Protocol] = {}


def register(protocol: Protocol, replace: bool = False) -> Protocol:
    """Add a protocol to the registry; an existing key is replaced only with `replace=True` (a new protocol must not
    silently change what a built-in name scores)."""
    if protocol.key in PROTOCOLS and not replace:
        raise HTNetInputError(None, "protocol", f"a protocol {protocol.key!r} is registered already "
                                                f"({PROTOCOLS[protocol.key].label!r}); choose another key, or pass "
                                                f"replace=True")
    if "@" in protocol.key or not protocol.key:
        raise HTNetInputError(None, "protocol", f"{protocol.key!r}: a protocol key is a name without '@'")
    PROTOCOLS[protocol.key] = protocol
    return protocol


def unregister(key: str) -> None:
    """Remove a protocol from the registry (a test's, or a notebook's experiment)."""
    PROTOCOLS.pop(key, None)


def pick_epoch(acc: Sequence[float]) -> int:
    """Index of the best per-epoch accuracy, ties to the later epoch (the authors' `<=`)."""
    a = np.asarray(acc, dtype=float)
    return int(len(a) - 1 - np.argmax(a[::-1]))


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def _at(view: FoldView, i: int) -> tuple[np.ndarray, float]:
    return softmax(view.test_logits[i]), float(view.epochs[i])


def _paper(view: FoldView, _arg: int | None) -> tuple[np.ndarray, float]:
    acc = (view.test_logits.argmax(-1) == view.test_labels[None, :]).mean(1)
    return _at(view, pick_epoch(acc))


def _last(view: FoldView, _arg: int | None) -> tuple[np.ndarray, float]:
    return _at(view, len(view.epochs) - 1)


def _fixed(view: FoldView, epoch: int | None) -> tuple[np.ndarray, float]:
    hits = np.flatnonzero(view.epochs == epoch)
    if not len(hits):
        raise HTNetInputError(None, "fixed_epochs", f"epoch {epoch} was not recorded (recorded: up to "
                                                    f"{int(view.epochs.max())}, every {_step(view.epochs)})")
    return _at(view, int(hits[0]))


def _inner(view: FoldView, _arg: int | None) -> tuple[np.ndarray, float]:
    acc = (view.inner_logits.argmax(-1) == view.inner_labels[None, :]).mean(1)
    return _at(view, pick_epoch(acc))


def _mean_last(view: FoldView, k: int | None) -> tuple[np.ndarray, float]:
    # the probabilities mix k epochs: no single epoch they come from (NaN), unless k is 1
    return softmax(view.test_logits[-k:]).mean(0), float(view.epochs[-1]) if k == 1 else float("nan")


def _inner_early_stop(view: FoldView, patience: int | None) -> tuple[np.ndarray, float]:
    """Walk the evaluated epochs; stop once inner accuracy has not improved for `patience` of them; keep the best."""
    acc = (view.inner_logits.argmax(-1) == view.inner_labels[None, :]).mean(1)
    best, since = 0, 0
    for i in range(1, len(acc)):
        if acc[i] > acc[best]:
            best, since = i, 0
        else:
            since += 1
            if since >= patience:
                break
    return _at(view, best)


def _span(epochs: np.ndarray) -> str:
    return f"{int(epochs[0])} to {int(epochs[-1])}" if len(epochs) else "none"


def _step(epochs: np.ndarray) -> int:
    return int(np.diff(epochs).min()) if len(epochs) > 1 else 1


register(Protocol("paper", "paper protocol (epoch picked on test labels)", True,
                  "for each held-out subject, the epoch with the best accuracy on that subject's own labels, ties to the "
                  "later epoch: what the authors' script does", _paper))
register(Protocol("last", "last epoch", False, "the predictions after the last epoch", _last))
register(Protocol("fixed", "epoch {arg}", False, "the predictions after a number of epochs fixed in advance", _fixed,
                  takes_arg=True))
register(Protocol("inner", "epoch picked on inner subjects", False,
                  "the epoch with the best accuracy on training subjects held out of that fold's training "
                  "(inner_val_subjects), ties to the later epoch", _inner, needs_inner=True))
register(Protocol("mean", "mean probability of the last {arg} epochs", False,
                  "the class probabilities averaged over the last k evaluated epochs", _mean_last, takes_arg=True,
                  arg_counts_epochs=True))
register(Protocol("inner-es", "early stopping on inner subjects (patience {arg})", False,
                  "training stops once the inner subjects' accuracy has not improved for k evaluated epochs; the best "
                  "epoch so far is kept (the first of equals)", _inner_early_stop, takes_arg=True, needs_inner=True))


def parse(name: str, field: str = "protocol") -> tuple[Protocol, int | None]:
    """'fixed@30' -> (the 'fixed' protocol, 30); raises naming the known protocols (and `field`)."""
    key, _, arg = name.partition("@")
    if key not in PROTOCOLS:
        raise HTNetInputError(None, field, f"unknown protocol {name!r} (known: {', '.join(PROTOCOLS)})")
    p = PROTOCOLS[key]
    if p.takes_arg != bool(arg):
        raise HTNetInputError(None, field, f"protocol {key!r} " + (f"needs an argument, e.g. {key}@30"
                                                                    if p.takes_arg else "takes no argument"))
    try:
        return p, int(arg) if arg else None
    except ValueError:
        raise HTNetInputError(None, field, f"{name!r}: the argument after @ must be a whole number") from None


def choose(protocol: Protocol, name: str, view: FoldView, arg: int | None) -> tuple[np.ndarray, float]:
    """A protocol's chooser on one fold, its answer checked: class probabilities (n held-out samples, classes)."""
    if protocol.arg_counts_epochs and arg is not None and not 1 <= arg <= len(view.epochs):
        raise HTNetInputError(None, "protocols", f"protocol {name!r} needs {arg} evaluated epochs; this fold has "
                                                 f"{len(view.epochs)} (epochs {_span(view.epochs)})")
    probs, epoch = protocol.choose(view, arg)
    probs = np.asarray(probs)
    shape = (view.test_logits.shape[1], view.test_logits.shape[2])
    if probs.shape != shape:
        raise HTNetInputError(None, "protocol", f"protocol {name!r} returned an array of shape {probs.shape}; a "
                                                f"chooser returns class probabilities, shape {shape} (held-out "
                                                f"samples, classes), and an epoch")
    return probs, float(epoch)


def label(name: str) -> str:
    """The display label of a protocol instance ('fixed@30' -> 'epoch 30')."""
    p, arg = parse(name)
    return p.label.format(arg=arg)


def is_honest(name: str) -> bool:
    return parse(name)[0].honest


def default_names(train: Any) -> list[str]:
    """The protocols every run scores (`train`: a `config.TrainConfig`): paper, last, each fixed epoch other than the
    last, and inner when it has inner subjects."""
    names = ["paper", "last"] + [f"fixed@{e}" for e in train.fixed_epochs if e != train.epochs]
    return names + (["inner"] if train.inner_val_subjects else [])


def run_names(params: Any, recorded: Sequence[str] = (), where: Any = None) -> list[str]:
    """The protocols a run scores (`params`: a `config.Params`): the default ones, those its run folder recorded
    before (a finished run's columns never disappear) and those its params name (`protocols:`), each once, checked
    against the registry (an unknown or malformed one raises naming `protocols`; one the run folder `where` recorded
    but this process has not registered raises naming that folder)."""
    names = list(dict.fromkeys([*default_names(params.train), *recorded, *params.run.protocols]))
    for name in names:
        if name in recorded and name.partition("@")[0] not in PROTOCOLS:
            raise HTNetInputError(where, "protocols", f"this run recorded protocol {name!r}, which is not registered "
                                                      f"in this process: run the code that registers it first")
        p, arg = parse(name, field="protocols")
        if p.needs_inner and not params.train.inner_val_subjects:
            raise HTNetInputError(None, "protocols", f"protocol {name!r} needs inner validation subjects "
                                                     f"(inner_val_subjects > 0)")
        evaluated = len(eval_epochs(params.train))
        if p.arg_counts_epochs and not 1 <= arg <= evaluated:
            raise HTNetInputError(None, "protocols", f"protocol {name!r} needs {arg} evaluated epochs; these params "
                                                     f"evaluate {evaluated} (epochs, eval_every)")
        if p.choose is _fixed and arg not in eval_epochs(params.train):  # known before training, not after it
            raise HTNetInputError(None, "protocols", f"{name!r}: epoch {arg} is not recorded (epochs "
                                                     f"{params.train.epochs}, every {params.train.eval_every}); add "
                                                     f"it to fixed_epochs, or name a recorded epoch")
    return names


def protocol_predictions(records: Mapping[str, FoldRecord], samples: pd.DataFrame, names: Iterable[str],
                         max_epoch: int | None = None) -> pd.DataFrame:
    """One row per held-out sample: dataset, subject, sample, label, then for each protocol its prediction and the
    epoch it came from (`<name>_epoch`). `max_epoch` truncates the records (for curves over training length)."""
    names = list(names)
    parsed = [parse(n) for n in names]
    labels = samples["label"].to_numpy()
    blocks = []
    for r in records.values():
        keep = r.epochs <= max_epoch if max_epoch else np.ones(len(r.epochs), bool)
        if not keep.any():
            continue
        t_idx, i_idx = np.asarray(r.test_idx), np.asarray(r.inner_idx, dtype=np.int64)
        open_view = FoldView(r.epochs[keep], r.test_logits[keep], r.inner_logits[keep], labels[i_idx], labels[t_idx])
        closed_view = FoldView(open_view.epochs, open_view.test_logits, open_view.inner_logits, labels[i_idx], None)
        cols: dict[str, np.ndarray] = {"row": t_idx}
        for name, (p, arg) in zip(names, parsed):
            if p.needs_inner and not len(i_idx):
                raise HTNetInputError(None, "inner_val_subjects", f"protocol {name!r} needs inner validation subjects")
            probs, epoch = choose(p, name, open_view if p.reads_test_labels else closed_view, arg)
            cols[name] = probs.argmax(-1).astype(np.int64)
            cols[f"{name}_epoch"] = np.full(len(t_idx), epoch)
        blocks.append(pd.DataFrame(cols))
    out = pd.concat(blocks).set_index("row").sort_index()
    info = samples[["dataset", "subject", "sample", "label"]].iloc[out.index].reset_index(drop=True)
    out = pd.concat([info, out.reset_index(drop=True)], axis=1)
    for name in names:
        if out[f"{name}_epoch"].notna().all():
            out[f"{name}_epoch"] = out[f"{name}_epoch"].astype(np.int64)
    out.attrs["protocols"] = names
    return out


def protocol_probabilities(records: Mapping[str, FoldRecord], samples: pd.DataFrame, name: str) -> pd.DataFrame:
    """One protocol's class probabilities per held-out sample: dataset, subject, sample, label, p0, p1, p2 (rows in
    the samples table's order)."""
    p, arg = parse(name)
    labels = samples["label"].to_numpy()
    rows, probs = [], []
    for r in records.values():
        t_idx, i_idx = np.asarray(r.test_idx), np.asarray(r.inner_idx, dtype=np.int64)
        view = FoldView(r.epochs, r.test_logits, r.inner_logits, labels[i_idx],
                        labels[t_idx] if p.reads_test_labels else None)
        probs.append(choose(p, name, view, arg)[0])
        rows.append(t_idx)
    idx = np.concatenate(rows)
    order = np.argsort(idx)
    out = samples[["dataset", "subject", "sample", "label"]].iloc[idx[order]].reset_index(drop=True)
    pr = np.concatenate(probs)[order]
    for c in range(pr.shape[1]):
        out[f"p{c}"] = pr[:, c]
    return out


def protocol_columns(preds: pd.DataFrame) -> list[str]:
    """The protocol columns of a predictions table (its `attrs`, else every column that parses as a protocol)."""
    if preds.attrs.get("protocols"):
        return list(preds.attrs["protocols"])
    out = []
    for c in preds.columns:
        try:
            parse(c)
            out.append(c)
        except HTNetInputError:
            pass
    return out


def protocol_scores(preds: pd.DataFrame) -> pd.DataFrame:
    """UF1/UAR per protocol and scope: columns protocol, scope, UF1, UAR, n."""
    frames = [metrics.scores(preds, pred_col=c).reset_index(names="scope").assign(protocol=c)
              for c in protocol_columns(preds)]
    return pd.concat(frames)[["protocol", "scope", "UF1", "UAR", "n"]].reset_index(drop=True)


def epoch_curve(records: Mapping[str, FoldRecord], samples: pd.DataFrame, at: Sequence[int] | None = None,
                names: Sequence[str] = ("paper", "last")) -> pd.DataFrame:
    """For each evaluated epoch E (or those in `at`): UF1/UAR of each protocol in `names` as if training had stopped
    after E epochs (the paper protocol's pick among epochs 1..E, the predictions after E, any registered protocol on
    the epochs up to E). The gap between the paper's pick and the last epoch is what choosing with test labels adds.
    A protocol enters from the first E where it is defined (`fixed@k` from k on, a `k`-epoch one from the k-th
    evaluated epoch). Columns: epoch, protocol, scope, UF1, UAR."""
    epochs = [int(e) for e in next(iter(records.values())).epochs]
    shown = epochs if at is None else [e for e in epochs if e in set(at)]
    rows = []
    for e in shown:
        evaluated = sum(x <= e for x in epochs)
        usable = [n for n in names if _defined_after(n, e, evaluated)]
        preds = protocol_predictions(records, samples, usable, max_epoch=e)
        for name in usable:
            for scope, r in metrics.scores(preds, pred_col=name).iterrows():
                rows.append({"epoch": e, "protocol": name, "scope": scope, "UF1": r["UF1"], "UAR": r["UAR"]})
    return pd.DataFrame(rows)


def _defined_after(name: str, epoch: int, evaluated: int) -> bool:
    """Whether protocol `name` can answer on a run stopped after `epoch` (`evaluated` epochs recorded by then)."""
    p, arg = parse(name)
    if p.choose is _fixed:
        return arg <= epoch
    return not (p.arg_counts_epochs and arg is not None and arg > evaluated)


PARAMS_CHECKS.append(run_names)  # a params file naming a protocol no run can score is refused when it loads
