"""The interactive prompt: prompt_toolkit with DuckDB's prompts, completion and history.

One prompt_toolkit buffer holds one statement: Enter runs it once it ends in
``;`` (or is a dot command, or is empty), and otherwise starts a new line
behind the ``‣ `` continuation prompt, so a statement of many lines is edited
as one. Ctrl-C drops what was typed (or stops a running statement), Ctrl-D on
an empty line leaves. History is kept in ``~/.rdl_sql_history`` (or
``$RDL_SQL_HISTORY``), one statement a line as readline wrote it, and is
skipped without a word where the file cannot be written.
"""
from __future__ import annotations

import os
import sys

from prompt_toolkit import PromptSession
from prompt_toolkit.filters import has_completions
from prompt_toolkit.history import History
from prompt_toolkit.key_binding import KeyBindings
from prompt_toolkit.output import create_output
from prompt_toolkit.utils import is_dumb_terminal

from rdl_sql.shell.complete import Catalog, ShellCompleter
from rdl_sql.shell.repl import (
    CONTINUATION,
    HISTORY_FILE,
    HISTORY_LENGTH,
    PROMPT,
    Quit,
    Shell,
    buffer_state,
)


class LineHistory(History):
    """prompt_toolkit history in readline's file format: one entry a line, oldest first; a statement of
    many lines is kept as one line in the file (and as typed for the rest of the session)."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def load_history_strings(self):
        try:
            with open(self.path, encoding="utf-8", errors="replace") as f:
                lines = [ln.rstrip("\n") for ln in f if ln.strip()]
        except OSError:
            return
        if len(lines) > 2 * HISTORY_LENGTH:  # keep the file from growing without end
            lines = lines[-HISTORY_LENGTH:]
            try:
                with open(self.path, "w", encoding="utf-8") as f:
                    f.write("".join(ln + "\n" for ln in lines))
            except OSError:
                pass
        yield from reversed(lines[-HISTORY_LENGTH:])

    def store_string(self, string: str) -> None:
        entry = " ".join(x.strip() for x in string.splitlines() if x.strip())
        if not entry:
            return
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(entry + "\n")
        except OSError:
            pass


def _bindings(dumb: bool, session_output) -> KeyBindings:
    kb = KeyBindings()

    @kb.add("enter", filter=~has_completions, eager=True)
    @kb.add("c-j", filter=~has_completions, eager=True)
    def _(event):
        buf = event.current_buffer
        text = buf.text
        if text.lstrip().startswith(".") or buffer_state(text) != "open":
            buf.validate_and_handle()
            return
        buf.insert_text("\n")
        if dumb:  # no rendering on a dumb terminal: show the continuation prompt ourselves
            session_output().write(CONTINUATION)
            session_output().flush()

    @kb.add("enter", filter=has_completions, eager=True)
    def _(event):  # Enter in the completion menu takes the completion, as in DuckDB
        buf = event.current_buffer
        buf.complete_state = None

    return kb


def repl(shell: Shell) -> int:
    """Read statements from the terminal until ``.quit``, ``.exit`` or Ctrl-D; the exit status."""
    catalog_box: list[Catalog] = []

    def catalog() -> Catalog:
        if not catalog_box or catalog_box[0].con is not shell.con:
            catalog_box[:] = [Catalog(shell.con)]
        return catalog_box[0]

    def changed() -> None:
        if catalog_box:
            catalog_box[0].stale = True

    shell.on_change = changed
    output = None if _isatty(sys.stdout) else create_output(stdout=sys.stderr)  # prompts on the terminal
    dumb = output is None and is_dumb_terminal()
    history = LineHistory(os.path.expanduser(os.environ.get("RDL_SQL_HISTORY", HISTORY_FILE)))
    holder: list[PromptSession] = []
    session = _Session(
        message=PROMPT, multiline=True, prompt_continuation=lambda width, line, soft: CONTINUATION,
        history=history, completer=ShellCompleter(lambda: shell.commands, catalog),
        complete_while_typing=False, key_bindings=_bindings(dumb, lambda: holder[0].output),
        output=output, enable_open_in_editor=False)
    session.dumb = dumb
    holder.append(session)
    while True:
        try:
            if dumb:
                # show the prompt only once keys are read raw, so that a Ctrl-D typed right after it
                # reaches prompt_toolkit instead of the terminal's line discipline
                with session.input.raw_mode():
                    session.output.write(PROMPT)
                    session.output.flush()
                    text = session.prompt("")
            else:
                text = session.prompt()
        except EOFError:
            return 0
        except KeyboardInterrupt:  # Ctrl-C at the prompt drops what was typed
            continue
        if not text.strip():
            continue
        try:
            shell.feed(text)
        except Quit as q:
            return q.code if q.code is not None else 0


class _Session(PromptSession):
    dumb = False

    @property
    def output(self):
        return _Newlines(super().output) if self.dumb else super().output


class _Newlines:
    """prompt_toolkit's dumb-terminal prompt ends a line with ``\r\n``, which a terminal in cooked mode
    shows as ``\r\r\n``: write ``\n`` and let the terminal add its ``\r``, as readline did."""

    def __init__(self, inner):
        self._inner = inner

    def write(self, data: str) -> None:
        self._inner.write(data.replace("\r\n", "\n"))

    def __getattr__(self, name):
        return getattr(self._inner, name)


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
