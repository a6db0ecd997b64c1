"""The two-tower and the entity-conditioned graph recommenders, and chunked top-k over all items.

Two ``RelationalGNN`` towers over the same temporal graph: the entity tower
embeds an entity from its subgraph sampled at the anchor, the item tower
embeds an item from its own subgraph sampled at the same anchor (who named
it, and when, before the anchor: its recent popularity and its buyers). The
score of a pair is the dot product of the two L2-normalised embeddings over
a temperature. Training: each labelled (entity, anchor, item) pair is a
positive; the other items of the batch and ``negatives`` items drawn from the
candidates at the anchor are its negatives (sampled softmax). Each epoch
ends with validation MAP@k; the best epoch's weights are kept.

The entity-conditioned variant (``conditioned=True``, the idea of
ContextGNN) adds, for each item reached in the entity's own sampled subgraph
(entity -> its listing rows -> their items, two hops), a learnt score from
how often and how recently the entity's rows named it there; items not
reached keep the two-tower score alone. So "what this entity did before" and
"what entities like it do" both count. (It does not re-run the GNN with the
seed marked, as ID-GNN does: the pair's evidence is the counts and ages of
the paths from the seed.)

``top_k`` scores rows anchor by anchor: the candidate items' embeddings once
per anchor, then the entities in chunks, so at most ``MAX_CELLS`` scores
exist at any time, never the whole entity x item matrix.
"""
from __future__ import annotations

import dataclasses
import io
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch import nn

from .columns import ColumnSpec
from .graph import TemporalGraph
from .loader import load
from .model import RelationalGNN
from .ranking_metrics import hits, ranking_metrics
from .sampler import sample
from .train import torch_threads

#: 2: every edge type's convolution runs for every destination (``HeteroGraphSAGE.every_type``); 1 is read
#: as it was trained, skipping a type without edges in the batch
FORMAT = 2
READABLE = (1, 2)
TEMPERATURE = 0.1
#: scores held at once by ``top_k`` (chunk of entities x candidate items): 16 M floats, 64 MB
MAX_CELLS = 16_000_000
#: seeds embedded per forward pass when embedding many items or entities
EMBED_BATCH = 2048


class TwoTower(nn.Module):
    """An entity tower and an item tower (``RelationalGNN`` each, ``channels`` outputs), and with
    ``conditioned`` a context head: ``[log(1 + paths), log(1 + days since the newest)] -> score``."""

    def __init__(self, specs: dict[str, ColumnSpec], edge_types, channels: int, layers: int,
                 conditioned: bool = False, every_type: bool = True):
        super().__init__()
        self.entity = RelationalGNN(specs, edge_types, channels, layers, out_dim=channels, every_type=every_type)
        self.item = RelationalGNN(specs, edge_types, channels, layers, out_dim=channels, every_type=every_type)
        self.context = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1)) if conditioned else None

    def reset_parameters(self) -> None:
        self.entity.reset_parameters()
        self.item.reset_parameters()
        if self.context is not None:
            for module in self.context:
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()


@dataclass
class TwoTowerModel:
    model: TwoTower
    graph: TemporalGraph
    entity_type: str
    item_type: str
    fanouts: tuple[int, ...]
    strategy: str
    channels: int
    layers: int
    metrics: dict
    #: edge types (as sampled: source -> the node that sampled it) of entity <- listing row and
    #: listing row <- item; the context of the conditioned model follows these two hops
    entity_edge: tuple[str, str, str] | None = None
    item_edge: tuple[str, str, str] | None = None

    @property
    def conditioned(self) -> bool:
        return self.model.context is not None


def _embed(tower: RelationalGNN, graph: TemporalGraph, seed_type: str, nodes: torch.Tensor, anchors: torch.Tensor,
           fanouts, strategy: str, generator: torch.Generator | None = None, with_sub: bool = False):
    sub = sample(graph, seed_type, nodes, anchors, list(fanouts), strategy, generator)
    emb = nn.functional.normalize(tower(load(graph, sub)), dim=-1)
    return (emb, sub) if with_sub else emb


def context_pairs(m: TwoTowerModel, sub) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(seed [p], item node [p], features [p, 2])``: the items each seed reached through its own listing rows
    in ``sub``, with log(1 + paths) and log(1 + days since the newest such row before the anchor)."""
    empty = (torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), torch.zeros(0, 2))
    e1, e2 = sub.edge_index.get(m.entity_edge), sub.edge_index.get(m.item_edge)
    if e1 is None or e2 is None or not e1.shape[1] or not e2.shape[1]:
        return empty
    listing_type = m.entity_edge[0]
    own = e1[1] < sub.num_seeds  # listing rows sampled by a seed itself
    root = torch.full((sub.node[listing_type].numel(),), -1, dtype=torch.long)
    root[e1[0][own]] = e1[1][own]
    seed = root[e2[1]]
    keep = seed >= 0
    if not bool(keep.any()):
        return empty
    seed, item_local, row_local = seed[keep], e2[0][keep], e2[1][keep]
    item = sub.node[m.item_type][item_local]
    row_time = m.graph.nodes[listing_type].time[sub.node[listing_type][row_local]]
    age = (sub.anchor[m.item_type][item_local] - row_time).clamp(min=0).double() / 86_400e6
    n_items = m.graph.nodes[m.item_type].num_nodes
    pair, inverse = torch.unique(seed * n_items + item, return_inverse=True)
    count = torch.zeros(pair.numel()).index_add_(0, inverse, torch.ones(inverse.numel()))
    newest = torch.full((pair.numel(),), float("inf"), dtype=torch.float64).scatter_reduce(
        0, inverse, age, reduce="amin")
    feats = torch.stack([torch.log1p(count), torch.log1p(newest.float())], 1)
    return pair // n_items, pair % n_items, feats


def embed_many(m: TwoTowerModel, which: str, nodes: np.ndarray, anchors_us: np.ndarray) -> torch.Tensor:
    """``[n, channels]`` embeddings of ``nodes`` (entity or item tower) at their anchors, in batches, no grad."""
    tower, seed_type = (m.model.entity, m.entity_type) if which == "entity" else (m.model.item, m.item_type)
    out = []
    with torch.no_grad():
        for i in range(0, len(nodes), EMBED_BATCH):
            out.append(_embed(tower, m.graph, seed_type, torch.as_tensor(nodes[i:i + EMBED_BATCH], dtype=torch.long),
                              torch.as_tensor(anchors_us[i:i + EMBED_BATCH], dtype=torch.long), m.fanouts,
                              m.strategy))
    return torch.cat(out) if out else torch.zeros(0, m.channels)


def top_k(m: TwoTowerModel, nodes: np.ndarray, anchors_us: np.ndarray, k: int,
          candidates: dict[int, np.ndarray]) -> pa.Table:
    """``(__row, rank, __item, score)``: the ``k`` best candidate items of each row (entity node at its anchor).

    ``candidates``: anchor (us) -> item nodes that may be recommended then.
    Entities are scored in chunks of ``MAX_CELLS // items`` rows.
    """
    m.model.eval()
    rows_out, rank_out, item_out, score_out = [], [], [], []
    for t in np.unique(anchors_us):
        items = np.asarray(candidates.get(int(t), np.zeros(0, np.int64)), np.int64)
        rows = np.flatnonzero(anchors_us == t)
        if not len(items) or not len(rows):
            continue
        item_emb = embed_many(m, "item", items, np.full(len(items), t, np.int64))
        kk = min(k, len(items))
        chunk = max(1, min(EMBED_BATCH, MAX_CELLS // len(items)))
        for i in range(0, len(rows), chunk):
            r = rows[i:i + chunk]
            if m.conditioned:
                s = _conditioned_scores(m, nodes[r], t, item_emb, items)
            else:
                e = embed_many(m, "entity", nodes[r], np.full(len(r), t, np.int64))
                s = (e @ item_emb.T) / TEMPERATURE
            best, idx = torch.topk(s, kk, dim=1)
            rows_out.append(np.repeat(r, kk))
            rank_out.append(np.tile(np.arange(1, kk + 1), len(r)))
            item_out.append(items[idx.numpy()].ravel())
            score_out.append(best.numpy().ravel().astype(np.float64))
    cat = (lambda parts, dtype: np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype))
    return pa.table({"__row": cat(rows_out, np.int64), "rank": cat(rank_out, np.int64),
                     "__item": cat(item_out, np.int64), "score": cat(score_out, np.float64)})


def _conditioned_scores(m: TwoTowerModel, nodes: np.ndarray, t: int, item_emb: torch.Tensor,
                        items: np.ndarray) -> torch.Tensor:
    """``[len(nodes), len(items)]``: two-tower scores plus the context score of the items each entity reached."""
    out = []
    with torch.no_grad():
        for i in range(0, len(nodes), EMBED_BATCH):
            part = torch.as_tensor(nodes[i:i + EMBED_BATCH], dtype=torch.long)
            e, sub = _embed(m.model.entity, m.graph, m.entity_type, part, torch.full((part.numel(),), int(t)),
                            m.fanouts, m.strategy, with_sub=True)
            s = (e @ item_emb.T) / TEMPERATURE
            seed, item, feats = context_pairs(m, sub)
            col = torch.as_tensor(np.searchsorted(items, item.numpy()).clip(0, max(len(items) - 1, 0)))
            found = torch.as_tensor(items)[col] == item
            if bool(found.any()):
                s[seed[found], col[found]] += m.model.context(feats[found]).squeeze(1)
            out.append(s)
    return torch.cat(out)


def _us(times) -> np.ndarray:
    return pc.cast(pc.cast(times, pa.timestamp("us")), pa.int64()).to_numpy()


def evaluate(m: TwoTowerModel, examples: pa.Table, k: int, candidates: dict[int, np.ndarray]) -> float:
    """MAP@k of ``m`` on labelled ``examples`` (``__node, anchor_time, label``)."""
    if examples.num_rows == 0:
        return float("nan")
    ranked = top_k(m, examples.column("__node").to_numpy(), _us(examples.column("anchor_time")), k, candidates)
    n_truth = pc.list_value_length(examples.column("label")).to_numpy(zero_copy_only=False)
    truth_row = np.repeat(np.arange(examples.num_rows), n_truth)
    truth_item = pc.list_flatten(examples.column("label")).to_numpy(zero_copy_only=False)
    row = ranked.column("__row").to_numpy()
    hit = hits(row, ranked.column("__item").to_numpy(), truth_row, truth_item)
    return ranking_metrics(row, ranked.column("rank").to_numpy(), hit, n_truth, k)[f"MAP@{k}"]


def fit(graph: TemporalGraph, entity_table: str, item_table: str, train: pa.Table, val: pa.Table, k: int,
        options, candidates: Callable[[pa.Table], dict[int, np.ndarray]], progress: bool = False,
        cancel=None, negatives: int = 64, conditioned: bool = False, entity_edge=None,
        item_edge=None) -> TwoTowerModel:
    """Train the two towers (and with ``conditioned`` the context head) on ``train``'s (entity, anchor, items)
    rows; keep the epoch best on validation MAP@k."""
    with torch_threads(options.threads):
        torch.manual_seed(options.seed)
        gen = torch.Generator().manual_seed(options.seed)
        rng = np.random.default_rng(options.seed)
        fanouts = tuple(options.fanouts[: max(options.layers, 1)])
        layers = len(fanouts)
        model = TwoTower(graph.node_specs(), graph.edge_types, options.channels, layers, conditioned)
        m = TwoTowerModel(model, graph, graph.type_of(entity_table), graph.type_of(item_table), fanouts,
                          options.sampler, options.channels, layers, {}, entity_edge, item_edge)
        # positive pairs: one per (row, item)
        n_items = pc.list_value_length(train.column("label")).to_numpy(zero_copy_only=False)
        row_of = np.repeat(np.arange(train.num_rows), n_items)
        pair_item = pc.list_flatten(train.column("label")).to_numpy(zero_copy_only=False).astype(np.int64)
        ent = train.column("__node").to_numpy().astype(np.int64)
        anchors = _us(train.column("anchor_time"))
        cand_train = candidates(train)
        val_cand = candidates(val)
        opt = torch.optim.Adam(model.parameters(), lr=options.lr)
        best, best_state, bad, t0, epochs = -1.0, None, 0, time.perf_counter(), 0
        bs = options.batch_size
        for epoch in range(options.epochs):
            model.train()
            order = rng.permutation(len(row_of))
            for i in range(0, len(order), bs):
                if cancel is not None and cancel.is_set():
                    raise KeyboardInterrupt("training cancelled")
                p = order[i:i + bs]
                r = row_of[p]
                t = anchors[r]
                # negatives: items among the candidates at each pair's anchor, drawn uniformly
                # (an anchor before any item was named has no candidates: no negative from it)
                neg_t = np.asarray([a for a in t[:negatives] if len(cand_train.get(int(a), ()))], np.int64)
                neg = np.asarray([cand_train[int(a)][rng.integers(0, len(cand_train[int(a)]))] for a in neg_t],
                                 np.int64)
                items = np.concatenate([pair_item[p], neg])
                item_t = np.concatenate([t, neg_t])
                e, sub = _embed(model.entity, graph, m.entity_type, torch.as_tensor(ent[r]), torch.as_tensor(t),
                                fanouts, options.sampler, gen, with_sub=True)
                it = _embed(model.item, graph, m.item_type, torch.as_tensor(items), torch.as_tensor(item_t),
                            fanouts, options.sampler, gen)
                logits = e @ it.T / TEMPERATURE
                if conditioned:  # add each seed's context score to the columns of the items it reached
                    seed, item, feats = context_pairs(m, sub)
                    match = (item[:, None] == torch.as_tensor(items)[None, :]).nonzero()
                    if match.numel():
                        ctx = model.context(feats).squeeze(1)
                        add = torch.zeros_like(logits).index_put((seed[match[:, 0]], match[:, 1]),
                                                                 ctx[match[:, 0]], accumulate=True)
                        logits = logits + add
                # the same item as the positive elsewhere in the batch is no negative
                same = torch.as_tensor(items[None, :] == pair_item[p][:, None])
                same.fill_diagonal_(False)
                logits = logits.masked_fill(same, float("-inf"))
                loss = nn.functional.cross_entropy(logits, torch.arange(len(p)))
                opt.zero_grad()
                loss.backward()
                opt.step()
            epochs = epoch + 1
            score = evaluate(m, val, k, val_cand)
            if progress:
                name = "conditioned" if conditioned else "two_tower"
                print(f"{name} epoch {epochs}: loss {loss.item():.4f}, val_MAP@{k} {score:.4f}", flush=True)
            if score > best:
                best, bad = score, 0
                best_state = {n: v.clone() for n, v in model.state_dict().items()}
            else:
                bad += 1
                if options.patience and bad >= options.patience:
                    break
        if best_state is not None:
            model.load_state_dict(best_state)
        m.metrics = {"epochs": epochs, "fit_seconds": round(time.perf_counter() - t0, 3),
                     "train_pairs": int(len(row_of))}
        return m


def dumps(m: TwoTowerModel) -> bytes:
    """The stored form: weights, the feature encodings the graph must be rebuilt with, and the settings."""
    state = {"format": FORMAT, "weights": m.model.state_dict(),
             "specs": {t: dataclasses.asdict(s) for t, s in m.graph.specs.items()},
             "node_types": dict(m.graph.node_types), "edge_types": [list(et) for et in m.graph.edge_types],
             "entity_type": m.entity_type, "item_type": m.item_type, "fanouts": list(m.fanouts),
             "strategy": m.strategy, "channels": m.channels, "layers": m.layers, "metrics": dict(m.metrics),
             "conditioned": m.conditioned, "entity_edge": list(m.entity_edge or []),
             "item_edge": list(m.item_edge or [])}
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def specs_of(blob: bytes) -> dict[str, ColumnSpec]:
    """The stored feature encodings by table, to rebuild the graph with before ``loads``."""
    state = torch.load(io.BytesIO(blob), weights_only=True)
    if state.get("format") not in READABLE:
        raise ValueError(f"stored two-tower format {state.get('format')} is not readable by this version")
    return {t: ColumnSpec(**s) for t, s in state["specs"].items()}


def loads(blob: bytes, graph: TemporalGraph) -> TwoTowerModel:
    """A stored two-tower model over ``graph`` (built with ``specs_of(blob)``)."""
    state = torch.load(io.BytesIO(blob), weights_only=True)
    if [list(et) for et in graph.edge_types] != state["edge_types"]:
        raise ValueError("the graph's tables or links differ from the ones the model was built for")
    model = TwoTower(graph.node_specs(), graph.edge_types, state["channels"], state["layers"], state["conditioned"],
                     every_type=state["format"] >= 2)
    model.load_state_dict(state["weights"])
    model.eval()
    return TwoTowerModel(model, graph, state["entity_type"], state["item_type"], tuple(state["fanouts"]),
                         state["strategy"], state["channels"], state["layers"], dict(state["metrics"]),
                         tuple(state["entity_edge"]) or None, tuple(state["item_edge"]) or None)
