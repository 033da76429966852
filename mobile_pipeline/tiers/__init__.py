"""Device catalog and classifier: device info -> tier + fallback chain."""
