"""Shared machinery for methods: run context, trainer, feature cache."""
