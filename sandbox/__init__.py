"""A sandbox fulfillment service that plays a real warehouse against the adapter over HTTP."""
