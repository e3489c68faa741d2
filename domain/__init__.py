"""The housing chain's rules: aggregates, commands, the calendar and the municipal policy.

Everything here is pure: dates, actors and today's date come in as arguments. Only
`domain.case`, `domain.apartment` and `domain.identity` import eventsourcing, so workflow
code may import `domain.calendar`, `domain.policy` and `domain.commands`.
"""
