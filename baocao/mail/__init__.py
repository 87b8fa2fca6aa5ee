"""Outgoing mail: the outbox, MIME serialisation, SMTP delivery and the message templates.
"""
