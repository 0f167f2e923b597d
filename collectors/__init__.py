"""Evidence sources: one module per source, each exposing `collect(target, ctx) -> Evidence`."""
