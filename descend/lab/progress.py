"""What ``descend compare`` shows while its runs go (:class:`Progress`): one line per active run and an overall bar,
redrawn in place on a terminal, or one plain line per event in a log file."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

from descend.lab.plan import RunSpec, format_lr


@dataclass
class _Live:
    spec: RunSpec
    epoch: float = 0.0
    epochs: int = 0
    loss: float | None = None
    started: bool = False  # the worker has begun it (it was queued before)
    where: str | None = None  # host:pid of the worker training it (a cluster's), when known


class Progress:
    """What the parent shows while the runs go: one line per active run and an overall bar.

    On a terminal the block is redrawn in place; otherwise (a log file, a pipe) one plain line is
    printed per event (a run finished, a learning rate selected). ``stream=None`` shows nothing.
    """

    def __init__(self, stream: TextIO | None = sys.stderr, live: bool | None = None, width: int = 28):
        self.stream = stream
        isatty = getattr(stream, "isatty", None)
        self.live = bool(isatty and isatty()) if live is None else live
        self.width = width
        self.active: dict[str, _Live] = {}
        self.total_runs = self.done_runs = 0
        self.total_epochs = 0
        self.done_epochs = 0.0
        self._drawn = 0
        self._last_draw = 0.0
        self._t0 = time.monotonic()

    def _write(self, text: str) -> None:
        if self.stream is not None:
            self.stream.write(text)
            self.stream.flush()

    def _clear(self) -> None:
        if self.live and self._drawn:
            self._write(f"\x1b[{self._drawn}F\x1b[J")
            self._drawn = 0

    def message(self, text: str) -> None:
        self._clear()
        self._write(text + "\n")
        self.draw(force=True)

    def start(self, spec: RunSpec) -> None:
        self.active[spec.relpath] = _Live(spec, epochs=spec.config["epochs"])

    def update(
        self, relpath: str, kind: str, epoch: float, epochs: int, loss: float | None, where: str | None = None
    ) -> None:
        live = self.active.get(relpath)
        if live is None:
            return
        live.epoch, live.epochs, live.started = float(epoch), int(epochs), True
        if loss is not None:
            live.loss = loss
        if where is not None:
            live.where = where

    def finish(self, spec: RunSpec, summary: dict[str, Any], metric: str, skipped: bool = False) -> None:
        live = self.active.pop(spec.relpath, None)
        self.done_runs += 1
        if skipped:
            return
        final = summary.get("final", {}).get(metric)
        result = f"{metric} {final:.4f}" if isinstance(final, float) and summary["status"] != "diverged" else ""
        status = summary["status"]
        self.message(
            f"[{self.done_runs:>{len(str(self.total_runs))}}/{self.total_runs}] {spec.label}: {status}"
            + (f", {result}" if result else "")
            + f" ({summary.get('epochs', 0)} epochs, {summary.get('wall_time', 0.0):.1f} s)"
            + (f" on {live.where}" if live is not None and live.where else "")
        )

    def _bar(self, fraction: float, width: int) -> str:
        filled = round(width * min(max(fraction, 0.0), 1.0))
        return "█" * filled + "·" * (width - filled)

    def _lines(self) -> list[str]:
        done_epochs = self.done_epochs + sum(a.epoch for a in self.active.values())
        fraction = done_epochs / self.total_epochs if self.total_epochs else 0.0
        elapsed = time.monotonic() - self._t0
        running = sorted((a for a in self.active.values() if a.started), key=lambda a: a.spec.relpath)
        lines = [
            f"compare {self._bar(fraction, self.width)} {100 * fraction:3.0f}%  runs {self.done_runs}/"
            f"{self.total_runs} done, {len(running)} running, {len(self.active) - len(running)} queued  "
            f"{elapsed:.0f} s"
        ]
        for a in running:
            loss = "" if a.loss is None or not math.isfinite(a.loss) else f"loss {a.loss:.4f}"
            if a.loss is not None and not math.isfinite(a.loss):
                loss = f"loss {a.loss}"
            frac = a.epoch / a.epochs if a.epochs else 0.0
            lines.append(
                f"  {a.spec.optimizer:<10} lr={format_lr(a.spec.lr):<9} seed={a.spec.seed:<3} "
                f"epoch {min(int(a.epoch) + 1, a.epochs):>3}/{a.epochs:<3} {self._bar(frac, 12)} {loss}"
                + (f" on {a.where}" if a.where else "")
            )
        return lines

    def draw(self, force: bool = False) -> None:
        if not self.live or self.stream is None:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        self._clear()
        lines = self._lines()
        self._write("\n".join(lines) + "\n")
        self._drawn = len(lines)

    def close(self) -> None:
        self._clear()


__all__ = ["Progress"]
