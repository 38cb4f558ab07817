"""``descend train``: train one network on one data set and leave a complete run directory.

::

    descend train --dataset fashion-mnist --model mlp --hidden 256,128 --optimizer adam --lr 1e-3 \\
                  --epochs 10 --batch-size 128 --seed 0 --out runs/fmnist-mlp
    descend train --resume runs/fmnist-mlp            # continue an interrupted run, bitwise identical
    descend train --resume runs/fmnist-mlp --epochs 20                      # extend (not cosine/one-cycle)
    descend train --resume runs/fmnist-mlp --data-dir /data --allow-change data_dir   # the data moved

The run directory holds config.json, metrics.csv, checkpoint and summary.json
(see :mod:`descend.train.experiment`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from descend.cli._common import EXIT_DIVERGED, UsageError, check_output, format_table, integer, number
from descend.train import experiment as ex

# Options that map one to one onto configuration keys (argparse dest -> key).
_KEYS = (
    "dataset",
    "model",
    "hidden",
    "optimizer",
    "lr",
    "schedule",
    "weight_decay",
    "no_decay",
    "l1",
    "l2",
    "dropout",
    "init",
    "epochs",
    "batch_size",
    "seed",
    "validation",
    "early_stopping",
    "data_dir",
    "normalize",
    "label_column",
    "test_data",
    "backend",
    "device",
)


def hidden_sizes(text: str) -> list[int]:
    """``256,128`` -> ``[256, 128]``; an empty string means no hidden layer."""
    if not text.strip():
        return []
    try:
        sizes = [int(t) for t in text.split(",")]
    except ValueError:
        sizes = [0]
    if any(s <= 0 for s in sizes):
        raise argparse.ArgumentTypeError(f"must be positive integers separated by commas (e.g. 256,128), got {text!r}")
    return sizes


def key_value(text: str) -> tuple[str, Any]:
    """``betas=0.9,0.99`` -> ``("betas", [0.9, 0.99])``: values are JSON, bare words are strings."""
    key, sep, raw = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"must be KEY=VALUE (e.g. momentum=0.9), got {text!r}")
    return key, _parse_value(raw)


def _parse_value(raw: str) -> Any:
    if "," in raw:
        return [_parse_value(part) for part in raw.split(",")]
    for candidate in (raw, raw.lower()):
        try:
            return json.loads(candidate)
        except json.JSONDecodeError:
            pass
    return raw


def no_decay(text: str) -> list[str]:
    """``bias,norm`` -> ``["bias", "norm"]`` (routing-rule selectors); ``none`` or ``''``: decay everything."""
    from descend.errors import ParameterError
    from descend.optim.masking import parse_selectors

    try:
        return parse_selectors(text, "--no-decay")
    except ParameterError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--no-decay: ")) from None


def batch_size(text: str) -> int | None:
    """``full``: full batch (None); else an integer >= 1 (0 is not a size: full batch is said explicitly)."""
    if text.lower() in ("full", "none"):
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"must be an integer >= 1, or full for full-batch training (--batch-size full), got {text!r}"
        )
    return value


def label_column(text: str) -> int | str:
    """``0`` or ``-1``: a column index (negative counts from the end); anything else: a header name."""
    try:
        return int(text)
    except ValueError:
        pass
    if not text.strip():
        raise argparse.ArgumentTypeError(f"must be a column index or a header name, got {text!r}")
    return text


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The configuration keys the user gave on the command line."""
    given = {k: getattr(args, k, ex.UNSET) for k in _KEYS if getattr(args, k, ex.UNSET) is not ex.UNSET}
    if args.opt:  # lists (betas=0.9,0.99) become the tuples the factories expect
        given["optimizer_args"] = {k: tuple(v) if isinstance(v, list) else v for k, v in args.opt}
    if args.schedule_arg:
        given["schedule_args"] = dict(args.schedule_arg)
    return given


def run_train(args: argparse.Namespace) -> int:
    from descend.train.callbacks import ProgressBar

    given = overrides(args)
    if args.track_sharpness is not ex.UNSET:
        given["track_sharpness"] = args.track_sharpness
    allow = [k.strip().replace("-", "_") for text in args.allow_change or [] for k in text.split(",") if k.strip()]
    if args.resume is not None:
        extra = sorted(k for k in given if k != "epochs" and k not in allow)
        if extra:
            flags = ", ".join("--" + k.replace("_", "-") for k in extra)
            raise UsageError(
                f"--resume continues the run exactly as configured in {args.resume}/config.json; "
                f"only --epochs may change, got {flags} (to change a key on purpose, name it with --allow-change)"
            )
        if args.out is not None and Path(args.out) != Path(args.resume):
            raise UsageError(f"--resume {args.resume} writes into that directory; --out {args.out} differs")
        out = Path(args.resume)
    else:
        if allow:
            raise UsageError(f"--allow-change {','.join(allow)} applies only with --resume DIR")
        if args.out is None:
            raise UsageError("--out DIR is required (where config.json, metrics.csv, checkpoint and summary.json go)")
        out = Path(args.out)
    check_output(out, directory=True, flag="--resume" if args.resume is not None else "--out")
    callbacks = [] if args.quiet else [ProgressBar(stream=sys.stderr)]
    summary = ex.run(given, out, resume=args.resume is not None, callbacks=callbacks, allow_change=allow)
    print(format_summary(summary, out))
    if summary["status"] == "diverged":
        print(f"descend: {divergence(summary, out)}", file=sys.stderr)
        return EXIT_DIVERGED
    return 0


def divergence(summary: dict[str, Any], out: Path) -> str:
    """``diverged at epoch 3 (loss inf); ...``: the first epoch whose loss or val_loss is not finite."""
    from descend.errors import DescendError
    from descend.train import read_metrics

    epoch, final = summary["epochs"], summary.get("final", {})
    key, value = ("loss", final.get("loss"))
    try:
        rows = read_metrics(out / ex.METRICS)
    except (OSError, DescendError):
        rows = []
    for row in rows:
        bad = [k for k in ("loss", "val_loss") if isinstance(row.get(k), float) and not math.isfinite(row[k])]
        if bad:
            epoch, key, value = row["epoch"], bad[0], row[bad[0]]
            break
    shown = "nan" if value is None else (f"{value:.3g}" if math.isfinite(value) else str(value))
    return (
        f"diverged at epoch {epoch} ({key} {shown}); the run directory {out} is complete "
        "(summary.json status 'diverged'): try a smaller --lr"
    )


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def format_summary(summary: dict[str, Any], out: Path) -> str:
    cfg = summary["config"]
    final, best = summary.get("final", {}), summary.get("best", {})
    rows = [
        ("status", summary["status"]),
        ("epochs / steps", f"{summary['epochs']} / {summary['steps']}"),
        ("wall time", f"{summary['wall_time']:.1f} s"),
        ("final train loss / accuracy", f"{_fmt(final.get('loss'))} / {_fmt(final.get('accuracy'))}"),
    ]
    if "val_loss" in final:
        rows.append(("final val loss / accuracy", f"{_fmt(final.get('val_loss'))} / {_fmt(final.get('val_accuracy'))}"))
    if best:
        key = next(k for k in best if k != "epoch")
        rows.append((f"best {key.replace('_', ' ')}", f"{_fmt(best[key])} (epoch {best['epoch']})"))
    rows.append(("test loss / accuracy", f"{_fmt(summary['test_loss'])} / {_fmt(summary['test_accuracy'])}"))
    title = (
        f"{cfg['model']} on {cfg['dataset']} with {cfg['optimizer']} (lr {cfg['lr']:g}, {cfg['schedule']}), "
        f"{summary['parameters']:,} parameters"
    )
    if cfg.get("backend", "numpy") == "torch":
        title += f", torch.nn on {cfg.get('device', 'cpu')}"
    lines = [title, format_table(["summary", ""], rows)]
    data = summary.get("data") or {}
    if data.get("classes") and cfg["dataset"].lower().replace("_", "-") not in ex.BUILTIN_DATASETS:
        lines.append(f"classes: {', '.join(data['classes'])} (labels 0..{len(data['classes']) - 1}, in this order)")
    return "\n".join([*lines, f"run directory: {out}"])


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """The options shared by ``descend train``, ``compare`` and ``lr-find`` (all default to "not given")."""
    U = ex.UNSET
    opt = ", ".join(ex.OPTIMIZERS)
    parser.add_argument(
        "--dataset", default=U, help=f"{', '.join(ex.BUILTIN_DATASETS)} or a .csv/.npz file (default mnist1d)"
    )
    parser.add_argument("--model", default=U, choices=ex.MODELS, help="network preset (default mlp)")
    parser.add_argument("--hidden", default=U, type=hidden_sizes, help="hidden widths, e.g. 256,128 (default)")
    parser.add_argument("--optimizer", default=U, choices=tuple(ex.OPTIMIZERS), metavar="NAME", help=opt)
    parser.add_argument("--lr", default=U, type=number(0, None, closed="neither"), help="learning rate (1e-3)")
    parser.add_argument(
        "--opt", action="append", type=key_value, metavar="KEY=VALUE", help="optimizer keyword, e.g. betas=0.9,0.99"
    )
    parser.add_argument("--schedule", default=U, choices=ex.SCHEDULES, help="learning-rate schedule (constant)")
    parser.add_argument(
        "--schedule-arg", action="append", type=key_value, metavar="KEY=VALUE", help="e.g. step_size=3 gamma=0.5"
    )
    parser.add_argument("--weight-decay", default=U, type=number(0, None), help="weight decay (optimizer default)")
    parser.add_argument(
        "--no-decay", default=U, type=no_decay, metavar="RULES",
        help="parameters weight decay and --l1/--l2 spare, comma-separated: roles bias, norm, embedding, head; "
        "ndim<2; a name glob such as 0.*; re:REGEX; none (default bias,norm)",
    )  # fmt: skip
    parser.add_argument("--l1", default=U, type=number(0, None), help="L1 penalty λ₁ on the weights (0)")
    parser.add_argument("--l2", default=U, type=number(0, None), help="L2 penalty λ₂ on the weights (0)")
    parser.add_argument("--dropout", default=U, type=number(0, 1, closed="left"), help="dropout probability (0)")
    parser.add_argument("--init", default=U, help="weight initializer, e.g. kaiming_normal (He for ReLU layers)")
    parser.add_argument("--epochs", default=U, type=integer(1, None), help="epochs (10)")
    parser.add_argument("--batch-size", default=U, type=batch_size, help="k, 1 (SGD) or full (default 128)")
    parser.add_argument("--seed", default=U, type=integer(0, None), help="seed of initialization and batches (0)")
    parser.add_argument(
        "--validation", default=U, type=number(0, 1, closed="left"), help="held-out training fraction (0.1)"
    )
    parser.add_argument("--early-stopping", default=U, type=integer(1, None), metavar="PATIENCE", help="(off)")
    parser.add_argument("--data-dir", default=U, help="directory with the IDX files of (fashion-)mnist")
    parser.add_argument(
        "--normalize", default=U, choices=ex.NORMALIZE,
        help="input scaling, fitted on the training split and saved in summary.json: standard (per feature), "
        "minmax ([0, 1] per feature), none; auto (default): standard for a .csv/.npz file, a built-in data "
        "set's own otherwise",
    )  # fmt: skip
    parser.add_argument(
        "--label-column", default=U, type=label_column, metavar="NAME|INDEX",
        help="the label column of a .csv file: its header name or index, negative from the end (default -1)",
    )  # fmt: skip
    parser.add_argument(
        "--test-data", default=U, metavar="PATH",
        help="a .csv/.npz test set for a file data set (default: 20%% of --dataset, split off at random)",
    )  # fmt: skip


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    """``--backend`` and ``--device`` (``descend train`` and ``compare``)."""
    parser.add_argument(
        "--backend", default=ex.UNSET, choices=("numpy", "torch"),
        help="numpy (default: descend.nn) or torch (the same presets in torch.nn with descend.torch's optimizers; "
        "needs pip install 'descend[torch]')",
    )  # fmt: skip
    parser.add_argument(
        "--device", default=ex.UNSET, metavar="cpu|cuda|cuda:N", help="where --backend torch trains (default cpu)"
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a network on a data set into a run directory",
        description="Train a network (mlp, cnn, logistic) on MNIST-1D, Fashion-MNIST, MNIST or your own "
        "data, writing DIR/config.json, metrics.csv, checkpoint and summary.json.",
    )
    add_config_options(parser)
    add_backend_options(parser)
    parser.add_argument("--out", default=None, metavar="DIR", help="run directory (must not hold a run)")
    parser.add_argument("--resume", default=None, metavar="DIR", help="continue the interrupted run in DIR")
    parser.add_argument(
        "--allow-change", action="append", default=None, metavar="KEY[,KEY]",
        help="with --resume: accept these configuration keys differing from the checkpointed run (edited in "
        "config.json or given as options), e.g. data_dir after moving the data; --epochs may change only "
        "when the schedule does not depend on the run's length",
    )  # fmt: skip
    parser.add_argument(
        "--track-sharpness", default=ex.UNSET, type=integer(1, None), metavar="K",
        help="every K steps log λ_max of the Hessian (and Adam's preconditioned one) to DIR/sharpness.csv, and the "
        "gradient noise scale each epoch to DIR/noise_scale.csv (see descend diagnose)",
    )  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run_train)
