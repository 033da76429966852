"""Sub-command modules of the CLI. Keep module-level imports light (no torch here)."""
