"""Wall-clock timing for reports and benchmarks (never for tests), and the name of the machine timed."""
import platform
import statistics
import time


def cpu_name(fallback=None):
    """The CPU's model name (Linux's /proc/cpuinfo), else Python's processor string, else ``fallback``
    (default: the machine type)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or fallback or platform.machine()


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
