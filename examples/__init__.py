"""Example models of other domains than the demo's, each a user of the product only."""
