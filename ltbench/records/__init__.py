"""Run records, saved logits, leaderboard tables and published numbers: everything read after a run."""
