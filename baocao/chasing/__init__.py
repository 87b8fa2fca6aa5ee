"""Chasing late units: reminders, overdue notices and escalations.
"""
