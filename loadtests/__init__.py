"""Load tests (Locust) and the benchmark of Drone Delivery; see docs/load-testing.md and docs/performance.md."""
