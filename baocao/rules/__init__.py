"""The rules a cycle follows, read from `config/`: settings, the indicator catalogue, the
hierarchy of units, reporting plans, periods and working days, Vietnamese formatting.
"""
