"""Throughput of sharded runs against one datasets.map, and memory over a long run.

    python benchmarks/bench_scale.py --rows 600 --size 64 --rounds 2
    python benchmarks/bench_scale.py --soak 3000 --size 32

The local preset with detect_text=False (CenterFace, blur) on real photos shrunk to --size
px, cycled to --rows rows of a dataset on disk (memory-mapped, as a user's is). The
configurations run on the same rows, interleaved over --rounds (a shared machine drifts);
the median rows/s is shown with the machine's load average:
  datasets.map         ds.map(transform, batched=True) into a cache file (what runner.anonymize does)
  map + save_to_disk   the same, plus writing the saved dataset (what `u2s anonymize` does)
  sharded local x1     run_sharded in this process: parquet shards, fsync, markers
  sharded local x2     two spawned worker processes (their model loading included)
  sharded ray x2       Ray Data, two CPU actors on a local cluster started before the timing
--soak runs sharded local x1 once over many rows and prints the resident memory of this
process per quarter of the run, all of it and its anonymous part (RSS also counts the
memory-mapped input's pages as they are read; flat anonymous memory means nothing piles up).
"""

import argparse
import io
import os
import shutil
import statistics
import tempfile
import threading
import time

import psutil
from PIL import Image


def photo_bytes(size: int) -> list:
    from u2s_datasets.samples import sample_photos

    out = []
    for data in sample_photos().values():
        image = Image.open(io.BytesIO(data)).convert("RGB")
        image.thumbnail((size, size))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


def input_dataset(rows: int, size: int, cache: str):
    import datasets

    photos = photo_bytes(size)
    return datasets.Dataset.from_generator(
        lambda: ({"image": {"bytes": photos[i % len(photos)], "path": None}, "index": i} for i in range(rows)),
        features=datasets.Features({"image": datasets.Image(decode=False), "index": datasets.Value("int64")}),
        cache_dir=cache,
    )


def timed(fn) -> tuple:
    load = os.getloadavg()[0]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start, load


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=600)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--shard-size", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--soak", type=int, help="rows of a memory soak instead of the throughput table")
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()

    import datasets

    from u2s_datasets import Unsafe2Safe
    from u2s_datasets.run import run_sharded

    datasets.disable_progress_bars()
    os.environ.setdefault("TQDM_DISABLE", "1")
    print(f"{os.cpu_count()} CPUs; load average at start {os.getloadavg()[0]:.1f}")
    transform = Unsafe2Safe(detect_text=False)
    with tempfile.TemporaryDirectory() as work:
        if args.soak:
            return soak(args, transform, work)
        ds = input_dataset(args.rows, args.size, os.path.join(work, "cache"))
        transform({"image": list(ds[:1]["image"])})  # the detector loads outside the timing
        features = transform.features(ds.features)
        counter = iter(range(10**6))

        def fresh():
            return os.path.join(work, f"run-{next(counter)}")

        def do_map(save=False):
            out = ds.map(transform, batched=True, batch_size=8, features=features, cache_file_name=fresh() + ".arrow")
            if save:
                out.save_to_disk(fresh())

        steady = {}

        def sharded(name, **options):
            def run():
                folder = fresh()
                run_sharded(ds, transform, folder, shard_size=args.shard_size, **options)
                steady.setdefault(name, []).append(steady_rate(folder))

            return run

        configs = {
            "datasets.map": do_map,
            "map + save_to_disk": lambda: do_map(save=True),
            "sharded local x1": sharded("sharded local x1"),
            "sharded local x2": sharded("sharded local x2", num_workers=2),
        }
        if not args.no_ray:
            import ray

            seconds, _ = timed(lambda: ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                                                _node_ip_address="127.0.0.1"))
            print(f"Ray local cluster started in {seconds:.1f} s (not in the figures)")
            configs["sharded ray x2"] = sharded("sharded ray x2", engine="ray", num_workers=2)
        results = {name: [] for name in configs}
        for round_ in range(args.rounds):
            for name, fn in configs.items():
                seconds, load = timed(fn)
                results[name].append((args.rows / seconds, load))
                print(f"round {round_ + 1}: {name:20s} {args.rows / seconds:7.1f} rows/s  (load {load:.1f})", flush=True)
        if not args.no_ray:
            ray.shutdown()
    print(f"\n{args.rows} rows of {args.size} px, shards of {args.shard_size}, median of {args.rounds} rounds")
    base = statistics.median(r for r, _ in results["datasets.map"])
    saved = statistics.median(r for r, _ in results["map + save_to_disk"])
    for name, runs in results.items():
        rate = statistics.median(r for r, _ in runs)
        print(f"{name:20s} {rate:7.1f} rows/s   vs map {100 * (base / rate - 1):+6.1f}% time   vs map+save {100 * (saved / rate - 1):+6.1f}% time"
              f"   load {statistics.mean(l for _, l in runs):.1f}")
    print("\nafter start-up (rows of the shards finished after the first, over the time between first and last marker):")
    for name, rates in steady.items():
        print(f"{name:20s} {statistics.median(rates):7.1f} rows/s")


def steady_rate(folder) -> float:
    from u2s_datasets.run.layout import RunLayout

    markers = sorted(RunLayout(folder).finished().values(), key=lambda m: m["finished_at"])
    if len(markers) < 2:
        return float("nan")
    return sum(m["rows_in"] for m in markers[1:]) / (markers[-1]["finished_at"] - markers[0]["finished_at"])


def anonymous_rss() -> int:
    """Resident memory that is not a file's pages: the memory-mapped input's pages count in RSS and are not a leak."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0


def soak(args, transform, work):
    from u2s_datasets.run import run_sharded

    ds = input_dataset(args.soak, args.size, os.path.join(work, "cache"))
    process, samples, running = psutil.Process(), [], True

    def sample():
        while running:
            samples.append((time.perf_counter(), process.memory_info().rss, anonymous_rss()))
            time.sleep(0.1)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    start = time.perf_counter()
    summary = run_sharded(ds, transform, os.path.join(work, "out"), shard_size=args.shard_size)
    end = time.perf_counter()
    running = False
    thread.join()
    print(summary)
    print(f"soak: {args.soak} rows of {args.size} px in {end - start:.1f} s ({args.soak / (end - start):.1f} rows/s), shards of {args.shard_size}")
    quarter = (end - start) / 4
    for q in range(4):
        part = [(rss, anon) for t, rss, anon in samples if start + q * quarter <= t < start + (q + 1) * quarter]
        print(f"  quarter {q + 1}: peak RSS {max(r for r, _ in part) / 2**20:7.1f} MiB"
              f"   peak anonymous {max(a for _, a in part) / 2**20:7.1f} MiB")
    shutil.rmtree(os.path.join(work, "out"))


if __name__ == "__main__":
    main()
