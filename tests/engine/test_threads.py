"""``threads`` past the cores here: training runs on the cores, a notice says so, and the option is kept."""
from __future__ import annotations

import torch

from rdl_sql.planner import options

STATEMENT = ("PREDICT COUNT(orders.*, 0, 30, DAYS) > 0 FOR EACH customers.customer_id "
             "WITH (epochs = 1, channels = 8, fanouts = '2,2', max_train_rows = 400, threads = 1000)")
NOTICE = "threads = 1000 is more than the 2 cores here; training uses 2"


def test_training_uses_the_cores_and_says_so_and_the_stored_option_is_kept(typed_classes_rdl, monkeypatch,
                                                                          one_thread_torch):
    con = typed_classes_rdl
    monkeypatch.setattr(options, "cores", lambda: 2)
    asked = []
    set_threads = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (asked.append(n), set_threads(n))[1])
    cur = con.execute(STATEMENT)
    assert NOTICE in cur.notices and cur.fetchall()
    assert 2 in asked and set(asked) <= {1, 2}
    again = con.execute(STATEMENT)  # the same model, reused: nothing trains, so nothing to say about threads
    assert any(n.startswith("reused the model") for n in again.notices) and NOTICE not in again.notices
    cur = con.execute(f"CREATE MODEL m AS {STATEMENT}")
    assert NOTICE in cur.notices
    described = dict(con.execute("DESCRIBE MODEL m").fetchall())
    assert described["option threads"] == "1000"
    assert con.execute("PREDICT USING m").fetchall()
    assert set(asked) <= {1, 2}
