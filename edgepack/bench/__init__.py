"""The harness: accuracy against the source, latency and memory of the exact artifact file."""
