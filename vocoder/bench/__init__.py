"""`vocoder bench`: speed, memory and quality benchmarks, one module per subject (generation, student, kernel,
training, memory, quality), all timed by `timing.timed_rates`. The HTTP load test is an external client and stays
in benchmarks/."""
