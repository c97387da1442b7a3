"""The bucket as this job sees it: key layout, records, the index and its per-control-plane files, the lease."""
