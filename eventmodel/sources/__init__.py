"""Sources: where typed events come from (Nova notifications, full syncs, plugins)."""
