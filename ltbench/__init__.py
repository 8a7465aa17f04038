"""ltbench: a benchmark harness for long-tailed recognition with vision-language models."""

__version__ = "0.1.0"
