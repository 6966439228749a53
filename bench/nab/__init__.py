"""The Numenta Anomaly Benchmark (NAB v1.1) scorer and the benchmark run built on it."""
