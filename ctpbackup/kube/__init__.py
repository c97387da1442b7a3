"""Kubernetes API access: raw JSON calls, connecting to a control plane, Secret sources, the job's RBAC."""
