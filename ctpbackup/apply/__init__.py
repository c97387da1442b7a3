"""Carrying out a plan: the executor, its progress, its metrics, and the status views of what it recorded."""
