"""Every side effect Fairlane has, one retryable and audited Temporal activity each."""
