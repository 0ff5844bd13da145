"""The load test's and the benchmark's tests: their logic, and a seconds-long run of each."""
