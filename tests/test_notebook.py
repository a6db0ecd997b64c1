"""A notebook executed headless (nbclient): training shows progress, metrics and results display as results."""
from __future__ import annotations

import duckdb
import pytest

nbformat = pytest.importorskip("nbformat", reason="nbformat is in the test extras")
nbclient = pytest.importorskip("nbclient", reason="nbclient is in the test extras")

CHURN = ("CREATE MODEL churn AS PREDICT COUNT(orders.*, 0, 30, DAYS) = 0 FOR EACH customers.customer_id "
         "WHERE COUNT(orders.*, -90, 0, DAYS) > 0 WITH (epochs = 2, max_train_rows = 600)")


def _text(output) -> str:
    if output.get("output_type") == "stream":
        return output.get("text", "")
    data = output.get("data", {})
    kinds = ("text/plain", "text/html", "application/vnd.jupyter.widget-view+json")
    return "\n".join(str(data.get(k, "")) for k in kinds)


@pytest.fixture
def executed(tmp_path):
    from rdl_sql.datasets.shop import build_shop
    path = tmp_path / "shop.duckdb"
    con = duckdb.connect(str(path))
    build_shop(con, customers=300, products=40, days=300, seed=0)
    con.close()
    cells = [
        f"import rdl_sql\ncon = rdl_sql.connect({str(path)!r})\ncon",
        f"cur = con.execute({CHURN!r})\ncur.metrics",
        "con.execute('PREDICT USING churn')",
        "cur = con.execute('SELECT count(*) AS n FROM customers')\nprint(cur.fetchall())",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=600,
                                     resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError:
        raise
    except Exception as e:  # no kernel can start on this machine (no ipykernel, no sockets)
        if type(e).__name__ in ("NoSuchKernel", "DeadKernelError", "TimeoutError", "RuntimeError"):
            pytest.skip(f"a Jupyter kernel cannot start here: {type(e).__name__}: {e}")
        raise
    return [["".join(_text(o)) for o in cell.outputs] for cell in nb.cells]


def test_a_notebook_shows_progress_metrics_and_results(executed):
    connection, training, predictions, plain = executed
    assert any("<rdl_sql.Connection" in o and "shop.duckdb" in o for o in connection)
    # the progress bar: a widget where ipywidgets is installed, tqdm's text on stderr where it is not
    assert any(("training:" in o and "epoch" in o) or "model_id" in o for o in training), training
    assert any("'val_AUROC'" in o and "'threshold'" in o for o in training), training
    assert any("<table" in o and "customer_id" in o and "score" in o for o in predictions), predictions
    assert any("[(300,)]" in o for o in plain)
