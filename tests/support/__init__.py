"""What the tests share: the real loopback servers, the wired application, and the helpers of several test modules.

Test modules import from here, never from each other (tests/test_conventions.py checks it).
"""
