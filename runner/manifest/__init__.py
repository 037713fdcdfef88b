"""Manifests: models, YAML with positions, typed params, frames, `$<...>` templates, loading."""
