"""Incidents as a domain: opening one (``service``: the API's commander and the model
watch's alert or breach both come here), starting its workflow (``start``), signing
humans' decisions for it (``decisions``), and what reaches it from outside."""
