#!/usr/bin/env python3
"""Federated matrix factorisation on MovieLens in Flower's simulation engine: the
Flower half of bench/vs-flower/run, the same algorithm as fedrec's explicit SGD round.

usage: flower_mf.py --base u1.base --test u1.test [--rounds 20] [--fraction 1.0]
                    [--dim 32] [--lr 0.05] [--l2 0.02] [--init-scale 0.1]
                    [--seed 0] [--cpus 2]

The model, as fedrec's (fl-init --objective mse): item embeddings Q [items, d] drawn
from N(0, init_scale^2), item biases 0, the global bias mu at the middle of the rating
scale. User parameters (p_u, b_u) never leave the client: each round a client rebuilds
them from its own ratings and the round's items (Federated Reconstruction, fedrec's
--reconstruct): the ridge regression of r - mu - b_i on [q_i, 1] with penalty
n_u * lambda on every coordinate. It then runs one epoch of plain SGD (batch 1) over
its ratings in a random order:
    e = r - (mu + b_u + b_i + p_u . q_i)
    p_u -= lr (-e q_i + l2 p_u);   b_u -= lr (-e + l2 b_u)
    q_i -= lr (-e p_u + l2 q_i);   b_i -= lr (-e + l2 b_i);   mu -= lr (-e)
(both gradients from the values before the step), and returns Q, b and mu with its
number of ratings. The server is flwr's own FedAvg (flwr.serverapp.strategy.FedAvg):
the weighted average of the returned models, weighted by ratings; fraction_train
--fraction of the clients a round. After the last round every client rebuilds its user
the same way and reports its squared error on its test ratings (predictions clipped
to the rating scale); FedAvg's weighted average of the clients' MSE is the test MSE.

Clients are the dataset's users (one user, one client); partition id k is the k-th
user id in increasing order. Each Ray worker reads the two rating files once.

Prints one JSON line on stdout (the log goes to stderr):
  {"framework":"flower","rounds":R,"fraction":f,"round_seconds":[...],
   "median_round_seconds":...,"eval_seconds":...,"warmup_seconds":...,
   "rmse":...,"test_ratings":...,"clients_per_round":[...],"flwr_version":"..."}
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import numpy as np  # noqa: E402

import flwr  # noqa: E402
from flwr.app import (  # noqa: E402
    Array, ArrayRecord, ConfigRecord, Context, Message, MessageType, MetricRecord, RecordDict,
)
from flwr.clientapp import ClientApp  # noqa: E402
from flwr.serverapp import Grid, ServerApp  # noqa: E402
from flwr.serverapp.strategy import FedAvg  # noqa: E402
from flwr.simulation import run_simulation  # noqa: E402

WARMUP = "bench_warmup"

# ------------------------------------------------------------------------- client side

_DATA: dict = {}  # (base, test) -> per-process cache of the ratings, by partition id


def load_ratings(base: str, test: str) -> dict:
    """users, items (sorted raw ids), rating scale and each user's train/test arrays."""
    key = (base, test)
    if key not in _DATA:
        tr = np.loadtxt(base, dtype=np.int64, usecols=(0, 1, 2))
        te = np.loadtxt(test, dtype=np.int64, usecols=(0, 1, 2))
        users = np.unique(np.concatenate([tr[:, 0], te[:, 0]]))
        items = np.unique(np.concatenate([tr[:, 1], te[:, 1]]))

        def split(a):
            a = a[np.argsort(a[:, 0], kind="stable")]
            u = np.searchsorted(users, a[:, 0])
            cuts = np.searchsorted(u, np.arange(len(users) + 1))
            i = np.searchsorted(items, a[:, 1]).astype(np.int64)
            r = a[:, 2].astype(np.float32)
            return [(i[cuts[k]:cuts[k + 1]], r[cuts[k]:cuts[k + 1]]) for k in range(len(users))]

        _DATA[key] = {
            "users": users, "items": len(items), "train": split(tr), "test": split(te),
            "scale": (float(min(tr[:, 2].min(), te[:, 2].min())), float(max(tr[:, 2].max(), te[:, 2].max()))),
        }
    return _DATA[key]


def reconstruct_user(q, b, mu, items, ratings, l2):
    """fedrec's UserSolver for explicit MF: ridge of r - mu - b_i on [q_i, 1]."""
    d = q.shape[1]
    if len(items) == 0:
        return np.zeros(d, np.float32), 0.0
    x = np.empty((len(items), d + 1), np.float64)
    x[:, :d] = q[items]
    x[:, d] = 1.0
    a = x.T @ x + np.eye(d + 1) * (l2 * len(items))
    y = x.T @ (ratings.astype(np.float64) - mu - b[items])
    s = np.linalg.solve(a, y)
    return s[:d].astype(np.float32), float(s[d])


app = ClientApp()


def _client(msg: Message, context: Context):
    cfg = msg.content["config"]
    data = load_ratings(str(cfg["base"]), str(cfg["test"]))
    return cfg, data, int(context.node_config["partition-id"])


def _model(msg: Message):
    arrays = msg.content["arrays"]
    return (arrays["item_embedding"].numpy(), arrays["item_bias"].numpy(),
            float(arrays["global_bias"].numpy()[0]))


@app.query()
def query(msg: Message, context: Context) -> Message:
    _client(msg, context)  # warm-up: read the ratings into this worker
    return Message(RecordDict(), reply_to=msg)


def local_epoch(q0, b0, mu, items, ratings, lr, l2, rng):
    """One client's round: its user rebuilt, then one SGD epoch; returns Q, b, mu."""
    q, b = q0.copy(), b0.astype(np.float64)
    p, bu = reconstruct_user(q0, b0, mu, items, ratings, l2)
    for e in rng.permutation(len(items)):
        i, qi = items[e], q[items[e]]
        err = float(ratings[e]) - (mu + bu + b[i] + float(p @ qi))
        gp = l2 * p - err * qi
        gq = l2 * qi - err * p
        p -= lr * gp
        q[i] -= lr * gq
        bu -= lr * (l2 * bu - err)
        b[i] -= lr * (l2 * b[i] - err)
        mu -= lr * (-err)
    return q, b.astype(np.float32), mu


def test_errors(q, b, mu, data, k, l2):
    """Squared errors and count of client k's test ratings, its user rebuilt."""
    p, bu = reconstruct_user(q, b, mu, *data["train"][k], l2)
    t_items, t_ratings = data["test"][k]
    low, high = data["scale"]
    pred = np.clip(mu + bu + b[t_items] + q[t_items] @ p, low, high)
    return float(np.sum((pred - t_ratings) ** 2)), len(t_items)


@app.train()
def train(msg: Message, context: Context) -> Message:
    cfg, data, k = _client(msg, context)
    q0, b0, mu = _model(msg)
    items, ratings = data["train"][k]
    rng = np.random.default_rng([int(cfg["seed"]), int(cfg["server-round"]), k])
    q, b, mu = local_epoch(q0, b0, mu, items, ratings, float(cfg["lr"]), float(cfg["l2"]), rng)
    arrays = ArrayRecord({"item_embedding": Array(q), "item_bias": Array(b),
                          "global_bias": Array(np.array([mu], np.float32))})
    return Message(RecordDict({"arrays": arrays, "metrics": MetricRecord({"num-examples": len(items)})}),
                   reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    cfg, data, k = _client(msg, context)
    q, b, mu = _model(msg)
    sse, n = test_errors(q, b, mu, data, k, float(cfg["l2"]))
    return Message(RecordDict({"metrics": MetricRecord({"num-examples": n, "mse": sse / n if n else 0.0})}),
                   reply_to=msg)


# ------------------------------------------------------------------------- server side

class TimedFedAvg(FedAvg):
    """flwr's FedAvg, timed per round, with federated evaluation after the last round only."""

    def __init__(self, rounds: int, results: dict, **kwargs):
        super().__init__(**kwargs)
        self.rounds = rounds
        self.results = results
        self.began = 0.0

    def configure_train(self, server_round, arrays, config, grid):
        self.began = time.perf_counter()
        messages = list(super().configure_train(server_round, arrays, config, grid))
        self.results["clients_per_round"].append(len(messages))
        return messages

    def aggregate_train(self, server_round, replies):
        out = super().aggregate_train(server_round, replies)
        self.results["round_seconds"].append(time.perf_counter() - self.began)
        return out

    def configure_evaluate(self, server_round, arrays, config, grid):
        if server_round < self.rounds:
            return []
        self.began = time.perf_counter()
        return super().configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(self, server_round, replies):
        replies = list(replies)
        out = super().aggregate_evaluate(server_round, replies)
        if server_round == self.rounds:
            self.results["eval_seconds"] = time.perf_counter() - self.began
            self.results["test_ratings"] = sum(
                int(m.content["metrics"]["num-examples"]) for m in replies if not m.has_error())
            if out is not None:
                self.results["rmse"] = float(np.sqrt(out["mse"]))
        return out


def make_server_app(args, results: dict) -> ServerApp:
    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        random.seed(args.seed)  # FedAvg samples clients with random.sample
        data = load_ratings(args.base, args.test)
        n_users = len(data["users"])
        config = ConfigRecord({"base": args.base, "test": args.test, "lr": args.lr, "l2": args.l2,
                               "seed": args.seed})
        # Warm-up, not timed: every node registered, and a query to a few nodes so that
        # the Ray workers have started and read the ratings before round 1.
        begin = time.perf_counter()
        while len(list(grid.get_node_ids())) < n_users:
            time.sleep(0.05)
        warm = [Message(RecordDict({"config": config, WARMUP: ConfigRecord({"x": 0})}), dst_node_id=nid,
                        message_type=MessageType.QUERY)
                for nid in sorted(grid.get_node_ids())[: 4 * args.cpus]]
        replies = list(grid.send_and_receive(warm))
        print(f"warm-up: {sum(not r.has_error() for r in replies)} of {len(warm)} nodes replied", file=sys.stderr)
        results["warmup_seconds"] = time.perf_counter() - begin

        rng = np.random.default_rng(args.seed)
        low, high = data["scale"]
        initial = ArrayRecord({
            "item_embedding": Array((rng.standard_normal((data["items"], args.dim)) * args.init_scale).astype(np.float32)),
            "item_bias": Array(np.zeros(data["items"], np.float32)),
            "global_bias": Array(np.array([(low + high) / 2], np.float32)),
        })
        strategy = TimedFedAvg(args.rounds, results, fraction_train=args.fraction, fraction_evaluate=1.0,
                               min_train_nodes=1, min_evaluate_nodes=n_users, min_available_nodes=n_users)
        strategy.start(grid=grid, initial_arrays=initial, num_rounds=args.rounds,
                       train_config=config, evaluate_config=config)

    return server


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", required=True, help="training ratings (MovieLens u1.base)")
    p.add_argument("--test", required=True, help="test ratings (MovieLens u1.test)")
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--fraction", type=float, default=1.0, help="FedAvg's fraction_train")
    p.add_argument("--dim", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--l2", type=float, default=0.02)
    p.add_argument("--init-scale", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cpus", type=int, default=2, help="Ray's CPUs (one per ClientApp)")
    args = p.parse_args()
    args.base, args.test = os.path.abspath(args.base), os.path.abspath(args.test)

    results: dict = {"round_seconds": [], "clients_per_round": []}
    backend_config = {
        "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
        "init_args": {"num_cpus": args.cpus, "num_gpus": 0, "include_dashboard": False, "log_to_driver": False},
    }
    n_users = len(load_ratings(args.base, args.test)["users"])
    begin = time.perf_counter()
    run_simulation(server_app=make_server_app(args, results), client_app=app, num_supernodes=n_users,
                   backend_config=backend_config)
    seconds = results["round_seconds"]
    out = {
        "framework": "flower", "rounds": args.rounds, "fraction": args.fraction, "clients": n_users,
        "round_seconds": [round(s, 3) for s in seconds],
        "median_round_seconds": round(float(np.median(seconds)), 3) if seconds else None,
        "eval_seconds": round(results.get("eval_seconds", float("nan")), 3),
        "warmup_seconds": round(results.get("warmup_seconds", float("nan")), 3),
        "simulation_seconds": round(time.perf_counter() - begin, 3),
        "rmse": results.get("rmse"), "test_ratings": results.get("test_ratings"),
        "clients_per_round": results["clients_per_round"], "flwr_version": flwr.__version__,
    }
    print(json.dumps(out), flush=True)
    return 0 if out["rmse"] is not None and len(seconds) == args.rounds else 1


if __name__ == "__main__":
    # Run as the module flower_mf, not as __main__, so that Ray pickles the ClientApp's
    # functions by reference (the workers import this file) rather than by value with
    # their globals; the workers find it through PYTHONPATH.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))
    import flower_mf

    sys.exit(flower_mf.main())
