"""A schema rdl-sql was not built for: odd identifiers, no declared keys, NULL and dangling keys,
two links to one table, a static entity table, a wide table. Every statement must still work."""
import pytest

import rdl_sql

FAST = "WITH (epochs = 1, channels = 8, fanouts = '2,2', max_train_rows = 2000)"


@pytest.fixture(scope="module")
def con():
    c = rdl_sql.connect(progress=False)
    c.execute("""
        CREATE TABLE "My Customers"("customer id" INTEGER PRIMARY KEY, "select" VARCHAR, "Age.Years" DOUBLE);
        CREATE TABLE "Order Items"("item" INTEGER PRIMARY KEY, "customer id" INTEGER, "seller" INTEGER,
                                   "when" TIMESTAMP, "amount €" DOUBLE, note VARCHAR);
        INSERT INTO "My Customers" SELECT i, CASE WHEN i % 2 = 0 THEN 'a' ELSE 'b' END,
               CASE WHEN i % 9 = 0 THEN NULL ELSE i % 50 END FROM range(300) t(i);
        INSERT INTO "Order Items" SELECT i,
               CASE WHEN i % 17 = 0 THEN NULL WHEN i % 23 = 0 THEN 99999 ELSE (i * 7) % 300 END,  -- NULL, dangling
               (i * 11) % 300, TIMESTAMP '2024-01-01' + INTERVAL (i % 365) DAY, (i % 13) * 1.5, 'n' || (i % 5)
               FROM range(6000) t(i);
        ALTER GRAPH ADD LINK "Order Items"("customer id") REFERENCES "My Customers"("customer id");
        ALTER GRAPH ADD LINK "Order Items"("seller") REFERENCES "My Customers"("customer id");
    """)
    c.execute("CREATE TABLE wide AS SELECT range AS wid, range % 300 AS cust, "
              + ", ".join(f"random() AS c{i}" for i in range(80)) + " FROM range(400)")
    c.execute('ALTER GRAPH ADD LINK wide(cust) REFERENCES "My Customers"("customer id")')
    yield c
    c.close()


def test_two_links_to_one_table_need_via_and_the_hint_is_valid_sql(con):
    with pytest.raises(rdl_sql.ProgrammingError) as err:
        con.execute('PREDICT COUNT("Order Items".*, 0, 30, DAYS) FOR EACH "My Customers"."customer id"')
    hint = str(err.value).split("e.g. ")[1].split("\n")[0]
    assert hint == 'COUNT("Order Items".* VIA "customer id", 0, 30, DAYS)'
    rows = con.execute(f'PREDICT {hint} FOR EACH "My Customers"."customer id" {FAST}').fetchall()
    assert len(rows) == 300


def test_binary_with_via_filter_on_the_other_link(con):
    cur = con.execute('PREDICT COUNT("Order Items".* VIA "customer id", 0, 30, DAYS) > 1 '
                      'FOR EACH "My Customers"."customer id" '
                      'WHERE COUNT("Order Items".* VIA seller, -30, 0, DAYS) > 0 ' + FAST)
    assert [d[0] for d in cur.description] == ["customer id", "anchor_time", "prediction", "score"]
    assert 0 < len(cur.fetchall()) <= 300


def test_column_targets_on_a_static_table_with_odd_names(con):
    cur = con.execute(f'PREDICT "My Customers"."Age.Years" FOR EACH "My Customers"."customer id" {FAST}')
    assert [r[0] for r in cur.fetchall()] == list(range(0, 300, 9))
    cur = con.execute(f'PREDICT "My Customers"."select" = \'a\' FOR EACH "My Customers"."customer id" {FAST}')
    assert cur.fetchall() == []  # no NULLs in "select": nothing to fill, and (issue 12) nothing trained
    assert cur.metrics is None and "has no NULL to fill in" in cur.notices[0]


def test_gbdt_and_explain_on_the_odd_schema(con):
    rows = con.execute('PREDICT SUM("Order Items"."amount €" VIA "customer id", 0, 30, DAYS) '
                       'FOR EACH "My Customers"."customer id" WITH (model = \'gbdt\')').fetchall()
    assert len(rows) == 300
    plan = con.execute('EXPLAIN PREDICT COUNT("Order Items".* VIA seller, 0, 30, DAYS) '
                       'FOR EACH "My Customers"."customer id"').fetchall()
    details = {r[1]: r[2] for r in plan}
    assert details["node wide"].startswith("400 rows") and "c79 (numerical)" in details["node wide"]
    # of 6000 orders, 353 have a NULL customer and 245 a dangling one: no edge, but still rows
    assert details["node Order Items"].startswith("6,000 rows")
    assert details['edge Order Items(customer id) -> My Customers(customer id)'].startswith("5,402 edges")


def test_nothing_to_fill_on_a_composite_key_offers_valid_sql_and_keeps_the_columns_type():
    """The notice offered ``FOR pairs.a, b IN (...)``, which does not parse; the empty result typed an ENUM VARCHAR."""
    c = rdl_sql.connect(progress=False)
    c.execute("""
        CREATE TYPE tier AS ENUM ('low', 'high');
        CREATE TABLE pairs(a INTEGER, b INTEGER, t tier, x DOUBLE, PRIMARY KEY (a, b));
        INSERT INTO pairs SELECT i % 20, i // 20, CASE WHEN i % 3 = 0 THEN 'high' ELSE 'low' END, i
               FROM range(200) t(i);
    """)
    cur = c.execute("PREDICT pairs.t FOR EACH (pairs.a, pairs.b) WITH (model = 'gbdt')")
    assert cur.fetchall() == []
    hint = cur.notices[0].split("use ")[1].split(" IN (...)")[0]
    assert hint == "FOR (pairs.a, pairs.b)"
    assert c.execute("DESCRIBE PREDICT pairs.t FOR EACH (pairs.a, pairs.b) WITH (model = 'gbdt')").fetchall()[2][1] \
        == "ENUM('low', 'high')"
    rows = c.execute(f"PREDICT pairs.t {hint} IN (SELECT 1, 2) {FAST}").fetchall()
    assert len(rows) == 1 and rows[0][2] in ("low", "high")
    c.close()
