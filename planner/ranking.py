"""``PREDICT LIST_DISTINCT(t.fk, a, b, UNIT) RANK TOP k``: the recommendation target, resolved and in SQL.

The listed column ``t.fk`` is a foreign key of a table ``t`` linked to the
entity; its parent table holds the items. For an example (entity, anchor
``T``) the label is the set of distinct items the entity's ``t`` rows name in
``(T + a, T + b]``, as node ids of the item table.

Anchors, splits and the entity population (exists at the anchor, WHERE,
ASSUMING) are the ones ``compile_task`` chooses for the same statement with
``LAST(t.fk, a, b, UNIT)`` as its target: that target has a label exactly
when the window lists at least one item, so both count the same examples
and the time rules are written once.

Baselines are SQL here (no torch): ``popular`` ranks the items named most
often in the last ``POPULAR_WINDOWS`` window lengths before the anchor;
``past`` ranks the entity's own past items (most often, then most recently
named first), then fills with popular ones. An item is a candidate at anchor
``T`` only if its row exists at ``T`` and some row named it at or before
``T``: an item that appears only after the anchor is never recommended.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

import duckdb
from sqlglot import exp

from .anchors import shift_sql
from .errors import PlanError, did_you_mean, sql_name
from .labels import ANCHOR, SPLIT, TaskPlan
from .nodes import NODE, node_name, node_select, time_name, time_value
from .query import RANKING_FUNC, Aggregate, PredictQuery, Target, TaskType
from .resolve import KEY_NAMES_TAKEN, normalize
from .schema import Link, Schema, TableInfo
from .sql import alias, col, ident, lit, table
from .task import compile_task

#: popularity reads the last POPULAR_WINDOWS target-window lengths before the anchor
POPULAR_WINDOWS = 4
ITEM = "__item"          # item node id
ITEM_TIME = "__item_time"
ITEM_KEY = "__item_key"
TIME = "__t"             # time of the row that names the item
RANK = "rank"
SCORE = "score"
LABEL = "label"


def _sub(q: exp.Expression, name: str) -> exp.Subquery:
    return exp.Subquery(this=q, alias=exp.TableAlias(this=ident(name)))


@dataclass(frozen=True)
class RankingPlan:
    """A checked recommendation statement.

    ``base`` is the plan of the same statement with ``LAST(t.fk, ...)`` as
    target: its anchors, splits, entity rows and WHERE population are this
    plan's. ``listing`` is table ``t``, ``entity_link`` its link to the
    entity, ``item_link`` the listed column's link to ``item``.
    """

    base: TaskPlan
    listing: TableInfo
    entity_link: Link
    item: TableInfo
    item_link: Link
    k: int
    item_column: str  # name of the item key in the prediction rows
    query: PredictQuery  # the statement as written (its target is LIST_DISTINCT)

    task_type = TaskType.RANKING

    @property
    def keys(self) -> tuple[str, ...]:
        return self.base.keys

    @property
    def agg(self) -> Aggregate:
        return self.base.target.agg

    @property
    def output_columns(self) -> list[str]:
        return [*self.keys, ANCHOR, RANK, self.item_column, SCORE]

    # ---- building blocks ---------------------------------------------------------------------
    def items_sql(self) -> exp.Select:
        """``(__item, __item_time, __item_key)``: the item rows visible at the cut-off, as graph nodes."""
        inner = node_select(self.item, self.base.as_of, [alias(col(self.item_link.parent_columns[0]), ITEM_KEY)])
        return exp.select(alias(col(node_name(self.item)), ITEM), alias(col(time_name(self.item)), ITEM_TIME),
                          col(ITEM_KEY)).from_(_sub(inner, "__iv"))

    def interactions_sql(self) -> exp.Select:
        """``(__e0.., __item, __item_time, __t)``: every dated row of the listing table that names an item
        row, with its link to the entity (``__e<i>``: the entity's key columns in order), up to the cut-off."""
        t = time_value(self.listing, "__l")
        by_parent = dict(zip(self.entity_link.parent_columns, self.entity_link.child_columns))
        ents = [alias(col(by_parent[k], "__l"), f"__e{i}") for i, k in enumerate(self.keys)]
        conds = [t.is_(exp.null()).not_()]
        if self.base.as_of is not None:
            conds.append(t.copy() <= lit(self.base.as_of))
        return (exp.select(*ents, col(ITEM, "__i"), col(ITEM_TIME, "__i"), alias(t.copy(), TIME))
                .from_(table(self.listing.name, "__l"))
                .join(_sub(self.items_sql(), "__i"),
                      on=col(self.item_link.child_columns[0], "__l").eq(col(ITEM_KEY, "__i")))
                .where(exp.and_(*conds)))

    def _key_match(self, rows: str, inter: str) -> exp.Expression:
        return exp.and_(*[col(k, rows).eq(col(f"__e{i}", inter)) for i, k in enumerate(self.keys)])

    def _visible_item(self, inter: str, anchor: exp.Expression) -> exp.Expression:
        it = col(ITEM_TIME, inter)
        return exp.or_(it.is_(exp.null()), it.copy() <= anchor.copy())

    # ---- labels -------------------------------------------------------------------------------
    def examples_sql(self, anchors: list[tuple[dt.datetime, str]]) -> exp.Select:
        """Labelled rows ``(__node, <keys>, anchor_time, split, label)``: ``label`` is the sorted list of the
        distinct item nodes the entity's rows name in ``(anchor + start, anchor + end]`` (never empty)."""
        agg = self.agg
        rows = _sub(self.base.examples_sql(anchors).order_by(None), "__x")
        anchor = col(ANCHOR, "__x")
        t = col(TIME, "__y")
        on = exp.and_(self._key_match("__x", "__y"), t > shift_sql(anchor.copy(), agg.start, agg.unit),
                      t.copy() <= shift_sql(anchor.copy(), agg.end, agg.unit))
        group = [col(NODE, "__x"), *[col(k, "__x") for k in self.keys], anchor.copy(), col(SPLIT, "__x")]
        label = exp.func("list_sort", exp.func("list_distinct", exp.ArrayAgg(this=col(ITEM, "__y"))))
        return (exp.select(*group, alias(label, LABEL))
                .from_(rows).join(_sub(self.interactions_sql(), "__y"), on=on)
                .group_by(*[g.copy() for g in group])
                .order_by(col(ANCHOR), col(NODE)))

    def rows_sql(self, anchor: dt.datetime | None = None) -> exp.Select:
        """Rows ``(__node, <keys>, anchor_time)`` to rank items for: FOR EACH / FOR ... IN, as other targets."""
        return self.base.predict_sql(anchor)

    # ---- baselines ----------------------------------------------------------------------------
    def popular_sql(self, rows: exp.Expression, n: int) -> exp.Select:
        """``(anchor_time, __item, score, __pop)``: the ``n`` most popular candidates at each anchor of ``rows``.

        Popularity: rows naming the item in the last ``POPULAR_WINDOWS`` window
        lengths (ties: all rows up to the anchor, then the item's node id);
        ``score`` is the item's share of those recent rows, ``__pop`` its place.
        """
        agg = self.agg
        anchors = _sub(exp.select(col(ANCHOR)).distinct().from_(_sub(rows, "__r0")), "__a")
        a = col(ANCHOR, "__a")
        recent = col(TIME, "__y") > shift_sql(a.copy(), -POPULAR_WINDOWS * (agg.end - agg.start), agg.unit)
        counts = (exp.select(a.copy(), col(ITEM, "__y"), alias(exp.func("count_if", recent), "__recent"),
                             alias(exp.Count(this=exp.Star()), "__total"))
                  .from_(anchors)
                  .join(_sub(self.interactions_sql(), "__y"),
                        on=exp.and_(col(TIME, "__y") <= a.copy(), self._visible_item("__y", a)))
                  .group_by(a.copy(), col(ITEM, "__y")))
        order = exp.Order(expressions=[exp.Ordered(this=col("__recent"), desc=True),
                                       exp.Ordered(this=col("__total"), desc=True), exp.Ordered(this=col(ITEM))])
        place = exp.Window(this=exp.RowNumber(), partition_by=[col(ANCHOR)], order=order)
        share = col("__recent") / exp.func("greatest", exp.Window(this=exp.Sum(this=col("__recent")),
                                                                  partition_by=[col(ANCHOR)]), lit(1))
        ranked = exp.select(col(ANCHOR), col(ITEM), alias(exp.cast(share, "DOUBLE"), SCORE),
                            alias(place, "__pop")).from_(_sub(counts, "__c"))
        return exp.select("*").from_(_sub(ranked, "__p")).where(col("__pop") <= lit(n))

    def baseline_sql(self, rows: exp.Expression, model: str) -> exp.Select:
        """``(<keys>, anchor_time, rank, __item, score)``: the top ``k`` of baseline ``model`` for each row of
        ``rows`` (columns ``<keys>, anchor_time``), ranks 1..k, fewer when fewer items are candidates."""
        keys = [col(k, "__r") for k in self.keys]
        if model == "popular":
            ranked = (exp.select(*keys, col(ANCHOR, "__r"), alias(col("__pop", "__p"), RANK), col(ITEM, "__p"),
                                 col(SCORE, "__p"))
                      .from_(_sub(rows.copy(), "__r"))
                      .join(_sub(self.popular_sql(rows, self.k), "__p"), on=col(ANCHOR, "__r").eq(col(ANCHOR, "__p"))))
            return ranked
        if model != "past":
            raise ValueError(model)
        a = col(ANCHOR, "__r")
        own = (exp.select(*keys, a.copy(), col(ITEM, "__y"), alias(lit(1), "__tier"),
                          alias(exp.cast(exp.Count(this=exp.Star()), "DOUBLE"), SCORE),
                          alias(exp.Max(this=col(TIME, "__y")), "__last"),
                          alias(exp.cast(exp.null(), "BIGINT"), "__pop"))
               .from_(_sub(rows.copy(), "__r"))
               .join(_sub(self.interactions_sql(), "__y"),
                     on=exp.and_(self._key_match("__r", "__y"), col(TIME, "__y") <= a.copy(),
                                 self._visible_item("__y", a)))
               .group_by(*[k.copy() for k in keys], a.copy(), col(ITEM, "__y")))
        # the k most popular items not among the entity's own fill the list; 2k popular ones always hold them
        fill = (exp.select(*[k.copy() for k in keys], a.copy(), col(ITEM, "__p"), alias(lit(2), "__tier"),
                           col(SCORE, "__p"), alias(exp.cast(exp.null(), "TIMESTAMP"), "__last"), col("__pop", "__p"))
                .from_(_sub(rows.copy(), "__r"))
                .join(_sub(self.popular_sql(rows, 2 * self.k), "__p"), on=a.copy().eq(col(ANCHOR, "__p"))))
        both = _sub(exp.union(own, fill, distinct=False), "__b")
        part = [col(k) for k in self.keys] + [col(ANCHOR)]
        first = exp.Window(this=exp.RowNumber(), partition_by=[*[p.copy() for p in part], col(ITEM)],
                           order=exp.Order(expressions=[exp.Ordered(this=col("__tier"))]))
        dedup = exp.select("*").from_(both).qualify(first.eq(lit(1)))
        order = exp.Order(expressions=[exp.Ordered(this=col("__tier")), exp.Ordered(this=col(SCORE), desc=True),
                                       exp.Ordered(this=col("__last"), desc=True, nulls_first=False),
                                       exp.Ordered(this=col("__pop")), exp.Ordered(this=col(ITEM))])
        place = exp.Window(this=exp.RowNumber(), partition_by=[p.copy() for p in part], order=order)
        ranked = exp.select(*[p.copy() for p in part], alias(place, RANK), col(ITEM), col(SCORE)).from_(
            _sub(dedup, "__d"))
        return exp.select("*").from_(_sub(ranked, "__q")).where(col(RANK) <= lit(self.k))

    def output_sql(self, ranked: exp.Expression) -> exp.Select:
        """Prediction rows ``(<keys>, anchor_time, rank, <item column>, score)`` from ranked item nodes."""
        return (exp.select(*[col(k, "__o") for k in self.keys], col(ANCHOR, "__o"),
                           alias(exp.cast(col(RANK, "__o"), "INTEGER"), RANK),
                           alias(col(ITEM_KEY, "__i"), self.item_column), alias(col(SCORE, "__o"), SCORE))
                .from_(_sub(ranked, "__o"))
                .join(_sub(self.items_sql(), "__i"), on=col(ITEM, "__o").eq(col(ITEM, "__i")))
                .order_by(*[col(k) for k in self.keys], col(ANCHOR), col(RANK)))

    def candidates_sql(self, anchor: dt.datetime) -> exp.Select:
        """``(__item)``: the item nodes that may be recommended at ``anchor`` (their row exists then, and a
        row named them at or before it)."""
        a = lit(anchor)
        return (exp.select(col(ITEM, "__y")).distinct().from_(_sub(self.interactions_sql(), "__y"))
                .where(exp.and_(col(TIME, "__y") <= a.copy(), self._visible_item("__y", a))))

    def split_anchors(self) -> list[tuple[dt.datetime, str]]:
        return self.base.split_anchors()


def is_ranking(query: PredictQuery) -> bool:
    return query.target.top_k is not None


def compile_ranking(con: duckdb.DuckDBPyConnection, schema: Schema, query: PredictQuery, *,
                    training: bool = True) -> RankingPlan:
    """Resolve the listed column, its item table and link, and plan anchors as ``compile_task`` does."""
    query = normalize(schema, query)
    agg = query.target.aggregate
    entity = schema.table(query.entity_table, query.entity_position)
    listing = schema.table(agg.table, agg.table_position)
    column = listing.column(agg.column)
    if column is None:
        raise PlanError(f"column `{agg.column}` not found in table `{agg.table}`"
                        f"{did_you_mean(agg.column, [c.name for c in listing.columns])}", agg.column_position)
    item_links = [lk for lk in schema.links if lk.child == listing.name and lk.child_columns == (column.name,)]
    if not item_links:
        fks = [lk.child_columns[0] for lk in schema.links if lk.child == listing.name and len(lk.child_columns) == 1]
        hint = (f"its foreign keys are {', '.join(fks)}" if fks else f"`{listing.name}` has no foreign key; declare "
                f"one with ALTER GRAPH ADD LINK {sql_name(listing.name)}({sql_name(column.name)}) REFERENCES "
                f"<items>(<key>)")
        raise PlanError(f"{RANKING_FUNC} lists items through a foreign key, and `{listing.name}.{column.name}` is "
                        f"none: {hint}", agg.column_position)
    item_link = item_links[0]
    item = schema.tables[item_link.parent]
    to_entity = [lk for lk in schema.links_from(listing.name, entity.name)]
    if agg.via is not None:
        via = agg.via
        if (column.name,) == next((lk.child_columns for lk in to_entity if agg.via in lk.child_columns), None):
            raise PlanError(f"VIA {agg.via} is the listed column itself; VIA names the link from "
                            f"`{listing.name}` to `{entity.name}`", agg.position)
    else:
        others = [lk for lk in to_entity if column.name not in lk.child_columns]
        if not others and to_entity:
            raise PlanError(f"`{listing.name}.{column.name}` is the link to the entity `{entity.name}` itself; list "
                            f"a foreign key to the items instead, e.g. {RANKING_FUNC}({sql_name(listing.name)}."
                            f"<item key>, {agg.start}, {agg.end}, {agg.unit})", agg.column_position)
        via = others[0].child_columns[0] if len(others) == 1 else None
    # the same statement with LAST(t.fk) as target: it has a label exactly when the window lists an item
    proxy_agg = dataclasses.replace(agg, func="LAST", via=via)
    proxy = dataclasses.replace(query, target=Target(proxy_agg), aggregates=(proxy_agg, *query.aggregates[1:]))
    base = compile_task(con, schema, proxy, training=training)
    entity_link = base.target.link
    if tuple(entity_link.parent_columns) != tuple(base.keys):
        raise PlanError(f"the link {entity_link.name} references columns other than the key of `{entity.name}` "
                        f"({', '.join(base.keys)}); {RANKING_FUNC} needs a link to the key", agg.table_position)
    if len(entity_link.child_columns) != len(base.keys):
        raise PlanError(f"the link {entity_link.name} does not cover the key of `{entity.name}`", agg.table_position)
    name = column.name
    if name.lower() in {k.lower() for k in base.keys} | KEY_NAMES_TAKEN | {RANK}:
        name = "item"
    if name.lower() in {k.lower() for k in base.keys}:
        name = "item_key"
    return RankingPlan(base, listing, entity_link, item, item_link, query.target.top_k, name, query)
