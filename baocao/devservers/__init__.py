"""The built-in SMTP and IMAP servers and the simulated units, for the demo, the tests and
the benchmarks.
"""
