"""Built-in method plug-ins. Every module here is imported by ltbench.registry.discover_methods."""
