"""The reference model router: serves decisions the way Fairlane's routing contract says."""
