"""External alerts: what monitors send, checked and turned into ``AlertEvent``s.

One module per concern: the two wire formats (``alertmanager``, ``generic``), which
model an alert is about (``mapping``), the optional body signature (``signature``)
and how a rejected body is explained, field by field (``problems``). Nothing here
talks to Temporal or HTTP; ``api/alerts.py`` wires it to both.
"""
