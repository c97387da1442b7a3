"""ctpbackup: GitOps backups and restores of Kubernetes (Crossplane) control planes."""

__version__ = "0.1.0"
