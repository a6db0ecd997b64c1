"""``WITH (key = value, ...)``: one typed, frozen options object for every layer.

Defaults, bounds and error messages live here and nowhere else, so a value
that passes validation is one that training, scoring and EXPLAIN can all
use: the bounds are the ones past which training fails or means nothing
(``epochs = 0`` trains nothing, ``lr = 1e30`` turns weights into NaN, a
``seed`` past 2**63 is refused by torch).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import os
from dataclasses import dataclass, field

from .errors import PlanError, Position, did_you_mean

MODELS = ("gnn", "gbdt", "auto", "popular", "past", "two_tower", "conditioned")
#: models for a ``LIST_DISTINCT(...) RANK TOP k`` target only (planner/ranking.py; README "Recommendation")
RANKING_MODELS = ("popular", "past", "two_tower", "conditioned")
SAMPLERS = ("uniform", "recent")
#: the GNN's convolution per edge type: counts and newest neighbour kept ("relational"), or a plain mean ("sage")
CONVS = ("relational", "sage")
#: the fan-out of each hop for a model of 1, 2 or 3 layers when ``fanouts`` is not given
DEPTH_FANOUTS = {1: (16,), 2: (16, 8), 3: (16, 8, 4)}
#: the deepest model the schema alone chooses (``layers`` may ask for more)
MAX_DEFAULT_LAYERS = 3
#: models whose training runs on ``threads`` torch threads (GBDT runs on one, ``popular`` / ``past`` are SQL)
THREADED_MODELS = ("gnn", "auto", "two_tower", "conditioned")


@dataclass(frozen=True)
class _Bound:
    low: float
    high: float
    whole: bool = True


#: numeric options: (lowest, highest, whole number?)
_BOUNDS: dict[str, _Bound] = {
    "epochs": _Bound(1, 10_000), "channels": _Bound(1, 4_096), "layers": _Bound(0, 8),
    "batch_size": _Bound(1, 1_000_000), "lr": _Bound(1e-9, 10.0, whole=False),
    "seed": _Bound(0, 2 ** 63 - 1), "anchor_step": _Bound(1, 1_000_000), "max_train_rows": _Bound(0, 100_000_000),
    "patience": _Bound(0, 10_000), "threads": _Bound(1, 1_024),
    "time_budget": _Bound(1, 86_400, whole=False),
}
_MAX_FANOUT = 10_000


@dataclass(frozen=True)
class Options:
    """Training and planning settings of one statement.

    ``val_start`` / ``test_start`` / ``anchor_step`` are None when the
    planner chooses them from the data; ``max_train_rows = 0`` means no cap.
    ``layers`` (and with it ``fanouts``) is chosen from the schema when not
    given: see ``with_depth``.
    """

    model: str = "gnn"
    epochs: int = 10
    channels: int = 128
    layers: int = 2
    fanouts: tuple[int, ...] = (16, 8)
    batch_size: int = 256
    lr: float = 0.005
    seed: int = 0
    val_start: dt.datetime | None = None
    test_start: dt.datetime | None = None
    anchor_step: int | None = None
    max_train_rows: int = 20_000
    sampler: str = "recent"
    conv: str = "relational"
    patience: int = 3
    threads: int = 1
    #: ``model = 'auto'``: seconds after which no further candidate is started (one already
    #: training is never cut short, so the budget can be overrun by the last candidate's time)
    time_budget: float = 120.0
    #: the keys the user wrote, in order (DESCRIBE MODEL and canonical text show only these)
    given: tuple[str, ...] = field(default=(), compare=False)

    @property
    def hop_fanouts(self) -> tuple[int, ...]:
        """The fan-out of each of the ``layers`` hops."""
        return self.fanouts[: self.layers]

    def with_depth(self, depth: int) -> "Options":
        """These options with ``layers = depth`` (at most ``MAX_DEFAULT_LAYERS``) unless the user gave ``layers``.

        The planner passes the number of links from the entity to the
        farthest table it can reach (``planner.depth``), so the model reads
        every table a label can depend on; ``fanouts``, if not given, follow
        the depth (``DEPTH_FANOUTS``). Fan-outs the user gave are one per
        layer, so they set the depth themselves.
        """
        if "layers" in self.given:
            return self
        if "fanouts" in self.given:
            return dataclasses.replace(self, layers=len(self.fanouts))
        layers = max(1, min(int(depth), MAX_DEFAULT_LAYERS))
        return dataclasses.replace(self, layers=layers, fanouts=fanouts_for(layers))

    def replace(self, **changes) -> "Options":
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict:
        """JSON-friendly values (fanouts as a list, times as ISO text), for storage and display."""
        out = {}
        for f in dataclasses.fields(self):
            if f.name == "given":
                continue
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v.isoformat(sep=" ") if isinstance(v, dt.datetime) else v
        return out

    @classmethod
    def from_dict(cls, values: dict) -> "Options":
        """Options back from ``as_dict`` (a stored model's), unknown keys ignored, then validated.

        Fan-outs past the stored depth are dropped (auto's shallower candidate kept the statement's two
        until this round): they were never sampled, and ``parse`` refuses more fan-outs than layers.
        """
        names = {f.name for f in dataclasses.fields(cls)} - {"given"}
        values = {k: v for k, v in values.items() if k in names and v is not None}
        layers, fanouts = values.get("layers"), values.get("fanouts")
        if isinstance(layers, int) and layers >= 1 and isinstance(fanouts, (list, tuple)) and len(fanouts) > layers:
            values["fanouts"] = list(fanouts)[:layers]
        return cls.parse([(k, v, None) for k, v in values.items()])

    @classmethod
    def parse(cls, items: list[tuple[str, object, Position | None]], position: Position | None = None) -> "Options":
        """Validated options from ``(key, value, position)`` triples, as written in ``WITH (...)``."""
        known = [f.name for f in dataclasses.fields(cls) if f.name != "given"]
        values: dict[str, object] = {}
        for key, value, pos in items:
            key = key.lower()
            if key not in known:
                raise PlanError(f"unknown option `{key}`{did_you_mean(key, known)}; valid options: "
                                f"{', '.join(known)}", pos)
            if key in values:
                raise PlanError(f"option `{key}` is given twice", pos)
            values[key] = _check(key, value, pos)
        given = tuple(values)
        if values.get("layers") and "fanouts" not in values:  # `layers = 3` alone: the fan-outs of that depth
            values["fanouts"] = fanouts_for(values["layers"])
        if "fanouts" in values and "layers" not in values:  # fan-outs alone: one per layer
            values["layers"] = len(values["fanouts"])
        out = cls(**values, given=given)
        if len(out.fanouts) < out.layers:
            raise PlanError(f"{out.layers} layers need {out.layers} fanouts, got {len(out.fanouts)} "
                            f"({','.join(map(str, out.fanouts))})", position)
        if "layers" in given and "fanouts" in given and 1 <= out.layers < len(out.fanouts):
            raise PlanError(f"{len(out.fanouts)} fanouts ({','.join(map(str, out.fanouts))}) for {out.layers} "
                            f"layer{'s' if out.layers > 1 else ''}: give one fan-out per layer, or leave `layers` "
                            f"out and the fan-outs set the depth", position)
        if out.val_start is not None and out.test_start is not None and out.val_start > out.test_start:
            raise PlanError(f"val_start {out.val_start} must not be after test_start {out.test_start}", position)
        return out


DEFAULTS = Options()


def cores() -> int:
    """The cores this process may run on: its CPU affinity where the system has one (a container given 2
    of a machine's 64), else the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def usable_threads(threads: int) -> int:
    """``threads`` capped at ``cores()``: threads past the cores only wait on each other (OpenMP's spinning
    barrier made training 100x slower with ``threads = 1000`` on 2 cores). The option keeps the value given,
    so a model stored on a big machine loads on a small one and uses all of its cores."""
    return max(1, min(int(threads), cores()))


def threads_notices(options: Options) -> list[str]:
    """What the user should hear when ``threads`` asks for more than the cores here (``usable_threads``)."""
    if options.model not in THREADED_MODELS:
        if "threads" in options.given and options.threads != 1:
            how = ("LightGBM trains on one thread (on 2 cores it trained faster than on two, beside other work)"
                   if options.model == "gbdt" else "it is SQL, run on DuckDB's threads (SET threads = N)")
            return [f"threads = {options.threads} is not used by model = '{options.model}': {how}"]
        return []
    used = usable_threads(options.threads)
    if used == options.threads:
        return []
    return [f"threads = {options.threads} is more than the {used} core{'s' if used != 1 else ''} here; "
            f"training uses {used}"]


def fanouts_for(layers: int) -> tuple[int, ...]:
    """The default fan-outs of a model of ``layers`` layers: ``DEPTH_FANOUTS``, then half the last per further hop.

    One rule for ``WITH (layers = N)`` alone and for auto's deeper candidate.
    """
    if layers in DEPTH_FANOUTS:
        return DEPTH_FANOUTS[layers]
    deepest = max(DEPTH_FANOUTS)
    last = DEPTH_FANOUTS[deepest][-1]
    return DEPTH_FANOUTS[deepest] + tuple(max(1, last // 2 ** (i + 1)) for i in range(max(0, layers - deepest)))


def _check(key: str, value, pos: Position | None):
    if key in ("model", "sampler", "conv"):
        choices = {"model": MODELS, "sampler": SAMPLERS, "conv": CONVS}[key]
        if not isinstance(value, str) or value.lower() not in choices:
            raise PlanError(f"option `{key}` must be one of {', '.join(map(repr, choices))}, got {value!r}", pos)
        return value.lower()
    if key == "fanouts":
        return _fanouts(value, pos)
    if key in ("val_start", "test_start"):
        return _timestamp(key, value, pos)
    bound = _BOUNDS[key]
    number = value
    if isinstance(value, str):
        try:
            number = int(value) if bound.whole else float(value)
        except ValueError:
            number = None
    kind = "a whole number" if bound.whole else "a number"
    if (isinstance(number, bool) or not isinstance(number, (int, float))
            or (bound.whole and isinstance(number, float) and not number.is_integer())
            or not bound.low <= number <= bound.high):  # NaN fails this too
        raise PlanError(f"option `{key}` must be {kind} from {_fmt(bound.low)} to {_fmt(bound.high)}, "
                        f"got {value!r}", pos)
    return int(number) if bound.whole else float(number)


def _fmt(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


def _fanouts(value, pos: Position | None) -> tuple[int, ...]:
    parts = list(value) if isinstance(value, (list, tuple)) else str(value).split(",")
    out = []
    for p in parts:
        text = str(p).strip()
        if not (text.isascii() and text.isdigit()) or not 0 < int(text) <= _MAX_FANOUT:  # '²' is a digit
            raise PlanError(f"option `fanouts` is a list of whole numbers from 1 to {_MAX_FANOUT:,}, one per layer, "
                            f"e.g. '32,16'; got {value!r}", pos)
        out.append(int(text))
    return tuple(out)


def _timestamp(key: str, value, pos: Position | None) -> dt.datetime:
    if isinstance(value, dt.datetime):
        out = value
    elif isinstance(value, dt.date):
        out = dt.datetime(value.year, value.month, value.day)
    else:
        try:
            out = dt.datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise PlanError(f"option {key} = {value!r} is not a timestamp; write e.g. {key} = '2024-01-31'",
                            pos) from None
    if out.tzinfo is not None:
        out = out.astimezone(dt.timezone.utc).replace(tzinfo=None)
    if not dt.datetime(1, 1, 2) <= out <= dt.datetime(9999, 12, 30):
        raise PlanError(f"option {key} = {value!r} is outside the range rdl-sql can shift by a window "
                        f"('0001-01-02' to '9999-12-30')", pos)
    return out
