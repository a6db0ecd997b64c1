"""``model = 'auto'``: its candidates, the time budget, and that it never keeps worse than its best candidate."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from rdl_sql.engine import auto
from rdl_sql.planner.errors import PlanError
from rdl_sql.planner.options import Options
from rdl_sql.planner.query import TaskType

CHURN = ("PREDICT COUNT(orders.*, 0, 30, DAYS) = 0 FOR EACH customers.customer_id "
         "WHERE COUNT(orders.*, -90, 0, DAYS) > 0")


def opts(**given) -> Options:
    return Options.parse([(k, v, None) for k, v in given.items()])


# ---- candidates ---------------------------------------------------------------------------------
def test_auto_tries_gbdt_the_default_gnn_a_deeper_and_a_wider_gnn():
    o = opts(model="auto")
    cands = auto.candidates(o)
    assert [c.name for c in cands] == ["gbdt", "gnn", "gnn_deeper", "gnn_wider"]
    assert [c.kind for c in cands] == ["gbdt", "gnn", "gnn", "gnn"]
    assert cands[0].options == cands[1].options == o
    deeper, wider = cands[2].options, cands[3].options
    assert deeper.layers == o.layers + 1 and len(deeper.fanouts) >= deeper.layers
    assert deeper.fanouts[: o.layers] == o.fanouts[: o.layers]
    assert wider.layers == o.layers and wider.fanouts[0] == 2 * o.fanouts[0] and wider.fanouts[1:] == o.fanouts[1:]


def test_auto_never_changes_an_option_the_user_wrote():
    assert [c.name for c in auto.candidates(opts(model="auto", fanouts="4,4"))] == ["gbdt", "gnn"]
    assert [c.name for c in auto.candidates(opts(model="auto", layers=1))] == ["gbdt", "gnn", "gnn_wider"]
    # fan-outs are one per layer, so given fan-outs fix the depth too (the README's example tries two models)
    assert [c.name for c in auto.candidates(opts(model="auto", fanouts="8,4,2"))] == ["gbdt", "gnn"]
    assert auto.not_tried(opts(model="auto", fanouts="8,8")) == [
        "auto: no GNN of another depth (you set `fanouts`: one fan-out per layer) and no wider GNN (you set "
        "`fanouts`)"]
    assert auto.not_tried(opts(model="auto", layers=1)) == ["auto: no GNN of another depth (you set `layers`)"]
    assert auto.not_tried(opts(model="auto")) == auto.not_tried(opts(model="gnn", layers=1)) == []
    for c in auto.candidates(opts(model="auto", epochs=3, channels=8)):
        assert (c.options.epochs, c.options.channels) == (3, 8)


def test_gnn_and_gbdt_are_one_candidate_each():
    assert [(c.name, c.kind) for c in auto.candidates(opts())] == [("gnn", "gnn")]
    assert [(c.name, c.kind) for c in auto.candidates(opts(model="gbdt"))] == [("gbdt", "gbdt")]


def test_the_second_gnn_is_deeper_only_where_that_reaches_another_table(tiny):
    """customers <- orders -> products: every table is within 2 links of a customer."""
    from rdl_sql.planner.schema import read_schema
    schema = read_schema(tiny)
    two = Options(model="auto", layers=2, fanouts=(16, 8))  # as the planner chooses them: none given
    names = [c.name for c in auto.candidates(two, schema, "customers")]
    assert names == ["gbdt", "gnn", "gnn_shallower", "gnn_wider"]
    shallower = auto.candidates(two, schema, "customers")[2].options
    assert shallower.layers == 1 and shallower.hop_fanouts == (16,)
    one = Options(model="auto", layers=1, fanouts=(16,))
    deeper = auto.candidates(one, schema, "customers")[2]
    assert deeper.name == "gnn_deeper" and deeper.options.layers == 2 and deeper.options.hop_fanouts == (16, 8)
    assert auto.reach(two, schema, "customers") == 2 and auto.reach(one, schema, "customers") == 2


def test_sampled_nodes_per_seed():
    assert auto.sampled_nodes(opts(fanouts="16,8")) == 16 + 16 * 8
    assert auto.sampled_nodes(opts(layers=3, fanouts="16,8,4")) == 16 + 128 + 512
    assert auto.sampled_nodes(Options(layers=1, fanouts=(16, 8))) == 16  # only the hops the layers use


def test_the_digest_covers_the_deepest_candidate():
    assert auto.reach(opts(model="auto")) == Options().layers + 1
    assert auto.reach(opts(model="gnn", layers=1)) == 1
    assert auto.reach(opts(model="gbdt", layers=1)) == 2  # the feature query reads two links away


# ---- choosing ------------------------------------------------------------------------------------
class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def fake_prep(task_type: TaskType, **given) -> SimpleNamespace:
    return SimpleNamespace(schema=None, plan=SimpleNamespace(options=opts(model="auto", **given), task_type=task_type,
                                                             entity=SimpleNamespace(name="customers")))


@pytest.fixture
def fake(monkeypatch):
    """``auto.train`` with candidates that report chosen validation values and take chosen seconds."""
    state = {"values": {}, "seconds": {}, "fail": set(), "calls": []}
    clock = Clock()

    def fit(engine, con, prep, candidate):
        state["calls"].append(candidate.name)
        clock.now += state["seconds"].get(candidate.name, 1.0)
        if candidate.name in state["fail"]:
            raise PlanError(f"{candidate.name} cannot train here")
        key = f"val_{prep.plan.task_type.metric}"
        return SimpleNamespace(metrics={key: state["values"][candidate.name], "who": candidate.name})

    monkeypatch.setattr(auto, "fit_candidate", fit)
    monkeypatch.setattr(auto, "with_options", lambda prep, o: SimpleNamespace(
        schema=None, plan=SimpleNamespace(options=o, task_type=prep.plan.task_type, entity=prep.plan.entity)))
    state["clock"] = clock
    return state


@pytest.mark.parametrize("task_type", [TaskType.BINARY, TaskType.REGRESSION])
def test_auto_never_does_worse_than_its_best_candidate_on_validation(fake, task_type):
    rng = np.random.default_rng(0)
    names = ["gbdt", "gnn", "gnn_deeper", "gnn_wider"]
    for trial in range(25):
        values = rng.random(4) if trial % 5 else np.array([0.7, 0.7, 0.6, 0.7])  # ties: the first one stays
        fake["values"] = dict(zip(names, map(float, values)))
        out = auto.train(None, None, fake_prep(task_type), clock=fake["clock"])
        best = values.max() if task_type is TaskType.BINARY else values.min()
        key = f"val_{task_type.metric}"
        assert out.metrics[key] == best
        assert out.metrics["candidate"] == out.result.metrics["who"]
        assert out.metrics["candidate"] == names[int(np.flatnonzero(values == best)[0])]
        assert out.metrics["model"] == ("gbdt" if out.metrics["candidate"] == "gbdt" else "gnn")
        assert {n: out.metrics[f"{n}_{key}"] for n in names} == fake["values"]


def test_notices_name_each_candidate_its_metric_and_seconds_then_the_winner(fake):
    fake["values"] = {"gnn": 0.70, "gbdt": 0.72, "gnn_deeper": 0.75, "gnn_wider": 0.71}
    fake["seconds"] = {"gnn": 3.0, "gbdt": 0.5, "gnn_deeper": 4.0, "gnn_wider": 5.0}
    out = auto.train(None, None, fake_prep(TaskType.BINARY), clock=fake["clock"])
    o = Options()
    assert out.notices[0] == "auto: gbdt (LightGBM on SQL aggregates): val_AUROC 0.7200 in 0.5 s"
    assert out.notices[1] == (f"auto: gnn (layers {o.layers}, fanouts {','.join(map(str, o.hop_fanouts))}): "
                              f"val_AUROC 0.7000 in 3.0 s")
    assert out.notices[2].endswith(": val_AUROC 0.7500 in 4.0 s")
    assert out.notices[-1] == "auto: gnn_deeper won on validation AUROC 0.7500 vs gbdt 0.7200 (+0.0300)"
    assert out.kind == "gnn" and out.prep.plan.options.layers == Options().layers + 1
    assert out.metrics["auto_seconds"] == 12.5


def test_the_budget_stops_further_candidates_and_never_cuts_one_short(fake):
    fake["values"] = {"gnn": 0.7, "gbdt": 0.6, "gnn_deeper": 0.9, "gnn_wider": 0.9}
    fake["seconds"] = {"gnn": 6.0, "gbdt": 6.0, "gnn_deeper": 6.0, "gnn_wider": 6.0}
    out = auto.train(None, None, fake_prep(TaskType.BINARY, time_budget=10), clock=fake["clock"])
    assert fake["calls"] == ["gbdt", "gnn"]  # the GNN started at 6 s < 10 s and ran its whole 6 s
    assert out.metrics["candidate"] == "gnn" and "gnn_deeper_val_AUROC" not in out.metrics
    skipped = [n for n in out.notices if "not tried" in n]
    assert len(skipped) == 2 and "the time budget of 10 s is spent (12.0 s)" in skipped[0]


def test_a_gnn_variant_whose_estimated_time_would_pass_the_budget_is_not_started(fake):
    """The deeper GNN samples 16+128+512 = 656 nodes a seed against the first GNN's 144: about 91 s from its 20 s;
    the wider one 32+256 = 288: about 40 s, which fits."""
    fake["values"] = {"gnn": 0.7, "gbdt": 0.6, "gnn_deeper": 0.9, "gnn_wider": 0.8}
    fake["seconds"] = {"gbdt": 2.0, "gnn": 20.0, "gnn_deeper": 90.0, "gnn_wider": 40.0}
    o = Options(model="auto", layers=2, fanouts=(16, 8), time_budget=80)  # defaults of their own, none given
    prep = SimpleNamespace(schema=None, plan=SimpleNamespace(options=o, task_type=TaskType.BINARY,
                                                             entity=SimpleNamespace(name="customers")))
    out = auto.train(None, None, prep, clock=fake["clock"])
    assert fake["calls"] == ["gbdt", "gnn", "gnn_wider"]
    assert "auto: gnn_deeper (layers 3, fanouts 16,8,4) not tried: about 91 s (from gnn's 20.0 s) would pass the " \
           "time budget of 80 s (22.0 s spent)" in out.notices
    assert out.metrics["candidate"] == "gnn_wider" and out.metrics["auto_seconds"] == 62.0


def test_a_gbdt_whose_feature_query_would_eat_the_budget_goes_after_the_gnn_and_is_skipped(fake, tiny,
                                                                                           monkeypatch):
    """tiny: 11 orders for 4 customers, each joined with its product: 5.5 joined rows per example."""
    from rdl_sql.planner.schema import read_schema
    schema = read_schema(tiny)
    fake["values"] = {"gnn": 0.7, "gbdt": 0.9, "gnn_shallower": 0.6, "gnn_wider": 0.65}

    def prep(examples: int) -> SimpleNamespace:
        return SimpleNamespace(schema=schema, examples=SimpleNamespace(num_rows=examples), plan=SimpleNamespace(
            options=Options(model="auto", layers=2, fanouts=(16, 8)), task_type=TaskType.BINARY,
            entity=schema.tables["customers"]))

    # orders are dated: their 11 rows (each with its product) run once; the windowed join, with no anchors to
    # tell the window's share of the history, reads every example's 5.5 rows
    assert auto.gbdt_rows(prep(1000)) == pytest.approx((22, 5500))
    monkeypatch.setattr(auto, "gbdt_seconds", lambda p: sum(auto.gbdt_rows(p)) / 100_000)  # 10 features a row
    auto.train(None, None, prep(1000), clock=fake["clock"])
    assert fake["calls"][0] == "gbdt"
    fake["calls"].clear()
    out = auto.train(None, None, prep(10_000_000), clock=fake["clock"])  # 55 M rows: about 550 s
    assert fake["calls"][0] == "gnn" and "gbdt" not in fake["calls"]
    note = "auto: gbdt (LightGBM on SQL aggregates) not tried: its feature query reads about 55,000,022 rows, " \
           "about 550 s, which would pass the time budget of 120 s"
    assert any(n.startswith(note) for n in out.notices)


def test_gbdt_seconds_are_joined_rows_times_feature_columns(shop):
    from rdl_sql.bind import to_query
    from rdl_sql.dialect import parse_statement
    from rdl_sql.engine.gbdt import example_features
    from rdl_sql.engine.prepare import prepare
    text = f"{CHURN} WITH (model = 'auto', max_train_rows = 2000)"
    duck = shop.duckdb_connection
    prep = prepare(duck, to_query(parse_statement(text), text))
    _, names = example_features(duck, prep)
    stream, windowed = auto.gbdt_rows(prep)
    assert stream > 0 and 0 < windowed < prep.examples.num_rows * stream  # a 90-day window of a longer history
    assert auto.gbdt_seconds(prep) == pytest.approx(len(names) * (stream / auto.GBDT_STREAM_CELLS_PER_SECOND
                                                                  + windowed / auto.GBDT_CELLS_PER_SECOND))
    assert 0 < auto.gbdt_seconds(prep) < 30  # a small shop: GBDT goes first


def test_the_first_candidate_always_trains_even_past_the_budget(fake):
    fake["values"] = {"gnn": 0.6, "gbdt": 0.7, "gnn_deeper": 0.9, "gnn_wider": 0.9}
    fake["seconds"] = {"gbdt": 50.0}
    out = auto.train(None, None, fake_prep(TaskType.BINARY, time_budget=1), clock=fake["clock"])
    assert fake["calls"] == ["gbdt"]
    assert out.notices[-1] == "auto: gbdt won on validation AUROC 0.7000, the only candidate trained"


def test_a_candidate_that_cannot_train_is_reported_and_the_others_compete(fake):
    fake["values"] = {"gnn": 0.6, "gbdt": 0.9, "gnn_deeper": 0.7, "gnn_wider": 0.65}
    fake["fail"] = {"gbdt"}
    out = auto.train(None, None, fake_prep(TaskType.BINARY), clock=fake["clock"])
    assert "auto: gbdt (LightGBM on SQL aggregates) failed: gbdt cannot train here" in out.notices
    assert out.metrics["candidate"] == "gnn_deeper"
    fake["fail"] = {"gnn", "gbdt", "gnn_deeper", "gnn_wider"}
    with pytest.raises(PlanError, match="gbdt cannot train here"):
        auto.train(None, None, fake_prep(TaskType.BINARY), clock=fake["clock"])


def test_a_nan_validation_metric_never_wins(fake):
    fake["values"] = {"gnn": float("nan"), "gbdt": 0.55, "gnn_deeper": float("nan"), "gnn_wider": 0.5}
    out = auto.train(None, None, fake_prep(TaskType.BINARY), clock=fake["clock"])
    assert out.metrics["candidate"] == "gbdt"


# ---- end to end -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_auto_stores_the_candidate_best_on_validation_and_scores_with_it(shop, one_thread_torch):
    small = "epochs = 1, channels = 16, max_train_rows = 1500, batch_size = 128"
    cur = shop.cursor().execute(f"CREATE MODEL churn AS {CHURN} WITH (model = 'auto', {small})")
    cur.fetchall()
    m = cur.metrics
    vals = {k.removesuffix("_val_AUROC"): v for k, v in m.items() if k.endswith("_val_AUROC")}
    assert {"gbdt", "gnn"} <= set(vals) and len(vals) == 4  # and one GNN of another depth, one wider
    assert m["val_AUROC"] == max(vals.values()) and vals[m["candidate"]] == m["val_AUROC"]
    assert sum(n.startswith("auto: ") and " in " in n for n in cur.notices) == 4
    assert cur.notices[-1] == f"model `churn` ({m['model']}, chosen by auto: {m['candidate']}) stored in rdl_models"
    kind, metrics = shop.execute("SELECT model, metrics FROM rdl_models WHERE name = 'churn'").fetchone()
    assert kind == m["model"] and f'"candidate": "{m["candidate"]}"' in metrics
    props = dict(shop.execute("DESCRIBE MODEL churn").fetchall())
    assert props["model"] == kind and props["chosen_by"].startswith(
        f"auto: {m['candidate']}, the best on validation AUROC of ")
    assert f"{m['candidate']} {m['val_AUROC']:.4f}" in props["chosen_by"]
    scored = shop.execute("PREDICT USING churn").fetchall()
    assert scored and all(0 <= r[3] <= 1 for r in scored)
    again = shop.cursor().execute(f"{CHURN} WITH (model = 'auto', {small})")  # same statement, same data
    assert again.fetchall() == scored
    assert again.notices[0].startswith("reused the model trained by an identical PREDICT")


def test_a_ranking_model_never_trains_a_gnn_in_its_place():
    """The binder refuses it in SQL; the engine refuses it too when called with a bound query."""
    prep = SimpleNamespace(schema=None, plan=SimpleNamespace(options=opts(model="popular"), task_type=TaskType.BINARY,
                                                query=SimpleNamespace(options_position=None)))
    with pytest.raises(PlanError, match="model = 'popular' ranks items, so it needs a LIST_DISTINCT"):
        auto.train(None, None, prep)


@pytest.mark.slow
def test_auto_as_of_ignores_planted_future_rows(shop, one_thread_torch):
    """Every candidate (GBDT's SQL features, the deeper GNN's third hop) reads nothing after AS OF."""
    cutoff = "2023-09-01 00:00:00"
    stmt = (f"{CHURN} AS OF TIMESTAMP '{cutoff}' WITH (model = 'auto', epochs = 1, channels = 8, "
            f"max_train_rows = 800, batch_size = 128)")
    cur = shop.cursor()
    before = cur.execute(stmt).fetchall()
    metrics = {k: v for k, v in cur.metrics.items() if "seconds" not in k}
    shop.execute(f"""
        INSERT INTO orders SELECT 1000000 + customer_id, customer_id, 1,
                                  TIMESTAMP '{cutoff}' + INTERVAL 1 SECOND, 9999.0 FROM customers;
        INSERT INTO reviews SELECT 1000000 + customer_id, customer_id, 1, 1,
                                   TIMESTAMP '{cutoff}' + INTERVAL 2 DAYS FROM customers;
    """)
    again = cur.execute(stmt).fetchall()
    assert cur.notices[0].startswith("auto: gbdt")  # the data changed, so it trained again
    assert again == before
    assert {k: v for k, v in cur.metrics.items() if "seconds" not in k} == metrics


@pytest.mark.slow
def test_a_stored_gnn_variant_scores_as_it_did_when_it_won(shop, one_thread_torch, monkeypatch):
    """The winner trained with other layers or fan-outs than the statement's: stored with its own, reloaded so."""
    real = auto.fit_candidate

    def variant_wins(engine, con, prep, candidate):
        result = real(engine, con, prep, candidate)
        if candidate.name not in ("gnn", "gbdt"):
            result.metrics["val_AUROC"] = 0.99  # this variant is the best on validation
        return result

    monkeypatch.setattr(auto, "fit_candidate", variant_wins)
    stmt = f"{CHURN} WITH (model = 'auto', epochs = 1, channels = 8, max_train_rows = 800, time_budget = 600)"
    cur = shop.cursor()
    own = cur.execute(stmt).fetchall()
    winner = cur.metrics["candidate"]
    assert winner in ("gnn_deeper", "gnn_shallower") and cur.metrics["model"] == "gnn"
    (note,) = [n for n in cur.notices if n.startswith(f"auto: {winner} (layers ")]
    layers = int(note.split("(layers ")[1].split(",")[0])
    shop.execute("CREATE MODEL v AS " + stmt)
    assert dict(shop.execute("DESCRIBE MODEL v").fetchall())["option layers"] == str(layers)
    assert shop.execute("PREDICT USING v").fetchall() == own


def test_auto_on_a_composite_key_reports_that_gbdt_cannot_and_keeps_a_gnn(shop):
    shop.execute("""
        CREATE TABLE stock(shop INTEGER, sku INTEGER, grade VARCHAR, qty DOUBLE, PRIMARY KEY (shop, sku));
        CREATE TABLE moves(move_id INTEGER PRIMARY KEY, shop INTEGER, sku INTEGER, n DOUBLE, moved_at TIMESTAMP,
                           FOREIGN KEY (shop, sku) REFERENCES stock (shop, sku));
        INSERT INTO stock SELECT i % 7, i, CASE WHEN i % 3 = 0 THEN 'a' ELSE 'b' END, i * 1.5 FROM range(200) t(i);
        INSERT INTO moves SELECT i, (i % 200) % 7, i % 200, i, TIMESTAMP '2024-01-01' + INTERVAL (i) HOUR
                          FROM range(600) t(i);
        UPDATE stock SET grade = NULL WHERE sku % 10 = 0;
    """)
    cur = shop.cursor().execute("PREDICT stock.grade FOR EACH (stock.shop, stock.sku) WITH (model = 'auto', "
                                "epochs = 1, channels = 8, fanouts = '4,4')")
    assert len(cur.fetchall()) == 20
    assert "auto: gbdt (LightGBM on SQL aggregates) failed: composite keys (shop, sku) work with model = 'gnn' " \
           "only" in cur.notices
    assert cur.metrics["model"] == "gnn"



def test_gnn_candidates_of_one_depth_load_the_graph_once(shop, one_thread_torch, monkeypatch):
    """auto's default and wider GNNs read the same tables: the second reuses the first's graph, and trains to
    the very same model as on a graph of its own; a candidate of another depth loads the tables it reads."""
    from rdl_sql.bind import to_query
    from rdl_sql.dialect import parse_statement
    from rdl_sql.engine import gnn
    from rdl_sql.engine.prepare import prepare

    loads = []
    real = gnn.load_graph
    monkeypatch.setattr(gnn, "load_graph", lambda *a, **k: loads.append(a[1].graph_tables) or real(*a, **k))
    text = f"{CHURN} WITH (model = 'auto', epochs = 1, channels = 8, max_train_rows = 400)"
    con = shop.duckdb_connection
    prep = prepare(con, to_query(parse_statement(text), text))
    by_name = {c.name: c for c in auto.candidates(prep.plan.options, prep.schema, "customers")}
    first = gnn.train(con, auto.with_options(prep, by_name[auto.GNN].options), False)
    wide = gnn.train(con, auto.with_options(prep, by_name[auto.WIDER].options), False)
    assert len(loads) == 1 and wide.graph is first.graph
    alone = gnn.train(con, auto.with_options(prepare(con, to_query(parse_statement(text), text)),
                                             by_name[auto.WIDER].options), False)
    assert len(loads) == 2 and alone.graph is not wide.graph
    assert alone.metrics["val_AUROC"] == wide.metrics["val_AUROC"]
    shallow = auto.with_options(prep, prep.plan.options.replace(layers=1, fanouts=(16,)))
    assert shallow.graph_tables != prep.graph_tables  # products are two links from customers
    gnn.train(con, shallow, False)
    assert loads[-1] == shallow.graph_tables and len(loads) == 3
