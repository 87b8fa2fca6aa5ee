"""Opening a period: the forms, their tokens, and dispatching them to every unit of the plan.
"""
