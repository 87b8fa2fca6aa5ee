"""Taking in what units send back: the mail and folder channels, the mailbox, the reader
(container safety checks, XLSX and CSV), validation, and the pipeline that stores and
answers each file.
"""
