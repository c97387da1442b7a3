"""Desired state: the manifests of one Git commit, parsed, validated and typed (Git -> YAML -> schemas -> model)."""
