"""The `fairlane` command line: runs the services and wraps the HTTP API."""
