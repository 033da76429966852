"""One router per area: selection, manifest info, health."""
