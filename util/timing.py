"""Wall-clock timing for reports and benchmarks (never for tests)."""
import statistics
import time


def median_ms(run, runs=5, warmup=1):
    """Median wall time in milliseconds of ``run()`` over ``runs`` calls, after ``warmup`` untimed calls
    (caches, thread pools, lazy initialisation)."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)
