"""Starting incident workflows: shared by the API (a commander opens one) and the model
watch (an alert or a monitor breach opens one)."""
