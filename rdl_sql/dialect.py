"""The rdl-sql statement language as a sqlglot dialect derived from DuckDB's.

New statements are a handful of expression classes plus one small parser
method each; everything else (expressions, literals, subqueries) is DuckDB's
grammar, so a predicate in ``WHERE`` parses exactly as it would in SQL.
Every node keeps its token position, which the error messages point at.
"""
from __future__ import annotations

import contextlib
import difflib
import logging
import re
import sys
import threading

from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token, TokenType

from rdl_sql.planner.query import AGGREGATES, RANKING_FUNC, UNITS

UNIT_ALIASES = {u[:-1]: u for u in UNITS} | {u: u for u in UNITS}


class TemporalAgg(exp.Expression):
    """``FUNC(table.col | table.* [WHERE pred] [VIA fk], start, end, UNIT)``."""

    arg_types = {"this": True, "column": True, "where": False, "via": False,
                 "start": True, "end": True, "unit": True}


class Predict(exp.Expression):
    """``PREDICT target | USING name  FOR EACH t.pk | FOR t.pk IN (query)
    [WHERE ..] [ASSUMING ..] [AS OF ts] [WITH (..)] [ORDER BY ..] [LIMIT n]``.

    ``order`` / ``limit`` order and cut the prediction rows only; they are
    no part of what the model is trained on.

    ``entity`` is a Column, or a Tuple of columns for a composite key.
    ``top`` is k of ``LIST_DISTINCT(...) RANK TOP k`` (a recommendation).
    """

    arg_types = {"this": False, "top": False, "using": False, "entity": False, "entity_in": False, "where": False,
                 "assuming": False, "as_of": False, "options": False, "order": False, "limit": False}


class CreateModel(exp.Expression):
    arg_types = {"this": True, "replace": False, "predict": True}


class Evaluate(exp.Expression):
    """``EVALUATE MODEL name [AS OF ts]`` or ``EVALUATE PREDICT ...``."""

    arg_types = {"model": False, "predict": False, "as_of": False}


class ExplainPredict(exp.Expression):
    arg_types = {"this": True}


class ShowModels(exp.Expression):
    arg_types = {}


class DescribeModel(exp.Expression):
    arg_types = {"this": True}


class DropModel(exp.Expression):
    arg_types = {"this": True, "exists": False}


class AlterGraph(exp.Expression):
    """``ALTER GRAPH ADD LINK | DROP LINK | SET TIME COLUMN | IGNORE COLUMN | UNIGNORE COLUMN ...``."""

    arg_types = {"this": True, "table": True, "columns": False, "ref_table": False, "ref_columns": False}


class DescribeGraph(exp.Expression):
    arg_types = {}


class RdlParser(DuckDB.Parser):
    def raise_error(self, message: str, token: Token | None = None) -> None:
        """sqlglot's error, in plain words (no class names) and with the token's character span."""
        token = token or self._curr or self._prev or Token.string("")
        message = plain_message(message, token)
        try:
            super().raise_error(message, token)
        except ParseError as e:
            for info in e.errors:
                info.update(start=token.start, end=token.end)
            raise

    def _parse_placeholder(self):
        tok = self._curr
        node = super()._parse_placeholder()
        if node is not None and tok is not None:
            node.meta.update(line=tok.line, col=tok.col, start=tok.start, end=tok.end)
        return node

    def _at_predict(self) -> bool:
        return (self._curr is not None and self._curr.token_type == TokenType.VAR
                and self._curr.text.upper() == "PREDICT")

    def _parse_statement(self):
        if self._at_predict():
            self._advance()
            return self._parse_predict_body()
        if self._match_text_seq("ALTER", "GRAPH"):
            return self._parse_alter_graph()
        if self._match_text_seq("DESCRIBE", "GRAPH"):
            return self.expression(DescribeGraph())
        if self._match_text_seq("DESCRIBE", "MODEL"):
            return self.expression(DescribeModel(this=self._parse_model_name()))
        if self._match_text_seq("SHOW", "MODELS"):
            return self.expression(ShowModels())
        if self._match_text_seq("DROP", "MODEL"):
            exists = self._match_text_seq("IF", "EXISTS")
            return self.expression(DropModel(this=self._parse_model_name(), exists=exists))
        replace = False
        if self._match_text_seq("CREATE", "MODEL") or (replace := self._match_text_seq("CREATE", "OR", "REPLACE",
                                                                                      "MODEL")):
            name = self._parse_model_name()
            if not self._match(TokenType.ALIAS) or not self._at_predict():
                self.raise_error(f"expected AS PREDICT ... after CREATE MODEL {name.name}")
            self._advance()
            predict = self._parse_predict_body()
            if predict.args.get("using") is not None:
                self.raise_error("CREATE MODEL trains a new model; write its target, not PREDICT USING")
            return self.expression(CreateModel(this=name, replace=replace, predict=predict))
        if self._match_text_seq("EVALUATE", "MODEL"):
            name = self._parse_model_name()
            as_of = self._parse_as_of()
            return self.expression(Evaluate(model=name, as_of=as_of))
        if self._match_text_seq("EVALUATE") and self._at_predict():
            self._advance()
            return self.expression(Evaluate(predict=self._parse_predict_body()))
        if self._match_text_seq("EXPLAIN") and self._at_predict():
            self._advance()
            return self.expression(ExplainPredict(this=self._parse_predict_body()))
        return super()._parse_statement()

    def _parse_select_query(self, *args, **kwargs):
        # PREDICT wherever a query may stand: FROM (PREDICT ...), CTEs, CREATE TABLE AS, INSERT INTO
        if self._at_predict():
            self._advance()
            return self._parse_predict_body()
        return super()._parse_select_query(*args, **kwargs)

    def _parse_model_name(self) -> exp.Identifier:
        name = self._parse_id_var(any_token=False)
        if name is None:
            self.raise_error("expected a model name")
        return name

    def _parse_as_of(self):
        if not self._match_text_seq("AS", "OF"):
            return None
        first = self._curr
        as_of = self._parse_as_of_value()
        if first is not None:  # the whole value is what an error about it points at
            as_of.meta.update(line=first.line, col=first.col, start=first.start, end=self._prev.end)
        return as_of

    def _parse_as_of_value(self):
        if (self._curr is not None and self._curr.token_type in self.TYPE_TOKENS and self._next is not None
                and self._next.token_type in self.PLACEHOLDER_PARSERS):
            # TIMESTAMP ?  (DuckDB's grammar would read `?` as the JSON key-exists operator)
            kind = exp.DataType.build(self._curr.text)
            self._advance()
            return exp.cast(self._parse_placeholder(), kind)
        as_of = self._parse_bitwise()
        if as_of is None:
            self.raise_error("AS OF needs a timestamp, e.g. AS OF TIMESTAMP '2024-06-01'")
        return as_of

    # ---- PREDICT --------------------------------------------------------------
    def _parse_predict_body(self) -> Predict:
        start = self._prev
        using = target = None
        if self._match_text_seq("USING"):
            using = self._parse_model_name()
        elif self._curr is None or self._curr.text.upper() == "FOR":
            self.raise_error("PREDICT needs a target, e.g. PREDICT COUNT(orders.*, 0, 30, DAYS) = 0")
        else:
            target = self._parse_assignment()
        top = None
        if self._match_text_seq("RANK"):
            if not self._match_text_seq("TOP"):
                self.raise_error("expected TOP k after RANK, e.g. RANK TOP 10")
            tok = self._curr
            top = self._parse_bitwise()
            if top is None:
                self.raise_error("RANK TOP needs a whole number of items, e.g. RANK TOP 10", tok)
        entity = entity_in = None
        if self._match_text_seq("FOR", "EACH"):
            entity = self._parse_entity()
        elif self._match_text_seq("FOR"):
            self._check_each_spelling()
            entity = self._parse_entity()
            if not self._match(TokenType.IN):
                self.raise_error("expected IN (query) after FOR <table>.<key>; or write FOR EACH <table>.<key>")
            entity_in = self._parse_wrapped(self._parse_select)
        elif using is None:
            self.raise_error("expected FOR EACH <table>.<primary key> after the PREDICT target")
        where = self._parse_assignment() if self._match(TokenType.WHERE) else None
        assuming = self._parse_assignment() if self._match_text_seq("ASSUMING") else None
        as_of = self._parse_as_of()
        options = None
        if self._match(TokenType.WITH):
            options = self.expression(exp.Tuple(expressions=self._parse_wrapped_csv(self._parse_assignment)))
        order = self._parse_order()
        limit = self._parse_limit()
        node = self.expression(Predict(this=target, top=top, using=using, entity=entity, entity_in=entity_in,
                                       where=where, assuming=assuming, as_of=as_of, options=options, order=order,
                                       limit=limit))
        node.meta.update(line=start.line, col=start.col, start=start.start, end=start.end)
        return node

    def _check_each_spelling(self) -> None:
        """``FOR EAHC t.pk``: a word that is not ``t.pk`` before the key is a misspelt EACH."""
        tok, nxt = self._curr, self._next
        if (tok is not None and tok.token_type == TokenType.VAR
                and (nxt is None or nxt.token_type != TokenType.DOT)):
            hint = "did you mean FOR EACH? " if difflib.get_close_matches(tok.text.upper(), ["EACH"],
                                                                          cutoff=0.5) else ""
            self.raise_error(f"unexpected `{tok.text}` after FOR: {hint}write FOR EACH <table>.<key>, "
                             f"or FOR <table>.<key> IN (query)", tok)

    def _parse_entity(self) -> exp.Expression:
        """``t.pk`` or, for a composite key, ``(t.a, t.b)``."""
        if self._match(TokenType.L_PAREN):
            cols = self._parse_csv(self._parse_column)
            self._match_r_paren()
            if not cols or not all(isinstance(c, exp.Column) and c.table for c in cols) or len(
                    {c.table for c in cols}) != 1:
                self.raise_error("a composite key is written (t.a, t.b): columns of one table", self._prev)
            return exp.Tuple(expressions=cols)
        entity = self._parse_column()
        if not isinstance(entity, exp.Column) or not entity.table:
            self.raise_error("FOR EACH needs a qualified key, e.g. FOR EACH customers.customer_id", self._prev)
        return entity

    def _parse_function_call(self, functions=None, anonymous=False, optional_parens=True, any_token=False):
        if (self._curr is not None and self._curr.text.upper() in (*AGGREGATES, RANKING_FUNC)
                and self._next is not None and self._next.token_type == TokenType.L_PAREN
                and self._looks_temporal()):
            return self._parse_temporal_agg()
        return super()._parse_function_call(functions, anonymous, optional_parens, any_token)

    def _looks_temporal(self) -> bool:
        """``AGG( ... , a, b, UNIT)``: three top-level commas and a unit word before ``)``."""
        depth, commas, i = 0, 0, self._index + 1
        tokens = self._tokens
        while i < len(tokens):
            tt = tokens[i].token_type
            if tt in (TokenType.L_PAREN, TokenType.L_BRACKET):
                depth += 1
            elif tt in (TokenType.R_PAREN, TokenType.R_BRACKET):
                depth -= 1
                if depth == 0:
                    return commas == 3 and tokens[i - 1].text.upper() in set(UNIT_ALIASES) | _near_units(tokens[i - 1])
            elif tt == TokenType.COMMA and depth == 1:
                commas += 1
            i += 1
        return False

    def _parse_temporal_agg(self) -> TemporalAgg:
        name_tok = self._curr
        self._advance(2)
        column = self._parse_column()
        if not isinstance(column, exp.Column) or not column.table:
            self.raise_error(f"{name_tok.text.upper()} needs a qualified column or table.*, "
                             f"e.g. {name_tok.text.upper()}(orders.*, 0, 30, DAYS)", name_tok)
        where = self._parse_assignment() if self._match(TokenType.WHERE) else None
        via = None
        if self._match_text_seq("VIA"):
            via = self._parse_id_var()
        bounds = []
        for what in ("start", "end"):
            if not self._match(TokenType.COMMA):
                self.raise_error(f"expected ',' and the window {what} (a whole number)")
            tok = self._curr
            value = self._parse_bitwise()
            if not _is_int(value) and not isinstance(value, exp.Placeholder):
                self.raise_error(f"the window {what} must be a whole number, e.g. -90 or 30", tok)
            bounds.append(value)
        self._match(TokenType.COMMA)
        unit_tok = self._curr
        self._advance()
        unit = UNIT_ALIASES.get(unit_tok.text.upper())
        if unit is None:
            self.raise_error(f"unknown time unit `{unit_tok.text}`; use one of {', '.join(UNITS)}", unit_tok)
        if not self._match(TokenType.R_PAREN):
            self.raise_error("expected ')' after the time unit")
        node = TemporalAgg(this=exp.Var(this=name_tok.text.upper()), column=column, where=where, via=via,
                           start=bounds[0], end=bounds[1], unit=exp.Var(this=unit))
        node.meta.update(line=name_tok.line, col=name_tok.col, start=name_tok.start, end=name_tok.end)
        return node

    # ---- ALTER GRAPH / DESCRIBE GRAPH -------------------------------------------
    def _parse_table_columns(self, allow_none: bool = False):
        tbl = self._parse_id_var(any_token=False)
        if tbl is None:
            self.raise_error("expected a table name")
        if not self._match(TokenType.L_PAREN):
            self.raise_error(f"expected ( and column names after table {tbl.name}")
        if allow_none and self._match_text_seq("NONE"):
            cols = []
        else:
            cols = self._parse_csv(lambda: self._parse_id_var(any_token=True))
        self._match_r_paren()
        return tbl, cols

    def _parse_alter_graph(self) -> AlterGraph:
        if self._match_text_seq("ADD", "LINK"):
            tbl, cols = self._parse_table_columns()
            if not self._match(TokenType.REFERENCES):
                self.raise_error("expected REFERENCES parent(key, ...)")
            ref, ref_cols = self._parse_table_columns()
            if len(cols) != len(ref_cols):
                self.raise_error(f"the link has {len(cols)} column(s) but references {len(ref_cols)}")
            return self.expression(AlterGraph(this=exp.Var(this="ADD_LINK"), table=tbl, columns=cols,
                                              ref_table=ref, ref_columns=ref_cols))
        if self._match_text_seq("DROP", "LINK"):
            tbl, cols = self._parse_table_columns()
            return self.expression(AlterGraph(this=exp.Var(this="DROP_LINK"), table=tbl, columns=cols))
        if self._match_text_seq("SET", "TIME", "COLUMN"):
            tbl, cols = self._parse_table_columns(allow_none=True)
            if len(cols) > 1:
                self.raise_error("a table has one time column; name one, or NONE for a static table")
            return self.expression(AlterGraph(this=exp.Var(this="SET_TIME"), table=tbl, columns=cols))
        if self._match_text_seq("IGNORE", "COLUMN"):
            tbl, cols = self._parse_table_columns()
            return self.expression(AlterGraph(this=exp.Var(this="IGNORE"), table=tbl, columns=cols))
        if self._match_text_seq("UNIGNORE", "COLUMN"):
            tbl, cols = self._parse_table_columns()
            return self.expression(AlterGraph(this=exp.Var(this="UNIGNORE"), table=tbl, columns=cols))
        self.raise_error("expected ADD LINK, DROP LINK, SET TIME COLUMN, IGNORE COLUMN or UNIGNORE COLUMN after "
                         "ALTER GRAPH")


def _near_units(token) -> set[str]:
    """A misspelt unit word (DAYZ) still marks the call as temporal, so the error names it."""
    word = token.text.upper()
    return {word} if difflib.get_close_matches(word, list(UNIT_ALIASES), n=1, cutoff=0.7) else set()


def _is_int(node) -> bool:
    if isinstance(node, exp.Neg):
        node = node.this
    return isinstance(node, exp.Literal) and not node.is_string and node.this.lstrip("-").isdigit()


#: sqlglot expression classes named as a SQL user knows them
_OPERATORS = {"EQ": "=", "NEQ": "<>", "GT": ">", "GTE": ">=", "LT": "<", "LTE": "<=", "Add": "+", "Sub": "-",
              "Mul": "*", "Div": "/", "Mod": "%", "And": "AND", "Or": "OR", "Not": "NOT", "Like": "LIKE",
              "ILike": "ILIKE", "In": "IN", "Is": "IS", "Between": "BETWEEN", "Neg": "-", "Paren": "( )",
              "Alias": "AS", "Cast": "CAST", "TryCast": "TRY_CAST", "DPipe": "||", "Dot": "."}
_CLASS = re.compile(r"<class '(?:[\w.]+\.)?(\w+)'>")
_TOKEN = re.compile(r"<Token token_type: [\w.]+, text: (.*?), line: \d+, col: \d+, start: \d+, end: \d+, "
                    r"comments: \[.*?\]>")


def _sql_name(cls_name: str) -> str:
    if cls_name in _OPERATORS:
        return _OPERATORS[cls_name]
    cls = getattr(exp, cls_name, None)
    return getattr(cls, "key", cls_name).upper().replace("_", " ")


def plain_message(message: str, token: Token | None = None) -> str:
    """A sqlglot parser message in the words of SQL: no Python class or token names."""
    m = re.match(r"Required keyword: '(\w+)' missing for <class '(?:[\w.]+\.)?(\w+)'>", message)
    if m:
        key, cls_name = m.groups()
        name = _sql_name(cls_name)
        if cls_name in _OPERATORS and key == "expression":
            return f"`{name}` needs a value on its right"
        if cls_name in _OPERATORS and key == "this":
            return f"`{name}` needs a value on its left"
        return f"`{name}` is missing its {'argument' if key in ('this', 'expression') else key.replace('_', ' ')}"
    if message in ("Invalid expression / Unexpected token", "Unexpected token") and token is not None and token.text:
        return f"unexpected `{token.text}`"
    if message.startswith("Expecting ") and len(message) <= 12:
        return f"expected `{message[len('Expecting '):]}`"
    message = _TOKEN.sub(lambda t: f"`{t.group(1)}`", message)
    return _CLASS.sub(lambda c: f"`{_sql_name(c.group(1))}`", message)


def int_value(node) -> int:
    return -int_value(node.this) if isinstance(node, exp.Neg) else int(node.this)


class RdlTokenizer(DuckDB.Tokenizer):
    # EXPLAIN is a COMMAND to DuckDB's tokenizer, which would swallow the rest
    # of ``EXPLAIN PREDICT ...`` as one string
    KEYWORDS = {**DuckDB.Tokenizer.KEYWORDS, "EXPLAIN": TokenType.VAR}


class RdlGenerator(DuckDB.Generator):
    """SQL text from the rdl-sql AST: the canonical form that identifies a stored statement.

    Whitespace, comments and the user's spelling of keywords are gone;
    string literals and quoted identifiers are kept exactly, so re-parsing
    the canonical text gives the same statement.
    """

    def predict(self, e: Predict) -> str:
        parts = ["PREDICT"]
        if e.args.get("using") is not None:
            parts.append(f"USING {self.sql(e, 'using')}")
        else:
            parts.append(self.sql(e, "this"))
        if e.args.get("top") is not None:
            parts.append(f"RANK TOP {self.sql(e, 'top')}")
        if e.args.get("entity_in") is not None:
            parts.append(f"FOR {self.sql(e, 'entity')} IN ({self.sql(e, 'entity_in')})")
        elif e.args.get("entity") is not None:
            parts.append(f"FOR EACH {self.sql(e, 'entity')}")
        for key, word in (("where", "WHERE"), ("assuming", "ASSUMING"), ("as_of", "AS OF")):
            if e.args.get(key) is not None:
                parts.append(f"{word} {self.sql(e, key)}")
        if e.args.get("options") is not None:
            parts.append(f"WITH {self.sql(e, 'options')}")
        for key in ("order", "limit"):
            if e.args.get(key) is not None:
                parts.append(self.sql(e, key).strip())
        return " ".join(parts)

    def temporal_agg(self, e: TemporalAgg) -> str:
        inner = self.sql(e, "column")
        if e.args.get("where") is not None:
            inner += f" WHERE {self.sql(e, 'where')}"
        if e.args.get("via") is not None:
            inner += f" VIA {self.sql(e, 'via')}"
        return f"{e.this.name}({inner}, {self.sql(e, 'start')}, {self.sql(e, 'end')}, {e.args['unit'].name})"

    TRANSFORMS = {**DuckDB.Generator.TRANSFORMS, Predict: predict, TemporalAgg: temporal_agg}


class RdlDialect(DuckDB):
    Tokenizer = RdlTokenizer
    Parser = RdlParser
    Generator = RdlGenerator


DIALECT = RdlDialect()


def canonical(node: exp.Expression) -> str:
    """The statement's canonical text: its identity wherever meaning matters (reuse, stored models)."""
    return DIALECT.generate(node, comments=False)


#: parentheses nested this deep are refused, as DuckDB refuses them (its max_expression_depth)
MAX_DEPTH = 1000
#: Python frames sqlglot's recursive descent spends per level of nesting (measured: 24), with room
_FRAMES_PER_LEVEL = 40


@contextlib.contextmanager
def deep_recursion():
    """Room for sqlglot's recursive parser and generator on statements nested up to ``MAX_DEPTH`` deep.

    Python's default limit (1000 frames) ends at about 40 nested
    parentheses; DuckDB itself accepts 999. Python 3.11 runs Python-to-Python
    calls without growing the C stack, so a higher limit is safe here.
    """
    before = sys.getrecursionlimit()
    need = _FRAMES_PER_LEVEL * MAX_DEPTH + 10_000
    if before < need:
        sys.setrecursionlimit(need)
    try:
        yield
    finally:
        if before < need:
            sys.setrecursionlimit(before)


class _Quiet(threading.local):
    on = False


_QUIET = _Quiet()


class _QuietFilter(logging.Filter):
    """Drops sqlglot's own warnings (``... contains unsupported syntax. Falling back to parsing as a
    'Command'``) while rdl-sql parses: the session says what is wrong in its own words."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _QUIET.on


logging.getLogger("sqlglot").addFilter(_QuietFilter())


def _check_depth(sql: str) -> None:
    try:
        tokens = RdlTokenizer().tokenize(sql)
    except TokenError:
        return  # the parser reports it
    depth = 0
    for tok in tokens:
        if tok.token_type in (TokenType.L_PAREN, TokenType.L_BRACKET, TokenType.L_BRACE):
            depth += 1
            if depth >= MAX_DEPTH:
                message = (f"expressions nest {MAX_DEPTH} levels deep here; DuckDB allows fewer "
                           f"(its max_expression_depth is {MAX_DEPTH})")
                error = ParseError.new(message, description=message, line=tok.line, col=tok.col,
                                       highlight=tok.text)
                error.errors[0].update(start=tok.start, end=tok.end)
                raise error
        elif tok.token_type in (TokenType.R_PAREN, TokenType.R_BRACKET, TokenType.R_BRACE):
            depth -= 1


def parse_statement(sql: str) -> exp.Expression:
    """Parse one statement; raises sqlglot ParseError with line and column (and ``start``/``end``).

    A statement sqlglot cannot parse as a whole comes back as ``exp.Command``
    (sqlglot's fallback), without sqlglot's log line: the caller decides.
    """
    _check_depth(sql)
    _QUIET.on = True
    try:
        with deep_recursion():
            out = DIALECT.parse(sql)
    finally:
        _QUIET.on = False
    out = [e for e in out if e is not None]
    if len(out) != 1:
        raise ParseError("expected exactly one statement")
    return out[0]
