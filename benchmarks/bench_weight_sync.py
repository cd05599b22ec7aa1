"""Weight sync side by side: object store vs collective, SmolLM2-135M, 1 and 2 ZeRO-3 ranks, 1 and 2 generators.

One invocation measures every combination on the same actors: the policy ranks (DeepSpeed ZeRO-3) and
two vLLM generators are started once per rank count; each method then syncs `--repeats` versions to one
and to both generators, through the loop's own `Syncer` (actors/weight_sync.py). Printed per row:
seconds per sync (median over the repeats, after one warm-up sync that also forms the collective group),
the first sync's seconds, and the bytes each sync puts through Ray's object store: the exported object's
size as the store reports it (`ray.experimental.get_object_locations`) for the object store; for the
collective, the payload is a few kB passed inline with the call (below Ray's 100 kB inline limit), so 0.

    flock /tmp/heavy.lock .venv/bin/python benchmarks/bench_weight_sync.py [--repeats 3] [--json out.json]

The header gives the date, CPU flags and the load average (machine-wide, other work included).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

CONFIG = ["trainer.zero_stage=3", "rollout.prompts_per_step=8", "algo.mini_batches=1"]


def start_policy(ray, cfg, path: str, ranks: int) -> list:
    from promedical.actors.policy import Policy
    from promedical.deploy.build import policy_kwargs
    from promedical.runtime.distributed import free_port

    base, port = policy_kwargs(cfg, path), free_port()
    extra = [{}] if ranks == 1 else [dict(rank=r, world_size=ranks, master_addr="127.0.0.1", master_port=port)
                                     for r in range(ranks)]
    handles = [ray.remote(Policy).options(num_cpus=0.5).remote(**base, **e) for e in extra]
    ray.get([h.version.remote() for h in handles])
    return handles


def start_generators(ray, cfg, path: str, n: int) -> list:
    from promedical.actors.generator import Generator
    from promedical.deploy.build import generator_kwargs

    base = generator_kwargs(cfg, path)
    handles = [ray.remote(Generator).options(num_cpus=0.5).remote(**dict(base, replica=i,
                                                                       omp_threads_bind=f"share:{i}/{n}"))
               for i in range(n)]
    ray.get([h.version.remote() for h in handles])
    return handles


def measure(sync, repeats: int, version: int) -> tuple[float, float, int]:
    """(first sync s, median s of the next `repeats`, object-store bytes of one sync)."""
    import ray

    from promedical.actors.weight_sync import Syncer

    syncer = Syncer(sync, timeout_s=600)
    times, stored = [], 0
    for k in range(repeats + 1):
        start = time.perf_counter()
        pending = syncer.start(version + k)
        syncer.wait(pending)
        times.append(time.perf_counter() - start)
        if sync.method == "object_store":
            ref = sync.generators.weights[version + k]
            stored = ray.experimental.get_object_locations([ref])[ref]["object_size"]
    return times[0], statistics.median(times[1:]), stored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bucket-mb", type=float, default=64.0)
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2], help="ZeRO-3 policy rank counts")
    parser.add_argument("--json", default="")
    args = parser.parse_args()

    from bench_step import header

    import ray

    from promedical.actors.groups import GeneratorGroup, PolicyGroup
    from promedical.actors.models import resolve_model
    from promedical.actors.sync_collective import Rendezvous
    from promedical.actors.weight_sync import CollectiveSync, ObjectStoreSync
    from promedical.deploy.auto_dtypes import resolve_auto_dtypes
    from promedical.deploy.build import policy_kwargs, start_ray
    from promedical.deploy.config import load_config
    from promedical.runtime.distributed import free_port

    print(header(), flush=True)
    path = resolve_model("smollm2")
    start_ray("")
    rows, version = [], 1
    generators = None
    for ranks in args.ranks:
        # dtypes resolved as `promedical train` resolves them (bf16 where this CPU computes it natively)
        cfg = resolve_auto_dtypes(load_config("demo", CONFIG + [f"placement.roles.policy.replicas={ranks}"]))
        dtype = policy_kwargs(cfg, path)["export_dtype"]
        policy = start_policy(ray, cfg, path, ranks)
        generators = generators or start_generators(ray, cfg, path, 2)
        for n in (1, 2):
            group = PolicyGroup(policy, zero_stage=3, mini_batches=1)
            for method in ("object_store", "collective"):
                gens = GeneratorGroup(generators[:n])
                if method == "object_store":
                    sync = ObjectStoreSync(group, gens, keep_versions=1)
                else:
                    spec = Rendezvous("127.0.0.1", free_port(), 1 + n, name=f"bench-r{ranks}-g{n}-e0", timeout_s=600)
                    sync = CollectiveSync(group, gens, spec, bucket_bytes=int(args.bucket_mb * 2**20), dtype=dtype)
                first, median, stored = measure(sync, args.repeats, version)
                version += args.repeats + 1
                rows.append(dict(method=method, ranks=ranks, generators=n, first_s=first, sync_s=median,
                                 object_store_bytes=stored, dtype=dtype))
                print(f"{method:<13} ZeRO-3 ranks {ranks}  generators {n}  first {first:6.2f}s  "
                      f"per sync {median:6.2f}s  object store {stored / 2**20:7.1f} MiB", flush=True)
        for h in policy:
            ray.kill(h)
    print(f"\n{'method':<13}{'ranks':>6}{'gens':>5}{'s/sync':>8}{'first s':>9}{'obj-store MiB':>15}")
    for r in rows:
        print(f"{r['method']:<13}{r['ranks']:>6}{r['generators']:>5}{r['sync_s']:>8.2f}{r['first_s']:>9.2f}"
              f"{r['object_store_bytes'] / 2**20:>15.1f}")
    print(f"weights travel as {rows[0]['dtype']}; collective buckets {args.bucket_mb:g} MiB; "
          f"load average after: {os.getloadavg()[0]:.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
