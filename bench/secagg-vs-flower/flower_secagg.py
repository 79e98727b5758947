#!/usr/bin/env python3
"""One round of Flower's SecAgg+ (flwr's secaggplus_mod + SecAggPlusWorkflow) in
Flower's simulation engine, measured: the Flower half of fedrec's secure-aggregation
benchmark (bench/secagg-vs-flower/run).

Each of n clients returns a float32 vector of m coordinates (uniform in [-1, 1], seeded
by --seed and the client's partition id) and nothing else happens: no training, no
evaluation, the initial model is a single float. The cost measured is the secure
aggregation of those vectors.

Prints one JSON line on stdout (everything else goes to stderr):
  {"framework":"flower","parties":n,"length":m,"dropout_rate":d,"num_shares":k,
   "threshold":t,"round_seconds":...,"upload_bytes_per_client":...,
   "max_abs_error":...,"flwr_version":"...", ...extra fields documented below}

Dropouts: round(d * n) clients, chosen from a seeded permutation of the partition ids,
raise inside the ClientApp at the chosen stage. Flower's simulation engine turns the
exception into an error reply, and the workflow treats the client as dropped:
  --dropout-stage unmask (default): the client raises when asked for its key shares in
      the unmask stage, i.e. after its masked vector was uploaded. Its vector stays in
      the sum (SecAgg+ semantics: it was received); only its shares are missing.
  --dropout-stage masked: the client raises when asked for its masked vector, i.e.
      after the key-share stage and before uploading. Its vector is not in the sum and
      the server reconstructs its pairwise-mask key from its neighbours' shares and
      strips its masks: SecAgg+'s expensive dropout path.

Upload bytes are measured, not estimated: the Grid handed to the workflow is wrapped
so every reply that arrives at the server is serialised to Flower's protobuf
RecordDict (flwr.common.serde.recorddict_to_proto(...).ByteSize(); the message
metadata envelope is not counted) and its size is recorded per client and per stage.
The time spent measuring is subtracted from round_seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import numpy as np  # noqa: E402

import flwr  # noqa: E402
from flwr.app import ConfigRecord, Context, Message, MessageType, RecordDict  # noqa: E402
from flwr.client import NumPyClient  # noqa: E402
from flwr.client.mod import secaggplus_mod  # noqa: E402
from flwr.clientapp import ClientApp  # noqa: E402
from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays  # noqa: E402
from flwr.common.serde import recorddict_to_proto  # noqa: E402
from flwr.server import LegacyContext, ServerApp, ServerConfig  # noqa: E402
from flwr.server.strategy import FedAvg  # noqa: E402
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow  # noqa: E402
from flwr.simulation import run_simulation  # noqa: E402

WARMUP = "bench_warmup"
SECAGG_CONFIGS = "secaggplus_configs"  # flwr.common.secure_aggregation.secaggplus_constants
STAGES = ("setup", "share_keys", "collect_masked_vectors", "unmask")
MODULUS = 2**32  # Flower's default and maximum modulus_range


def client_vector(seed: int, partition: int, length: int) -> np.ndarray:
    rng = np.random.default_rng([seed, partition])
    return rng.uniform(-1.0, 1.0, length).astype(np.float32)


def dropped_partitions(seed: int, parties: int, rate: float) -> set[int]:
    count = int(round(rate * parties))
    order = np.random.default_rng([seed, 0xD209]).permutation(parties)
    return {int(p) for p in order[:count]}


def hypergeom_tail(population: int, bad: int, draws: int, more_than: int) -> float:
    """P(X > more_than) for X ~ Hypergeometric(population, bad, draws)."""
    total = math.comb(population, draws)
    return sum(
        math.comb(bad, x) * math.comb(population - bad, draws - x)
        for x in range(more_than + 1, min(bad, draws) + 1)
    ) / total


def default_shares(parties: int, dropped: int) -> tuple[int, int]:
    """k and t when the caller gives none.

    Flower documents no rule; its SecAgg+ example uses num_shares=3,
    reconstruction_threshold=2, which we keep when nobody drops. With dropouts, every
    client's window of k neighbours (itself included, Flower's ring graph) must keep t
    responders, so we take t = floor(k/2) + 1 (a majority, which is what Flower's own
    check t < k allows at the least) and the smallest odd k >= 3 for which the union
    bound n * P(more than k - t of a window dropped) is at most 1e-6.
    """
    if dropped == 0:
        return (min(3, parties), 2)
    for k in range(3, parties + 1, 2):
        t = k // 2 + 1
        if parties * hypergeom_tail(parties, dropped, k, k - t) <= 1e-6:
            return (k, t)
    return (parties, parties // 2 + 1)


class MeasuringGrid:
    """Delegates to Flower's Grid and records the serialised size of every reply."""

    def __init__(self, grid, record):
        self._grid = grid
        self._record = record  # stage -> {node_id: bytes}
        self.measure_seconds = 0.0
        self.download = {}  # stage -> total bytes sent by the server

    def __getattr__(self, name):
        return getattr(self._grid, name)

    def send_and_receive(self, messages, *args, **kwargs):
        messages = list(messages)
        begin = time.perf_counter()
        stage = "?"
        down = 0
        for msg in messages:
            cfg = msg.content.config_records.get(SECAGG_CONFIGS)
            if cfg is not None and "stage" in cfg:
                stage = str(cfg["stage"])
            down += recorddict_to_proto(msg.content).ByteSize()
        self.download[stage] = self.download.get(stage, 0) + down
        self.measure_seconds += time.perf_counter() - begin
        replies = list(self._grid.send_and_receive(messages, *args, **kwargs))
        begin = time.perf_counter()
        sizes = self._record.setdefault(stage, {})
        for reply in replies:
            if not reply.has_error():
                sizes[reply.metadata.src_node_id] = recorddict_to_proto(
                    reply.content
                ).ByteSize()
        self.measure_seconds += time.perf_counter() - begin
        return replies


class TimedSecAggPlus(SecAggPlusWorkflow):
    """SecAggPlusWorkflow with each stage timed and the grid measured."""

    def __init__(self, *args, results, **kwargs):
        super().__init__(*args, **kwargs)
        self.results = results

    def __call__(self, grid, context):
        mgrid = MeasuringGrid(grid, self.results.setdefault("reply_bytes", {}))
        begin = time.perf_counter()
        super().__call__(mgrid, context)
        self.results["workflow_seconds"] = time.perf_counter() - begin
        self.results["measure_seconds"] = mgrid.measure_seconds
        self.results["download_bytes"] = mgrid.download

    def _timed(self, name, stage, grid, context, state):
        begin = time.perf_counter()
        ok = stage(grid, context, state)
        self.results.setdefault("stage_seconds", {})[name] = time.perf_counter() - begin
        self.results["num_shares"] = state.num_shares
        self.results["threshold"] = state.threshold
        if not ok:
            self.results["halted_at"] = name
        return ok

    def setup_stage(self, grid, context, state):
        return self._timed("setup", super().setup_stage, grid, context, state)

    def share_keys_stage(self, grid, context, state):
        return self._timed("share_keys", super().share_keys_stage, grid, context, state)

    def collect_masked_vectors_stage(self, grid, context, state):
        return self._timed(
            "collect_masked_vectors", super().collect_masked_vectors_stage, grid, context, state
        )

    def unmask_stage(self, grid, context, state):
        return self._timed("unmask", super().unmask_stage, grid, context, state)


class KeepAggregate(FedAvg):
    """FedAvg that keeps SecAgg+'s aggregate as is.

    After unmasking, the workflow gives every FitRes the same aggregated parameters;
    FedAvg would deserialise and average n identical copies (n * 8 m bytes), which is
    not secure-aggregation cost, so take one copy and note who was aggregated.
    """

    def __init__(self, results, **kwargs):
        super().__init__(**kwargs)
        self.results = results

    def aggregate_fit(self, server_round, results, failures):
        self.results["aggregated_partitions"] = sorted(
            int(fit_res.metrics["partition"]) for _, fit_res in results
        )
        self.results["failures"] = len(failures)
        if not results:
            return None, {}
        parameters = results[0][1].parameters
        self.results["aggregate"] = parameters_to_ndarrays(parameters)
        return parameters, {}


class VectorClient(NumPyClient):
    def __init__(self, vector: np.ndarray, partition: int):
        self.vector = vector
        self.partition = partition

    def fit(self, parameters, config):
        # num_examples = 1 with max_weight = 1: weight ratio 1, no precision lost to it.
        return [self.vector], 1, {"partition": self.partition}


def make_client_app(args, dropped):
    def client_fn(context: Context):
        partition = int(context.node_config["partition-id"])
        return VectorClient(client_vector(args.seed, partition, args.length), partition).to_client()

    def dropout_mod(msg: Message, ctxt: Context, call_next):
        # Outermost mod: a dropped client raises at its drop stage, before
        # secaggplus_mod or the app see the message.
        if WARMUP in msg.content.config_records:
            return Message(RecordDict(), reply_to=msg)
        cfg = msg.content.config_records.get(SECAGG_CONFIGS)
        if cfg is not None and cfg.get("stage") == args.dropout_stage_name:
            if int(ctxt.node_config["partition-id"]) in dropped:
                raise RuntimeError(f"simulated dropout at stage {args.dropout_stage_name}")
        return call_next(msg, ctxt)

    return ClientApp(client_fn=client_fn, mods=[dropout_mod, secaggplus_mod])


def make_server_app(args, results):
    app = ServerApp()

    @app.main()
    def main(grid, context: Context) -> None:
        # Warm-up, not timed: one empty query to a few nodes so that every Ray actor
        # has started and loaded the ClientApp before the round begins.
        begin = time.perf_counter()
        while len(list(grid.get_node_ids())) < args.parties:  # nodes still registering
            time.sleep(0.05)
        nodes = sorted(grid.get_node_ids())[: 4 * args.cpus]
        warm = [
            Message(RecordDict({WARMUP: ConfigRecord({"x": 0})}), dst_node_id=nid,
                    message_type=MessageType.QUERY)
            for nid in nodes
        ]
        replies = list(grid.send_and_receive(warm))
        print(f"warm-up: {len(nodes)} nodes, {sum(not r.has_error() for r in replies)} replied", file=sys.stderr)
        results["warmup_seconds"] = time.perf_counter() - begin
        strategy = KeepAggregate(
            results,
            fraction_fit=1.0,
            fraction_evaluate=0.0,
            min_fit_clients=args.parties,
            min_evaluate_clients=0,
            min_available_clients=args.parties,
            initial_parameters=ndarrays_to_parameters([np.zeros(1, np.float32)]),
        )
        legacy = LegacyContext(context=context, config=ServerConfig(num_rounds=1), strategy=strategy)
        fit = TimedSecAggPlus(
            args.num_shares,
            args.threshold,
            max_weight=1.0,
            clipping_range=args.clipping_range,
            quantization_range=args.quantization_range,
            modulus_range=MODULUS,
            results=results,
        )
        DefaultWorkflow(fit_workflow=fit)(grid, legacy)

    return app


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--parties", type=int, required=True)
    p.add_argument("--length", type=int, required=True)
    p.add_argument("--dropout-rate", type=float, default=0.0)
    p.add_argument("--dropout-stage", choices=("unmask", "masked"), default="unmask")
    p.add_argument("--num-shares", type=int, default=None)
    p.add_argument("--threshold", type=int, default=None)
    p.add_argument("--clipping-range", type=float, default=1.0,
                   help="values are clipped to [-c, c]; the vectors are in [-1, 1]")
    p.add_argument("--quantization-range", type=int, default=None,
                   help="default: the largest power of two Q with n * Q < 2^32")
    p.add_argument("--seed", type=int, default=20261202)
    p.add_argument("--cpus", type=int, default=2, help="Ray's CPUs (one per ClientApp)")
    args = p.parse_args()

    n, m = args.parties, args.length
    if n < 2 or m < 1 or not 0 <= args.dropout_rate < 1:
        p.error("need parties >= 2, length >= 1, 0 <= dropout rate < 1")
    dropped = dropped_partitions(args.seed, n, args.dropout_rate)
    args.dropout_stage_name = "unmask" if args.dropout_stage == "unmask" else "collect_masked_vectors"
    k_default, t_default = default_shares(n, len(dropped))
    shares_source = "given"
    if args.num_shares is None and args.threshold is None:
        args.num_shares, args.threshold = k_default, t_default
        shares_source = "default rule (see default_shares)"
    elif args.num_shares is None or args.threshold is None:
        p.error("give both --num-shares and --threshold, or neither")
    if args.quantization_range is None:
        # Each client's quantised coordinate and its weight factor are at most Q; the
        # sum over the n clients must stay below the modulus 2^32 to be unambiguous.
        args.quantization_range = 1 << ((MODULUS - 1) // n).bit_length() - 1

    results: dict = {}
    backend_config = {
        "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
        "init_args": {"num_cpus": args.cpus, "num_gpus": 0, "include_dashboard": False,
                      "log_to_driver": False},
    }
    begin = time.perf_counter()
    run_simulation(
        server_app=make_server_app(args, results),
        client_app=make_client_app(args, dropped),
        num_supernodes=n,
        backend_config=backend_config,
    )
    total_seconds = time.perf_counter() - begin

    out = {
        "framework": "flower",
        "parties": n,
        "length": m,
        "dropout_rate": args.dropout_rate,
        "num_shares": results.get("num_shares", args.num_shares),
        "threshold": results.get("threshold", args.threshold),
        "round_seconds": None,
        "upload_bytes_per_client": None,
        "max_abs_error": None,
        "flwr_version": flwr.__version__,
    }
    notes = []
    if "workflow_seconds" in results:
        out["round_seconds"] = round(results["workflow_seconds"] - results["measure_seconds"], 3)
    reply_bytes = results.get("reply_bytes", {})
    per_client: dict[int, int] = {}
    by_stage = {}
    for stage in STAGES:
        sizes = reply_bytes.get(stage, {})
        by_stage[stage] = round(sum(sizes.values()) / len(sizes), 1) if sizes else None
    # Clients that uploaded a masked vector: their total over the stages they answered.
    uploaders = set(reply_bytes.get("collect_masked_vectors", {}))
    for stage in STAGES:
        for nid, size in reply_bytes.get(stage, {}).items():
            if nid in uploaders:
                per_client[nid] = per_client.get(nid, 0) + size
    if per_client:
        out["upload_bytes_per_client"] = round(sum(per_client.values()) / len(per_client), 1)
    out["upload_bytes_by_stage"] = by_stage
    out["upload_bytes_source"] = (
        "measured: protobuf-serialised RecordDict of each reply received by the server "
        "(recorddict_to_proto().ByteSize()), mean over clients that uploaded a masked "
        "vector, summed over the four stages they answered"
    )
    out["masked_vector_encoding"] = (
        "list of 2 numpy int64 arrays (weight factor, shape (1,); vector, shape (m,)), "
        "each np.save-serialised into bytes: about 8*m + 2*128 bytes"
    )
    downloads = results.get("download_bytes", {})
    out["download_bytes_per_client"] = round(sum(downloads.values()) / n, 1) if downloads else None
    out["stage_seconds"] = {k: round(v, 3) for k, v in results.get("stage_seconds", {}).items()}
    out["simulation_seconds"] = round(total_seconds, 3)
    out["warmup_seconds"] = round(results.get("warmup_seconds", float("nan")), 3)
    out["dropouts"] = len(dropped)
    out["dropout_stage"] = args.dropout_stage
    out["dropouts_simulated"] = bool(dropped)
    out["num_shares_source"] = shares_source
    out["clipping_range"] = args.clipping_range
    out["quantization_range"] = args.quantization_range
    out["modulus_range"] = MODULUS

    if "halted_at" in results:
        notes.append(f"Flower halted the secure aggregation at stage {results['halted_at']}")
    aggregate = results.get("aggregate")
    if aggregate is not None:
        partitions = results["aggregated_partitions"]
        expected = set(range(n)) - (dropped if args.dropout_stage == "masked" else set())
        if set(partitions) != expected:
            notes.append(
                f"aggregated {len(partitions)} clients, expected {len(expected)}"
            )
        exact = np.zeros(m, np.float64)
        for part in partitions:
            exact += client_vector(args.seed, part, m)
        # Flower returns the weighted average sum(w x) / sum(w); every w is 1.
        flower_sum = np.asarray(aggregate[0], np.float64) * len(partitions)
        err = float(np.max(np.abs(flower_sum - exact)))
        out["max_abs_error"] = err
        # Per client and coordinate: stochastic rounding moves it by less than one step
        # 2c/Q, and Flower shifts and scales the float32 input in float32 before
        # rounding, which adds at most about 2c * 2^-23 (a few float32 half-ulps).
        step = 2 * args.clipping_range / args.quantization_range
        bound = len(partitions) * (step + 2 * args.clipping_range * 2.0**-23)
        out["error_bound"] = bound
        out["survivors"] = len(partitions)
        out["correct"] = bool(err <= bound)
        if err > bound:
            notes.append("aggregate differs from the plain sum by more than the quantisation bound")
    else:
        out["correct"] = False
        notes.append("no aggregate was produced")
    out["notes"] = notes
    print(json.dumps(out), flush=True)
    return 0 if out["correct"] else 1


if __name__ == "__main__":
    sys.exit(main())
