"""Manifests: models, YAML with positions, typed params, frames, `$<...>` templates, loading
(with its diagnostics, `--set` overrides, a task's resolution over its App, placeholder
declarations and the kind cache)."""
