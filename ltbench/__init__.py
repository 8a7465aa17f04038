"""ltbench: a benchmark harness for long-tailed recognition with vision-language models."""
from ltbench import _checkout

__version__ = "0.1.0"

_checkout.install()  # a source checkout: methods/ and benchmarks/ as ltbench.methods / .benchmarks
