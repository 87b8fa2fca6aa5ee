"""The government's task appendix: importing it, deadline phrases, the task book.
"""
