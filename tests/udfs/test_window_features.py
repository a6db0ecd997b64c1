"""What format 4 models read beyond the sampled rows: windowed counts and means, ages, calendar, keys.

Each quantity is checked against a brute-force computation over the rows of
a small DuckDB database, and each is shown blind to rows dated after the
anchor (planted-future rows inserted between two draws change nothing).
"""
from __future__ import annotations

import datetime as dt
import math

import duckdb
import numpy as np
import pyarrow as pa
import pytest
import torch

from rdl_sql.planner.extract import KEY_FEATURE_MAX_ROWS, extract, key_feature
from rdl_sql.planner.features import window_microseconds
from rdl_sql.planner.schema import TableInfo, read_schema
from rdl_sql.udfs.columns import ColumnSpec, encode_features
from rdl_sql.udfs.encoders import CalendarEncoder
from rdl_sql.udfs.graph import build_graph
from rdl_sql.udfs.model import RelationalGNN, newest_age
from rdl_sql.udfs.sampler import sample
from rdl_sql.udfs.train import WeightAverage

DAY_US = 86_400 * 1_000_000
START = dt.datetime(2024, 1, 1)
ANCHOR = dt.datetime(2024, 4, 1)
WINDOWS = ((10, "DAYS"), (1, "MONTHS"))


def _us(t: dt.datetime) -> int:
    return int(t.replace(tzinfo=dt.timezone.utc).timestamp() * 1_000_000)


@pytest.fixture
def events():
    """``users`` (5) and their ``events`` (random times over six months, a number ``v`` and a ``kind``)."""
    rng = np.random.default_rng(0)
    con = duckdb.connect()
    con.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, joined TIMESTAMP)")
    con.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, uid INTEGER REFERENCES users (id), "
                "happened TIMESTAMP, v DOUBLE, kind VARCHAR)")
    con.executemany("INSERT INTO users VALUES (?, ?)", [(u, START) for u in range(5)])
    rows = []
    for i in range(300):
        at = START + dt.timedelta(minutes=int(rng.integers(0, 180 * 24 * 60)))
        rows.append((i, int(rng.integers(0, 5)), at, float(rng.normal(10, 3)), "early" if at < ANCHOR else "late"))
    con.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?)", rows)
    yield con
    con.close()


def _draw(con, fit_until_us: int | None = None):
    s = read_schema(con)
    keys = {"events": "id"}  # a key embedding: its vocabulary too is fitted on what training may see
    graph = build_graph(extract(con, s, ["users", "events"], None, keys=keys), fit_until_us=fit_until_us, keys=keys)
    users = graph.type_of("users")
    sub = sample(graph, users, torch.arange(5), torch.full((5,), _us(ANCHOR)), [4], "recent",
                 windows_us=window_microseconds(WINDOWS))
    et = next(et for et in sub.recent if et[2] == users)
    return graph, sub, et


def test_windowed_counts_and_means_read_every_row_in_each_window(events):
    graph, sub, et = _draw(events, fit_until_us=_us(ANCHOR))
    spec = graph.specs["events"]
    mean, std = spec.means[spec.numerical.index("v")], spec.stds[spec.numerical.index("v")]
    rows = events.execute("SELECT uid, epoch_us(happened), v FROM events WHERE happened <= ?", [ANCHOR]).fetchall()
    spans = [w * 1e6 for w in (10 * 86_400, 365.2425 * 86_400 / 12)]
    for u in range(5):
        mine = [(t, (v - mean) / std) for uid, t, v in rows if uid == u]
        counts = [sum(1 for t, _ in mine if t > _us(ANCHOR) - span) for span in spans]
        assert sub.recent[et][u].tolist() == counts
        assert int(sub.visible[et][u]) == len(mine) > 4  # more rows than the fan-out of 4 samples
        means = sub.means[et][u].view(len(WINDOWS) + 1, -1)[:, spec.numerical.index("v")]
        expected = [np.mean([z for t, z in mine if t > _us(ANCHOR) - span] or [0.0]) for span in spans]
        expected.append(np.mean([z for _, z in mine]))
        assert means.tolist() == pytest.approx(expected, abs=1e-5)


def test_planted_future_rows_change_no_count_mean_or_encoding(events):
    graph, before, et = _draw(events, fit_until_us=_us(ANCHOR))
    # rows after the anchor: a burst of events, a new category, extreme values
    events.execute("INSERT INTO events SELECT 1000 + id, id, ?, 1e6, 'future' FROM users",
                   [ANCHOR + dt.timedelta(microseconds=1)])
    events.execute("INSERT INTO events SELECT 2000 + id, id, ?, -1e6, 'future' FROM users",
                   [ANCHOR + dt.timedelta(days=3)])
    again, after, _ = _draw(events, fit_until_us=_us(ANCHOR))
    assert again.specs == graph.specs  # means, deviations, vocabularies: fitted on rows up to the anchor
    assert "late" not in again.specs["events"].vocabs[0] and "future" not in again.specs["events"].vocabs[0]
    keys_seen = again.specs["events"].key_vocab
    assert keys_seen and "1000" not in keys_seen and "2000" not in keys_seen
    for field in ("visible", "recent", "means"):
        b, a = getattr(before, field), getattr(after, field)
        assert {k: v.tolist() for k, v in b.items()} == {k: v.tolist() for k, v in a.items()}, field
    # fitted without the cut, the future rows do move the statistics
    assert build_graph(extract(events, read_schema(events), ["events"], None)).specs != again.specs


def test_newest_age_is_the_days_from_the_newest_source_to_the_anchor():
    edge_index = torch.tensor([[0, 1, 2], [0, 0, 1]])
    src_time = torch.tensor([0, 5 * DAY_US, 2 * DAY_US])
    newest = torch.tensor([1, 2, -1])
    age = newest_age(edge_index, newest, src_time, torch.tensor([10 * DAY_US, 3 * DAY_US, 0]))
    assert age.tolist() == [5.0, 1.0, -1.0]
    assert newest_age(torch.zeros(2, 0, dtype=torch.long), torch.tensor([-1]), src_time[:0],
                      torch.tensor([0])).tolist() == [-1.0]


def test_calendar_terms_repeat_with_the_year_week_and_day():
    feats = CalendarEncoder.features  # [sin day, sin week, sin year, cos day, cos week, cos year]
    noon = _us(dt.datetime(2023, 3, 1, 12))
    base = feats(torch.tensor([noon]))
    week_later = feats(torch.tensor([noon + 7 * DAY_US]))
    assert week_later[0, :2].tolist() == pytest.approx(base[0, :2].tolist(), abs=1e-5)   # day and week
    assert week_later[0, 3:5].tolist() == pytest.approx(base[0, 3:5].tolist(), abs=1e-5)
    year = round(365.2425 * DAY_US)
    year_later = feats(torch.tensor([noon + year]))
    assert year_later[0, 2].item() == pytest.approx(base[0, 2].item(), abs=1e-5)  # time of year
    midnight = feats(torch.tensor([_us(dt.datetime(2023, 3, 1))]))
    assert midnight[0, 3].item() == pytest.approx(-base[0, 3].item(), abs=1e-5)  # cos(day): noon vs midnight
    next_day = feats(torch.tensor([noon + DAY_US]))
    assert not all(math.isclose(next_day[0, i].item(), base[0, i].item(), abs_tol=1e-3) for i in (1, 4))


def test_a_calendar_period_is_read_only_once_the_training_anchors_cover_it():
    start = _us(dt.datetime(2013, 1, 1))
    ten_months = torch.tensor([start, start + 300 * DAY_US])
    assert CalendarEncoder.periods_seen(ten_months) == (1.0, 7.0)  # December would be new in the test window
    assert CalendarEncoder.periods_seen(torch.tensor([start, start + 3 * 365 * DAY_US])) == CalendarEncoder.PERIODS_DAYS
    assert CalendarEncoder.periods_seen(torch.tensor([start, start])) == ()
    assert CalendarEncoder.periods_seen(torch.tensor([], dtype=torch.long)) == ()


def test_key_feature_only_for_small_tables_with_a_one_column_key():
    small = TableInfo("p", (), ("id",), None, KEY_FEATURE_MAX_ROWS)
    assert key_feature(small) == "id"
    assert key_feature(TableInfo("p", (), ("id",), None, KEY_FEATURE_MAX_ROWS + 1)) is None
    assert key_feature(TableInfo("t", (), ("year", "team"), None, 10)) is None
    assert key_feature(TableInfo("t", (), (), None, 10)) is None


def test_a_key_not_seen_in_training_reads_as_unseen():
    spec = ColumnSpec(key="id", key_vocab=["1", "2", "3"])
    _, x_cat = encode_features(pa.table({"id": pa.array([2, 7, None, 1])}), spec)
    assert x_cat[:, -1].tolist() == [2, 0, 0, 1]
    assert spec.cat_sizes == [4]


def test_weight_average_is_validated_and_the_trained_weights_come_back():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    avg = WeightAverage(model, steps_per_epoch=20)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(30):
        opt.zero_grad()
        model(torch.randn(8, 3)).pow(2).mean().backward()
        opt.step()
        avg.update()
    trained = [p.detach().clone() for p in model.parameters()]
    avg.swap_in()
    averaged = [p.detach().clone() for p in model.parameters()]
    assert any(not torch.equal(a, t) for a, t in zip(averaged, trained))
    avg.swap_out()
    assert all(torch.equal(p, t) for p, t in zip(model.parameters(), trained))


def test_format_4_parts_are_absent_from_a_format_3_model(small_shop):
    g = small_shop["graph"]
    old = RelationalGNN(g.node_specs(), g.edge_types, 8, 2)
    new = small_shop["model"].model
    assert (old.windows, old.calendar, old.when) == (0, None, None)
    assert new.calendar == CalendarEncoder.PERIODS_DAYS and new.windows == 4 and new.when is not None
    assert not any(k.startswith("when.") for k in old.state_dict())


def test_windows_with_an_empty_hop_and_a_row_without_neighbours(events):
    """Three hops from users: the third expands no user (each was reached from its own event), and a
    user without events has zero counts and means (this crashed the sampler once: a reshape of 0 rows)."""
    events.execute("INSERT INTO users VALUES (9, ?)", [START])
    s = read_schema(events)
    graph = build_graph(extract(events, s, ["users", "events"], None))
    users = graph.type_of("users")
    sub = sample(graph, users, torch.tensor([5, 0]), torch.full((2,), _us(ANCHOR)), [4, 4, 4], "recent",
                 windows_us=window_microseconds(WINDOWS))
    et = next(et for et in sub.means if et[2] == users)
    assert sub.means[et].shape == (sub.node[users].numel(), (len(WINDOWS) + 1) * len(graph.specs["events"].numerical))
    assert sub.recent[et][0].tolist() == [0, 0] and not sub.means[et][0].any()
    assert sub.recent[et][1].sum() > 0


def test_the_linear_term_starts_at_zero_and_adds_w_x_for_the_links_into_the_seeds_table(small_shop):
    """Format 6's ``RelationalGNN.direct`` (regression models): a fresh model's output is its head's
    (training starts where format 5 did); with weights, it adds ``W x`` per link into the seed's table, ``x``
    the seeds' log windowed counts and windowed means, as the sampler found them, and not the all-past ones."""
    import copy

    from rdl_sql.udfs.loader import load
    from rdl_sql.udfs.train import new_model

    g, tm, val = small_shop["graph"], small_shop["model"], small_shop["val"]
    n = 8
    batch = load(g, sample(g, tm.seed_type, val.node[:n], val.anchor[:n], tm.fanouts, tm.strategy,
                           windows_us=tm.windows_us))
    fresh = new_model(g, tm.seed_type, "regression", small_shop["options"], windows_us=tm.windows_us).model
    assert all(not lin.weight.any() for lin in fresh.direct.values())
    assert not list(tm.model.direct)  # a classifier has none
    model = copy.deepcopy(fresh).eval()
    into_seed = [et for et in model.direct.keys() if et[2] == tm.seed_type]
    assert into_seed and len(into_seed) < len(model.direct)  # orders -> customers; not orders -> products
    with torch.no_grad():
        torch.manual_seed(0)
        for lin in model.direct.values():
            lin.weight.normal_()
        without = copy.deepcopy(model)
        for lin in without.direct.values():
            lin.weight.zero_()
        windows = len(tm.windows_us)
        expected = 0.0
        for et in into_seed:
            means = batch.window_mean_dict[et][:n]
            per_range = means.shape[1] // (windows + 1)  # window-major; the all-past means last, not read
            x = torch.cat([torch.log1p(batch.num_recent_dict[et][:n].float()),
                           means[:, : windows * per_range].clamp(-10, 10)], 1)
            expected = expected + x @ model.direct[et].weight.T
        # the all-past count and means are not read: changing them changes nothing
        batch.num_visible_dict = {et: v * 7 for et, v in batch.num_visible_dict.items()}
        for et in into_seed:
            means = batch.window_mean_dict[et]
            means[:, windows * (means.shape[1] // (windows + 1)):] += 3.0
        assert torch.allclose(model(batch) - without(batch), expected, atol=1e-5)
