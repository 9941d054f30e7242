"""Benchmarks (run as scripts or through their main(argv)); see docs/benchmarks.md for results."""
import platform


def cpu_model() -> str:
    """The CPU's model name as /proc/cpuinfo gives it (every figure says which CPU it came from), else
    what the platform module knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
