"""The engines that move objects: backup (export into an archive) and restore (ordered re-creation)."""
