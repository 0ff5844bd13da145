"""`make bench`: the system's throughput and latency beside a baseline, measured in one run."""
