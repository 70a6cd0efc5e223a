"""The model registry: manifests of the models Fairlane can open incidents on."""
