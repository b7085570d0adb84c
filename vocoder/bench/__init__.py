"""`vocoder bench`: speed, memory and quality benchmarks, one module per subject (generation, student, kernel,
training, memory, quality), all timed by `timing.timed_rates`. The HTTP load test is an external client and stays
in benchmarks/."""

VOICED_HZ = 150.0
"""The F0 a benchmark gives a model that reads one (a student's harmonic source): voiced throughout at this pitch, so
the source costs what it does on speech at its most voiced. Light to import: the HTTP load test uses it too."""
