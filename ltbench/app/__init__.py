"""The application layer: the runner, sweeps and suites, and the command line (nothing else imports it)."""
